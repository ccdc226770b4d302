-- A user's first minutes with the shipped default model: a real Python file, the cursor at the
-- end of a function body, `    return ` typed key by key; reports the ghost text and the line
-- after <Tab> accepts it. Run as `nvim -l nvim_default_model.lua`; the environment names the
-- plugin, the setup table and a work directory holding `config.py`. Prints one JSON object.
local env = vim.env
local out = {}

local child = vim.fn.jobstart({ vim.v.progpath, '--embed', '--headless', '--clean', '-n', '-i', 'NONE' },
  { rpc = true, cwd = env.DG_WORKDIR })

local function lua(code, ...)
  local value = vim.rpcrequest(child, 'nvim_exec_lua', code, { ... })
  return value ~= vim.NIL and value or nil
end

local function wait(what, timeout_ms, cond)
  local value
  if not vim.wait(timeout_ms, function() value = cond(); return value ~= nil and value ~= false end, 20) then
    error('timed out waiting for ' .. what, 0)
  end
  return value
end

local ok, err = pcall(function()
  lua([[vim.opt.rtp:prepend(...); vim.o.swapfile = false]], env.DG_PLUGIN)
  lua([[
    _G.T = {}
    function T.ghost()
      for _, mark in ipairs(vim.api.nvim_buf_get_extmarks(0, -1, 0, -1, { details = true })) do
        local d = mark[4]
        if d.virt_text then
          local parts = {}
          for _, chunk in ipairs(d.virt_text) do parts[#parts + 1] = chunk[1] end
          return table.concat(parts)
        end
      end
    end
    function T.status()
      local server = require('dg_lsp.server')
      local client = server.client(0)
      local reply = client and server.request_sync(client, 'dg/status', vim.NIL, 1000)
      return reply and reply.result or nil
    end
  ]])
  lua([[require('dg_lsp').setup(vim.json.decode(...))]], env.DG_SETUP)
  lua([[vim.cmd.edit('config.py'); vim.bo.autoindent = false; vim.bo.indentexpr = '']])
  out.ready = wait('the default model to load', 120000, function()
    local s = lua('return T.status()')
    return s and s.state == 'ready' and s
  end)
  vim.rpcrequest(child, 'nvim_input', 'Go')  -- a new line after the function body's last line
  for char in ('    return '):gmatch('.') do
    vim.rpcrequest(child, 'nvim_input', char == ' ' and '<Space>' or char)
    vim.wait(30)  -- a typist's pace: each key is its own didChange
  end
  out.ghost = wait('ghost text', 30000, function() return lua('return T.ghost()') end)
  out.typed = lua('return vim.api.nvim_get_current_line()')
  vim.rpcrequest(child, 'nvim_input', '<Tab>')
  out.accepted = wait('the accepted text', 5000, function()
    local line = lua('return vim.api.nvim_get_current_line()')
    return line ~= out.typed and line
  end)
  out.lines = lua('return vim.api.nvim_buf_get_lines(0, 0, -1, false)')
end)
if not ok then
  out.fatal = tostring(err)
end
pcall(function() out.messages = lua('return vim.api.nvim_exec2("messages", { output = true }).output') end)
pcall(vim.fn.jobstop, child)
io.stdout:write(vim.json.encode(out), '\n')
