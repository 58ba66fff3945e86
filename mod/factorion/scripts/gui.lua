--- The small Factorion window: tool buttons, the markers' item and facing, plan and clear.
local config = require("scripts.config")

local gui = {}

local FRAME = "factorion_frame"

---@param player LuaPlayer
function gui.frame(player)
  local frame = player.gui.screen[FRAME]
  return frame and frame.valid and frame or nil
end

--- Open the window, or close it when open (the shortcut button).
---@param player LuaPlayer
---@param choice table the player's {source_item, sink_item, facing}
function gui.toggle(player, choice)
  local frame = gui.frame(player)
  if frame then
    frame.destroy()
    return
  end
  frame = player.gui.screen.add({ type = "frame", name = FRAME, direction = "vertical", caption = { "factorion.title" } })
  frame.auto_center = true
  local tools = frame.add({ type = "flow", name = "factorion_tools", direction = "horizontal" })
  tools.add({ type = "button", name = "factorion_region_button", caption = { "factorion.region-button" } })
  tools.add({ type = "button", name = "factorion_source_button", caption = { "factorion.source-button" } })
  tools.add({ type = "button", name = "factorion_sink_button", caption = { "factorion.sink-button" } })
  local choices = frame.add({ type = "flow", name = "factorion_choices", direction = "horizontal" })
  choices.add({ type = "label", caption = { "factorion.source-item" } })
  choices.add({ type = "choose-elem-button", name = "factorion_source_item", elem_type = "item", item = choice.source_item })
  choices.add({ type = "label", caption = { "factorion.sink-item" } })
  choices.add({ type = "choose-elem-button", name = "factorion_sink_item", elem_type = "item", item = choice.sink_item })
  local selected = 2
  for i, facing in ipairs(config.facings) do
    if facing == choice.facing then
      selected = i
    end
  end
  choices.add({
    type = "drop-down",
    name = "factorion_facing",
    items = { { "factorion.north" }, { "factorion.east" }, { "factorion.south" }, { "factorion.west" } },
    selected_index = selected,
  })
  local actions = frame.add({ type = "flow", name = "factorion_actions", direction = "horizontal" })
  actions.add({ type = "button", name = "factorion_plan_button", caption = { "factorion.plan-button" } })
  actions.add({ type = "button", name = "factorion_clear_button", caption = { "factorion.clear-button" } })
  frame.add({ type = "label", name = "factorion_status", caption = "" })
end

--- Show the latest message in the window, if open.
function gui.set_status(player, text)
  local frame = gui.frame(player)
  if frame and frame.factorion_status then
    frame.factorion_status.caption = text
  end
end

return gui
