-- Options for setup(): one table per section, checked once with vim.validate.
local M = {}

-- vim.validate's positional form is 0.11+; 0.10 only has the table form.
local function validate(name, value, validator, message)
  if vim.fn.has('nvim-0.11') == 1 then
    vim.validate(name, value, validator, message)
  else
    vim.validate({ [name] = { value, validator, message } })
  end
end

-- Mirrors the server's `dgLsp.*` schema (dg_lsp/server/settings.py): same names, same defaults.
-- The server validates values; the plugin only checks names and types so typos surface early.
M.server_settings = {
  modelPath = '',
  device = 'auto',
  quantization = 'none',
  maxCanvas = 128,
  autoMaxCanvas = 32,
  steps = 1,
  invokedSteps = 32,
  candidates = 3,
  contextTokens = 2048,
  enabledLanguages = {
    'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact', 'rust', 'go', 'lua', 'plaintext',
  },
  seed = 0,
  minConfidence = 0.2,
  minConfidenceInLine = 0.1, -- the same, with the cursor inside a line's code
  minConfidenceInvoked = 0.1, -- the floor of an explicitly requested completion
  engine = 'local', -- 'remote': model calls go to the server in `remote` (vLLM, llama.cpp, Ollama...)
  remote = {
    url = '', -- e.g. 'http://gpu-box:8000'; dg-lsp appends /v1/completions or /infill
    kind = 'openai', -- 'openai' (prompt rendered by dg-lsp), 'openai-suffix' or 'llamacpp-infill'
    model = '',
    family = '', -- 'qwen', 'starcoder', 'codellama', 'deepseek' or 'diffusiongemma'
    tokenizer = '', -- or a local directory with the model's tokenizer files
    apiKeyEnv = '', -- name of the environment variable holding the key (never the key itself)
    timeoutMs = 5000,
  },
}

M.defaults = {
  -- How to start the server; tests and virtualenvs pass e.g. { 'python', '-m', 'dg_lsp', 'serve' }.
  cmd = { 'dg-lsp', 'serve' },
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
  ghost_text = {
    -- 'auto': Neovim's own vim.lsp.inline_completion where it exists (0.12+), else 'extmark'.
    backend = 'auto',
    debounce_ms = 150, -- extmark backend only; the native one has its own debounce
    hl_group = 'DgLspGhost',
  },
  -- Insert-mode keys; false disables one. A key that has nothing to act on falls through.
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-w>',
    accept_line = '<M-l>',
    dismiss = '<C-]>',
    next = '<M-]>',
    prev = '<M-[>',
  },
  settings = M.server_settings,
}

-- Names and types against the defaults; a nested table (`remote`) is checked key by key.
local function check_settings(settings, defaults, path)
  for key, value in pairs(settings) do
    local default = defaults[key]
    if default == nil then
      error(('dg_lsp: unknown setting %q (see dgLsp.* in the README)'):format(path .. key))
    end
    validate('settings.' .. path .. key, value, type(default))
    if type(default) == 'table' and not vim.islist(default) then
      check_settings(value, default, path .. key .. '.')
    end
  end
end

--- Merge user options over the defaults and check them.
---@param opts table|nil
---@return table
function M.resolve(opts)
  local cfg = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  -- Lists replace, not merge: tbl_deep_extend would splice user and default lists together.
  if opts and opts.settings and opts.settings.enabledLanguages then
    cfg.settings.enabledLanguages = opts.settings.enabledLanguages
  end
  if opts and opts.cmd then
    cfg.cmd = opts.cmd
  end
  validate('cmd', cfg.cmd, 'table')
  validate('ghost_text', cfg.ghost_text, 'table')
  validate('keymaps', cfg.keymaps, 'table')
  validate('ghost_text.backend', cfg.ghost_text.backend, function(v)
    return v == 'auto' or v == 'native' or v == 'extmark'
  end, "'auto', 'native' or 'extmark'")
  check_settings(cfg.settings, M.server_settings, '')
  return cfg
end

return M
