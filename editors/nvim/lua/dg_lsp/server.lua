-- Starting the server and talking to it; the only module that knows the 0.10/0.11 LSP API split.
local M = {}

M.name = 'dg_lsp'

-- LSP language ids that differ from Neovim filetypes.
local language_to_filetype = { plaintext = 'text' }
local filetype_to_language = { text = 'plaintext' }

local function filetypes(languages)
  if vim.tbl_contains(languages, '*') then
    return nil -- every filetype
  end
  return vim.tbl_map(function(lang)
    return language_to_filetype[lang] or lang
  end, languages)
end

--- The client configuration, shared by vim.lsp.config (0.11+) and vim.lsp.start (0.10).
function M.client_config(cfg)
  return {
    name = M.name,
    cmd = cfg.cmd,
    filetypes = filetypes(cfg.settings.enabledLanguages),
    root_markers = cfg.root_markers,
    init_options = { dgLsp = cfg.settings },
    -- Sent again as workspace/didChangeConfiguration; the server keeps a loaded model when
    -- nothing that affects loading changed.
    settings = { dgLsp = cfg.settings },
    get_language_id = function(_, filetype)
      return filetype_to_language[filetype] or filetype
    end,
  }
end

function M.start(cfg)
  local config = M.client_config(cfg)
  if vim.lsp.config and vim.lsp.enable then
    vim.lsp.config(M.name, config)
    vim.lsp.enable(M.name)
    return
  end
  -- 0.10: no vim.lsp.enable, so attach on FileType ourselves.
  local group = vim.api.nvim_create_augroup('dg_lsp.start', { clear = true })
  local function attach(buf)
    if vim.bo[buf].buftype ~= '' or (config.filetypes and not vim.tbl_contains(config.filetypes, vim.bo[buf].filetype)) then
      return
    end
    local root = vim.fs.root(buf, config.root_markers)
    vim.lsp.start(vim.tbl_extend('force', config, { root_dir = root or vim.fn.getcwd() }), { bufnr = buf })
  end
  vim.api.nvim_create_autocmd('FileType', { group = group, callback = function(ev) attach(ev.buf) end })
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.bo[buf].filetype ~= '' then
      attach(buf)
    end
  end
end

---@return vim.lsp.Client|nil
function M.client(buf)
  return vim.lsp.get_clients({ name = M.name, bufnr = buf })[1]
end

--- Send a request; 0.11 made the client's methods colon calls.
---@return integer|nil request id
function M.request(client, method, params, handler, buf)
  local ok, id
  if vim.fn.has('nvim-0.11') == 1 then
    ok, id = client:request(method, params, handler, buf)
  else
    ok, id = client.request(method, params, handler, buf)
  end
  return ok and id or nil
end

function M.cancel(client, id)
  if vim.fn.has('nvim-0.11') == 1 then
    client:cancel_request(id)
  else
    client.cancel_request(id)
  end
end

function M.request_sync(client, method, params, timeout_ms, buf)
  if vim.fn.has('nvim-0.11') == 1 then
    return client:request_sync(method, params, timeout_ms, buf)
  end
  return client.request_sync(method, params, timeout_ms, buf)
end

--- LSP position (in the client's encoding) of a 0-based row and byte column.
function M.position(client, buf, row, col)
  return { line = row, character = vim.lsp.util.character_offset(buf, row, col, client.offset_encoding) }
end

--- Byte column of an LSP position on a line of text.
function M.byte_col(client, line, character)
  if character == 0 then
    return 0
  end
  if vim.fn.has('nvim-0.11') == 1 then
    return vim.str_byteindex(line, client.offset_encoding, character, false)
  end
  if client.offset_encoding == 'utf-8' then
    return math.min(character, #line)
  end
  return vim.str_byteindex(line, character, client.offset_encoding == 'utf-16')
end

return M
