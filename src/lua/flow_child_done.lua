-- Tell parents of this queue that children of another slot finished: the entries of those
-- children's K.flowOutbox (lib_flows.lua's notifyParent wrote them). Idempotent, so a worker
-- killed before it removed the entries from the outbox can hand them over again.
-- ARGV: 2... outbox entries (`<child ref> SEP <policy><parent ref> SEP <c|f> SEP <value>`)
-- Returns: the entries this call pushed to this queue's own outbox (a failure travelling up
-- to a parent in yet another slot), for the caller to hand over in turn.
local now, nowText = serverNow()
local out = {}
-- The entries by parent (one call for each parent's children), in the order first seen.
local byParent, order = {}, {}
for i = 2, #ARGV do
  local f, pos = splitFields(ARGV[i], 3)
  local base = nil
  if f then base = select(2, splitParentRef(f[2])) end
  if base == BASE then
    local items = byParent[f[2]]
    if not items then
      items = {}
      byParent[f[2]] = items
      order[#order + 1] = f[2]
    end
    items[#items + 1] = {f[1], f[3], string.sub(ARGV[i], pos)}
  end
end
local woke = false
for _, parent in ipairs(order) do
  woke = notifyParent(parent, byParent[parent], now, nowText, out) or woke
end
if woke then wakeWorkers() end
flushEvents()
return out
