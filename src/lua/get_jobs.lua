-- List jobs of one status, in the order they will run (waiting, delayed, active) or newest
-- first (completed, failed, dlq).
-- KEYS: 1 meta, 2 wait, 3 prioritized, 4 delayed, 5 active, 6 completed, 7 failed, 8 dlq
-- ARGV: 1 key base, 2 status, 3 limit
-- Returns: {paused (1/0), {id, flat hash fields, logs}...}
local base, status, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local paused = redis.call('HEXISTS', KEYS[1], 'paused')
local ids = {}

local function waitingIds()
  local list = redis.call('LRANGE', KEYS[2], 0, limit - 1)
  if #list < limit then
    local more = redis.call('ZRANGE', KEYS[3], 0, limit - #list - 1)
    for _, id in ipairs(more) do
      list[#list + 1] = id
    end
  end
  return list
end

if status == 'waiting' then
  if paused == 0 then ids = waitingIds() end
elseif status == 'paused' then
  if paused == 1 then ids = waitingIds() end
elseif status == 'delayed' then
  ids = redis.call('ZRANGE', KEYS[4], 0, limit - 1)
elseif status == 'active' then
  ids = redis.call('ZRANGE', KEYS[5], 0, limit - 1)
elseif status == 'completed' then
  ids = redis.call('ZREVRANGE', KEYS[6], 0, limit - 1)
elseif status == 'failed' then
  ids = redis.call('ZREVRANGE', KEYS[7], 0, limit - 1)
elseif status == 'dlq' then
  ids = redis.call('ZREVRANGE', KEYS[8], 0, limit - 1)
end

local out = {paused}
for _, id in ipairs(ids) do
  local jobKey = base .. 'job:' .. id
  local fields = redis.call('HGETALL', jobKey)
  if #fields > 0 then
    out[#out + 1] = {id, fields, redis.call('LRANGE', jobKey .. ':logs', 0, -1)}
  end
end
return out
