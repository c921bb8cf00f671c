-- Every schedule with its next and last run.
-- Returns: flat {id, definition JSON, next run (-1: none), last run (-1: never)...}
local out = {}
local all = redis.call('HGETALL', K.schedules)
for i = 1, #all, 2 do
  local id = all[i]
  out[#out + 1] = id
  out[#out + 1] = all[i + 1]
  out[#out + 1] = tonumber(redis.call('ZSCORE', K.schedulesNext, id) or '-1')
  out[#out + 1] = tonumber(redis.call('HGET', K.schedulesLast, id) or '-1')
end
return out
