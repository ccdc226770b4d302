-- Pure text helpers shared by both ghost-text backends (no editor state, so they are unit-tested).
local M = {}

--- What is left of `text` once the user has typed `typed` since it was shown; nil when the
--- typing went another way.
---@param text string
---@param typed string
---@return string|nil
function M.remaining(text, typed)
  if text:sub(1, #typed) ~= typed then
    return nil
  end
  return text:sub(#typed + 1)
end

--- The next word of a suggestion: leading blanks, then a run of word characters or one run of
--- other non-blank characters (so `foo(bar)` accepts `foo`, then `(`, then `bar`).
---@param text string
---@return string
function M.next_word(text)
  local blank = text:match('^%s*')
  local rest = text:sub(#blank + 1)
  local word = rest:match('^[%w_]+') or rest:match('^[^%w_%s]+') or ''
  return blank .. word
end

--- The next line of a suggestion, with its line break, so accepting line by line ends up
--- with exactly the whole suggestion.
---@param text string
---@return string
function M.next_line(text)
  local line = text:match('^[^\n]*\n?')
  if line == '\n' then -- the suggestion starts a new line: take that line too
    return '\n' .. text:sub(2):match('^[^\n]*')
  end
  return line
end

--- The part a given accept kind takes: 'all', 'word' or 'line'.
function M.part(text, kind)
  if kind == 'word' then
    return M.next_word(text)
  elseif kind == 'line' then
    return M.next_line(text)
  end
  return text
end

--- Lines for nvim_buf_set_text / virtual text.
function M.lines(text)
  return vim.split(text, '\n', { plain = true })
end

return M
