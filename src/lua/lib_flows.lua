-- Helpers of flows (docs/flows.md), appended to lib.lua's (scripts.rs): a script gets them
-- only when it names them, so the scripts of plain jobs do not carry them.
--
-- A parent waiting for its children is in K.wchildren; its hash `j:<id>:deps` maps each
-- child ref (`<key base> <id>`, a job anywhere) to '' while pending, `c<result JSON>` once
-- completed and `f<reason>` once failed for good; its field SEP holds the count of
-- children still pending while it waits (removed when it stops waiting, so one HMGET
-- tells a child both its own field and whether its parent still waits). A child names its parent in its record (the `p` extension:
-- `<policy><parent ref>`, policy `f` fail_parent, `i` ignore, `w` wait). Where child and
-- parent share the key base, the script that finishes the child tells the parent at once;
-- elsewhere it pushes an entry to its own K.flowOutbox, which a worker hands to the
-- parent's slot (flow_child_done.lua) and then removes (flow_outbox_done.lua).

local function depsKey(id)
  return BASE .. 'j:' .. id .. ':deps'
end

-- A parent ref with its policy in front, split: policy, key base, id.
local function splitParentRef(ref)
  local space = string.find(ref, ' ', 2, true)
  if not space then return nil end
  return string.sub(ref, 1, 1), string.sub(ref, 2, space - 1), string.sub(ref, space + 1)
end

-- The parent `id` (of this key base) has no child pending: it becomes waiting like any job
-- (its delay and priority apply now). The caller wakes a worker (once per call).
local function releaseParent(id, now)
  redis.call('ZREM', K.wchildren, id)
  redis.call('HDEL', depsKey(id), SEP)
  local f = splitFields(redis.call('GET', jobKey(id)) or '', 7)
  if not f then return end
  local delay = tonumber(f[6]) or 0
  if delay > 0 then
    redis.call('ZADD', K.delayed, now + delay, id)
  else
    pushWaiting(id, f[5], false, f[7])
  end
  addEvent('job-children-done', id, eventName(f[2]), '0')
end

-- The parent `id` fails for good for `reason` (a child failed under fail_parent); returns
-- its own parent ref (with policy), so that the failure travels up, or nil.
local function failParent(id, reason, now, nowText)
  redis.call('ZREM', K.wchildren, id)
  redis.call('HDEL', depsKey(id), SEP)
  local r = newRun()
  r.reason = reason
  redis.call('SET', runKey(id), outcomeText('failed', nowText, packRun(r), ''))
  redis.call('ZADD', K.failed, now, id)
  local f = splitFields(redis.call('GET', jobKey(id)) or '', 11)
  addEvent('job-failed', id, eventName(f and f[2]), '0', reason, 'reason')
  return f and recordExt(f[11], 'p')
end

-- Tell the parent `ref` (policy and parent ref) that its children `items` finished: each
-- {child ref, kind, value}, kind 'c' (completed, value its return value JSON) or 'f'
-- (failed for good, value the reason). One HMGET, HSET and HINCRBY for all of them (a
-- batch of acks nearly always holds several children of one parent). Idempotent: a child
-- counted already, or a parent no longer waiting (failed or removed), changes nothing. A
-- parent of another key base gets them through the outbox: the entries pushed there are
-- appended to `pushed`. Returns whether a parent became waiting (the caller then wakes a
-- worker, once per call).
local function notifyParent(ref, items, now, nowText, pushed)
  while ref do
    local policy, base, id = splitParentRef(ref)
    if not policy then return false end
    if base ~= BASE then
      local entries = {}
      for _, item in ipairs(items) do
        if item[2] ~= 'f' or policy ~= 'w' then
          entries[#entries + 1] = item[1] .. SEP .. ref .. SEP .. item[2] .. SEP .. item[3]
        end
      end
      for a, b in chunks(#entries, 1) do
        redis.call('RPUSH', K.flowOutbox, unpack(entries, a, b))
      end
      for _, entry in ipairs(entries) do pushed[#pushed + 1] = entry end
      return false
    end
    local deps = depsKey(id)
    local fields = {SEP}
    for j, item in ipairs(items) do fields[j + 1] = item[1] end
    local known = redis.call('HMGET', deps, unpack(fields))
    if not known[1] then
      -- The parent no longer waits (failed by another child, or removed with its `deps`):
      -- a child it still lists as pending keeps its outcome there, for a run of the
      -- parent retried by hand (a failure under "wait" stays pending: a retry may follow).
      local late = {}
      for j, item in ipairs(items) do
        if known[j + 1] == '' and (item[2] ~= 'f' or policy ~= 'w') then
          late[#late + 1], late[#late + 2] = item[1], item[2] .. item[3]
        end
      end
      for a, b in chunks(#late, 2) do redis.call('HSET', deps, unpack(late, a, b)) end
      return false
    end
    local sets, counted, seen, failed = {}, 0, {}, nil
    for j, item in ipairs(items) do
      local state, child = known[j + 1], item[1]
      if (not state or state == '') and not seen[child] then
        seen[child] = true
        if item[2] == 'f' and policy == 'f' then
          failed = failed or item
        elseif item[2] == 'c' or policy == 'i' then
          sets[#sets + 1], sets[#sets + 2] = child, item[2] .. item[3]
          counted = counted + 1
        end
      end
    end
    for a, b in chunks(#sets, 2) do redis.call('HSET', deps, unpack(sets, a, b)) end
    if not failed then
      if counted == 0 or redis.call('HINCRBY', deps, SEP, -counted) > 0 then return false end
      releaseParent(id, now)
      return true
    end
    local reason = 'child ' .. failed[1] .. ' failed: ' .. failed[3]
    redis.call('HSET', deps, failed[1], 'f' .. reason)
    -- The failure travels up: the parent is now the failed child.
    ref, items = failParent(id, reason, now, nowText), {{BASE .. ' ' .. id, 'f', reason}}
  end
  return false
end

-- Remove job `id` of this key base unless a worker holds it; a parent waiting for its
-- children takes its pending children along: those of this slot at once (and theirs),
-- those of other slots are added to `elsewhere` (refs) for the caller. Returns an error
-- text (JQ_NOT_FOUND, JQ_ACTIVE) for the job asked for, else nil.
local function removeJob(id, elsewhere)
  local todo = {id}
  local at = 1
  while at <= #todo do
    local jobId = todo[at]
    local rec = redis.call('GET', jobKey(jobId))
    local job = rec and describeJob(jobId, rec)
    local state, group = 'damaged', ''
    if job then state, group = job.state, job.f[7] end
    if not rec then
      if at == 1 then return 'JQ_NOT_FOUND job ' .. jobId .. ' does not exist' end
    elseif state == 'active' then
      if at == 1 then
        return 'JQ_ACTIVE job ' .. jobId .. ' is active; it can be removed once it finishes'
      end
    else
      if state == 'waiting' and group ~= '' then
        local removed = redis.call('LREM', groupKey(group) .. ':wait:2', 1, jobId) +
          redis.call('ZREM', groupKey(group) .. ':prio:2', jobId)
        if removed > 0 then redis.call('DECRBY', K.groupsWaiting, removed) end
      elseif state == 'waiting' then
        redis.call('LREM', K.wait, 1, jobId)
      elseif state == 'waiting_children' then
        redis.call('ZREM', K.wchildren, jobId)
        local deps = redis.call('HGETALL', depsKey(jobId))
        for i = 1, #deps, 2 do
          if deps[i + 1] == '' and deps[i] ~= SEP then
            local space = string.find(deps[i], ' ', 1, true)
            if space and string.sub(deps[i], 1, space - 1) == BASE then
              todo[#todo + 1] = string.sub(deps[i], space + 1)
            elseif space then
              elsewhere[#elsewhere + 1] = deps[i]
            end
          end
        end
      end
      for _, set in ipairs({K.prioritized, K.delayed, K.completed, K.failed, K.dlq}) do
        redis.call('ZREM', set, jobId)
      end
      deleteJob(jobId)
    end
    at = at + 1
  end
  return nil
end
