--- The storage schema, in one place. Everything the mod remembers lives here, so every
--- peer of a multiplayer game holds the same state and a save restores it.
---
--- storage.version    : int, this schema's version (migrations key on it)
--- storage.next_job   : int, counter for job ids "<tick>-<counter>"
--- storage.jobs       : job_id -> JobRecord, queued and not yet acknowledged
--- storage.job_order  : array of job_id, oldest first
--- storage.players    : player_index -> PlayerState
--- storage.plans      : plan_id (the job id) -> Plan, what a built result placed
--- storage.builds     : array of Build, results being placed over ticks, oldest first
---
--- JobRecord  = {job = PlanJob table (as polled), player_index, staged = {count, batches} | nil}
--- PlayerState = {region = {surface, x, y, width, height, render} | nil,
---                markers = "x,y" -> {kind, x, y, item, facing, render},
---                choice = {source_item, sink_item, facing}}
--- Plan  = {player_index, surface, area = {x1, y1, x2, y2} (game tiles, inclusive-exclusive),
---          entities = array of {entity = LuaEntity, key = util.entity_key, name}}
--- Build = {job_id, player_index, surface, force, real, message, placements, next, placed,
---          skipped, replaces = array of plan ids, started}
local config = require("scripts.config")

local state = {}

state.VERSION = 1

function state.init()
  storage.version = state.VERSION
  storage.next_job = storage.next_job or 0
  storage.jobs = storage.jobs or {}
  storage.job_order = storage.job_order or {}
  storage.players = storage.players or {}
  storage.plans = storage.plans or {}
  storage.builds = storage.builds or {}
end

--- Version-keyed migrations; on_configuration_changed runs them (never on_load).
function state.migrate()
  state.init()
end

---@param player_index uint
---@return table PlayerState, created on first use
function state.player(player_index)
  local ps = storage.players[player_index]
  if not ps then
    ps = {
      markers = {},
      choice = { source_item = config.default_item, sink_item = config.default_item, facing = "east" },
    }
    storage.players[player_index] = ps
  end
  return ps
end

return state
