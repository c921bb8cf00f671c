-- Pause or resume one group for every worker; its waiting jobs stay (and count as waiting).
-- ARGV: 2 group, 3 "1" to pause, "0" to resume
-- Returns 1.
local group = ARGV[2]
local key = groupKey(group)
redis.call('SADD', K.groupsKnown, group)
if ARGV[3] == '1' then
  redis.call('HSET', key, 'paused', '1')
  addEvent('group-paused', '', group, '0')
else
  redis.call('HDEL', key, 'paused')
  -- Fetch dropped it from the ring when it found it paused.
  if redis.call('LLEN', key .. ':wait:2') + redis.call('ZCARD', key .. ':prio:2') > 0 then
    ringAdd(group)
    wakeWorkers()
  end
  addEvent('group-resumed', '', group, '0')
end
flushEvents()
return 1
