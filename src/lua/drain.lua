-- Remove up to one batch of waiting (and optionally delayed) jobs; called until nothing is
-- left, so that a huge queue never blocks Redis for long. Active jobs are not touched.
-- KEYS: 1 wait, 2 prioritized, 3 delayed
-- ARGV: 1 key base, 2 batch size, 3 include delayed (1/0)
-- Returns: {removed in this call, jobs still left to drain}
local base, batch, includeDelayed = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'

local removed = 0
local function delete(ids)
  for _, id in ipairs(ids) do
    deleteJob(base, id)
    removed = removed + 1
  end
end

delete(redis.call('LPOP', KEYS[1], batch) or {})
local function popZset(key)
  local left = batch - removed
  if left <= 0 then return end
  local popped = redis.call('ZPOPMIN', key, left)
  local ids = {}
  for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
  delete(ids)
end
popZset(KEYS[2])
if includeDelayed then popZset(KEYS[3]) end

local left = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if includeDelayed then left = left + redis.call('ZCARD', KEYS[3]) end
return {removed, left}
