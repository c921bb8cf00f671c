-- A partitioned queue's rate limit, for the whole queue (src/partitions.rs): the window is
-- partition 0's `limiter`, and a worker takes its starts here before it fetches from any
-- partition (whose own fetch then applies no limit). Starts taken and not used (the
-- partition had fewer jobs) are given back first, only to the window they were taken
-- from (its end time names it: the next window ends at least a window later). A crashed
-- worker's starts are spent in their window and nothing more: the window expires.
-- ARGV: 2 starts wanted, 3 starts given back, 4 end of their window (ms, server time),
--       5 limiter max, 6 limiter window ms
-- Returns: {starts granted, ms until the window reopens (0 when some were granted), end
--           of the window granted from (ms, server time)}
local want, back, backEnd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local limitMax, window = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = serverNow()
local used = windowUsed(K.limiter)
local reopens = used > 0 and redis.call('PTTL', K.limiter) or -2
if back > 0 and used > 0 and reopens > 0 and math.abs(now + reopens - backEnd) < window / 2 then
  used = redis.call('DECRBY', K.limiter, math.min(back, used))
end
if want == 0 then return {0, 0, 0} end
if used >= limitMax then
  if reopens > 0 then return {0, reopens, 0} end
  redis.call('DEL', K.limiter)  -- a window without expiry would block forever
  used = 0
end
local granted = math.min(want, limitMax - used)
countStarts(K.limiter, granted, window)
if used == 0 then reopens = window end  -- countStarts opened it
return {granted, 0, now + reopens}
