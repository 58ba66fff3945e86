--- Factorion's constants: the one table every module reads (STYLE.md: mod constants in one Lua table).
local config = {
  prefix = "factorion",
  mod_version = "0.1.1", -- keep equal to info.json (tests check)
  protocol_version = 1, -- docs/BRIDGE.md; server/rcon_protocol.py PROTOCOL_VERSION
  schema_version = 1, -- shared_schema SCHEMA_VERSION of PlanJob / PlanResult
  max_region = 32, -- shared_schema.world.MAX_GRID
  max_jobs = 64, -- queued jobs in the whole save; the oldest is dropped beyond this
  max_message_chars = 500,

  tools = {
    region = "factorion-region",
    source = "factorion-source",
    sink = "factorion-sink",
  },
  shortcut = "factorion-tools",
  hotkey = "factorion-request-plan",

  commands = {
    version = "factorion-version",
    poll = "factorion-poll",
    status = "factorion-status",
    result = "factorion-result",
    ack = "factorion-ack",
  },

  settings = {
    build_real = "factorion-build-real", -- runtime-global bool
    per_tick = "factorion-entities-per-tick", -- runtime-global int
    mode = "factorion-plan-mode", -- runtime-per-user string
    time_budget = "factorion-time-budget", -- runtime-per-user double
  },

  --- Entity types found in a region that do not stop a player building there (ore, what
  --- lies on the ground, what passes through): they do not block tiles of a request.
  not_blocking = {
    ["character"] = true,
    ["resource"] = true,
    ["corpse"] = true,
    ["character-corpse"] = true,
    ["item-entity"] = true,
    ["fire"] = true,
    ["sticker"] = true,
    ["projectile"] = true,
    ["highlight-box"] = true,
    ["deconstructible-tile-proxy"] = true,
    ["tile-ghost"] = true,
  },

  facings = { "north", "east", "south", "west" },
  default_item = "iron-plate",

  --- What the planner may place, with its footprint facing north {width, height}.
  --- A splitter is 2 tiles across the flow: 2x1 facing north or south, 1x2 east or west.
  entities = {
    ["transport-belt"] = { 1, 1 },
    ["underground-belt"] = { 1, 1 },
    ["splitter"] = { 2, 1 },
    ["inserter"] = { 1, 1 },
    ["long-handed-inserter"] = { 1, 1 },
    ["assembling-machine-1"] = { 3, 3 },
  },
  directions = { [0] = true, [4] = true, [8] = true, [12] = true },
}

return config
