-- Neovim 0.12+: ghost text from vim.lsp.inline_completion; this module only adds partial accepts
-- and Invoked candidates on top of it.
local server = require('dg_lsp.server')
local suggestion = require('dg_lsp.suggestion')
local insert = require('dg_lsp.insert')

local M = {}

local api = vim.api
local ic = vim.lsp.inline_completion
local ns = api.nvim_create_namespace('nvim.lsp.inline_completion') -- the namespace it draws in

function M.available()
  return ic ~= nil and ic.get ~= nil
end

function M.setup(_) end

function M.attach(buf)
  local client = server.client(buf)
  if client then
    ic.enable(true, { client_id = client.id }) -- our client only; other servers keep their own setting
  end
end

function M.visible()
  return #api.nvim_buf_get_extmarks(0, ns, 0, -1, { limit = 1 }) > 0
end

--- The part of an item not typed yet: the item's text starts at its range, the cursor may be past it.
local function untyped(item)
  local text = type(item.insert_text) == 'string' and item.insert_text or nil
  if not text or not item.range then
    return text
  end
  local row, col = unpack(api.nvim_win_get_cursor(0))
  local start = item.range.start
  if start.row ~= row - 1 or start.col > col then
    return text
  end
  local typed = api.nvim_get_current_line():sub(start.col + 1, col)
  return suggestion.remaining(text, typed) or text
end

---@param kind 'all'|'word'|'line'
function M.accept(kind)
  if kind == 'all' then
    return ic.get()
  end
  return ic.get({
    on_accept = function(item)
      local text = untyped(item)
      if text then
        -- The rest comes back with the next automatic request, which the server answers from its cache.
        insert(suggestion.part(text, kind))
      end
    end,
  })
end

-- vim.lsp.inline_completion has no public dismiss or Invoked request (0.12); its per-buffer
-- completor is reachable through a private table, used only when present.
local function completor(buf)
  local ok, capability = pcall(require, 'vim.lsp._capability')
  local class = ok and type(capability.all) == 'table' and capability.all.inline_completion
  return class and class.active and class.active[buf] or nil
end

function M.dismiss()
  if not M.visible() then
    return false
  end
  local c = completor(api.nvim_get_current_buf())
  if c and c.abort then
    c:abort()
  else
    api.nvim_buf_clear_namespace(0, ns, 0, -1) -- hidden until the next keystroke asks again
  end
  return true
end

--- The native completor asks with trigger kind Automatic only, while the server returns several
--- candidates for Invoked requests: ask ourselves and hand the answer to the completor.
local function invoked_candidates(buf)
  local c = completor(buf)
  local client = server.client(buf)
  if not c or not c.handler or not client then
    return false
  end
  local row, col = unpack(api.nvim_win_get_cursor(0))
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = server.position(client, buf, row - 1, col),
    context = { triggerKind = 1 },
  }
  server.request(client, 'textDocument/inlineCompletion', params, function(err, result, ctx)
    if not err and result and api.nvim_get_mode().mode:match('^i') then
      c:handler(nil, result, ctx)
      if #(result.items or result) > 1 then
        ic.select({ count = 0 }) -- redraw with the "(1/n)" hint
      end
    end
  end, buf)
  return true
end

local asked = {}

function M.cycle(step)
  local buf = api.nvim_get_current_buf()
  vim.schedule(function() -- out of the <expr> mapping's text lock
    local tick = vim.b[buf].changedtick
    if asked[buf] ~= tick then
      asked[buf] = tick -- one Invoked request per buffer state; later presses cycle its answer
      if invoked_candidates(buf) then
        return
      end
    end
    ic.select({ count = step })
  end)
  return true
end

return M
