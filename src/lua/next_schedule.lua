-- The schedule due first, for a scheduler deciding what to do next.
-- Returns: {now} when there are no schedules, else {now, id, next run, definition JSON}.
local now = serverNow()
local head = redis.call('ZRANGE', K.schedulesNext, 0, 0, 'WITHSCORES')
if #head == 0 then
  return {now}
end
local definition = redis.call('HGET', K.schedules, head[1])
if not definition then
  redis.call('ZREM', K.schedulesNext, head[1])  -- an index entry without its schedule
  return {now}
end
return {now, head[1], tonumber(head[2]), definition}
