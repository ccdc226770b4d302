-- :DgRewrite, :DgDocstring and :DgTest: run the server's dg.* command and apply the
-- WorkspaceEdit it returns (the plugin holds no model logic).
local server = require('dg_lsp.server')

local M = {}

local api = vim.api

local function notify(msg, level)
  vim.notify('dg-lsp: ' .. msg, level or vim.log.levels.INFO)
end

local function attached_client(buf)
  local client = server.client(buf)
  if not client then
    notify('the server is not attached to this buffer', vim.log.levels.WARN)
  end
  return client
end

--- Run `command` with one argument object; apply the edit when one comes back.
local function execute(client, buf, command, argument, doing)
  notify(doing .. '…')
  local params = { command = command, arguments = { argument } }
  server.request(client, 'workspace/executeCommand', params, function(err, edit)
    if err then
      notify(err.message or tostring(err), vim.log.levels.ERROR)
    elseif edit == nil or edit == vim.NIL then
      notify('nothing to apply (the request was superseded)', vim.log.levels.WARN)
    else
      vim.lsp.util.apply_workspace_edit(edit, client.offset_encoding)
    end
  end, buf)
end

--- The range a :'<,'>Command means, as 0-based (row, byte col) start and exclusive end:
--- characterwise from the marks after a `v` selection, whole lines otherwise.
function M.selection_range(buf, line1, line2)
  local s, e = api.nvim_buf_get_mark(buf, '<'), api.nvim_buf_get_mark(buf, '>')
  if vim.fn.visualmode() == 'v' and s[1] == line1 and e[1] == line2 then
    local last = api.nvim_buf_get_lines(buf, e[1] - 1, e[1], false)[1] or ''
    -- '> marks the last selected character's first byte; the range ends after that character.
    local char_len = #vim.fn.strcharpart(last:sub(e[2] + 1), 0, 1)
    return s[1] - 1, s[2], e[1] - 1, math.min(e[2] + math.max(char_len, 1), #last)
  end
  local last = api.nvim_buf_get_lines(buf, line2 - 1, line2, false)[1] or ''
  return line1 - 1, 0, line2 - 1, #last
end

function M.rewrite(opts)
  local buf = api.nvim_get_current_buf()
  local client = attached_client(buf)
  if not client then
    return
  end
  local srow, scol, erow, ecol = M.selection_range(buf, opts.line1, opts.line2)
  local argument = {
    uri = vim.uri_from_bufnr(buf),
    range = { start = server.position(client, buf, srow, scol), ['end'] = server.position(client, buf, erow, ecol) },
  }
  if opts.args ~= '' then
    argument.instruction = opts.args
  end
  execute(client, buf, 'dg.rewriteSelection', argument, 'rewriting')
end

local function at_cursor(command, doing)
  return function()
    local buf = api.nvim_get_current_buf()
    local client = attached_client(buf)
    if not client then
      return
    end
    local row, col = unpack(api.nvim_win_get_cursor(0))
    execute(client, buf, command, { uri = vim.uri_from_bufnr(buf), position = server.position(client, buf, row - 1, col) }, doing)
  end
end

function M.create()
  api.nvim_create_user_command('DgRewrite', M.rewrite, {
    range = true,
    nargs = '*',
    desc = 'dg-lsp: rewrite the selected lines, optionally following an instruction',
  })
  api.nvim_create_user_command('DgDocstring', at_cursor('dg.fillDocstring', 'writing a docstring'), {
    desc = 'dg-lsp: write a docstring for the function at the cursor',
  })
  api.nvim_create_user_command('DgTest', at_cursor('dg.generateTest', 'writing a test'), {
    desc = 'dg-lsp: generate a test for the function at the cursor',
  })
end

return M
