--- The five RCON commands the bridge speaks (docs/BRIDGE.md, protocol version 1).
--- Each answers with one rcon.print of JSON. Only RCON, the server console and admins
--- may run them: a result builds on the map.
local builder = require("scripts.builder")
local config = require("scripts.config")
local jobs = require("scripts.jobs")
local result = require("scripts.result")
local util = require("scripts.util")

local commands_ = {}

local function reply(value)
  rcon.print(helpers.table_to_json(value))
end

local function refused(job_id, why)
  local record = storage.jobs[job_id]
  if record then
    jobs.remove(job_id)
    util.notify(record.player_index, "error", "the plan's answer was refused, nothing was built: " .. why)
  end
  return { ok = false, code = "refused", error = why }
end

local function decode(parameter)
  if type(parameter) ~= "string" then
    return nil
  end
  local value = helpers.json_to_table(parameter)
  return type(value) == "table" and value or nil
end

local function unknown(job_id)
  return { ok = false, code = "unknown_job", error = "no job " .. tostring(job_id) }
end

local handlers = {}

handlers[config.commands.version] = function()
  return {
    protocol_version = config.protocol_version,
    schema_version = config.schema_version,
    mod_version = config.mod_version,
  }
end

handlers[config.commands.poll] = function()
  return { jobs = jobs.queued() }
end

handlers[config.commands.status] = function(parameter)
  local status = decode(parameter)
  if not status or type(status.message) ~= "string" then
    return { ok = false, error = "a status needs a message" }
  end
  local level = (status.level == "warning" or status.level == "error") and status.level or "info"
  local index = util.is_int(status.player_index) and status.player_index or nil
  util.notify(index, level, status.message)
  return { ok = true }
end

handlers[config.commands.result] = function(parameter)
  local batch = decode(parameter)
  if not batch or type(batch.job_id) ~= "string" then
    return { ok = false, code = "refused", error = "a result needs JSON with a job_id" }
  end
  local record = storage.jobs[batch.job_id]
  if not record then
    return unknown(batch.job_id)
  end
  local why = result.check_batch(batch, record)
  if why then
    return refused(batch.job_id, why)
  end
  if (batch.batch_index or 0) == 0 then
    record.staged = { count = batch.batch_count or 1, batches = {} }
  end
  local batches = record.staged.batches
  batches[#batches + 1] = batch
  return { ok = true }
end

handlers[config.commands.ack] = function(parameter)
  local ack = decode(parameter)
  if not ack or type(ack.job_id) ~= "string" then
    return { ok = false, code = "refused", error = "an ack needs JSON with a job_id" }
  end
  local record = storage.jobs[ack.job_id]
  if not record then
    return unknown(ack.job_id)
  end
  local staged = record.staged
  if not staged or #staged.batches ~= staged.count then
    return refused(ack.job_id, "ack before every batch arrived")
  end
  local first = staged.batches[1]
  local message = first.message or ""
  if first.status == "error" then
    jobs.remove(ack.job_id)
    util.notify(record.player_index, "error", message ~= "" and message or "the plan failed.")
    return { ok = true }
  end
  local placements, replaces = result.check_whole(record)
  if not placements then
    return refused(ack.job_id, replaces)
  end
  local player = game.get_player(record.player_index)
  if not (player and player.valid) then
    return refused(ack.job_id, "player " .. record.player_index .. " is gone")
  end
  local job = record.job
  local o, r = job.origin, job.request.region
  builder.enqueue({
    job_id = ack.job_id,
    player_index = record.player_index,
    surface = job.surface,
    force = player.force.name,
    real = settings.global[config.settings.build_real].value
      or player.controller_type == defines.controllers.editor,
    message = message,
    placements = placements,
    replaces = replaces,
    area = { o.x, o.y, o.x + r.width, o.y + r.height },
  })
  jobs.remove(ack.job_id)
  return { ok = true }
end

local function allowed(event)
  if not event.player_index then
    return true -- RCON or the server console
  end
  local player = game.get_player(event.player_index)
  if player and player.admin then
    return true
  end
  if player then
    player.print("[Factorion] /" .. event.name .. " is for the Factorion bridge (RCON) and admins.")
  end
  return false
end

--- Register the commands (commands.add_command; called once while control.lua loads).
function commands_.register()
  for name, handler in pairs(handlers) do
    commands.add_command(name, { "factorion.command-help" }, function(event)
      if not allowed(event) then
        return
      end
      local ok, answer = pcall(handler, event.parameter)
      if not ok then
        log("Factorion: /" .. name .. " failed: " .. tostring(answer))
        local why = "the mod failed: " .. tostring(answer)
        local sent = decode(event.parameter)
        if sent and type(sent.job_id) == "string" and storage.jobs[sent.job_id] then
          answer = refused(sent.job_id, why) -- the job goes, as a refusal promises
        else
          answer = { ok = false, error = why }
        end
      end
      reply(answer)
    end)
  end
end

return commands_
