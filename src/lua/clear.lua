-- Remove every job, schedule and idempotency key of the queue, one batch per call; called
-- until it reports done, so that a huge queue never blocks Redis for long. The meta hash
-- (layout version, paused flag) and the id counters stay, so ids are never reused.
-- KEYS: 1 wait, 2 prioritized, 3 delayed, 4 active, 5 completed, 6 failed, 7 dlq,
--       8 schedules, 9 schedule next-run index, 10 schedule last-run hash
-- ARGV: 1 key base, 2 batch size, 3 scan cursor for idempotency keys
-- Returns: {removed jobs, next cursor ("0" with removed = 0 means done)}
local base, batch, cursor = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local removed = 0
local function delete(ids)
  for _, id in ipairs(ids) do
    deleteJob(base, id)
    removed = removed + 1
  end
end

delete(redis.call('LPOP', KEYS[1], batch) or {})
for k = 2, 7 do
  local left = batch - removed
  if left <= 0 then break end
  local popped = redis.call('ZPOPMIN', KEYS[k], left)
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  delete(ids)
end
if removed > 0 then
  return {removed, cursor}
end

redis.call('DEL', KEYS[8], KEYS[9], KEYS[10])
local scan = redis.call('SCAN', cursor, 'MATCH', base .. 'idem:*', 'COUNT', batch)
for _, key in ipairs(scan[2]) do
  redis.call('DEL', key)
end
return {0, scan[1]}
