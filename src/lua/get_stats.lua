-- Counts of every status and the queue's lag.
-- KEYS: 1 meta, 2 wait, 3 prioritized, 4 delayed, 5 active, 6 completed, 7 failed, 8 dlq
-- ARGV: 1 key base
-- Returns: {waiting, active, completed, failed, delayed, dlq, paused (1/0), latency ms}
local base = ARGV[1]
-- Priority levels inspected for the oldest prioritized job; beyond this the lag is a
-- lower bound (a queue rarely uses more distinct priorities).
local MAX_LEVELS = 64

local now = serverNow()

local oldest = nil
local function consider(id)
  if id then
    local queuedAt = tonumber(redis.call('HGET', base .. 'job:' .. id, 'queued_at'))
    if queuedAt and (oldest == nil or queuedAt < oldest) then
      oldest = queuedAt
    end
  end
end

-- The list is FIFO, so its head is its oldest job.
consider(redis.call('LINDEX', KEYS[2], 0))
-- Within one priority level the zset is FIFO too: the first job of each level is that
-- level's oldest.
local from = '-inf'
for _ = 1, MAX_LEVELS do
  local head = redis.call('ZRANGEBYSCORE', KEYS[3], from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #head == 0 then break end
  consider(head[1])
  local level = math.floor(tonumber(head[2]) / PRIORITY_SHIFT)
  from = '(' .. string.format('%.0f', (level + 1) * PRIORITY_SHIFT - 1)
end

local latency = 0
if oldest then latency = math.max(0, now - oldest) end
return {
  redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[5]),
  redis.call('ZCARD', KEYS[6]),
  redis.call('ZCARD', KEYS[7]),
  redis.call('ZCARD', KEYS[4]),
  redis.call('ZCARD', KEYS[8]),
  redis.call('HEXISTS', KEYS[1], 'paused'),
  latency,
}
