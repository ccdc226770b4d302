-- Insert-mode keys. Each is an <expr> mapping: when there is nothing to act on, the key does
-- what it did before (so <Tab> still indents).
local M = {}

local function map(lhs, action, desc)
  if not lhs then
    return
  end
  vim.keymap.set('i', lhs, function()
    if action() then
      return ''
    end
    return vim.api.nvim_replace_termcodes(lhs, true, false, true)
  end, { expr = true, replace_keycodes = false, silent = true, desc = 'dg-lsp: ' .. desc })
end

---@param keys table
---@param ghost table the ghost-text backend
function M.set(keys, ghost)
  map(keys.accept, function() return ghost.accept('all') end, 'accept the suggestion')
  map(keys.accept_word, function() return ghost.accept('word') end, 'accept a word')
  map(keys.accept_line, function() return ghost.accept('line') end, 'accept a line')
  map(keys.dismiss, ghost.dismiss, 'dismiss the suggestion')
  map(keys.next, function() return ghost.cycle(1) end, 'next candidate')
  map(keys.prev, function() return ghost.cycle(-1) end, 'previous candidate')
end

return M
