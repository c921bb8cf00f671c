-- Tell parents of this queue that children of another slot finished: the entries of those
-- children's K.flowOutbox (lib_flows.lua's notifyParent wrote them). Idempotent, so a worker
-- killed before it removed the entries from the outbox can hand them over again.
-- ARGV: 2... outbox entries (`<child ref> SEP <policy><parent ref> SEP <c|f> SEP <value>`)
-- Returns: the entries this call pushed to this queue's own outbox (a failure travelling up
-- to a parent in yet another slot), for the caller to hand over in turn.
local now, nowText = serverNow()
local out = {}
local woke = false
for i = 2, #ARGV do
  local f, pos = splitFields(ARGV[i], 3)
  local _, base = nil, nil
  if f then _, base = splitParentRef(f[2]) end
  if base == BASE then
    local pushed, released = notifyParent(f[2], f[1], f[3], string.sub(ARGV[i], pos), now,
      nowText)
    if pushed then out[#out + 1] = pushed end
    woke = woke or released
  end
end
if woke then wakeWorkers() end
flushEvents()
return out
