-- Ghost text of our own, for Neovim 0.10 and 0.11 (no vim.lsp.inline_completion there):
-- debounced textDocument/inlineCompletion requests, shown with one extmark namespace.
local server = require('dg_lsp.server')
local suggestion = require('dg_lsp.suggestion')
local insert = require('dg_lsp.insert')

local M = {}

local api = vim.api
local ns = api.nvim_create_namespace('dg_lsp.ghost')
local Automatic, Invoked = 2, 1 -- lsp.InlineCompletionTriggerKind

local opts = { debounce_ms = 150, hl_group = 'DgLspGhost' }
---@type table<integer, {items: string[], index: integer, row: integer, col: integer, request?: integer, timer?: uv.uv_timer_t, seq: integer, hint?: string}>
local state = {}

local function buf_state(buf)
  state[buf] = state[buf] or { items = {}, index = 1, row = 0, col = 0, seq = 0 }
  return state[buf]
end

--- Text typed on the anchor's line since the suggestion was anchored there; nil if the cursor left it.
local function typed_since_anchor(s)
  local row, col = unpack(api.nvim_win_get_cursor(0))
  if row - 1 ~= s.row or col < s.col then
    return nil
  end
  local line = api.nvim_buf_get_lines(0, s.row, s.row + 1, false)[1] or ''
  return line:sub(s.col + 1, col)
end

--- The part of the current suggestion not typed yet, or nil when nothing is showing.
local function visible_text(buf)
  local s = state[buf]
  if not s or not s.items[s.index] then
    return nil
  end
  local typed = typed_since_anchor(s)
  local rest = typed and suggestion.remaining(s.items[s.index], typed)
  return rest ~= '' and rest or nil
end

local function render(buf)
  api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  local text = visible_text(buf)
  if not text then
    return
  end
  local row, col = unpack(api.nvim_win_get_cursor(0))
  local lines = suggestion.lines(text)
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], opts.hl_group } }
  end
  local first = { { lines[1], opts.hl_group } }
  if state[buf].hint then
    first[#first + 1] = { state[buf].hint, 'Comment' }
  end
  api.nvim_buf_set_extmark(buf, ns, row - 1, col, {
    virt_text = first,
    virt_text_pos = 'inline', -- pushes the rest of the line right, as the text would
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
end

local function clear(buf)
  local s = state[buf]
  if s then
    s.items, s.index, s.hint = {}, 1, nil
  end
  api.nvim_buf_clear_namespace(buf, ns, 0, -1)
end

local function request(buf, kind)
  local client = server.client(buf)
  if not client or api.nvim_get_current_buf() ~= buf then
    return
  end
  local s = buf_state(buf)
  if s.request then
    server.cancel(client, s.request) -- latest wins; the server also drops superseded work
  end
  s.seq = s.seq + 1
  local seq = s.seq
  local row, col = unpack(api.nvim_win_get_cursor(0))
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = server.position(client, buf, row - 1, col),
    context = { triggerKind = kind },
  }
  s.request = server.request(client, 'textDocument/inlineCompletion', params, function(err, result)
    if seq ~= s.seq then
      return -- a newer request owns the display
    end
    s.request = nil
    if err or not result or api.nvim_get_current_buf() ~= buf or not api.nvim_get_mode().mode:match('^i') then
      return
    end
    local line = api.nvim_buf_get_lines(buf, row - 1, row, false)[1] or ''
    local items, anchor = {}, col
    for _, item in ipairs(result.items or result) do
      local text = type(item.insertText) == 'string' and item.insertText or item.insertText.value
      if text ~= '' then
        items[#items + 1] = text
        -- The server's items share one range, starting where their text goes (the cursor when asked).
        anchor = item.range and server.byte_col(client, line, item.range.start.character) or col
      end
    end
    s.items, s.index, s.row, s.col = items, 1, row - 1, anchor
    s.hint = kind == Invoked and #items > 1 and (' (1/%d)'):format(#items) or nil
    render(buf)
  end, buf)
end

local function schedule_request(buf)
  local s = buf_state(buf)
  if s.timer then
    s.timer:stop()
    s.timer:close()
  end
  s.timer = vim.defer_fn(function()
    s.timer = nil
    if api.nvim_buf_is_valid(buf) and api.nvim_get_mode().mode:match('^i') then
      request(buf, Automatic)
    end
  end, opts.debounce_ms)
end

--- Watch a buffer the server attached to.
function M.attach(buf)
  local group = api.nvim_create_augroup('dg_lsp.ghost.' .. buf, { clear = true })
  api.nvim_create_autocmd({ 'InsertEnter', 'TextChangedI', 'TextChangedP' }, {
    group = group,
    buffer = buf,
    callback = function()
      render(buf) -- typed text that matches keeps the rest of the suggestion on screen
      schedule_request(buf)
    end,
  })
  api.nvim_create_autocmd('CursorMovedI', { group = group, buffer = buf, callback = function() render(buf) end })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, { group = group, buffer = buf, callback = function() clear(buf) end })
  api.nvim_create_autocmd('LspDetach', {
    group = group,
    buffer = buf,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == server.name then
        clear(buf)
        api.nvim_del_augroup_by_id(group)
        state[buf] = nil
      end
    end,
  })
end

function M.setup(ghost_opts)
  opts = vim.tbl_extend('force', opts, ghost_opts or {})
end

function M.visible()
  return visible_text(api.nvim_get_current_buf()) ~= nil
end

---@param kind 'all'|'word'|'line'
function M.accept(kind)
  local buf = api.nvim_get_current_buf()
  local text = visible_text(buf)
  if not text then
    return false
  end
  local part = suggestion.part(text, kind)
  -- Mappings may be <expr>, where the buffer is locked: edit once they return.
  vim.schedule(function()
    insert(part)
    if part == text then
      clear(buf)
    else
      render(buf) -- the rest stays on screen until the next answer
    end
  end)
  return true
end

function M.dismiss()
  local buf = api.nvim_get_current_buf()
  if not visible_text(buf) then
    return false
  end
  clear(buf)
  return true
end

--- Show the next (or previous) candidate; the first press asks for an Invoked completion,
--- for which the server returns several candidates.
function M.cycle(step)
  local buf = api.nvim_get_current_buf()
  local s = buf_state(buf)
  if #s.items < 2 then
    vim.schedule(function()
      request(buf, Invoked)
    end)
    return true
  end
  s.index = (s.index - 1 + step) % #s.items + 1
  s.hint = (' (%d/%d)'):format(s.index, #s.items)
  vim.schedule(function()
    render(buf)
  end)
  return true
end

return M
