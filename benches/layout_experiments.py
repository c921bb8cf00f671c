"""An experiment for layout version 2 (issue 19), not product code: candidate job encodings
written with raw Redis commands (no jobqueue scripts), their memory per job, and the
redis-server instructions of the commands each needs per enqueue, fetch and ack.

    .venv/bin/python benches/layout_experiments.py [--jobs 20000] [--cost-jobs 2000]
                                                   [--no-cost]

Memory: for each candidate, job state and payload size (``{"i":i,"s":"x"*n}`` as compact
JSON, n = 0, 100, 1,000), on an emptied redis-server, one Lua script per 1,000 jobs
writes ``--jobs`` jobs in that state; the result is ``INFO memory`` ``used_memory`` after
minus before, per job (no events stream: the candidates differ in the job, not in the
events). The field values are those layout 1 writes: the default options text (attempts
3, exponential backoff, retention 10,000), a 13-digit timestamp, the failed reason and an
asyncio traceback of jobqueue's length for failed jobs.

Candidates (docs/layout-v2-plan.md discusses them):

- ``v1``: today's job hash (the fields ``enqueueJobs`` writes; the fields later scripts
  add for each state) and the state's list or sorted set;
- ``v1ref``: the same with ``opts`` replaced by a short reference to the options text,
  stored once per distinct text in a per-queue hash (a hash whose values all fit in 64
  bytes stays a listpack: the payload-0 rows);
- ``str``: the immutable part (name, opts reference, max attempts, created at, data)
  packed into one string ``job:<id>``; the mutable fields (lock, attempts, stalled count,
  processed at) in a small hash ``job:<id>:s`` that exists only from the job's first
  fetch until it finishes; a finished job's outcome is appended to the string (APPEND)
  and the small hash deleted, so a retained job is one string again;
- ``strs``: like ``str``, but the mutable fields are one small string ``job:<id>:s``
  (token, attempts, stalled count, processed at): created by ``SET NX`` on the first
  fetch (a retried job's exists and is rewritten), taken with ``GETDEL`` by the ack;
- ``strq``: like ``str``, but the mutable fields of running jobs live in two per-queue
  hashes keyed by id (``locks``: token; ``runs``: attempts, stalled, processed at);
- ``strl``: like ``str``, with completed and failed ids in a list (finish order) instead
  of a sorted set (retention by count: LTRIM; by age: the finish time in the job);
- ``qhash``: the packed records as fields of one per-queue hash ``jobs`` (no key per
  job), mutable fields as in ``strq``;
- ``inline``: the packed record (with its id) is the wait-list element itself; a key is
  made only when the job is fetched. A floor for comparison: it loses the O(1) lookup
  by id that get_job, remove_job and custom ids need.

Instructions: redis-server under valgrind's callgrind (as ``benches/redis_cost.py``
runs it), counting on only around the measured calls: per job, ``--cost-jobs`` jobs added
in batches of 1,000, fetched in batches of 50 (LPOP, read the job, write the lock,
attempts and start time, ZADD active) and acknowledged as completed in batches of 50
(check the lock, write the outcome, ZREM active, ZADD completed, retention count check),
each batch one EVALSHA. Events, pause, limiter and delayed promotion are left out: they
are the same for every candidate. Then single commands: 1,000 calls in one script,
minus the same loop without the call.

Prints the tables and writes ``benches/results/layout_experiments.json``. Needs
``valgrind`` for the instruction part (skipped with a note otherwise, or with
``--no-cost``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from jobqueue.testing import RedisServer, _encode, _Reader

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "layout_experiments.json"
CANDIDATES = ("v1", "v1ref", "str", "strs", "strq", "strl", "qhash", "inline")
STATES = ("waiting", "delayed", "active", "completed", "failed")
PAYLOAD_SIZES = (0, 100, 1000)
BATCH = 1000
# The options text layout 1 stores for a job with the default options.
OPTS = (
    '{"attempts":3,"delay":0,"jitter":0,"priority":0,"backoff":{"type":"exponential",'
    '"delay":1000,"max_delay":30000,"jitter":0.0},"timeout":null,'
    '"remove_on_complete":{"count":10000,"age":null},"remove_on_fail":{"count":10000,"age":null}}'
)
# The traceback layout 1 stores for `async def p(job): raise RuntimeError("boom")` (the
# worker's frame and the processor's; the paths are those of this checkout's length).
STACK = (
    "Traceback (most recent call last):\n"
    '  File "/work/wt-memory/python/jobqueue/worker.py", line 185, in _run\n'
    "    result = await (work if timeout is None else asyncio.wait_for(work, timeout / 1000))\n"
    "             " + "^" * 75 + "\n"
    '  File "/work/wt-memory/benches/memory.py", line 131, in boom\n'
    '    raise RuntimeError("boom")\n'
    "RuntimeError: boom\n"
)

# Writers: ARGV = candidate, state, first id, count, payload size, opts text, stacktrace.
# Every job gets the values layout 1 would give it; timestamps are fixed 13-digit texts.
LUA_COMMON = r"""
local BASE = 'x:{q}:'
local NOW, DUE, DEADLINE = '1796134028028', '1796137628028', '1796134058028'
local TOKEN = '5f1c9a7e2b3d4c60:'
local SEP, OUT = '\31', '\30'
local function jobKey(id) return BASE .. 'job:' .. id end
local function packed(id, data)
  -- name, opts reference, max attempts, created at, data
  return 'noop' .. SEP .. '1' .. SEP .. '3' .. SEP .. NOW .. SEP .. data
end
"""

LUA_WRITE = (
    LUA_COMMON
    + r"""
local cand, state = ARGV[1], ARGV[2]
local first, count, size = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local OPTS, STACK = ARGV[6], ARGV[7]
local REASON = 'RuntimeError: boom'
local X = string.rep('x', size)
local ids, scored = {}, {}
if cand ~= 'v1' then
  redis.call('HSET', BASE .. 'opts', '1', OPTS)
  redis.call('HSET', BASE .. 'optsidx', OPTS, '1')
end
for i = first, first + count - 1 do
  local id = tostring(i)
  local data = '{"i":' .. id .. ',"s":"' .. X .. '"}'
  local key = jobKey(id)
  if cand == 'v1' or cand == 'v1ref' then
    local opts = OPTS
    if cand == 'v1ref' then opts = '1' end
    if state == 'waiting' then
      redis.call('HSET', key, 'name', 'noop', 'data', data, 'opts', opts, 'state', 'waiting',
        'max_attempts', '3', 'created_at', NOW)
    elseif state == 'delayed' then
      redis.call('HSET', key, 'name', 'noop', 'data', data, 'opts', opts, 'state', 'delayed',
        'max_attempts', '3', 'created_at', NOW, 'priority', '0', 'delay', '3600000',
        'queued_at', DUE)
    elseif state == 'active' then
      redis.call('HSET', key, 'name', 'noop', 'data', data, 'opts', opts, 'state', 'active',
        'max_attempts', '3', 'created_at', NOW, 'lock', TOKEN .. id, 'processed_at', NOW,
        'attempts_made', '1')
    elseif state == 'completed' then
      redis.call('HSET', key, 'name', 'noop', 'data', data, 'opts', opts, 'state', 'completed',
        'max_attempts', '3', 'created_at', NOW, 'lock', '', 'processed_at', NOW,
        'attempts_made', '1', 'finished_at', NOW, 'return_value', 'null')
    else
      redis.call('HSET', key, 'name', 'noop', 'data', data, 'opts', opts, 'state', 'failed',
        'max_attempts', '3', 'created_at', NOW, 'lock', '', 'processed_at', NOW,
        'attempts_made', '3', 'finished_at', NOW, 'failed_reason', REASON,
        'stacktrace', STACK, 'queued_at', NOW)
    end
  else
    local record = packed(id, data)
    local outcome
    if state == 'completed' then
      outcome = OUT .. table.concat({'completed', '1', '0', NOW, NOW, 'null'}, SEP)
    elseif state == 'failed' then
      outcome = OUT .. table.concat({'failed', '3', '0', NOW, NOW, REASON, STACK}, SEP)
    end
    if outcome then record = record .. outcome end
    if cand == 'qhash' then
      redis.call('HSET', BASE .. 'jobs', id, record)
    elseif cand == 'inline' and state == 'waiting' then
      record = id .. SEP .. record
    else
      redis.call('SET', key, record)
    end
    if state == 'active' then
      if cand == 'str' or cand == 'strl' or cand == 'inline' then
        redis.call('HSET', key .. ':s', 'lock', TOKEN .. id, 'attempts_made', '1',
          'processed_at', NOW)
      elseif cand == 'strs' then
        redis.call('SET', key .. ':s', TOKEN .. id .. SEP .. '1' .. SEP .. '0' .. SEP .. NOW)
      else
        redis.call('HSET', BASE .. 'locks', id, TOKEN .. id)
        redis.call('HSET', BASE .. 'runs', id, '1' .. SEP .. '0' .. SEP .. NOW)
      end
    end
    if cand == 'inline' and state == 'waiting' then id = record end
  end
  ids[#ids + 1] = id
  scored[#scored + 1] = NOW
  scored[#scored + 1] = id
end
if #ids == 0 then return 0 end
local lists = {waiting = 'wait'}
if cand == 'strl' then lists.completed = 'completed'; lists.failed = 'failed' end
if lists[state] then
  redis.call('RPUSH', BASE .. lists[state], unpack(ids))
else
  if state == 'delayed' then
    for i = 1, #scored, 2 do scored[i] = DUE end
  elseif state == 'active' then
    for i = 1, #scored, 2 do scored[i] = DEADLINE end
  end
  redis.call('ZADD', BASE .. state, unpack(scored))
end
return #ids
"""
)

# Fetch and ack as each candidate would do them (the parts that differ between them).
LUA_ADD = (
    LUA_COMMON
    + r"""
local cand, first, count, data = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local OPTS = ARGV[5]
local ids = {}
local ref
if cand ~= 'v1' then
  ref = redis.call('HGET', BASE .. 'optsidx', OPTS)
  if not ref then
    ref = '1'
    redis.call('HSET', BASE .. 'optsidx', OPTS, ref)
    redis.call('HSET', BASE .. 'opts', ref, OPTS)
  end
end
local last = redis.call('INCRBY', BASE .. 'id', count)
for i = last - count + 1, last do
  local id = tostring(i)
  if cand == 'v1' or cand == 'v1ref' then
    redis.call('HSET', jobKey(id), 'name', 'noop', 'data', data, 'opts', ref or OPTS,
      'state', 'waiting', 'max_attempts', '3', 'created_at', NOW)
    ids[#ids + 1] = id
  elseif cand == 'qhash' then
    redis.call('HSET', BASE .. 'jobs', id, packed(id, data))
    ids[#ids + 1] = id
  elseif cand == 'inline' then
    ids[#ids + 1] = id .. SEP .. packed(id, data)
  else
    redis.call('SET', jobKey(id), packed(id, data))
    ids[#ids + 1] = id
  end
end
redis.call('RPUSH', BASE .. 'wait', unpack(ids))
return count
"""
)

LUA_FETCH = (
    LUA_COMMON
    + r"""
local cand, take = ARGV[1], tonumber(ARGV[2])
local popped = redis.call('LPOP', BASE .. 'wait', take) or {}
local active, out, optsCache = {}, {}, {}
for _, id in ipairs(popped) do
  local key = jobKey(id)
  local name, data, opts, made, created, progress
  if cand == 'v1' or cand == 'v1ref' then
    local f = redis.call('HMGET', key, 'name', 'data', 'opts', 'attempts_made', 'created_at',
      'progress')
    name, data, opts, made, created, progress = f[1], f[2], f[3], f[4], f[5], f[6]
    if cand == 'v1ref' then
      local text = optsCache[opts]
      if not text then
        text = redis.call('HGET', BASE .. 'opts', opts)
        optsCache[opts] = text
      end
      opts = text
    end
    made = tostring((tonumber(made) or 0) + 1)  -- text: a number would go through printf
    redis.call('HSET', key, 'state', 'active', 'lock', TOKEN .. id, 'processed_at', NOW,
      'attempts_made', made)
  else
    local record
    if cand == 'inline' then
      local cut = string.find(id, SEP, 1, true)
      record = string.sub(id, cut + 1)
      id = string.sub(id, 1, cut - 1)
      key = jobKey(id)
      redis.call('SET', key, record)
    elseif cand == 'qhash' then
      record = redis.call('HGET', BASE .. 'jobs', id)
    else
      record = redis.call('GET', key)
    end
    opts = string.match(record, '^[^\31]*\31([^\31]*)')
    local text = optsCache[opts]
    if not text then
      text = redis.call('HGET', BASE .. 'opts', opts)
      optsCache[opts] = text
    end
    if cand == 'strq' or cand == 'qhash' then
      local run = redis.call('HGET', BASE .. 'runs', id)
      made = '1'
      if run then made = tostring(tonumber(string.match(run, '^%d+')) + 1) end
      redis.call('HSET', BASE .. 'runs', id, made .. SEP .. '0' .. SEP .. NOW)
      redis.call('HSET', BASE .. 'locks', id, TOKEN .. id)
    elseif cand == 'strs' then
      -- A first run creates the state string; a retried job's string exists: rewrite it.
      made = 1
      if not redis.call('SET', key .. ':s', TOKEN .. id .. SEP .. '1' .. SEP .. '0' .. SEP .. NOW,
          'NX') then
        local old = redis.call('GET', key .. ':s')
        local runs, stalled = string.match(old, '(%d+)(%d+)')
        made = tonumber(runs) + 1
        redis.call('SET', key .. ':s', TOKEN .. id .. SEP .. made .. SEP .. stalled .. SEP .. NOW)
      end
    else
      local f = redis.call('HMGET', key .. ':s', 'attempts_made', 'progress')
      made = tostring((tonumber(f[1]) or 0) + 1)
      redis.call('HSET', key .. ':s', 'lock', TOKEN .. id, 'attempts_made', made,
        'processed_at', NOW)
    end
    data = record
  end
  active[#active + 1] = DEADLINE
  active[#active + 1] = id
  out[#out + 1] = id
  out[#out + 1] = data
end
if #active > 0 then redis.call('ZADD', BASE .. 'active', unpack(active)) end
return out
"""
)

LUA_ACK = (
    LUA_COMMON
    + r"""
local cand, n = ARGV[1], tonumber(ARGV[2])
local done, scored = {}, {}
for i = 3, 2 + n do
  local id = ARGV[i]
  local key = jobKey(id)
  local token = TOKEN .. id
  local ok = false
  if cand == 'v1' or cand == 'v1ref' then
    if redis.call('HGET', key, 'lock') == token then
      redis.call('HSET', key, 'state', 'completed', 'lock', '', 'finished_at', NOW,
        'return_value', 'null')
      ok = true
    end
  elseif cand == 'strq' or cand == 'qhash' then
    if redis.call('HGET', BASE .. 'locks', id) == token then
      local run = redis.call('HGET', BASE .. 'runs', id)
      local outcome = OUT .. 'completed' .. SEP .. run .. SEP .. NOW .. SEP .. 'null'
      if cand == 'qhash' then
        local record = redis.call('HGET', BASE .. 'jobs', id)
        redis.call('HSET', BASE .. 'jobs', id, record .. outcome)
      else
        redis.call('APPEND', key, outcome)
      end
      redis.call('HDEL', BASE .. 'locks', id)
      redis.call('HDEL', BASE .. 'runs', id)
      ok = true
    end
  elseif cand == 'strs' then
    -- Taken and deleted in one call; put back if the lock is not the worker's.
    local st = redis.call('GETDEL', key .. ':s')
    if st and string.sub(st, 1, #token + 1) == token .. SEP then
      redis.call('APPEND', key, OUT .. 'completed' .. SEP .. string.sub(st, #token + 2) .. SEP ..
        NOW .. SEP .. 'null')
      ok = true
    elseif st then
      redis.call('SET', key .. ':s', st)
    end
  else
    local f = redis.call('HMGET', key .. ':s', 'lock', 'attempts_made', 'stalled_count',
      'processed_at')
    if f[1] == token then
      redis.call('APPEND', key, OUT .. 'completed' .. SEP .. f[2] .. SEP .. (f[3] or '0') ..
        SEP .. f[4] .. SEP .. NOW .. SEP .. 'null')
      redis.call('DEL', key .. ':s')
      ok = true
    end
  end
  if ok then
    done[#done + 1] = id
    scored[#scored + 1] = NOW
    scored[#scored + 1] = id
  end
end
if #done > 0 then
  redis.call('ZREM', BASE .. 'active', unpack(done))
  if cand == 'strl' then
    redis.call('RPUSH', BASE .. 'completed', unpack(done))
    redis.call('LLEN', BASE .. 'completed')
  else
    redis.call('ZADD', BASE .. 'completed', unpack(scored))
    redis.call('ZCARD', BASE .. 'completed')
  end
end
return #done
"""
)

# One command, 1,000 times: ARGV = op, first id, count (0 = the loop alone).
LUA_SETUP_OPS = (
    LUA_COMMON
    + r"""
local first, count, data, opts = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
for i = first, first + count - 1 do
  local id = tostring(i)
  redis.call('HSET', BASE .. 'ht:' .. id, 'name', 'noop', 'data', data, 'opts', opts,
    'state', 'waiting', 'max_attempts', '3', 'created_at', NOW)
  redis.call('HSET', BASE .. 'lp:' .. id, 'name', 'noop', 'data', '{"i":' .. id .. ',"s":""}',
    'opts', '1', 'state', 'waiting', 'max_attempts', '3', 'created_at', NOW)
  redis.call('SET', BASE .. 'st:' .. id, packed(id, data))
  redis.call('HSET', BASE .. 'sm:' .. id, 'lock', TOKEN .. id, 'attempts_made', '1',
    'processed_at', NOW)
  redis.call('SET', BASE .. 'ss:' .. id, TOKEN .. id .. SEP .. '1' .. SEP .. '0' .. SEP .. NOW)
end
return count
"""
)

LUA_OPS = (
    LUA_COMMON
    + r"""
local op, first, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = first, first + count - 1 do
  local id = tostring(i)
  local ht, lp, st, sm = BASE .. 'ht:' .. id, BASE .. 'lp:' .. id, BASE .. 'st:' .. id,
    BASE .. 'sm:' .. id
  if op == 'HMGET 6 hashtable' then
    redis.call('HMGET', ht, 'name', 'data', 'opts', 'attempts_made', 'created_at', 'progress')
  elseif op == 'HMGET 6 listpack' then
    redis.call('HMGET', lp, 'name', 'data', 'opts', 'attempts_made', 'created_at', 'progress')
  elseif op == 'GET string' then
    redis.call('GET', st)
  elseif op == 'HMGET 2 missing key' then
    redis.call('HMGET', st .. ':none', 'attempts_made', 'progress')
  elseif op == 'HGET 1 hashtable' then
    redis.call('HGET', ht, 'name')
  elseif op == 'HSET 4 hashtable' then
    redis.call('HSET', ht, 'state', 'active', 'lock', TOKEN .. id, 'processed_at', NOW,
      'attempts_made', '1')
  elseif op == 'HSET 3 new listpack' then
    redis.call('HSET', st .. ':s', 'lock', TOKEN .. id, 'attempts_made', '1',
      'processed_at', NOW)
  elseif op == 'HMGET 4 listpack' then
    redis.call('HMGET', sm, 'lock', 'attempts_made', 'stalled_count', 'processed_at')
  elseif op == 'APPEND 40' then
    redis.call('APPEND', st, '\30completed\31' .. '1\31' .. '0\31' .. NOW .. '\31null')
  elseif op == 'DEL listpack hash' then
    redis.call('DEL', sm)
  elseif op == 'HSET 6 new hashtable' then
    redis.call('HSET', ht .. ':n', 'name', 'noop', 'data', string.rep('x', 117), 'opts',
      ARGV[4], 'state', 'waiting', 'max_attempts', '3', 'created_at', NOW)
  elseif op == 'SET new string' then
    redis.call('SET', st .. ':n', packed(id, string.rep('x', 117)))
  elseif op == 'SET NX new small string' then
    redis.call('SET', st .. ':s', TOKEN .. id .. SEP .. '1' .. SEP .. '0' .. SEP .. NOW, 'NX')
  elseif op == 'GETDEL small string' then
    redis.call('GETDEL', BASE .. 'ss:' .. id)
  elseif op == 'HSET 1 queue hash' then
    redis.call('HSET', BASE .. 'locks', id, TOKEN .. id)
  elseif op == 'HGET 1 queue hash' then
    redis.call('HGET', BASE .. 'locks', id)
  elseif op == 'loop only' then
    local _ = ht .. lp .. st .. sm
  end
end
return count
"""
)

MICRO_OPS = (
    "HMGET 6 hashtable",
    "HMGET 6 listpack",
    "GET string",
    "HMGET 2 missing key",
    "HGET 1 hashtable",
    "HSET 4 hashtable",
    "HSET 3 new listpack",
    "HMGET 4 listpack",
    "APPEND 40",
    "DEL listpack hash",
    "HSET 6 new hashtable",
    "SET new string",
    "SET NX new small string",
    "GETDEL small string",
    "HSET 1 queue hash",
    "HGET 1 queue hash",
)


class Connection:
    """One connection to redis-server: a command, its reply (errors raised)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.reader = _Reader(self.sock)
        self.shas: dict[str, str] = {}

    def __call__(self, *args: str | int) -> Any:
        self.sock.sendall(_encode([str(a) for a in args]))
        reply = self.reader.reply()
        if isinstance(reply, RuntimeError):
            raise reply
        return reply

    def script(self, body: str, *argv: str | int) -> Any:
        sha = self.shas.get(body)
        if sha is None:
            sha = self("SCRIPT", "LOAD", body).decode()
            assert sha == hashlib.sha1(body.encode()).hexdigest()
            self.shas[body] = sha
        return self("EVALSHA", sha, 0, *argv)

    def used_memory(self) -> int:
        for line in self("INFO", "memory").decode().splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":", 1)[1])
        raise RuntimeError("no used_memory")

    def close(self) -> None:
        self.sock.close()


def data_text(i: int, size: int) -> str:
    return '{"i":' + str(i) + ',"s":"' + "x" * size + '"}'


# -- memory -----------------------------------------------------------------------------------


def structure_key(candidate: str, state: str) -> str:
    return "x:{q}:" + ("wait" if state == "waiting" else state)


def measure_memory(conn: Connection, jobs: int) -> list[dict[str, Any]]:
    rows = []
    for candidate in CANDIDATES:
        for state in STATES:
            if candidate == "inline" and state != "waiting":
                continue  # the same as str once the job has a key
            for size in PAYLOAD_SIZES:
                conn("FLUSHALL")
                conn.script(LUA_WRITE, candidate, state, 0, 0, size, OPTS, STACK)  # load
                before = conn.used_memory()
                for first in range(1, jobs + 1, BATCH):
                    count = min(BATCH, jobs + 1 - first)
                    conn.script(LUA_WRITE, candidate, state, first, count, size, OPTS, STACK)
                total = (conn.used_memory() - before) / jobs
                structure = conn("MEMORY", "USAGE", structure_key(candidate, state), "SAMPLES", 0)
                sample_key = f"x:{{q}}:job:{jobs // 2}"
                job_key = conn("MEMORY", "USAGE", sample_key, "SAMPLES", 0) or 0
                if conn("EXISTS", sample_key + ":s"):
                    job_key += conn("MEMORY", "USAGE", sample_key + ":s", "SAMPLES", 0)
                encoding = conn("OBJECT", "ENCODING", sample_key) if job_key else b"-"
                rows.append(
                    {
                        "candidate": candidate,
                        "state": state,
                        "payload": size,
                        "bytes_per_job": round(total, 1),
                        "job_key": job_key,
                        "job_encoding": encoding.decode(),
                        "structure": round((structure or 0) / jobs, 1),
                    }
                )
                print(
                    f"  {candidate:<7}{state:<10}{size:>5}: {total:>8.1f} B/job "
                    f"(job key {job_key}, {encoding.decode()})",
                    flush=True,
                )
    return rows


# -- instructions -----------------------------------------------------------------------------


async def drain_cost(counted: Any, conn: Connection, candidate: str, jobs: int) -> dict[str, int]:
    """Instructions per job to add, fetch and ack ``jobs`` jobs as ``candidate`` does."""
    data = data_text(12345, 100)
    conn("FLUSHALL")
    for body in (LUA_ADD, LUA_FETCH, LUA_ACK):
        conn("SCRIPT", "LOAD", body)
    fetched: list[list[str]] = []

    async def add() -> None:
        for start in range(0, jobs, BATCH):
            conn.script(LUA_ADD, candidate, start, min(BATCH, jobs - start), data, OPTS)

    async def fetch() -> None:
        while out := conn.script(LUA_FETCH, candidate, 50):
            fetched.append([i.decode() for i in out[0::2]])

    async def ack() -> None:
        for ids in fetched:
            conn.script(LUA_ACK, candidate, len(ids), *ids)

    costs = {}
    for phase, run in (("add", add), ("fetch", fetch), ("ack", ack)):
        costs[phase] = await counted.count(f"{candidate}-{phase}", run) / jobs
    costs["fetch+ack"] = costs["fetch"] + costs["ack"]
    assert conn("ZCARD", "x:{q}:completed") == jobs, candidate
    return {k: round(v) for k, v in costs.items()}


async def call_cost(counted: Any, conn: Connection, op: str, calls: int) -> int:
    async def run() -> None:
        conn.script(LUA_OPS, op, 1, calls, OPTS)

    return int(await counted.count(op.replace(" ", "_"), run))


async def measure_cost(valgrind: str, jobs: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from redis_cost import CountedRedis

    result: dict[str, Any] = {"jobs": jobs, "per_job": {}, "per_call": {}}
    with tempfile.TemporaryDirectory() as out_dir:
        counted = CountedRedis(valgrind, Path(out_dir))
        try:
            conn = Connection(counted.server.port)
            for candidate in CANDIDATES:
                if candidate == "strl":
                    continue  # str with RPUSH/LLEN for ZADD/ZCARD: the micro costs tell it
                costs = await drain_cost(counted, conn, candidate, jobs)
                result["per_job"][candidate] = costs
                print(
                    f"  {candidate:<7} add {costs['add']:>8,}  fetch {costs['fetch']:>8,}"
                    f"  ack {costs['ack']:>8,}  instructions per job",
                    flush=True,
                )
            conn("FLUSHALL")
            calls = 1000
            conn.script(LUA_SETUP_OPS, 1, calls, data_text(12345, 100), OPTS)
            conn("SCRIPT", "LOAD", LUA_OPS)
            base = await call_cost(counted, conn, "loop only", calls)
            result["per_call"]["loop only (subtracted)"] = round(base / calls)
            for op in MICRO_OPS:
                per_call = (await call_cost(counted, conn, op, calls) - base) / calls
                result["per_call"][op] = round(per_call)
                print(f"  {op:<24}{per_call:>8,.0f} instructions per call", flush=True)
            conn.close()
        finally:
            counted.server.stop()
    return result


def print_memory(rows: list[dict[str, Any]]) -> None:
    by = {(r["candidate"], r["state"], r["payload"]): r for r in rows}
    print("bytes per job (used_memory delta / jobs; no events stream)")
    print(
        f"{'candidate':<10}{'state':<10}"
        + "".join(f"{'payload ' + str(n):>14}" for n in PAYLOAD_SIZES)
    )
    for candidate in CANDIDATES:
        for state in STATES:
            cells = [by.get((candidate, state, n)) for n in PAYLOAD_SIZES]
            if not any(cells):
                continue
            text = "".join(
                f"{c['bytes_per_job']:>9} {c['job_encoding'][:4]:>4}" if c else f"{'-':>14}"
                for c in cells
            )
            print(f"{candidate:<10}{state:<10}{text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--cost-jobs", type=int, default=2_000)
    parser.add_argument("--no-cost", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {"jobs": args.jobs}
    if not args.no_memory:
        with RedisServer() as server:
            conn = Connection(server.port)
            out["redis_version"] = next(
                line.split(":", 1)[1].strip()
                for line in conn("INFO", "server").decode().splitlines()
                if line.startswith("redis_version:")
            )
            out["memory"] = measure_memory(conn, args.jobs)
            conn.close()
        print()
        print_memory(out["memory"])
    valgrind = shutil.which("valgrind")
    if args.no_cost:
        pass
    elif valgrind is None or shutil.which("callgrind_control") is None:
        print("instruction costs skipped: they need valgrind (apt-get install valgrind)")
    else:
        print()
        out["instructions"] = asyncio.run(measure_cost(valgrind, args.cost_jobs))
    RESULTS.parent.mkdir(exist_ok=True)
    if RESULTS.exists() and (args.no_cost or args.no_memory):
        kept = json.loads(RESULTS.read_text())
        out = {**kept, **out}
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
