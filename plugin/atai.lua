-- plugin/atai.lua: atai for Neovim (:help atai). Defines :Atai and the
-- <Plug> mappings, and loads nothing: the atai modules load on first use.
if vim.g.loaded_atai or vim.fn.has("nvim-0.7") == 0 then return end
vim.g.loaded_atai = 1

vim.api.nvim_create_user_command("Atai", function(opts)
  require("atai.nvim").command(opts)
end, {
  nargs = "*",
  desc = "atai: Archetype AI batch jobs (:help :Atai)",
  complete = function(arglead, cmdline, cursor)
    return require("atai.nvim").complete(arglead, cmdline, cursor)
  end,
})

vim.keymap.set("n", "<Plug>(atai-jobs)", function() require("atai.nvim").open_jobs() end,
  { desc = "atai: open atai://jobs" })
vim.keymap.set("n", "<Plug>(atai-job-under-cursor)", function() require("atai.nvim").open_job_under_cursor() end,
  { desc = "atai: open the job under the cursor" })
