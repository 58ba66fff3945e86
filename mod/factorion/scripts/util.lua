--- Small helpers shared by the modules.
local config = require("scripts.config")
local gui = require("scripts.gui")

local util = {}

local colors = {
  info = { r = 0.6, g = 0.85, b = 1 },
  warning = { r = 1, g = 0.8, b = 0.3 },
  error = { r = 1, g = 0.4, b = 0.4 },
}

--- Tell one player (or everyone when player_index is nil or the player is gone).
---@param player_index uint?
---@param level "info"|"warning"|"error"
---@param text string
function util.notify(player_index, level, text)
  text = "[Factorion] " .. string.sub(tostring(text), 1, config.max_message_chars)
  local color = colors[level] or colors.info
  local player = player_index and game.get_player(player_index)
  if player and player.valid then
    player.print(text, { color = color })
    gui.set_status(player, text)
  else
    game.print(text, { color = color })
  end
end

---@return string key of a tile "x,y"
function util.tile_key(x, y)
  return string.format("%d,%d", x, y)
end

--- True if `value` is a whole number (JSON numbers arrive as Lua numbers).
function util.is_int(value)
  return type(value) == "number" and value == math.floor(value) and value > -1e9 and value < 1e9
end

--- The tiles an area covers: x1, y1 inclusive, x2, y2 exclusive.
---@param area BoundingBox
function util.tile_bounds(area)
  local lt = area.left_top or area[1]
  local rb = area.right_bottom or area[2]
  local x1, y1 = math.floor((lt.x or lt[1]) + 1e-6), math.floor((lt.y or lt[2]) + 1e-6)
  local x2, y2 = math.ceil((rb.x or rb[1]) - 1e-6), math.ceil((rb.y or rb[2]) - 1e-6)
  return x1, y1, math.max(x2, x1 + 1), math.max(y2, y1 + 1)
end

--- An entity's identity that survives a save and needs no unit number: what it is
--- (ghosts by their inner name) and where. No two such entities share a position.
---@param entity LuaEntity
function util.entity_key(entity)
  local name = entity.type == "entity-ghost" and ("ghost:" .. entity.ghost_name) or entity.name
  return string.format("%s@%.2f,%.2f", name, entity.position.x, entity.position.y)
end

--- Do two tile boxes {x1, y1, x2, y2} (end exclusive) overlap?
function util.overlaps(a, b)
  return a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
end

return util
