-- Counts of every status and the queue's lag; waiting jobs of groups count as waiting (those
-- of a paused group too: they wait for their group). The lag looks at the oldest jobs of at
-- most MAX_GROUPS groups of each of the ring, the parked and the rate-limited groups (a
-- lower bound beyond), so that the cost of a call does not grow with the groups.
-- Returns: {waiting, active, completed, failed, delayed, dlq, paused (1/0), latency ms,
-- waiting_children (flow parents waiting for their children)}
-- Priority levels inspected for the oldest prioritized job; beyond this the lag is a
-- lower bound (a queue rarely uses more distinct priorities).
local MAX_LEVELS = 64
local MAX_GROUPS = 100

local now = serverNow()

local oldest = nil
local function consider(id)
  if id then
    -- A job that never ran has no run state: it queued when created (plus its delay).
    local queuedAt
    local run = redis.call('GET', runKey(id))
    if run then queuedAt = tonumber(parseRun(run).queued) end
    if not queuedAt then
      local f = splitFields(redis.call('GET', jobKey(id)) or '', 6)
      if f then queuedAt = (tonumber(f[4]) or now) + (tonumber(f[6]) or 0) end
    end
    if queuedAt and (oldest == nil or queuedAt < oldest) then
      oldest = queuedAt
    end
  end
end

-- The list is FIFO, so its head is its oldest job.
consider(redis.call('LINDEX', K.wait, 0))
-- Within one priority level the zset is FIFO too: the first job of each level is that
-- level's oldest.
local from = '-inf'
for _ = 1, MAX_LEVELS do
  local head = redis.call('ZRANGEBYSCORE', K.prioritized, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #head == 0 then break end
  consider(head[1])
  local level = math.floor(tonumber(head[2]) / PRIORITY_SHIFT)
  from = '(' .. string.format('%.0f', (level + 1) * PRIORITY_SHIFT - 1)
end

-- A group's list and zset heads are its oldest jobs (within a level: a lower bound beyond).
local function considerGroups(groups)
  for _, group in ipairs(groups) do
    local key = groupKey(group)
    consider(redis.call('LINDEX', key .. ':wait:2', 0))
    consider(redis.call('ZRANGE', key .. ':prio:2', 0, 0)[1])
  end
end
considerGroups(redis.call('ZRANGE', K.groups, 0, MAX_GROUPS - 1))
considerGroups(redis.call('ZRANGE', K.groupsLimited, 0, MAX_GROUPS - 1))
considerGroups(redis.call('SRANDMEMBER', K.groupsParked, MAX_GROUPS))
local inGroups = math.max(0, tonumber(redis.call('GET', K.groupsWaiting)) or 0)

local latency = 0
if oldest then latency = math.max(0, now - oldest) end
return {
  redis.call('LLEN', K.wait) + redis.call('ZCARD', K.prioritized) + inGroups,
  activeCount(),
  redis.call('ZCARD', K.completed),
  redis.call('ZCARD', K.failed),
  redis.call('ZCARD', K.delayed),
  redis.call('ZCARD', K.dlq),
  redis.call('HEXISTS', K.meta, 'paused'),
  latency,
  redis.call('ZCARD', K.wchildren),
}
