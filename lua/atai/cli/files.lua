--- atai.cli.files: the `atai files` commands (upload), with their flags and help.

local atai = require("atai")
local args = require("atai.cli.args")
local output = require("atai.cli.output")
local progress = require("atai.cli.progress")
local list = require("atai.cli.list")

local EXIT = output.EXIT

-- Says how to go on with an upload the server keeps (opts.resume): the
-- line stands alone, without the "atai: " of error lines, so that scripts
-- can match it whole.
local function kept(out, err)
  if type(err) == "table" and err.resumable and err.upload_id then
    local line = ("upload %s kept: run the same command with --resume to continue"):format(tostring(err.upload_id))
    out:write("stderr", output.escape(line), "\n")
    out:flush("stderr")
  end
end

-- files upload PATH...: one file after the other (a large one by parts, in
-- parallel); a row per file, or --json.
local function files_upload(ctx)
  local code, doc, out = EXIT.ok, {}, ctx.out
  for i, path in ipairs(ctx.args) do
    local draw, finish = progress.transfer(ctx, path)
    local upload_id -- p.upload_id of a resumable upload, for Ctrl-C
    local function on_progress(p)
      upload_id = p.upload_id or upload_id
      if draw then draw(p) end
    end
    local ok, r, err = pcall(ctx.client.upload_file, ctx.client, path, { concurrency = ctx.flags.parallel,
      on_progress = on_progress, resume = ctx.flags.resume or nil })
    finish()
    if not ok then
      if ctx.flags.resume and upload_id then kept(out, { resumable = true, upload_id = upload_id }) end
      error(r, 0)
    end
    if r then
      list.row(ctx, list.UPLOAD, { r.file_id, output.human_bytes(tonumber(r.num_bytes) or 0), r.route })
      doc[i] = r
    else
      code = output.worst(code, out:report(err, path))
      kept(out, err)
      doc[i] = atai.null
    end
  end
  list.finish(ctx)
  if out.json then
    if #ctx.args > 1 then out:print_json(atai.array(doc)) elseif doc[1] ~= atai.null then out:print_json(doc[1]) end
  end
  return code
end

return {
  name = "files",
  summary = "files: upload local files for jobs to read",
  examples = {
    { "atai files upload data/*.csv", "upload files one after the other" },
    { "atai files upload big.bin --resume", "an upload that can go on where it stopped" },
  },
  commands = {
    { name = "upload", args = "PATH...", min = 1, run = files_upload, live = function() return true end,
      complete_args = "file", usage = "PATH... [--parallel N] [--resume]",
      summary = "upload files (large ones by parts, in parallel)",
      flags = {
        { "parallel", "N", "transfers at once: parts of a large upload (default 4), files downloaded (default 8)",
          parse = args.whole(1, 64) },
        { "resume", nil, "go on with an upload of the same file that was stopped (kept on failure or Ctrl-C)" },
      } },
  },
  kept = kept,
}
