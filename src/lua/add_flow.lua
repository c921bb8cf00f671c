-- Add the jobs of a flow that live in this queue (docs/flows.md), atomically: parents
-- before their children, so that no child can finish before its parent's `deps` exists.
-- ARGV: 2 layout version, 3 idempotency ttl ms, 4 job count, then 8 per job (as
--       add_jobs.lua); the count of grouped jobs and (job index from 1, group) per grouped
--       job; the count of traced jobs and (job index, trace context) per traced job; then
--       the count of families F and per family (a parent's children that follow each
--       other in this call): its parent's index in this call or '', its parent ref
--       `<key base> <id>` or '' when in this call, the first child's index, the children
--       count, their failure policies (a letter each: f, i or w); then the count of
--       parents H and per parent (job index, its children count, in every slot).
-- Returns: as add_jobs.lua. A parent waits in K.wchildren with its `deps` hash: the count
-- of pending children and each child of this call pending; children in another slot are
-- listed by flow_link.lua once added.
local idemTtl, count = ARGV[3], tonumber(ARGV[4])

local refused, paused = checkLayout(ARGV[2])
if refused then return refused end

local now, nowText = serverNow()
local waitingStatus = 'waiting'
if paused then waitingStatus = 'paused' end
local groups, traces, at
groups, at = indexedValues(ARGV, 5 + count * 8)
traces, at = indexedValues(ARGV, at)
local flow = {held = {}, familyOf = {}}
local families = {}
for f = 0, tonumber(ARGV[at]) - 1 do
  local a = at + 1 + f * 5
  local family = {tonumber(ARGV[a]) or false, ARGV[a + 1], tonumber(ARGV[a + 2]),
    tonumber(ARGV[a + 3]), ARGV[a + 4]}
  families[#families + 1] = family
  for i = family[3], family[3] + family[4] - 1 do flow.familyOf[i] = family end
end
at = at + 1 + #families * 5
local parents = tonumber(ARGV[at])
local pendingOf = {}
for p = 0, parents - 1 do
  local index = tonumber(ARGV[at + 1 + p * 2])
  flow.held[index] = true
  pendingOf[#pendingOf + 1] = {index, ARGV[at + 2 + p * 2]}
end

-- Before any write: a child found already there (its id or idempotency key taken by a job
-- added outside this flow) under a parent that is new would leave that parent waiting.
function flow.refuse(ids, created)
  for _, family in ipairs(families) do
    local parent = family[1]
    if parent and created[parent] then
      for i = family[3], family[3] + family[4] - 1 do
        if not created[i] then
          local id = ids[i]
          local found = type(id) == 'number' and ('job ' .. id .. ' of this call')
            or ('job ' .. id)
          return redis.error_reply('JQ_STATE flow child ' .. i .. ' is ' .. found ..
            ', which exists already: its new parent would wait for it forever; give a' ..
            " flow's jobs ids and idempotency keys of their own")
        end
      end
    end
  end
  return nil
end
local ids, created, refused = enqueueJobs(ARGV, 5, count, now, nowText, idemTtl, nil, groups,
  traces, flow)
if refused then return refused end
-- Each new parent's `deps`: its pending count and its children of this call, one HSET.
local deps = {}
for _, p in ipairs(pendingOf) do
  local index = p[1]
  if created[index] then
    deps[index] = {SEP, p[2]}
  end
end
for _, family in ipairs(families) do
  local fields = family[1] and deps[family[1]]
  if fields then
    for index = family[3], family[3] + family[4] - 1 do
      if created[index] then
        fields[#fields + 1] = BASE .. ' ' .. ids[index]
        fields[#fields + 1] = ''
      end
    end
  end
end
local waiting = {}
for _, p in ipairs(pendingOf) do
  local index = p[1]
  local fields = deps[index]
  if fields then
    waiting[#waiting + 1] = nowText
    waiting[#waiting + 1] = ids[index]
    local key = depsKey(ids[index])
    for a, b in chunks(#fields, 2) do redis.call('HSET', key, unpack(fields, a, b)) end
    addEvent('job-waiting-children', ids[index], eventName(ARGV[5 + (index - 1) * 8 + 1]), '0')
  end
end
for a, b in chunks(#waiting, 2) do redis.call('ZADD', K.wchildren, unpack(waiting, a, b)) end
return addReply(now, waitingStatus, ids, created, count)
