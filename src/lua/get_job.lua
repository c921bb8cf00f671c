-- Read one job: its hash, its log lines and whether the queue is paused.
-- KEYS: 1 meta, 2 job hash, 3 job logs
-- Returns: {} when the job does not exist, else {flat hash fields, logs, paused (1/0)}.
local fields = redis.call('HGETALL', KEYS[2])
if #fields == 0 then
  return {}
end
local paused = redis.call('HEXISTS', KEYS[1], 'paused')
return {fields, redis.call('LRANGE', KEYS[3], 0, -1), paused}
