-- Every schedule with its next and last run.
-- KEYS: 1 schedules, 2 schedule next-run index, 3 schedule last-run hash
-- Returns: flat {id, definition JSON, next run (-1: none), last run (-1: never)...}
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local id = all[i]
  out[#out + 1] = id
  out[#out + 1] = all[i + 1]
  out[#out + 1] = tonumber(redis.call('ZSCORE', KEYS[2], id) or '-1')
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[3], id) or '-1')
end
return out
