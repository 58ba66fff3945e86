--- Factorion: wires the modules of scripts/ to the game's events.
--- storage's schema is documented in scripts/state.lua; the RCON commands in
--- scripts/commands.lua (contract: docs/BRIDGE.md); the remote interface below.
local builder = require("scripts.builder")
local commands_ = require("scripts.commands")
local config = require("scripts.config")
local state = require("scripts.state")
local tools = require("scripts.tools")

script.on_init(state.init)
script.on_configuration_changed(state.migrate)
-- no on_load handler: nothing to rebuild, and on_load must not write storage

commands_.register()

script.on_event(defines.events.on_player_selected_area, tools.on_selected_area)
script.on_event(defines.events.on_player_alt_selected_area, tools.on_alt_selected_area)
script.on_event(defines.events.on_gui_click, tools.on_gui_click)
script.on_event(defines.events.on_gui_elem_changed, tools.on_gui_elem_changed)
script.on_event(defines.events.on_gui_selection_state_changed, tools.on_gui_selection_state_changed)
script.on_event(defines.events.on_lua_shortcut, tools.on_lua_shortcut)
script.on_event(config.hotkey, tools.on_hotkey)
script.on_event(defines.events.on_tick, builder.on_tick)

--- remote.call("factorion", name, ...): documented in mod/README.md.
remote.add_interface("factorion", {
  version = function()
    return config.mod_version
  end,
  request_plan = function(player_index)
    local player = game.get_player(player_index)
    return player and tools.request_plan(player) or nil
  end,
  clear = function(player_index)
    local player = game.get_player(player_index)
    return player and tools.clear(player) or 0
  end,
  queued_jobs = function()
    return #storage.job_order
  end,
})
