-- The plugin's pure parts, without a server: `nvim -l nvim_unit.lua PLUGIN_DIR` prints one JSON
-- object of results that test_nvim.py compares with what it expects.
vim.opt.rtp:prepend(_G.arg[1])
local config = require('dg_lsp.config')
local suggestion = require('dg_lsp.suggestion')

local texts = { 'foo(bar, baz)', '  return x', '(a)', 'abc\ndef', '\n    body\nmore', '', 'x_1 + 2' }
local out = { server_settings = config.server_settings, word = {}, line = {}, remaining = {} }
for i, text in ipairs(texts) do
  out.word[i] = { text, suggestion.next_word(text) }
  -- Accepting line by line must end with exactly the whole suggestion.
  local lines, rest = {}, text
  while rest ~= '' do
    local part = suggestion.next_line(rest)
    lines[#lines + 1] = part
    rest = rest:sub(#part + 1)
  end
  out.line[i] = { text, lines }
end
out.remaining = {
  suggestion.remaining('hello world', 'hel') or vim.NIL,
  suggestion.remaining('hello world', 'help') or vim.NIL,
  suggestion.remaining('hello', 'hello') or vim.NIL,
}
local ok, err = pcall(config.resolve, { settings = { noSuchSetting = 1 } })
out.unknown_setting = ok and vim.NIL or tostring(err)
ok, err = pcall(config.resolve, { settings = { steps = 'many' } })
out.bad_type = ok and vim.NIL or tostring(err)
ok, err = pcall(config.resolve, { settings = { remote = { apiKey = 'sk-1' } } })
out.unknown_remote_setting = ok and vim.NIL or tostring(err)
ok, err = pcall(config.resolve, { settings = { remote = { timeoutMs = '5s' } } })
out.bad_remote_type = ok and vim.NIL or tostring(err)
local remote = config.resolve({ settings = { engine = 'remote', remote = { url = 'http://gpu-box:8000', family = 'qwen' } } })
out.resolved_remote = { engine = remote.settings.engine, remote = remote.settings.remote }
local resolved = config.resolve({ settings = { enabledLanguages = { 'python' }, steps = 4 } })
out.resolved = { enabledLanguages = resolved.settings.enabledLanguages, steps = resolved.settings.steps,
                 device = resolved.settings.device }
io.stdout:write(vim.json.encode(out), '\n')
