-- :checkhealth dg_lsp: the server binary, and the model's state and device from dg/status.
local server = require('dg_lsp.server')

local M = {}

local health = vim.health

local function check_binary(cmd)
  if vim.fn.executable(cmd[1]) == 1 then
    health.ok(('server command: %s (%s)'):format(table.concat(cmd, ' '), vim.fn.exepath(cmd[1])))
  else
    health.error(('server command %q is not executable'):format(cmd[1]), {
      'pip install dg-lsp (it provides the dg-lsp command)',
      "or pass cmd = { 'python', '-m', 'dg_lsp', 'serve' } to require('dg_lsp').setup()",
    })
  end
end

local function check_model(client)
  local reply = server.request_sync(client, 'dg/status', vim.NIL, 2000)
  if not reply or reply.err or not reply.result then
    health.warn('dg/status did not answer: ' .. vim.inspect(reply and reply.err or 'timeout'))
    return
  end
  local s = reply.result
  local model = s.model ~= '' and s.model or '(none)'
  if s.state == 'ready' then
    health.ok(('model ready: %s on %s'):format(model, s.device))
  elseif s.state == 'failed' then
    local advice = s.engine == 'remote' and 'check settings.remote (url, kind, family or tokenizer, apiKeyEnv)'
      or 'set settings.modelPath to a model directory'
    health.error('model failed to load: ' .. (s.error or ''), { advice })
  elseif s.state == 'unreachable' then
    health.warn('remote server unreachable: ' .. (s.error or ''),
      { 'completions resume by themselves once the server answers', 'check settings.remote.url' })
  else
    health.warn(('model %s: %s'):format(s.state, model))
  end
  local latency = s.lastLatencyMs ~= vim.NIL and s.lastLatencyMs and ('%d ms'):format(s.lastLatencyMs) or 'none yet'
  health.info(('server %s; last completion %s; %d requests, %d cancelled, %d cache hits')
    :format(s.version or '?', latency, s.requests or 0, s.cancelled or 0, s.cacheHits or 0))
end

function M.check()
  health.start('dg-lsp')
  local dg = require('dg_lsp')
  if not dg.config then
    health.warn("require('dg_lsp').setup() has not been called")
    return
  end
  health.info('ghost text: ' .. dg.backend_name)
  check_binary(dg.config.cmd)
  local client = vim.lsp.get_clients({ name = server.name })[1]
  if client then
    check_model(client)
  else
    health.info('the server is not running: open a file of an enabled language to start it')
  end
end

return M
