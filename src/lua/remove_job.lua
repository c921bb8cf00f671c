-- Remove one job that is not active.
-- ARGV: 2 job id
-- Returns 1, or an error: JQ_NOT_FOUND when the job does not exist, JQ_ACTIVE when a worker
-- holds it.
local id = ARGV[2]
local rec = redis.call('GET', jobKey(id))
if not rec then
  return redis.error_reply('JQ_NOT_FOUND job ' .. id .. ' does not exist')
end
local job = describeJob(id, rec)
local state, group = 'damaged', ''
if job then state, group = job.state, job.f[7] end
if state == 'active' then
  return redis.error_reply('JQ_ACTIVE job ' .. id ..
    ' is active; it can be removed once it finishes')
end
if state == 'waiting' and group ~= '' then
  local removed = redis.call('LREM', groupKey(group) .. ':wait:2', 1, id) +
    redis.call('ZREM', groupKey(group) .. ':prio:2', id)
  if removed > 0 then redis.call('DECRBY', K.groupsWaiting, removed) end
elseif state == 'waiting' then
  redis.call('LREM', K.wait, 1, id)
end
for _, set in ipairs({K.prioritized, K.delayed, K.completed, K.failed, K.dlq}) do
  redis.call('ZREM', set, id)
end
deleteJob(id)
return 1
