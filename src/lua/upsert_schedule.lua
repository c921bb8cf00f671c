-- Create or replace a recurring schedule. Scheduling the same definition again keeps its
-- next run; a changed pattern (cron, time zone, interval) starts over from `first run`.
-- KEYS: 1 meta, 2 schedules, 3 schedule next-run index, 4 scheduler wake-up list
-- ARGV: 1 layout version, 2 schedule id, 3 definition JSON, 4 pattern signature,
--       5 first run ms
-- Returns: the schedule's next run (ms).
local meta, schedules, nextRuns, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, definition, signature, firstRun = ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local refused = checkLayout(meta, ARGV[1])
if refused then return refused end

local old = redis.call('HGET', schedules, id)
local keep = false
if old then
  local ok, decoded = pcall(cjson.decode, old)
  keep = ok and decoded['signature'] == signature
end
redis.call('HSET', schedules, id, definition)
local nextRun = redis.call('ZSCORE', nextRuns, id)
if not keep or not nextRun then
  redis.call('ZADD', nextRuns, firstRun, id)
  nextRun = firstRun
end
-- Wake a sleeping scheduler: this schedule may be due before what it sleeps for.
redis.call('DEL', wake)
redis.call('RPUSH', wake, '1')
return tonumber(nextRun)
