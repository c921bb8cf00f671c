-- Read one job: its hash, its log lines and whether the queue (or the job's group) is paused.
-- ARGV: 2 job id
-- Returns: {} when the job does not exist, else {flat hash fields, logs, paused (1/0)}.
local key = jobKey(ARGV[2])
local fields = redis.call('HGETALL', key)
if #fields == 0 then
  return {}
end
local paused = redis.call('HEXISTS', K.meta, 'paused')
if paused == 0 then
  local group = redis.call('HGET', key, 'group')
  if group then paused = redis.call('HEXISTS', groupKey(group), 'paused') end
end
return {fields, redis.call('LRANGE', key .. ':logs', 0, -1), paused}
