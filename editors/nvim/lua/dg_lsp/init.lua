-- dg-lsp for Neovim: starts the server, shows its completions as ghost text, and offers
-- :DgRewrite, :DgDocstring and :DgTest. All model work happens in the server.
local M = {}

---@param opts table|nil see config.lua for the sections and their defaults
function M.setup(opts)
  local config = require('dg_lsp.config').resolve(opts)
  local ghost = M.pick_backend(config.ghost_text.backend)
  ghost.setup(config.ghost_text)
  M.config, M.ghost = config, ghost

  vim.api.nvim_set_hl(0, 'DgLspGhost', { link = 'Comment', default = true })
  vim.api.nvim_create_autocmd('LspAttach', {
    group = vim.api.nvim_create_augroup('dg_lsp.attach', { clear = true }),
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == require('dg_lsp.server').name then
        ghost.attach(ev.buf)
      end
    end,
  })
  require('dg_lsp.keymaps').set(config.keymaps, ghost)
  require('dg_lsp.commands').create()
  require('dg_lsp.server').start(config)
end

---@param name 'auto'|'native'|'extmark'
function M.pick_backend(name)
  local native = require('dg_lsp.ghost.native')
  if name == 'native' or (name == 'auto' and native.available()) then
    if not native.available() then
      error('dg_lsp: ghost_text.backend = "native" needs Neovim 0.12 (vim.lsp.inline_completion)')
    end
    M.backend_name = 'native (vim.lsp.inline_completion)'
    return native
  end
  M.backend_name = 'extmark (dg-lsp)'
  return require('dg_lsp.ghost.extmark')
end

return M
