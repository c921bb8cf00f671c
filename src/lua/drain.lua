-- Remove up to one batch of waiting (and optionally delayed) jobs, and flow parents
-- waiting for their children; called until nothing is
-- left, so that a huge queue never blocks Redis for long. Active jobs are not touched.
-- ARGV: 2 batch size, 3 include delayed (1/0)
-- Returns: {removed in this call, jobs still left to drain}
local batch, includeDelayed = tonumber(ARGV[2]), ARGV[3] == '1'

local removed = popAndDelete(K.wait, batch, true)
removed = removed + popAndDelete(K.prioritized, batch - removed, false)
local fromGroups, leftInGroups = popAndDeleteGrouped(batch - removed)
removed = removed + fromGroups
if includeDelayed then
  removed = removed + popAndDelete(K.delayed, batch - removed, false)
end
-- Flow parents waiting for children: with their children drained they could never run.
removed = removed + popAndDelete(K.wchildren, batch - removed, false)

local left = redis.call('LLEN', K.wait) + redis.call('ZCARD', K.prioritized) + leftInGroups +
  redis.call('ZCARD', K.wchildren)
if includeDelayed then left = left + redis.call('ZCARD', K.delayed) end
return {removed, left}
