-- Remove one job that is not active.
-- KEYS: 1 wait, 2 prioritized, 3 delayed, 4 completed, 5 failed, 6 dlq, 7 job hash, 8 job logs
-- ARGV: 1 job id
-- Returns 1, or an error: JQ_NOT_FOUND when the job does not exist, JQ_ACTIVE when a worker
-- holds it.
local id = ARGV[1]
local state = redis.call('HGET', KEYS[7], 'state')
if not state then
  return redis.error_reply('JQ_NOT_FOUND job ' .. id .. ' does not exist')
end
if state == 'active' then
  return redis.error_reply('JQ_ACTIVE job ' .. id .. ' is active; it can be removed once it finishes')
end
if state == 'waiting' then
  redis.call('LREM', KEYS[1], 1, id)
end
for k = 2, 6 do
  redis.call('ZREM', KEYS[k], id)
end
redis.call('DEL', KEYS[7], KEYS[8])
return 1
