--- Placing a checked result over ticks, and removing what earlier plans placed.
local config = require("scripts.config")
local jobs = require("scripts.jobs")
local util = require("scripts.util")

local builder = {}

--- Remove what a plan placed: only its own entities, and only those still standing
--- (a ghost a robot has built is gone; the built entity is the player's). With `undo`
--- ({player = LuaPlayer?, opened = bool}) the removals go on that player's undo queue:
--- the first opens an undo item unless `opened`, the rest join it.
---@param plan_id string
---@param undo table?
---@return integer removed
function builder.remove_plan(plan_id, undo)
  local plan = storage.plans[plan_id]
  if not plan then
    return 0
  end
  local removed = 0
  for _, placed in ipairs(plan.entities) do
    local entity = placed.entity
    if entity and entity.valid then
      local how = { raise_destroy = true }
      if undo and undo.player and undo.player.valid then
        how.player = undo.player
        how.undo_index = undo.opened and 1 or 0
        undo.opened = true
      end
      entity.destroy(how)
      removed = removed + 1
    end
  end
  storage.plans[plan_id] = nil
  for i = #storage.builds, 1, -1 do -- a plan still being placed stops too
    if storage.builds[i].job_id == plan_id then
      table.remove(storage.builds, i)
    end
  end
  return removed
end

--- Queue a checked result for placing.
function builder.enqueue(build)
  build.next = 1
  build.placed = 0
  build.skipped = 0
  storage.builds[#storage.builds + 1] = build
end

local function start(build)
  build.started = true
  -- the old plan's removal and the new one's placing are one undo item: undoing a
  -- re-plan brings the old plan back
  local undo = { player = game.get_player(build.player_index), opened = false }
  for _, id in ipairs(build.replaces) do
    builder.remove_plan(id, undo)
  end
  build.undo_opened = undo.opened
  storage.plans[build.job_id] = {
    player_index = build.player_index,
    surface = build.surface,
    area = build.area,
    entities = {},
  }
  if #build.placements > 0 then
    local what = build.real and "entities" or "ghosts"
    util.notify(build.player_index, "info", string.format("placing %d %s...", #build.placements, what))
  end
end

local function place(build, surface, player, p)
  local check = {
    name = p.name,
    position = { x = p.position.x, y = p.position.y },
    direction = p.direction,
    force = build.force,
    -- the checks a player's own placing gets (the script ones let entities overlap)
    build_check_type = build.real and defines.build_check_type.manual or defines.build_check_type.manual_ghost,
  }
  if not surface.can_place_entity(check) then
    return nil
  end
  local params = {
    name = build.real and p.name or "entity-ghost",
    position = { x = p.position.x, y = p.position.y },
    direction = p.direction,
    force = build.force,
    raise_built = true,
  }
  if not build.real then
    params.inner_name = p.name
  end
  if p.type then
    params.type = p.type
  end
  if p.recipe and build.real then
    params.recipe = p.recipe
  end
  if player then
    -- on the player's undo queue: the first entity opens an undo item, the rest join it
    params.player = player
    params.undo_index = build.undo_opened and 1 or 0
  end
  local entity = surface.create_entity(params)
  if entity and player then
    build.undo_opened = true
  end
  if entity and p.recipe and not build.real then
    entity.set_recipe(p.recipe) -- a ghost leaves create_entity's recipe unset
  end
  return entity
end

local function finish(build, why)
  table.remove(storage.builds, 1)
  local what = build.real and "entities" or "ghosts"
  local text = string.format("placed %d %s", build.placed, what)
  if build.skipped > 0 then
    text = text .. string.format(", skipped %d on tiles taken meanwhile", build.skipped)
  end
  if why then
    util.notify(build.player_index, "error", text .. "; stopped: " .. why)
    return
  end
  local summary = build.message ~= "" and (build.message .. " ") or ""
  util.notify(build.player_index, build.skipped > 0 and "warning" or "info", summary .. text .. ".")
end

--- One tick's share of the oldest build (settings: entities per tick).
function builder.on_tick()
  local build = storage.builds[1]
  if not build then
    return
  end
  if not build.started then
    start(build)
  end
  local surface = game.get_surface(build.surface)
  if not (surface and surface.valid) then
    finish(build, "the surface is gone")
    return
  end
  local player = game.get_player(build.player_index)
  if player and not player.valid then
    player = nil
  end
  local plan = storage.plans[build.job_id]
  local budget = settings.global[config.settings.per_tick].value
  while budget > 0 and build.next <= #build.placements do
    local p = build.placements[build.next]
    build.next = build.next + 1
    budget = budget - 1
    local entity = place(build, surface, player, p)
    if entity and entity.valid then
      build.placed = build.placed + 1
      plan.entities[#plan.entities + 1] = { entity = entity, key = util.entity_key(entity), name = p.name }
    else
      build.skipped = build.skipped + 1
    end
  end
  if build.next > #build.placements then
    finish(build)
  end
end

--- Remove every plan overlapping `box` on the surface, as one item on `player`'s undo
--- queue; the number of entities removed.
---@param player LuaPlayer?
function builder.clear(surface_name, box, player)
  local removed = 0
  local undo = { player = player, opened = false }
  for _, id in ipairs(jobs.plans_under(surface_name, box)) do
    removed = removed + builder.remove_plan(id, undo)
  end
  return removed
end

return builder
