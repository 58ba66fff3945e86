-- A fake of the parts of the Factorio 2.0 runtime API the Factorion mod uses, strict
-- about the API's contracts: unknown parameter names, non-cardinal directions for the
-- entities Factorion builds, positions off the tile grid and occupied tiles fail, and
-- unknown `defines` values raise instead of reading nil. Loaded by tests/fake_factorio.py,
-- which passes `py` (JSON via Python) and the settings' defaults; returns the world.
local py, setting_defaults = ...

local fake = {
  tick = 0,
  handlers = {}, -- event id -> handler
  nth_tick = {},
  init_handler = nil,
  load_handler = nil,
  config_handler = nil,
  commands = {},
  interfaces = {},
  rcon_out = {},
  game_printed = {},
  logs = {},
  renders = {},
  next_unit = 100,
  next_render = 1,
  players = {},
  surfaces = {},
  created = {}, -- every create_entity call that succeeded, in order
  removals = {}, -- every entity destroyed: {name, player (index), undo_index}
  overlaps = {}, -- every entity created over another (the game allows it: can_place_entity is the check)
}

local function strict(name, t)
  return setmetatable(t, {
    __index = function(_, key)
      error("defines." .. name .. "." .. tostring(key) .. " does not exist", 2)
    end,
  })
end

local function check_keys(what, params, allowed)
  if type(params) ~= "table" then
    error(what .. ": expected a table of parameters", 3)
  end
  for key in pairs(params) do
    if not allowed[key] then
      error(what .. ": unknown parameter '" .. tostring(key) .. "'", 3)
    end
  end
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do
    s[v] = true
  end
  return s
end

local event_names = {
  "on_tick", "on_player_selected_area", "on_player_alt_selected_area", "on_gui_click",
  "on_gui_elem_changed", "on_gui_selection_state_changed", "on_lua_shortcut", "on_built_entity",
  "script_raised_built", "script_raised_destroy", "on_player_created", "on_console_command",
}
local events = {}
for i, n in ipairs(event_names) do
  events[n] = i - 1
end

local direction = {}
for i, n in ipairs({
  "north", "northnortheast", "northeast", "eastnortheast", "east", "eastsoutheast", "southeast",
  "southsoutheast", "south", "southsouthwest", "southwest", "westsouthwest", "west", "westnorthwest",
  "northwest", "northnorthwest",
}) do
  direction[n] = i - 1
end

defines = {
  events = strict("events", events),
  direction = strict("direction", direction),
  build_check_type = strict("build_check_type", {
    script = 0, manual = 1, manual_ghost = 2, script_ghost = 3, blueprint_ghost = 4, ghost_revive = 5,
  }),
  controllers = strict("controllers", {
    ghost = 0, character = 1, god = 2, editor = 3, cutscene = 4, spectator = 5, remote = 6,
  }),
}
setmetatable(defines, { __index = function(_, k) error("defines." .. tostring(k) .. " does not exist", 2) end })

-- Entity prototypes: type, size facing north {w, h}, whether Factorion builds it (cardinal directions only).
local PROTOS = {
  ["transport-belt"] = { type = "transport-belt", size = { 1, 1 }, cardinal = true },
  ["underground-belt"] = { type = "underground-belt", size = { 1, 1 }, cardinal = true },
  ["splitter"] = { type = "splitter", size = { 2, 1 }, cardinal = true },
  ["inserter"] = { type = "inserter", size = { 1, 1 }, cardinal = true },
  ["long-handed-inserter"] = { type = "inserter", size = { 1, 1 }, cardinal = true },
  ["assembling-machine-1"] = { type = "assembling-machine", size = { 3, 3 }, cardinal = true },
  ["stone-furnace"] = { type = "furnace", size = { 2, 2 } },
  ["rock-big"] = { type = "simple-entity", size = { 2, 2 } },
  ["character"] = { type = "character", size = { 1, 1 }, no_collision = true },
  -- what lies on the ground and does not stop building
  ["iron-ore"] = { type = "resource", size = { 1, 1 }, no_collision = true },
  ["item-on-ground"] = { type = "item-entity", size = { 1, 1 }, no_collision = true },
}
fake.PROTOS = PROTOS

local CREATE_KEYS = set_of({
  "name", "position", "direction", "force", "player", "raise_built", "create_build_effect_smoke",
  "undo_index", "fast_replace", "snap_to_grid", "quality", "spill", "move_stuck_players", "source",
  "target", "cause", "preserve_ghosts_and_corpses", "spawn_decorations", "item", "spawn_decorations",
})
local TYPE_KEYS = {
  ["entity-ghost"] = set_of({ "inner_name", "tags", "expires" }),
  ["underground-belt"] = set_of({ "type" }),
  ["assembling-machine"] = set_of({ "recipe", "recipe_quality" }),
}
-- the inner entity's parameters a ghost takes: an underground's type, but not a machine's
-- recipe, which the game leaves unset on a ghost (LuaEntity::set_recipe sets it)
local GHOST_INNER_TYPES = set_of({ "underground-belt" })

local function read_position(what, position)
  if type(position) ~= "table" then
    error(what .. ": position must be a table", 4)
  end
  local x, y = position.x or position[1], position.y or position[2]
  if type(x) ~= "number" or type(y) ~= "number" then
    error(what .. ": position needs numbers x and y", 4)
  end
  return x, y
end

local function footprint(what, proto, x, y, dir)
  local w, h = proto.size[1], proto.size[2]
  if dir == 4 or dir == 12 then
    w, h = h, w
  end
  local left, top = x - w / 2, y - h / 2
  if math.abs(left - math.floor(left + 0.5)) > 1e-6 or math.abs(top - math.floor(top + 0.5)) > 1e-6 then
    error(string.format("%s: a %dx%d entity cannot be centred on (%s, %s)", what, w, h, x, y), 4)
  end
  left, top = math.floor(left + 0.5), math.floor(top + 0.5)
  return left, top, left + w, top + h
end

local function check_direction(what, proto, dir)
  if dir == nil then
    return 0
  end
  if type(dir) ~= "number" or dir ~= math.floor(dir) or dir < 0 or dir > 15 then
    error(what .. ": direction " .. tostring(dir) .. " is not a defines.direction", 4)
  end
  if proto.cardinal and dir % 4 ~= 0 then
    error(what .. ": this entity only faces 0, 4, 8 or 12, not " .. dir, 4)
  end
  return dir
end

local function force_name(what, force)
  if type(force) == "string" then
    return force
  end
  if type(force) == "table" and force.name then
    return force.name
  end
  error(what .. ": force must be a force name or LuaForce", 4)
end

local function new_surface(name)
  local surface = { name = name, valid = true, index = #fake.surfaces + 1, tiles = {}, entities = {}, water = {} }

  local function key(x, y)
    return string.format("%d,%d", x, y)
  end

  -- no entity on any tile of the box (and, with `land`, no water either)
  local function free(x1, y1, x2, y2, land)
    for y = y1, y2 - 1 do
      for x = x1, x2 - 1 do
        local k = key(x, y)
        if surface.tiles[k] or (land and surface.water[k]) then
          return false
        end
      end
    end
    return true
  end

  function surface.create_entity(params)
    local what = "LuaSurface::create_entity"
    if type(params) ~= "table" or type(params.name) ~= "string" then
      error(what .. ": name is required", 2)
    end
    local ghost = params.name == "entity-ghost"
    if ghost and params.inner_name == nil then
      local allowed = set_of({ "inner_name", "tags", "expires" })
      for k in pairs(CREATE_KEYS) do
        allowed[k] = true
      end
      check_keys(what, params, allowed)
      error(what .. ": a ghost needs inner_name", 2)
    end
    local inner = ghost and params.inner_name or params.name
    local proto = PROTOS[inner]
    if not proto then
      error(what .. ": unknown entity name '" .. tostring(inner) .. "'", 2)
    end
    local allowed = {}
    for k in pairs(CREATE_KEYS) do
      allowed[k] = true
    end
    local inner_type = (not ghost or GHOST_INNER_TYPES[proto.type]) and proto.type or ""
    for _, t in ipairs({ ghost and "entity-ghost" or "", inner_type }) do
      for k in pairs(TYPE_KEYS[t] or {}) do
        allowed[k] = true
      end
    end
    check_keys(what, params, allowed)
    if params.force == nil then
      error(what .. ": force is required here", 2)
    end
    if params.undo_index ~= nil and params.player == nil then
      error(what .. ": undo_index needs player", 2)
    end
    if params.type ~= nil and params.type ~= "input" and params.type ~= "output" then
      error(what .. ": type must be 'input' or 'output'", 2)
    end
    local x, y = read_position(what, params.position)
    local dir = check_direction(what, proto, params.direction)
    local x1, y1, x2, y2 = footprint(what, proto, x, y, dir)
    if not proto.no_collision and not free(x1, y1, x2, y2) then
      fake.overlaps[#fake.overlaps + 1] = { name = inner, x = x, y = y }
    end
    fake.next_unit = fake.next_unit + 1
    local entity = {
      valid = true,
      name = params.name,
      type = ghost and "entity-ghost" or proto.type,
      ghost_name = ghost and inner or nil,
      ghost_type = ghost and proto.type or nil,
      position = { x = x, y = y },
      direction = dir,
      force = { name = force_name(what, params.force) },
      unit_number = fake.next_unit,
      surface = surface,
      bounding_box = { left_top = { x = x1, y = y1 }, right_bottom = { x = x2, y = y2 } },
      belt_to_ground_type = proto.type == "underground-belt" and (params.type or "input") or nil,
      recipe = params.recipe,
      last_user = params.player,
      undo_index = params.undo_index,
    }
    if proto.type == "assembling-machine" then
      function entity.set_recipe(recipe)
        if not entity.valid then
          error("LuaEntity was invalid", 2)
        end
        if recipe ~= nil and type(recipe) ~= "string" then
          error("LuaEntity::set_recipe: recipe must be a name", 2)
        end
        entity.recipe = recipe
        return {}
      end
      function entity.get_recipe()
        return entity.recipe and { name = entity.recipe, valid = true } or nil
      end
    end
    function entity.destroy(opts)
      if not entity.valid then
        error("LuaEntity was invalid", 2)
      end
      if opts ~= nil then
        check_keys("LuaEntity::destroy", opts, set_of({ "do_cliff_correction", "raise_destroy", "player", "undo_index" }))
        if opts.undo_index ~= nil and opts.player == nil then
          error("LuaEntity::destroy: undo_index needs player", 2)
        end
      end
      fake.removals[#fake.removals + 1] = {
        name = entity.ghost_name or entity.name,
        player = opts and opts.player and opts.player.index or nil,
        undo_index = opts and opts.undo_index or nil,
      }
      entity.valid = false
      surface.entities[entity.unit_number] = nil
      for yy = y1, y2 - 1 do
        for xx = x1, x2 - 1 do
          if surface.tiles[key(xx, yy)] == entity then
            surface.tiles[key(xx, yy)] = nil
          end
        end
      end
      return true
    end
    surface.entities[entity.unit_number] = entity
    if not proto.no_collision then
      for yy = y1, y2 - 1 do
        for xx = x1, x2 - 1 do
          surface.tiles[key(xx, yy)] = entity
        end
      end
    end
    fake.created[#fake.created + 1] = entity
    return entity
  end

  function surface.can_place_entity(params)
    local what = "LuaSurface::can_place_entity"
    check_keys(what, params, set_of({ "name", "position", "direction", "force", "build_check_type", "forced", "inner_name" }))
    local proto = PROTOS[params.name]
    if not proto then
      error(what .. ": unknown entity name '" .. tostring(params.name) .. "'", 2)
    end
    local x, y = read_position(what, params.position)
    local dir = check_direction(what, proto, params.direction)
    local x1, y1, x2, y2 = footprint(what, proto, x, y, dir)
    return free(x1, y1, x2, y2, true)
  end

  function surface.find_entities_filtered(params)
    local what = "LuaSurface::find_entities_filtered"
    check_keys(what, params, set_of({ "area", "name", "type", "force", "limit" }))
    local ax1, ay1, ax2, ay2 = -math.huge, -math.huge, math.huge, math.huge
    if params.area then
      local lt = params.area.left_top or params.area[1]
      local rb = params.area.right_bottom or params.area[2]
      ax1, ay1 = lt.x or lt[1], lt.y or lt[2]
      ax2, ay2 = rb.x or rb[1], rb.y or rb[2]
    end
    local units = {}
    for unit in pairs(surface.entities) do
      units[#units + 1] = unit
    end
    table.sort(units)
    local out = {}
    for _, unit in ipairs(units) do
      local e = surface.entities[unit]
      local bb = e.bounding_box
      local inside = bb.left_top.x < ax2 and ax1 < bb.right_bottom.x and bb.left_top.y < ay2 and ay1 < bb.right_bottom.y
      if inside and (params.name == nil or params.name == e.name) and (params.type == nil or params.type == e.type) then
        out[#out + 1] = e
      end
    end
    return out
  end

  fake.surfaces[name] = surface
  return surface
end

local player_force = { name = "player", valid = true }

local function new_gui_element(spec, parent)
  local element = { valid = true, children = {} }
  for k, v in pairs(spec) do
    element[k] = v
  end
  if spec.type == "choose-elem-button" then
    element.elem_value = spec.item
  end
  function element.add(child_spec)
    check_keys("LuaGuiElement::add", child_spec, set_of({
      "type", "name", "caption", "direction", "elem_type", "item", "items", "selected_index", "style", "tooltip",
    }))
    if element[child_spec.name or ""] ~= nil then
      error("LuaGuiElement::add: an element named " .. child_spec.name .. " already exists", 2)
    end
    local child = new_gui_element(child_spec, element)
    element.children[#element.children + 1] = child
    if child_spec.name then
      element[child_spec.name] = child
    end
    return child
  end
  function element.destroy()
    element.valid = false
    if parent and element.name then
      parent[element.name] = nil
    end
  end
  return element
end

function fake.add_player(name, admin)
  local index = #fake.players + 1
  local player = {
    index = index,
    name = name,
    valid = true,
    connected = true,
    admin = admin or false,
    force = player_force,
    surface = fake.surfaces.nauvis,
    controller_type = defines.controllers.character,
    printed = {},
    mod_settings = {},
    gui = { screen = new_gui_element({ type = "empty-widget" }) },
    cursor = nil,
  }
  for setting, spec in pairs(setting_defaults) do
    if spec.setting_type == "runtime-per-user" then
      player.mod_settings[setting] = { value = spec.value }
    end
  end
  function player.print(message, options)
    player.printed[#player.printed + 1] = fake.localised(message)
  end
  function player.clear_cursor()
    player.cursor = nil
    return true
  end
  player.cursor_stack = {
    valid = true,
    set_stack = function(stack)
      player.cursor = type(stack) == "table" and stack.name or stack
      return true
    end,
  }
  fake.players[index] = player
  return player
end

function fake.localised(message)
  if type(message) ~= "table" then
    return tostring(message)
  end
  local parts = {}
  for i, part in ipairs(message) do
    parts[i] = fake.localised(part)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local nauvis = new_surface("nauvis")
fake.new_surface = new_surface -- another surface, as a planet or a space platform is

game = {
  players = fake.players,
  surfaces = fake.surfaces,
  forces = { player = player_force },
}
setmetatable(game, {
  __index = function(_, k)
    if k == "tick" then
      return fake.tick
    end
    return nil
  end,
})
function game.get_player(id)
  if type(id) == "number" then
    return fake.players[id]
  end
  for _, p in ipairs(fake.players) do
    if p.name == id then
      return p
    end
  end
  return nil
end
function game.get_surface(id)
  if type(id) == "number" then
    for _, s in pairs(fake.surfaces) do
      if s.index == id then
        return s
      end
    end
    return nil
  end
  return fake.surfaces[id]
end
function game.print(message, options)
  fake.game_printed[#fake.game_printed + 1] = fake.localised(message)
end
fake.game = game
fake.nauvis = nauvis

script = {}
function script.on_init(f)
  fake.init_handler = f
end
function script.on_load(f)
  fake.load_handler = f
end
function script.on_configuration_changed(f)
  fake.config_handler = f
end
function script.on_event(id, f, filters)
  if type(id) == "table" then
    for _, one in ipairs(id) do
      script.on_event(one, f, filters)
    end
    return
  end
  if type(id) == "string" then
    if not fake.custom_inputs[id] then
      error("script.on_event: '" .. id .. "' is not a custom-input prototype", 2)
    end
  elseif type(id) ~= "number" then
    error("script.on_event: bad event id " .. tostring(id), 2)
  end
  fake.handlers[id] = f
end
function script.on_nth_tick(n, f)
  fake.nth_tick[n] = f
end
fake.custom_inputs = {}

commands = { commands = {}, game_commands = { help = "" } }
function commands.add_command(name, help, f)
  if type(name) ~= "string" or type(f) ~= "function" then
    error("commands.add_command(name, help, function)", 2)
  end
  if fake.commands[name] then
    error("commands.add_command: '" .. name .. "' is already registered", 2)
  end
  fake.commands[name] = f
  commands.commands[name] = help
end

remote = {}
function remote.add_interface(name, functions)
  if fake.interfaces[name] then
    error("remote.add_interface: '" .. name .. "' exists", 2)
  end
  fake.interfaces[name] = functions
end
function remote.call(name, fn, ...)
  return fake.interfaces[name][fn](...)
end

rcon = {}
function rcon.print(message)
  fake.rcon_out[#fake.rcon_out + 1] = fake.localised(message)
end

helpers = {}
function helpers.table_to_json(value)
  return py.table_to_json(value)
end
function helpers.json_to_table(text)
  return py.json_to_table(text)
end

settings = { global = {}, startup = {} }
for setting, spec in pairs(setting_defaults) do
  if spec.setting_type == "runtime-global" then
    settings.global[setting] = { value = spec.value }
  elseif spec.setting_type == "startup" then
    settings.startup[setting] = { value = spec.value }
  end
end
function settings.get_player_settings(player)
  local p = type(player) == "table" and player or fake.players[player]
  return p.mod_settings
end

local RENDER_KEYS = set_of({
  "text", "surface", "target", "color", "scale", "font", "alignment", "vertical_alignment", "use_rich_text",
  "players", "forces", "visible", "time_to_live", "draw_on_ground", "only_in_alt_mode", "orientation",
  "width", "filled", "left_top", "right_bottom", "scale_with_zoom",
})
local function render(kind, params, required)
  check_keys("rendering." .. kind, params, RENDER_KEYS)
  for _, k in ipairs(required) do
    if params[k] == nil then
      error("rendering." .. kind .. ": " .. k .. " is required", 3)
    end
  end
  local object = { valid = true, id = fake.next_render, kind = kind, params = params }
  fake.next_render = fake.next_render + 1
  function object.destroy()
    object.valid = false
    fake.renders[object.id] = nil
  end
  fake.renders[object.id] = object
  return object
end
rendering = {}
function rendering.draw_text(params)
  return render("draw_text", params, { "text", "surface", "target", "color" })
end
function rendering.draw_rectangle(params)
  return render("draw_rectangle", params, { "surface", "left_top", "right_bottom", "color" })
end

function log(message)
  fake.logs[#fake.logs + 1] = fake.localised(message)
end

storage = {}

return fake
