-- Remove every job, schedule, idempotency key and event of the queue, one batch per call; called
-- until it reports done, so that a huge queue never blocks Redis for long. The meta hash
-- (layout version, paused flag, global concurrency), the id counters and the options texts
-- stay, so ids and options references are never reused; so do the groups' limits and pauses, while their running counts restart
-- from zero (the jobs they counted are gone).
-- ARGV: 2 batch size, 3 scan cursor for idempotency keys
-- Returns: {removed jobs, next cursor ("0" with removed = 0 means done)}
local batch, cursor = tonumber(ARGV[2]), ARGV[3]

local removed = popAndDelete(K.wait, batch, true)
removed = removed + popAndDeleteGrouped(batch - removed)
for _, set in ipairs({K.prioritized, K.delayed, K.active, K.completed, K.failed, K.dlq,
    K.wchildren}) do
  removed = removed + popAndDelete(set, batch - removed, false)
end
if removed > 0 then
  return {removed, cursor}
end

redis.call('DEL', K.schedules, K.schedulesNext, K.schedulesLast, K.events, K.flowOutbox)
for _, group in ipairs(redis.call('SMEMBERS', K.groupsKnown)) do
  local key = groupKey(group)
  redis.call('DEL', key .. ':limiter')
  redis.call('HDEL', key, 'active')
  if redis.call('EXISTS', key) == 0 then redis.call('SREM', K.groupsKnown, group) end
end
redis.call('DEL', K.groups, K.groupsParked, K.groupsLimited, K.groupsWaiting)
-- The base is matched literally: a queue named `orders*` must not match `orders1`'s keys.
local literalBase = string.gsub(BASE, '([%*%?%[%]\\])', '\\%1')
local scan = redis.call('SCAN', cursor, 'MATCH', literalBase .. 'idem:*', 'COUNT', batch)
for _, key in ipairs(scan[2]) do
  redis.call('DEL', key)
end
return {0, scan[1]}
