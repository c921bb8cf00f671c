-- Counts of every status and the queue's lag; waiting jobs of groups count as waiting (those
-- of a paused group too: they wait for their group).
-- Returns: {waiting, active, completed, failed, delayed, dlq, paused (1/0), latency ms}
-- Priority levels inspected for the oldest prioritized job; beyond this the lag is a
-- lower bound (a queue rarely uses more distinct priorities).
local MAX_LEVELS = 64

local now = serverNow()

local oldest = nil
local function consider(id)
  if id then
    -- A job added waiting has no queued_at until it waits again: it queued when created.
    local times = redis.call('HMGET', jobKey(id), 'queued_at', 'created_at')
    local queuedAt = tonumber(times[1] or times[2])
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
local inGroups = 0
for _, group in ipairs(redis.call('SMEMBERS', K.groupsKnown)) do
  local key = groupKey(group)
  consider(redis.call('LINDEX', key .. ':wait', 0))
  consider(redis.call('ZRANGE', key .. ':prio', 0, 0)[1])
  inGroups = inGroups + redis.call('LLEN', key .. ':wait') + redis.call('ZCARD', key .. ':prio')
end

local latency = 0
if oldest then latency = math.max(0, now - oldest) end
return {
  redis.call('LLEN', K.wait) + redis.call('ZCARD', K.prioritized) + inGroups,
  redis.call('ZCARD', K.active),
  redis.call('ZCARD', K.completed),
  redis.call('ZCARD', K.failed),
  redis.call('ZCARD', K.delayed),
  redis.call('ZCARD', K.dlq),
  redis.call('HEXISTS', K.meta, 'paused'),
  latency,
}
