--- atai.cli.pipeline: the registry and the queue (`atai pipelines`,
-- `atai pipeline`, `atai queue`), with their flags and help.

local atai = require("atai")
local args = require("atai.cli.args")
local output = require("atai.cli.output")
local list = require("atai.cli.list")

local EXIT = output.EXIT

local function pipeline_cells(p)
  return { p.id, p.pipeline_key, p.pipeline_version, p.status, p.pipeline_type, p.name }
end

local function pipelines(ctx)
  return list.command(ctx, ctx.client:each_pipeline { pipeline_type = ctx.flags.type }, list.PIPELINE, pipeline_cells)
end

-- A pipeline by id, else by pipeline_key (the newest published version).
-- A ref that cannot be an id is only looked up as a key.
local function find_pipeline(client, ref)
  if atai.core.id_problem(ref) then return client:find_pipeline(ref) end
  local p, err = client:pipeline(ref)
  if p or err.kind ~= "not_found" then return p, err end
  return client:find_pipeline(ref)
end

-- The ports of a pipeline: "worker.inference, worker.n_shots".
local function ports(t)
  local names = {}
  for name in pairs(type(t) == "table" and t or {}) do names[#names + 1] = output.escape(name) end
  table.sort(names)
  return #names > 0 and table.concat(names, ", ") or "-"
end

local function pipeline(ctx)
  local out = ctx.out
  if ctx.args[1] == "" then args.usage("pipeline: an empty ID|KEY", ctx.command) end
  local p, err = find_pipeline(ctx.client, ctx.args[1])
  if not p then return out:report(err, ctx.args[1]) end
  if ctx.flags.schema then
    local schema, serr = ctx.client:pipeline_schema(p.id)
    if not schema then return out:report(serr, p.id) end
    if not out.quiet or out.json then out:print_json(schema) end
    return EXIT.ok
  end
  list.row(ctx, list.PIPELINE, pipeline_cells(p))
  list.finish(ctx)
  out:say("  inputs:  " .. ports(p.inputs))
  out:say("  outputs: " .. ports(p.outputs))
  if out.json then out:print_json(p) end
  return EXIT.ok
end

local function queue(ctx)
  local body, err = ctx.client:queue()
  if not body then return ctx.out:report(err) end
  for _, q in ipairs(type(body.queues) == "table" and body.queues or {}) do
    list.row(ctx, list.QUEUE, { q.pipeline_type, q.depth })
  end
  list.finish(ctx)
  if ctx.out.json then ctx.out:print_json(body) end
  return EXIT.ok
end

local TYPE = { "type", "T", "only this pipeline type (batch, training)", values = { "batch", "training" },
  parse = args.nonempty }

return {
  summary = "the pipeline registry and the queue",
  examples = {
    { "atai pipeline machine-state-classification --schema", "the configuration schema of a pipeline" },
  },
  commands = {
    { name = "pipelines", args = "", max = 0, run = pipelines, summary = "list the pipeline registry",
      flags = { TYPE } },
    { name = "pipeline", args = "ID|KEY", min = 1, max = 1, run = pipeline,
      summary = "print a pipeline, by id or by pipeline_key",
      flags = { { "schema", nil, "print the pipeline's configuration schema" } } },
    { name = "queue", args = "", max = 0, run = queue, summary = "print the queue depth per pipeline type" },
  },
}
