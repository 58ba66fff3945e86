--- The region, source and sink selection tools (cursor-only items, given by the window).
local function tool(name, icon, select_color, alt_color)
  return {
    type = "selection-tool",
    name = name,
    icon = "__factorion__/graphics/" .. icon .. ".png",
    icon_size = 64,
    flags = { "only-in-cursor", "not-stackable", "spawnable" },
    hidden = true,
    stack_size = 1,
    subgroup = "tool",
    order = "z[factorion]-" .. name,
    select = {
      border_color = select_color,
      cursor_box_type = "copy",
      mode = { "nothing" },
    },
    alt_select = {
      border_color = alt_color,
      cursor_box_type = "not-allowed",
      mode = { "nothing" },
    },
  }
end

local red = { r = 1, g = 0.3, b = 0.3 }

data:extend({
  tool("factorion-region", "region", { r = 0.2, g = 0.7, b = 1 }, red),
  tool("factorion-source", "source", { r = 0.3, g = 1, b = 0.3 }, red),
  tool("factorion-sink", "sink", { r = 1, g = 0.5, b = 0.2 }, red),
})
