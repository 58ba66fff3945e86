--- The player's side: region, source and sink tools, the window, the hotkey.
local builder = require("scripts.builder")
local config = require("scripts.config")
local gui = require("scripts.gui")
local jobs = require("scripts.jobs")
local state = require("scripts.state")
local util = require("scripts.util")

local tools = {}

local ARROWS = { north = "↑", east = "→", south = "↓", west = "←" }
local CLOCKWISE = { north = "east", east = "south", south = "west", west = "north" }
local COLORS = { source = { r = 0.3, g = 1, b = 0.3 }, sink = { r = 1, g = 0.5, b = 0.2 } }

local function destroy_render(object)
  if object and object.valid then
    object.destroy()
  end
end

local function draw_marker(player, surface, m)
  destroy_render(m.render)
  m.render = rendering.draw_text({
    text = (m.kind == "source" and "S" or "K") .. ARROWS[m.facing] .. "[item=" .. m.item .. "]",
    surface = surface,
    target = { x = m.x + 0.5, y = m.y + 0.5 },
    color = COLORS[m.kind],
    alignment = "center",
    vertical_alignment = "middle",
    use_rich_text = true,
    players = { player.index },
  })
end

local function in_region(region, x, y)
  return region and x >= region.x and y >= region.y and x < region.x + region.width and y < region.y + region.height
end

local function set_region(player, surface, area)
  local x1, y1, x2, y2 = util.tile_bounds(area)
  local width, height = x2 - x1, y2 - y1
  if width > config.max_region or height > config.max_region then
    util.notify(
      player.index,
      "error",
      string.format("a %dx%d region is too large: at most %dx%d.", width, height, config.max_region, config.max_region)
    )
    return
  end
  local ps = state.player(player.index)
  local same_surface = ps.region ~= nil and ps.region.surface == surface.name
  if ps.region then
    destroy_render(ps.region.render)
  end
  ps.region = { surface = surface.name, x = x1, y = y1, width = width, height = height }
  ps.region.render = rendering.draw_rectangle({
    color = { r = 0.2, g = 0.7, b = 1 },
    width = 2,
    filled = false,
    left_top = { x = x1, y = y1 },
    right_bottom = { x = x2, y = y2 },
    surface = surface,
    players = { player.index },
  })
  for key, m in pairs(ps.markers) do -- markers belong to one region, on its surface
    if not (same_surface and in_region(ps.region, m.x, m.y)) then
      destroy_render(m.render)
      ps.markers[key] = nil
    end
  end
  util.notify(player.index, "info", string.format("region %dx%d at (%d, %d).", width, height, x1, y1))
end

local function place_marker(player, surface, kind, area)
  local ps = state.player(player.index)
  local x, y = util.tile_bounds(area)
  if not (ps.region and ps.region.surface == surface.name and in_region(ps.region, x, y)) then
    util.notify(player.index, "warning", "place markers inside your region (mark one with the region tool first).")
    return
  end
  local key = util.tile_key(x, y)
  local m = ps.markers[key]
  if m and m.kind == kind then
    m.facing = CLOCKWISE[m.facing] -- clicking a marker again turns it
  else
    if m then
      destroy_render(m.render)
    end
    local item = kind == "source" and ps.choice.source_item or ps.choice.sink_item
    m = { kind = kind, x = x, y = y, item = item, facing = ps.choice.facing }
    ps.markers[key] = m
  end
  draw_marker(player, surface, m)
end

local function remove_markers(player, area)
  local ps = state.player(player.index)
  local x1, y1, x2, y2 = util.tile_bounds(area)
  for key, m in pairs(ps.markers) do
    if m.x >= x1 and m.x < x2 and m.y >= y1 and m.y < y2 then
      destroy_render(m.render)
      ps.markers[key] = nil
    end
  end
end

local function selected(event, alt)
  local player = game.get_player(event.player_index)
  if not (player and player.valid and event.surface and event.surface.valid) then
    return
  end
  local item = event.item
  if item == config.tools.region then
    if alt then
      local x1, y1, x2, y2 = util.tile_bounds(event.area)
      local removed = builder.clear(event.surface.name, { x1, y1, x2, y2 }, player)
      util.notify(player.index, "info", string.format("removed %d entities Factorion had placed.", removed))
    else
      set_region(player, event.surface, event.area)
    end
  elseif item == config.tools.source or item == config.tools.sink then
    if alt then
      remove_markers(player, event.area)
    else
      place_marker(player, event.surface, item == config.tools.source and "source" or "sink", event.area)
    end
  end
end

function tools.on_selected_area(event)
  selected(event, false)
end

function tools.on_alt_selected_area(event)
  selected(event, true)
end

--- Ask for a plan of the player's region (hotkey, window button, remote interface).
---@param player LuaPlayer
function tools.request_plan(player)
  local job_id, why = jobs.request(player)
  if job_id then
    util.notify(player.index, "info", "plan requested (job " .. job_id .. "); waiting for the Factorion bridge...")
  else
    util.notify(player.index, "warning", "no plan requested: " .. why)
  end
  return job_id
end

--- Cancel the player's queued plan and remove what Factorion placed in their region.
function tools.clear(player)
  local ps = state.player(player.index)
  local cancelled = ""
  if ps.queued_job and storage.jobs[ps.queued_job] then
    jobs.remove(ps.queued_job) -- the bridge's answer for it is then an unknown job
    cancelled = " Cancelled the queued plan."
  end
  local region = ps.region
  if not region then
    util.notify(player.index, "warning", "mark a region first." .. cancelled)
    return 0
  end
  local box = { region.x, region.y, region.x + region.width, region.y + region.height }
  local removed = builder.clear(region.surface, box, player)
  util.notify(player.index, "info", string.format("removed %d entities Factorion had placed.", removed) .. cancelled)
  return removed
end

local function give(player, tool)
  if player.clear_cursor() and player.cursor_stack then
    player.cursor_stack.set_stack({ name = tool, count = 1 })
  end
end

function tools.on_gui_click(event)
  local element = event.element
  if not (element and element.valid) then
    return
  end
  local player = game.get_player(event.player_index)
  if not player then
    return
  end
  local name = element.name
  if name == "factorion_region_button" then
    give(player, config.tools.region)
  elseif name == "factorion_source_button" then
    give(player, config.tools.source)
  elseif name == "factorion_sink_button" then
    give(player, config.tools.sink)
  elseif name == "factorion_plan_button" then
    tools.request_plan(player)
  elseif name == "factorion_clear_button" then
    tools.clear(player)
  end
end

function tools.on_gui_elem_changed(event)
  local element = event.element
  if not (element and element.valid) then
    return
  end
  local choice = state.player(event.player_index).choice
  if element.name == "factorion_source_item" and element.elem_value then
    choice.source_item = element.elem_value
  elseif element.name == "factorion_sink_item" and element.elem_value then
    choice.sink_item = element.elem_value
  end
end

function tools.on_gui_selection_state_changed(event)
  local element = event.element
  if element and element.valid and element.name == "factorion_facing" then
    state.player(event.player_index).choice.facing = config.facings[element.selected_index] or "east"
  end
end

function tools.on_lua_shortcut(event)
  if event.prototype_name == config.shortcut then
    local player = game.get_player(event.player_index)
    if player then
      gui.toggle(player, state.player(player.index).choice)
    end
  end
end

function tools.on_hotkey(event)
  local player = game.get_player(event.player_index)
  if player then
    tools.request_plan(player)
  end
end

return tools
