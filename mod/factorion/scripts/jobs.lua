--- Plan jobs: the request a player poses, queued in storage until the bridge's ack.
local config = require("scripts.config")
local state = require("scripts.state")
local util = require("scripts.util")

local jobs = {}

--- Remove a job from the queue (acknowledged, refused, cancelled or replaced).
---@param job_id string
function jobs.remove(job_id)
  storage.jobs[job_id] = nil
  for i, id in ipairs(storage.job_order) do
    if id == job_id then
      table.remove(storage.job_order, i)
      return
    end
  end
end

--- The queued jobs, oldest first, as PlanJob tables (the poll reply).
function jobs.queued()
  local out = {}
  for _, id in ipairs(storage.job_order) do
    local record = storage.jobs[id]
    if record then
      out[#out + 1] = record.job
    end
  end
  return out
end

--- Plans whose area overlaps `box` on `surface_name`: a new plan there replaces them.
function jobs.plans_under(surface_name, box)
  local ids = {}
  for id, plan in pairs(storage.plans) do
    if plan.surface == surface_name and util.overlaps(plan.area, box) then
      ids[#ids + 1] = id
    end
  end
  table.sort(ids) -- pairs order must not decide anything players see
  return ids
end

--- Keys (util.entity_key) of the entities those plans placed that still stand: they
--- do not block a re-plan, which removes them.
function jobs.planned_keys(plan_ids)
  local keys = {}
  for _, id in ipairs(plan_ids) do
    for _, placed in ipairs(storage.plans[id].entities) do
      if placed.entity and placed.entity.valid then
        keys[placed.key] = true
      end
    end
  end
  return keys
end

--- Tiles of `box` taken by something other than the listed entities (keys) and what
--- does not stop building (config.not_blocking: ore, items on the ground, characters):
--- "x,y" -> the entity's name; and the tiles under the listed entities ("x,y" -> true).
function jobs.occupied(surface, box, ignore)
  local taken, ours = {}, {}
  local found = surface.find_entities_filtered({ area = { { box[1], box[2] }, { box[3], box[4] } } })
  for _, entity in ipairs(found) do
    if entity.valid and not config.not_blocking[entity.type] then
      local mine = ignore[util.entity_key(entity)] or false
      local x1, y1, x2, y2 = util.tile_bounds(entity.bounding_box)
      for y = math.max(y1, box[2]), math.min(y2, box[4]) - 1 do
        for x = math.max(x1, box[1]), math.min(x2, box[3]) - 1 do
          if mine then
            ours[util.tile_key(x, y)] = true
          else
            taken[util.tile_key(x, y)] = entity.name
          end
        end
      end
    end
  end
  return taken, ours
end

--- Whether the player could place a belt's ghost on tile (x, y): false on water, lava,
--- space and the like, whatever the planet.
local function buildable(surface, force, x, y)
  return surface.can_place_entity({
    name = "transport-belt",
    position = { x = x + 0.5, y = y + 0.5 },
    force = force,
    build_check_type = defines.build_check_type.manual_ghost,
  })
end

--- Queue a plan for the player's region and markers; replaces the player's queued job.
---@param player LuaPlayer
---@return string? job_id
---@return string? why not
function jobs.request(player)
  local ps = state.player(player.index)
  local region = ps.region
  if not region then
    return nil, "mark a region first (the Factorion region tool)."
  end
  local surface = game.get_surface(region.surface)
  if not (surface and surface.valid) then
    return nil, "the region's surface no longer exists; mark a region again."
  end
  local box = { region.x, region.y, region.x + region.width, region.y + region.height }
  local sources, sinks, markers = {}, {}, {}
  local keys = {}
  for key in pairs(ps.markers) do
    keys[#keys + 1] = key
  end
  table.sort(keys)
  for _, key in ipairs(keys) do
    local m = ps.markers[key]
    local rx, ry = m.x - region.x, m.y - region.y
    if rx >= 0 and ry >= 0 and rx < region.width and ry < region.height then
      local list = m.kind == "source" and sources or sinks
      list[#list + 1] = { x = rx, y = ry, facing = m.facing, item = m.item }
      markers[key] = true
    end
  end
  if #sinks == 0 then
    return nil, "place at least one sink inside the region (the Factorion sink tool)."
  end
  local taken, ours = jobs.occupied(surface, box, jobs.planned_keys(jobs.plans_under(region.surface, box)))
  local blocked = {}
  for y = box[2], box[4] - 1 do
    for x = box[1], box[3] - 1 do
      local key = util.tile_key(x, y)
      -- under the last plan's own entities a re-plan may build: it removes them first
      if not markers[key] and (taken[key] or (not ours[key] and not buildable(surface, player.force, x, y))) then
        blocked[#blocked + 1] = { x = x - region.x, y = y - region.y }
      end
    end
  end

  local previous = ps.queued_job
  if previous and storage.jobs[previous] then
    jobs.remove(previous)
  end
  storage.next_job = storage.next_job + 1
  local job_id = string.format("%d-%d", game.tick, storage.next_job)
  local settings = player.mod_settings
  local job = {
    schema_version = config.schema_version,
    job_id = job_id,
    player_index = player.index,
    surface = region.surface,
    origin = { x = region.x, y = region.y },
    request = {
      schema_version = config.schema_version,
      region = { width = region.width, height = region.height },
      sources = sources,
      sinks = sinks,
      blocked = blocked,
      options = {
        mode = settings[config.settings.mode].value,
        time_budget_s = settings[config.settings.time_budget].value,
        seed = 0,
      },
    },
  }
  storage.jobs[job_id] = { job = job, player_index = player.index }
  storage.job_order[#storage.job_order + 1] = job_id
  ps.queued_job = job_id
  while #storage.job_order > config.max_jobs do
    local oldest = storage.job_order[1]
    local record = storage.jobs[oldest]
    jobs.remove(oldest)
    if record then
      util.notify(record.player_index, "warning", "too many plans queued; job " .. oldest .. " was dropped.")
    end
  end
  return job_id
end

return jobs
