-- Set or remove the limits of one group, or the default limits of every group without
-- limits of its own. The limits are replaced whole: a limit not given is removed.
-- ARGV: 2 group ('' = the default), 3 concurrency ('' = none), 4 rate max ('' = none),
--       5 rate window ms, 6 the new limit as JSON (for the event)
-- Returns 1.
local group, concurrency, rateMax, window = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local fields = {'concurrency', 'rate_max', 'rate_window'}
local key, moved = groupKey(group), {}
if group == '' then
  key = K.meta
  fields = {'group_concurrency', 'group_rate_max', 'group_rate_window'}
  -- Every group blocked by a limit may run under the new one: back into the ring.
  moved = redis.call('SMEMBERS', K.groupsParked)
  for _, g in ipairs(redis.call('ZRANGE', K.groupsLimited, 0, -1)) do moved[#moved + 1] = g end
  redis.call('DEL', K.groupsParked, K.groupsLimited)
else
  redis.call('SADD', K.groupsKnown, group)
  if redis.call('SREM', K.groupsParked, group) == 1 then moved[1] = group end
  if redis.call('ZREM', K.groupsLimited, group) == 1 then moved[#moved + 1] = group end
end
redis.call('HDEL', key, unpack(fields))
if concurrency ~= '' then redis.call('HSET', key, fields[1], concurrency) end
if rateMax ~= '' then redis.call('HSET', key, fields[2], rateMax, fields[3], window) end
for _, g in ipairs(moved) do ringAdd(g) end
if #moved > 0 then wakeWorkers() end
addEvent('group-limit-changed', '', group, '0', ARGV[6], 'progress')
flushEvents()
return 1
