-- Renew the locks of a worker's active jobs, and its heartbeat in the workers registry.
-- ARGV: 2 lock duration ms, 3 worker id, 4 heartbeat ms (-1: leave the
--       registry), 5 the worker's description (JSON; '' = none, src/registry.rs), then
--       pairs: job id, lock token
-- Returns: the ids whose lock the worker no longer holds.
local lockDuration, workerId, heartbeat = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = serverNow()
local deadline = tostring(now + lockDuration)  -- made text once, not per job
local lost, renewed, runKeys = {}, {}, {}
for i = 6, #ARGV, 2 do runKeys[#runKeys + 1] = runKey(ARGV[i]) end
local states = mget(runKeys)
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  if holdsLock(states[(i - 4) / 2], ARGV[i + 1]) then
    renewed[#renewed + 1] = deadline
    renewed[#renewed + 1] = id
  else
    lost[#lost + 1] = id
  end
end
for a, b in chunks(#renewed, 2) do
  redis.call('ZADD', K.active, 'XX', unpack(renewed, a, b))
end
if heartbeat < 0 then
  redis.call('ZREM', K.workers, workerId)
  redis.call('HDEL', K.workersInfo, workerId)
else
  redis.call('ZADD', K.workers, now + heartbeat, workerId)
  if ARGV[5] ~= '' then redis.call('HSET', K.workersInfo, workerId, ARGV[5]) end
end
-- Workers whose heartbeat lapsed (they died) leave the registry, descriptions too.
local dead = redis.call('ZRANGEBYSCORE', K.workers, '-inf', now - 1)
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', K.workers, '-inf', now - 1)
  for a, b in chunks(#dead, 1) do redis.call('HDEL', K.workersInfo, unpack(dead, a, b)) end
end
return lost
