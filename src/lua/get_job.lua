-- Read one job: its fields, its log lines and whether the queue (or the job's group) is
-- paused.
-- ARGV: 2 job id
-- Returns: {} when the job does not exist, else {flat named fields (lib.lua's jobFields),
-- logs, paused (1/0)}.
local id = ARGV[2]
local fields, group = jobFields(id)
if not fields then
  return {}
end
local paused = redis.call('HEXISTS', K.meta, 'paused')
if paused == 0 and group ~= '' then
  paused = redis.call('HEXISTS', groupKey(group), 'paused')
end
return {fields, redis.call('LRANGE', logsKey(id), 0, -1), paused}
