-- The queue's live workers (heartbeat deadline not passed, server clock), soonest
-- deadline first, with the descriptions their heartbeats wrote (src/registry.rs).
-- Returns: {now, {{worker id, deadline ms, description JSON ('' = none)}, ...}}.
local now = serverNow()
local live = redis.call('ZRANGEBYSCORE', K.workers, now, '+inf', 'WITHSCORES')
local ids = {}
for i = 1, #live, 2 do ids[#ids + 1] = live[i] end
local infos = {}
if #ids > 0 then infos = redis.call('HMGET', K.workersInfo, unpack(ids)) end
local rows = {}
for i = 1, #ids do
  rows[i] = {ids[i], tonumber(live[i * 2]), infos[i] or ''}
end
return {now, rows}
