--- The shortcut-bar button that opens the Factorion window, and the plan hotkey.
data:extend({
  {
    type = "shortcut",
    name = "factorion-tools",
    action = "lua",
    icon = "__factorion__/graphics/region.png",
    icon_size = 64,
    small_icon = "__factorion__/graphics/region.png",
    small_icon_size = 64,
    order = "z[factorion]",
  },
  {
    type = "custom-input",
    name = "factorion-request-plan",
    key_sequence = "CONTROL + SHIFT + P",
    consuming = "none",
    action = "lua",
  },
})
