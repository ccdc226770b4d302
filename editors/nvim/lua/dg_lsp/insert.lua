-- Inserting accepted text as if typed: at the cursor, leaving the cursor after it.
local suggestion = require('dg_lsp.suggestion')

---@param text string
return function(text)
  local win = vim.api.nvim_get_current_win()
  local buf = vim.api.nvim_win_get_buf(win)
  local row, col = unpack(vim.api.nvim_win_get_cursor(win))
  local lines = suggestion.lines(text)
  vim.api.nvim_buf_set_text(buf, row - 1, col, row - 1, col, lines)
  local last_col = (#lines == 1 and col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(win, { row + #lines - 1, last_col })
end
