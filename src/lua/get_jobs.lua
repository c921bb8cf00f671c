-- List jobs of one status, in the order they will run (waiting, delayed, active) or newest
-- first (completed, failed, dlq).
-- ARGV: 2 status, 3 limit
-- Returns: {paused (1/0), {id, flat hash fields, logs}...}
local status, limit = ARGV[2], tonumber(ARGV[3])
local paused = redis.call('HEXISTS', K.meta, 'paused')
local ids = {}

local function waitingIds()
  local list = redis.call('LRANGE', K.wait, 0, limit - 1)
  if #list < limit then
    for _, id in ipairs(redis.call('ZRANGE', K.prioritized, 0, limit - #list - 1)) do
      list[#list + 1] = id
    end
  end
  return list
end

if status == 'waiting' then
  if paused == 0 then ids = waitingIds() end
elseif status == 'paused' then
  if paused == 1 then ids = waitingIds() end
elseif status == 'delayed' or status == 'active' then
  ids = redis.call('ZRANGE', K[status], 0, limit - 1)
elseif status == 'completed' or status == 'failed' or status == 'dlq' then
  ids = redis.call('ZREVRANGE', K[status], 0, limit - 1)
end

local out = {paused}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', jobKey(id))
  if #fields > 0 then
    out[#out + 1] = {id, fields, redis.call('LRANGE', jobKey(id) .. ':logs', 0, -1)}
  end
end
return out
