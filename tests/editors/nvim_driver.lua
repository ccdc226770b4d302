-- Drives a child Neovim (--embed) like a user: keys go through nvim_input, so insert mode,
-- autocommands and timers run for real. Run as `nvim -l nvim_driver.lua`; the environment
-- names the plugin, the server command, the ghost-text backend and a work directory. Prints
-- one JSON object of observations; test_nvim.py asserts on them.
local env = vim.env
local out = {}

local child = vim.fn.jobstart({ vim.v.progpath, '--embed', '--headless', '--clean', '-n', '-i', 'NONE' },
  { rpc = true, cwd = env.DG_WORKDIR })

local function lua(code, ...)
  local value = vim.rpcrequest(child, 'nvim_exec_lua', code, { ... })
  if value == vim.NIL then
    return nil
  end
  return value
end

local function input(keys)
  vim.rpcrequest(child, 'nvim_input', keys)
end

local function wait(what, timeout_ms, cond)
  local value
  local ok = vim.wait(timeout_ms, function()
    value = cond()
    return value ~= nil and value ~= false
  end, 20)
  if not ok then
    error('timed out waiting for ' .. what, 0)
  end
  return value
end

lua([[
  vim.opt.rtp:prepend(...)
  vim.o.swapfile = false
]], env.DG_PLUGIN)

-- Child-side helpers, defined once.
lua([[
  _G.T = {}
  -- Every extmark with virtual text, whichever backend drew it: the ghost text as the user sees it.
  function T.ghost()
    local parts = {}
    for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(0, -1, 0, -1, { details = true })) do
      local d = mark[4]
      if d.virt_text then
        local line = {}
        for _, chunk in ipairs(d.virt_text) do line[#line + 1] = chunk[1] end
        parts[#parts + 1] = table.concat(line)
        for _, vl in ipairs(d.virt_lines or {}) do
          local l = {}
          for _, chunk in ipairs(vl) do l[#l + 1] = chunk[1] end
          parts[#parts + 1] = table.concat(l)
        end
      end
    end
    return #parts > 0 and table.concat(parts, '\n') or nil
  end
  function T.state()
    return { lines = vim.api.nvim_buf_get_lines(0, 0, -1, false), cursor = vim.api.nvim_win_get_cursor(0),
             mode = vim.api.nvim_get_mode().mode, ghost = T.ghost() }
  end
  -- Record what the plugin sends and the edits it applies, without changing either.
  T.requests, T.edits = {}, {}
  local server = require('dg_lsp.server')
  local request = server.request
  server.request = function(client, method, params, ...)
    table.insert(T.requests, { method = method, params = params })
    return request(client, method, params, ...)
  end
  local apply = vim.lsp.util.apply_workspace_edit
  vim.lsp.util.apply_workspace_edit = function(edit, enc)
    table.insert(T.edits, edit)
    return apply(edit, enc)
  end
  function T.status()
    local client = server.client(0)
    local reply = client and server.request_sync(client, 'dg/status', vim.NIL, 1000)
    return reply and reply.result or nil
  end
]], nil)

local function run(name, fn)
  local ok, err = pcall(fn)
  if not ok then
    out.errors = out.errors or {}
    out.errors[name] = tostring(err)
  end
end

local ok_all, err_all = pcall(function()
  lua([[require('dg_lsp').setup(vim.json.decode(...))]], env.DG_SETUP)
  out.backend = lua('return require("dg_lsp").backend_name')
  lua([[vim.cmd.edit(...)]], 'sample.py')
  out.uri = lua('return vim.uri_from_bufnr(0)')
  lua([[vim.bo.autoindent = false; vim.bo.indentexpr = '']])
  out.ready = wait('the model to load', 90000, function()
    local s = lua('return T.status()')
    return s and s.state == 'ready' and s
  end)

  run('ghost', function()
    input('GAvalue')
    out.ghost = wait('ghost text', 20000, function() return lua('return T.ghost()') end)
    out.before_accept = lua('return T.state()')
    input('<Tab>')
    wait('the accepted text', 5000, function()
      return lua('return vim.api.nvim_get_current_line()') ~= out.before_accept.lines[#out.before_accept.lines]
    end)
    out.after_accept = lua('return T.state()')
  end)

  run('accept_word', function()
    input(' * ')
    local ghost = wait('ghost text after typing', 20000, function() return lua('return T.ghost()') end)
    local line = lua('return vim.api.nvim_get_current_line()')
    input('<M-w>')
    out.accept_word = {
      ghost = ghost, before = line,
      after = wait('the accepted word', 5000, function()
        local now = lua('return vim.api.nvim_get_current_line()')
        return now ~= line and now
      end),
    }
  end)

  run('dismiss', function()
    input(' + ')
    wait('ghost text after typing', 20000, function() return lua('return T.ghost()') end)
    local line = lua('return vim.api.nvim_get_current_line()')
    input('<C-]>')
    wait('the ghost text to go', 5000, function() return lua('return T.ghost()') == nil end)
    vim.wait(500)
    out.dismiss = { ghost = lua('return T.ghost()'), line_unchanged = lua('return vim.api.nvim_get_current_line()') == line }
  end)

  run('cycle', function()
    input('<M-]>')
    out.cycle = {
      ghost = wait('invoked candidates', 20000, function() return lua('return T.ghost()') end),
      requests = lua([[return vim.tbl_map(function(r) return r.params.context and r.params.context.triggerKind end,
                       vim.tbl_filter(function(r) return r.method == 'textDocument/inlineCompletion' end, T.requests))]]),
    }
  end)

  run('docstring', function()
    input('<Esc>')
    wait('normal mode', 5000, function() return lua('return vim.api.nvim_get_mode().mode') == 'n' end)
    local before = lua('return T.state()')
    input('1G:DgDocstring<CR>')
    local edit = wait('the docstring edit', 30000, function() return lua('return T.edits[1]') end)
    out.docstring = { before = before.lines, edit = edit, after = lua('return T.state()').lines }
  end)

  run('rewrite', function()
    local before = lua('return T.state()')
    input('gg/total<CR>V:DgRewrite make it shorter<CR>')
    local edit = wait('the rewrite edit', 30000, function() return lua('return T.edits[2]') end)
    out.rewrite = { before = before.lines, edit = edit, after = lua('return T.state()').lines,
                    request = lua([[return vim.tbl_filter(function(r)
                      return r.method == 'workspace/executeCommand' and r.params.command == 'dg.rewriteSelection'
                    end, T.requests)[1].params]]) }
  end)

  run('health', function()
    lua('vim.cmd("checkhealth dg_lsp")')
    out.health = lua('return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\\n")')
  end)
end)

if not ok_all then
  out.fatal = tostring(err_all)
end
pcall(function()
  out.messages = lua('return vim.api.nvim_exec2("messages", { output = true }).output')
end)
pcall(vim.fn.jobstop, child)
io.stdout:write(vim.json.encode(out), '\n')
