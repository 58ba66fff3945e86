--- Checks on what the bridge sends: each result batch as it arrives, and the whole
--- staged result on the ack. Nothing here touches the map.
local config = require("scripts.config")
local jobs = require("scripts.jobs")
local util = require("scripts.util")

local result = {}

--- The tiles a placement covers, {x1, y1, x2, y2} (end exclusive), or nil and why.
---@param p table a Placement (game tiles)
function result.footprint(p)
  local size = config.entities[p.name]
  local w, h = size[1], size[2]
  if p.name == "splitter" and (p.direction == 4 or p.direction == 12) then
    w, h = h, w
  end
  local ax, ay = p.position.x - w / 2, p.position.y - h / 2
  if math.abs(ax - math.floor(ax + 0.5)) > 1e-6 or math.abs(ay - math.floor(ay + 0.5)) > 1e-6 then
    return nil, string.format("%s at (%s, %s) is off the tile grid", p.name, p.position.x, p.position.y)
  end
  ax, ay = math.floor(ax + 0.5), math.floor(ay + 0.5)
  if (p.x ~= nil and p.x ~= ax) or (p.y ~= nil and p.y ~= ay) then
    return nil, string.format("%s: tile (%s, %s) and position disagree", p.name, tostring(p.x), tostring(p.y))
  end
  return { ax, ay, ax + w, ay + h }
end

--- Why one placement cannot be built in the job's region, or nil when it can.
---@param p any
---@param job table the PlanJob
function result.check_placement(p, job)
  if type(p) ~= "table" then
    return "a placement is not an object"
  end
  if type(p.name) ~= "string" or not config.entities[p.name] then
    return "unknown entity " .. tostring(p.name)
  end
  if type(p.position) ~= "table" or type(p.position.x) ~= "number" or type(p.position.y) ~= "number" then
    return p.name .. " has no position"
  end
  if not config.directions[p.direction] then
    return p.name .. ": direction " .. tostring(p.direction) .. " is not 0, 4, 8 or 12"
  end
  if (p.name == "underground-belt") ~= (p.type == "input" or p.type == "output") then
    return p.name .. ": type " .. tostring(p.type) .. " does not fit"
  end
  if p.recipe ~= nil and (p.name ~= "assembling-machine-1" or type(p.recipe) ~= "string") then
    return p.name .. ": recipe " .. tostring(p.recipe) .. " does not fit"
  end
  local box, why = result.footprint(p)
  if not box then
    return why
  end
  local o, r = job.origin, job.request.region
  if box[1] < o.x or box[2] < o.y or box[3] > o.x + r.width or box[4] > o.y + r.height then
    return string.format("%s at (%d, %d) is outside the region", p.name, box[1], box[2])
  end
  return nil
end

local function as_list(value)
  -- json_to_table gives {} for both [] and {}; anything else must be an array
  if type(value) ~= "table" then
    return nil
  end
  local n = 0
  for _ in pairs(value) do
    n = n + 1
  end
  if n ~= #value then
    return nil
  end
  return value
end

--- Why a batch cannot be staged for the job, or nil. `staged` is the job's staged copy.
---@param batch table the decoded PlanResult
---@param record table the JobRecord
function result.check_batch(batch, record)
  if batch.schema_version ~= config.schema_version then
    return "schema_version " .. tostring(batch.schema_version) .. " is not " .. config.schema_version
  end
  if batch.status ~= "ok" and batch.status ~= "error" then
    return "status " .. tostring(batch.status) .. " is neither ok nor error"
  end
  local index, count = batch.batch_index or 0, batch.batch_count or 1
  if not (util.is_int(index) and util.is_int(count) and index >= 0 and count >= 1 and index < count) then
    return "batch " .. tostring(index) .. " of " .. tostring(count) .. " is not a batch"
  end
  if batch.message ~= nil and type(batch.message) ~= "string" then
    return "message is not text"
  end
  local placements = batch.placements == nil and {} or as_list(batch.placements)
  if not placements then
    return "placements is not a list"
  end
  if batch.status == "error" and #placements > 0 then
    return "an error result carries placements"
  end
  if index > 0 then
    local staged = record.staged
    if not staged or #staged.batches ~= index or staged.count ~= count then
      return "batch " .. index .. " out of order"
    end
    if staged.batches[1].status ~= batch.status then
      return "batch " .. index .. " is " .. batch.status .. ", batch 0 was " .. staged.batches[1].status
    end
  end
  for _, p in ipairs(placements) do
    local why = result.check_placement(p, record.job)
    if why then
      return why
    end
  end
  return nil
end

--- Every staged placement, in order, after the whole-result checks: no two overlap,
--- and none lands on a tile taken since the request (other than by the plans this
--- one replaces). Returns placements, replaced plan ids; or nil and why.
---@param record table the JobRecord, fully staged
function result.check_whole(record)
  local job = record.job
  local surface = game.get_surface(job.surface)
  if not (surface and surface.valid) then
    return nil, "surface " .. job.surface .. " no longer exists"
  end
  local o, r = job.origin, job.request.region
  local box = { o.x, o.y, o.x + r.width, o.y + r.height }
  local replaces = jobs.plans_under(job.surface, box)
  local taken = jobs.occupied(surface, box, jobs.planned_keys(replaces))
  local mine = {}
  local placements = {}
  for _, batch in ipairs(record.staged.batches) do
    for _, p in ipairs(batch.placements or {}) do
      local fp = result.footprint(p)
      for y = fp[2], fp[4] - 1 do
        for x = fp[1], fp[3] - 1 do
          local key = util.tile_key(x, y)
          if mine[key] then
            return nil, string.format("%s and %s overlap at (%d, %d)", mine[key], p.name, x, y)
          end
          if taken[key] then
            return nil, string.format("(%d, %d) is now taken by %s; plan again", x, y, taken[key])
          end
          mine[key] = p.name
        end
      end
      placements[#placements + 1] = p
    end
  end
  return placements, replaces
end

return result
