-- List jobs of one status, in the order they will run (waiting, delayed, active) or newest
-- first (completed, failed, dlq); with a group, only that group's jobs.
-- ARGV: 2 status, 3 limit, 4 group ('' = any)
-- Returns: {paused (1/0: the queue, or the group asked for), {id, flat named fields (lib.lua's jobFields), logs}...}
local status, limit, group = ARGV[2], tonumber(ARGV[3]), ARGV[4] or ''
-- Jobs of other statuses are filtered by their group field, looking at this many at most.
local SCAN_LIMIT = 100000
local paused = redis.call('HEXISTS', K.meta, 'paused')
if group ~= '' and paused == 0 then paused = redis.call('HEXISTS', groupKey(group), 'paused') end
local ids = {}

local function append(list, more)
  for _, id in ipairs(more) do
    if #list >= limit then break end
    list[#list + 1] = id
  end
end

-- Ungrouped waiting jobs first, then the groups' (in the order of their keys).
local function waitingIds()
  if group ~= '' then
    local key = groupKey(group)
    local list = redis.call('LRANGE', key .. ':wait:2', 0, limit - 1)
    if #list < limit then
      append(list, redis.call('ZRANGE', key .. ':prio:2', 0, limit - #list - 1))
    end
    return list
  end
  local list = redis.call('LRANGE', K.wait, 0, limit - 1)
  if #list < limit then
    append(list, redis.call('ZRANGE', K.prioritized, 0, limit - #list - 1))
  end
  for _, known in ipairs(redis.call('SMEMBERS', K.groupsKnown)) do
    if #list >= limit then break end
    local key = groupKey(known)
    append(list, redis.call('LRANGE', key .. ':wait:2', 0, limit - #list - 1))
    if #list < limit then
      append(list, redis.call('ZRANGE', key .. ':prio:2', 0, limit - #list - 1))
    end
  end
  return list
end

-- Members of the set `key` in the status's order whose group is `group`.
local function groupMembers(key, reverse)
  local list, from = {}, 0
  while #list < limit and from < SCAN_LIMIT do
    local page
    if reverse then
      page = redis.call('ZREVRANGE', key, from, from + 999)
    else
      page = redis.call('ZRANGE', key, from, from + 999)
    end
    if #page == 0 then break end
    for _, id in ipairs(page) do
      local f = splitFields(redis.call('GET', jobKey(id)) or '', 7)
      if #list < limit and f and f[7] == group then
        list[#list + 1] = id
      end
    end
    from = from + 1000
  end
  return list
end

if status == 'waiting' then
  if paused == 0 then ids = waitingIds() end
elseif status == 'paused' then
  if paused == 1 then ids = waitingIds() end
elseif status == 'delayed' or status == 'active' then
  if group ~= '' then
    ids = groupMembers(K[status], false)
  else
    -- Below +inf: active's pin is no job (lib.lua's ACTIVE_PIN).
    ids = redis.call('ZRANGE', K[status], '-inf', '(+inf', 'BYSCORE', 'LIMIT', 0, limit)
  end
elseif status == 'waiting_children' then
  -- Flow parents waiting for their children, oldest first.
  if group ~= '' then
    ids = groupMembers(K.wchildren, false)
  else
    ids = redis.call('ZRANGE', K.wchildren, 0, limit - 1)
  end
elseif status == 'completed' or status == 'failed' or status == 'dlq' then
  if group ~= '' then
    ids = groupMembers(K[status], true)
  else
    ids = redis.call('ZREVRANGE', K[status], 0, limit - 1)
  end
end

local out = {paused}
for _, id in ipairs(ids) do
  local fields = jobFields(id)
  if fields then
    out[#out + 1] = {id, fields, redis.call('LRANGE', logsKey(id), 0, -1)}
  end
end
return out
