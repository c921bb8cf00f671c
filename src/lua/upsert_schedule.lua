-- Create or replace a recurring schedule. Scheduling the same definition again keeps its
-- next run; a changed pattern (cron, time zone, interval) starts over from `first run`.
-- ARGV: 2 layout version, 3 schedule id, 4 definition JSON, 5 pattern signature,
--       6 first run ms
-- Returns: the schedule's next run (ms).
local id, definition, signature, firstRun = ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local refused = checkLayout(ARGV[2])
if refused then return refused end

local old = redis.call('HGET', K.schedules, id)
local keepNextRun = false
if old then
  local ok, decoded = pcall(cjson.decode, old)
  keepNextRun = ok and decoded['signature'] == signature
end
redis.call('HSET', K.schedules, id, definition)
local nextRun = redis.call('ZSCORE', K.schedulesNext, id)
if not keepNextRun or not nextRun then
  redis.call('ZADD', K.schedulesNext, firstRun, id)
  nextRun = firstRun
end
-- Wake a sleeping scheduler: this schedule may be due before what it sleeps for.
redis.call('DEL', K.schedulesWake)
redis.call('RPUSH', K.schedulesWake, '1')
return tonumber(nextRun)
