"""Flows (docs/flows.md): parents that wait for their children, in one queue and across
queues, with their failure policies, against real redis-servers (the suite's cluster run
puts the queues of a flow on different slots)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from jobqueue import (
    Flow,
    FlowIds,
    JobQueue,
    JobStatus,
    QueueEvent,
    QueueEvents,
    WorkerConfig,
    chain,
    group,
)
from jobqueue.errors import (
    InvalidOptionError,
    InvalidStateError,
    LayoutVersionError,
    PayloadTooLargeError,
    SerializationError,
)
from jobqueue.fleet import JobEvent
from jobqueue.job import Job
from jobqueue.sync import JobQueue as SyncJobQueue
from jobqueue.testing import redis_command

from .helpers import TOPOLOGY, Counter, eventually, port_of

Make = Callable[..., JobQueue]


class Recorder:
    """Processors that record what ran, in order, and the results parents read."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, str]] = []
        self.read: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, dict[str, str]] = {}

    async def child(self, job: Job[Any]) -> Any:
        self.ran.append((job.queue, job.id))
        if isinstance(job.data, dict) and job.data.get("fail"):
            raise RuntimeError(f"child {job.id} broke")
        return {"double": job.data * 2} if isinstance(job.data, int) else job.data

    async def parent(self, job: Job[Any]) -> Any:
        self.ran.append((job.queue, job.id))
        self.read[job.id] = await job.children_results()
        self.failures[job.id] = await job.children_failures()
        return len(self.read[job.id])


def worker_queue(make: Make, recorder: Recorder, **kwargs: Any) -> JobQueue:
    kwargs.setdefault("worker", WorkerConfig(concurrency=8))
    q = make(**kwargs)
    q.process("child", recorder.child)
    q.process("parent", recorder.parent)
    return q


async def final(q: JobQueue, job_id: str, timeout: int = 15_000) -> Any:
    return await q.wait_for(job_id, timeout=timeout)


async def test_a_parent_waits_for_its_children_then_reads_their_results(make_queue: Make) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec)
    ids = await q.add_flow(Flow("parent", "p", children=[Flow("child", i) for i in range(3)]))
    assert isinstance(ids, FlowIds) and ids.queue == q.name and len(ids.children) == 3
    info = await q.get_job_status(ids.id)
    assert info is not None and info.status is JobStatus.WAITING_CHILDREN
    stats = await q.get_stats()
    assert (stats.waiting, stats.waiting_children) == (3, 1)
    child = await q.get_job_status(ids.children[0].id)
    assert child is not None and (child.parent_id, child.parent_queue) == (ids.id, q.name)
    waiting = await q.get_jobs_by_status(JobStatus.WAITING_CHILDREN)
    assert [j.id for j in waiting] == [ids.id]

    await q.start_worker()
    done = await final(q, ids.id)
    assert done.status is JobStatus.COMPLETED and done.return_value == 3
    assert rec.read[ids.id] == {c.id: {"double": i * 2} for i, c in enumerate(ids.children)}
    # The parent ran once, after every child.
    assert [job_id for _, job_id in rec.ran].index(ids.id) == 3
    assert [job_id for _, job_id in rec.ran].count(ids.id) == 1
    stats = await q.get_stats()
    assert (stats.waiting_children, stats.completed) == (0, 4)
    tree = await q.get_flow(ids.id)
    assert tree.job is not None and tree.job.status is JobStatus.COMPLETED
    assert [c.job.status for c in tree.children if c.job] == [JobStatus.COMPLETED] * 3


async def test_trees_nest_and_chains_and_chords_pass_results_along(make_queue: Make) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec)
    tree = await q.add_flow(
        Flow(
            "parent", 0, [Flow("parent", 1, [Flow("child", 1), Flow("child", 2)]), Flow("child", 3)]
        )
    )
    chained = await q.add_flow(chain(Flow("child", 5), Flow("parent", "b"), Flow("parent", "c")))
    chord = await q.add_flow(group(Flow("child", 7), Flow("child", 8), then=Flow("parent", "cb")))
    await q.start_worker()
    assert (await final(q, tree.id)).return_value == 2
    middle = tree.children[0]
    assert rec.read[middle.id] == {
        middle.children[0].id: {"double": 2},
        middle.children[1].id: {"double": 4},
    }
    assert rec.read[tree.id] == {middle.id: 2, tree.children[1].id: {"double": 6}}
    # chain(a, b, c): c waits for b, which waits for a.
    assert (await final(q, chained.id)).status is JobStatus.COMPLETED
    b = chained.children[0]
    a = b.children[0]
    assert rec.read[b.id] == {a.id: {"double": 10}} and rec.read[chained.id] == {b.id: 1}
    order = [job_id for _, job_id in rec.ran]
    assert order.index(a.id) < order.index(b.id) < order.index(chained.id)
    assert (await final(q, chord.id)).return_value == 2
    assert sorted(v["double"] for v in rec.read[chord.id].values()) == [14, 16]


async def test_a_parent_with_thousands_of_children(make_queue: Make) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec, worker=WorkerConfig(concurrency=50))
    ids = await q.add_flow(Flow("parent", None, [Flow("child", i) for i in range(3000)]))
    assert len({c.id for c in ids.children}) == 3000
    await q.start_worker()
    assert (await final(q, ids.id, timeout=60_000)).return_value == 3000
    assert rec.read[ids.id][ids.children[2999].id] == {"double": 5998}


async def test_the_parents_delay_and_priority_apply_once_its_children_are_done(
    make_queue: Make,
) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec, worker=WorkerConfig(concurrency=1))
    delayed = await q.add_flow(Flow("parent", None, [Flow("child", 1)], delay=60_000))
    urgent = await q.add_flow(Flow("parent", None, [Flow("child", 2)], priority=1))
    await q.start_worker()

    async def settled() -> bool:
        info = await q.get_job_status(delayed.id)
        return info is not None and info.status is JobStatus.DELAYED

    await eventually(settled)
    assert (await final(q, urgent.id)).status is JobStatus.COMPLETED
    info = await q.get_job_status(urgent.id)
    assert info is not None and info.priority == 1
    # Still delayed: its delay counts from when its children were done.
    info = await q.get_job_status(delayed.id)
    assert info is not None and info.status is JobStatus.DELAYED


async def test_children_in_other_queues(make_queue: Make, queue_name: str) -> None:
    rec = Recorder()
    other = f"{queue_name}-images"
    q = worker_queue(make_queue, rec)
    images = worker_queue(make_queue, rec, name=other)
    ids = await q.add_flow(
        Flow(
            "parent",
            None,
            [
                Flow("child", 1, queue=other),
                Flow(
                    "parent", None, [Flow("child", 2), Flow("child", 3, queue=q.name)], queue=other
                ),
                Flow("child", 4),
            ],
        )
    )
    assert [c.queue for c in ids.children] == [other, other, q.name]
    assert [c.queue for c in ids.children[1].children] == [other, q.name]
    info = await images.get_job_status(ids.children[0].id)
    assert info is not None and (info.parent_id, info.parent_queue) == (ids.id, q.name)
    tree = await q.get_flow(ids.id)
    assert sorted((c.queue, c.id) for c in tree.children) == sorted(
        (c.queue, c.id) for c in ids.children
    )
    await q.start_worker()
    await images.start_worker()
    done = await final(q, ids.id)
    assert done.return_value == 3
    nested = ids.children[1]
    # Children of another queue are keyed "<queue>:<id>" (ids of two queues may be equal).
    assert rec.read[ids.id] == {
        f"{other}:{ids.children[0].id}": {"double": 2},
        f"{other}:{nested.id}": 2,
        ids.children[2].id: {"double": 8},
    }
    assert rec.read[nested.id] == {
        nested.children[0].id: {"double": 4},
        f"{q.name}:{nested.children[1].id}": {"double": 6},
    }
    assert rec.ran.count((q.name, ids.id)) == 1
    assert (await q.get_stats()).waiting_children == 0
    assert (await images.get_stats()).waiting_children == 0


async def test_fail_parent_travels_up(make_queue: Make, queue_name: str) -> None:
    rec = Recorder()
    other = f"{queue_name}-x"
    q = worker_queue(make_queue, rec, default_job_options={"attempts": 1})
    xq = worker_queue(make_queue, rec, name=other, default_job_options={"attempts": 1})
    ids = await q.add_flow(
        Flow(
            "parent",
            None,
            [Flow("parent", None, [Flow("child", {"fail": True}, queue=other)]), Flow("child", 1)],
        )
    )
    await q.start_worker()
    await xq.start_worker()
    top = await final(q, ids.id)
    middle = await q.get_job_status(ids.children[0].id)
    assert middle is not None and middle.status is JobStatus.FAILED
    assert middle.failed_reason is not None
    leaf = ids.children[0].children[0].id
    assert (
        middle.failed_reason
        == f"child jq:{{{other}}}: {leaf} failed: RuntimeError: child {leaf} broke"
    )
    assert top.status is JobStatus.FAILED and top.failed_reason is not None
    assert top.failed_reason.startswith(
        f"child jq:{{{q.name}}}: {ids.children[0].id} failed: child"
    )
    assert ids.id not in rec.read and ids.children[0].id not in rec.read  # never ran


async def test_ignore_lets_the_parent_run_and_lists_the_failure(make_queue: Make) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec, default_job_options={"attempts": 1})
    ids = await q.add_flow(
        Flow("parent", None, [Flow("child", {"fail": True}, on_failure="ignore"), Flow("child", 1)])
    )
    await q.start_worker()
    assert (await final(q, ids.id)).status is JobStatus.COMPLETED
    bad, good = ids.children
    assert rec.read[ids.id] == {good.id: {"double": 2}}
    assert list(rec.failures[ids.id]) == [bad.id]
    assert "broke" in rec.failures[ids.id][bad.id]


async def test_wait_keeps_the_parent_until_the_child_is_replayed_and_completes(
    make_queue: Make,
) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec, default_job_options={"attempts": 1})
    ids = await q.add_flow(
        Flow(
            "parent",
            None,
            [Flow("child", {"fail": True, "n": 1}, on_failure="wait"), Flow("child", 1)],
        )
    )
    failing = ids.children[0].id
    flaky = {"broken": True}

    async def child(job: Job[Any]) -> Any:
        if isinstance(job.data, dict) and flaky["broken"]:
            raise RuntimeError("not yet")
        return "fixed" if isinstance(job.data, dict) else job.data

    q.process("child", child)
    await q.start_worker()

    async def in_dlq() -> bool:
        info = await q.get_job_status(failing)
        return info is not None and info.status is JobStatus.DLQ

    await eventually(in_dlq)
    await eventually(lambda: _completed(q, ids.children[1].id))
    info = await q.get_job_status(ids.id)
    assert info is not None and info.status is JobStatus.WAITING_CHILDREN
    flaky["broken"] = False
    assert await q.replay_dlq() == 1
    assert (await final(q, ids.id)).status is JobStatus.COMPLETED
    assert rec.read[ids.id] == {failing: "fixed", ids.children[1].id: 1}


async def _completed(q: JobQueue, job_id: str) -> bool:
    info = await q.get_job_status(job_id)
    return info is not None and info.status is JobStatus.COMPLETED


async def test_adding_the_same_flow_twice_adds_nothing_twice(
    make_queue: Make, queue_name: str
) -> None:
    q = make_queue()
    other = f"{queue_name}-o"

    def flow() -> Flow:
        return Flow(
            "parent",
            None,
            [
                Flow("child", 1, idempotency_key="c1"),
                Flow("child", 2, idempotency_key="c2", queue=other),
            ],
            idempotency_key="root",
        )

    first = await q.add_flow(flow())
    again = await q.add_flow(flow())
    assert again == first
    stats = await q.get_stats()
    assert (stats.waiting, stats.waiting_children) == (1, 1)
    tree = await q.get_flow(first.id)
    assert sorted((c.queue, c.id) for c in tree.children) == sorted(
        (c.queue, c.id) for c in first.children
    )


async def test_a_new_parent_over_a_child_that_exists_already_is_refused(make_queue: Make) -> None:
    """A child whose id or idempotency key belongs to a job added outside the flow is not
    added again and would never tell a new parent: the whole call is refused and writes
    nothing (a parent that exists already, as when the same flow is added again, is fine)."""
    q = make_queue()
    await q.add_job("child", 0, idempotency_key="taken")
    await q.add_job("child", 0, job_id="mine")
    for child in (Flow("child", 1, idempotency_key="taken"), Flow("child", 1, job_id="mine")):
        with pytest.raises(InvalidStateError, match="exists already"):
            await q.add_flow(Flow("parent", None, [Flow("child", 2), child]))
    stats = await q.get_stats()
    assert (stats.waiting, stats.waiting_children) == (2, 0)


async def test_a_new_parent_over_a_child_of_another_queue_that_exists_is_refused(
    make_queue: Make, queue_name: str
) -> None:
    """The same refusal for a child of another queue (another slot, written by a later
    call than its parent): add_flow looks before its first write, so nothing is written;
    the same flow added twice still adds nothing twice."""
    other = f"{queue_name}-o"
    q = make_queue()
    oq = make_queue(name=other)
    await oq.add_job("child", 0, idempotency_key="taken")
    await oq.add_job("child", 0, job_id="mine")
    for child in (
        Flow("child", 1, queue=other, idempotency_key="taken"),
        Flow("child", 1, queue=other, job_id="mine"),
    ):
        with pytest.raises(InvalidStateError, match=r"flow\.children\[1\] is job .*exists already"):
            await q.add_flow(Flow("parent", None, [Flow("child", 2, queue=other), child]))
    assert ((await q.get_stats()).waiting_children, (await oq.get_stats()).waiting) == (0, 2)

    def flow() -> Flow:
        return Flow("parent", None, [Flow("child", 1, queue=other, job_id="own")], job_id="p")

    first = await q.add_flow(flow())
    assert await q.add_flow(flow()) == first
    assert ((await q.get_stats()).waiting_children, (await oq.get_stats()).waiting) == (1, 3)


class _TakesAChildMeanwhile:
    """NativeFlows as add_flow sees it, with another client adding job ``job_id`` to
    queue ``queue`` right after add_flow's look for existing children: the race that only
    the check after the child's call can catch."""

    def __init__(self, native: Any, queue: JobQueue, job_id: str) -> None:
        self._native, self._queue, self._job_id = native, queue, job_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._native, name)

    async def find(self, slot: str, pairs: list[tuple[str, str]]) -> list[str]:
        found: list[str] = await self._native.find(slot, pairs)
        await self._queue.add_job("outsider", 0, job_id=self._job_id)
        return found


async def test_a_child_taken_by_another_client_during_the_add_undoes_the_flow(
    make_queue: Make, queue_name: str
) -> None:
    other = f"{queue_name}-o"
    q = make_queue()
    oq = make_queue(name=other)
    adder = q._flow_adder()
    adder._native = _TakesAChildMeanwhile(adder._native, oq, "late")  # type: ignore[assignment]
    flow = Flow(
        "parent",
        None,
        [
            Flow("child", 1),
            Flow("child", 2, queue=other),
            Flow("child", 3, queue=other, job_id="late"),
        ],
    )
    with pytest.raises(
        InvalidStateError, match=r"flow\.children\[2\] is job 'late'.*removed again"
    ):
        await q.add_flow(flow)
    stats, other_stats = await q.get_stats(), await oq.get_stats()
    assert (stats.waiting, stats.waiting_children) == (0, 0)  # the parent and its child
    assert other_stats.waiting == 1  # the outsider alone
    outsider = await oq.get_job_status("late")
    assert outsider is not None and outsider.name == "outsider"


async def test_a_parent_failed_by_its_child_and_retried_runs_with_the_failure_listed(
    make_queue: Make,
) -> None:
    """Retried by hand, a parent that fail_parent failed runs (what the user asked for):
    the failed child is in children_failures(), and children_results() holds the other
    child's result, though that child completed after its parent had failed."""
    rec = Recorder()
    q = worker_queue(make_queue, rec, default_job_options={"attempts": 1})
    ids = await q.add_flow(
        Flow("parent", None, [Flow("child", {"fail": True}), Flow("child", 1, delay=500)])
    )
    await q.start_worker()
    assert (await final(q, ids.id)).status is JobStatus.FAILED
    bad, good = ids.children
    assert (await final(q, good.id)).status is JobStatus.COMPLETED
    assert ids.id not in rec.read
    await q.retry_job(ids.id)
    assert (await final(q, ids.id)).status is JobStatus.COMPLETED
    assert rec.read[ids.id] == {good.id: {"double": 2}}
    assert list(rec.failures[ids.id]) == [bad.id]
    assert rec.ran.count((q.name, ids.id)) == 1


async def test_bad_input_anywhere_in_the_tree_writes_nothing(
    make_queue: Make, queue_name: str
) -> None:
    q = make_queue(settings={"max_payload_bytes": 1000})
    with pytest.raises(InvalidOptionError, match=r"^flow\.children\[1\]\.children\[0\]\.name"):
        await q.add_flow(
            Flow("parent", None, [Flow("child", 1), Flow("parent", None, [Flow("", 2)])])
        )
    with pytest.raises(InvalidOptionError, match=r"^priority must be >= 0"):
        Flow("child", 2, priority=-1)
    with pytest.raises(InvalidOptionError, match="on_failure"):
        Flow("child", 1, on_failure="explode")
    with pytest.raises(InvalidOptionError, match=r"children\[0\] must be a Flow"):
        Flow("parent", None, ["child"])  # type: ignore[list-item]
    with pytest.raises(PayloadTooLargeError, match=r"flow\.children\[0\]\.data"):
        await q.add_flow(Flow("parent", None, [Flow("child", "x" * 2000, queue=f"{queue_name}-o")]))
    with pytest.raises(InvalidOptionError, match=r"^flow\.children\[0\]\.queue must not"):
        await q.add_flow(Flow("parent", None, [Flow("child", 1, queue="bad {name}")]))
    stats = await q.get_stats()
    assert (stats.waiting, stats.waiting_children) == (0, 0)
    other = make_queue(name=f"{queue_name}-o")
    assert (await other.get_stats()).waiting == 0


async def test_a_partitioned_queue_runs_flows(make_queue: Make) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec, partitions=3)
    ids = [
        await q.add_flow(
            Flow("parent", None, [Flow("child", i), Flow("child", i + 1, idempotency_key=f"k{i}")])
        )
        for i in range(6)
    ]
    await q.start_worker()
    for flow in ids:
        assert (await final(q, flow.id)).return_value == 2
    assert (await q.get_stats()).waiting_children == 0


def test_the_sync_facade_adds_flows(redis_url: str, queue_name: str) -> None:
    with SyncJobQueue(queue_name, redis=redis_url) as q:
        ids = q.add_flow(Flow("parent", None, [Flow("child", 1)]))
        info = q.get_job_status(ids.id)
        assert info is not None and info.status is JobStatus.WAITING_CHILDREN
        assert q.get_flow(ids.id).children[0].id == ids.children[0].id


async def test_a_plain_job_keeps_an_empty_extensions_field(make_queue: Make) -> None:
    q = make_queue()
    job_id = await q.add_job("child", 1)
    info = await q.get_job_status(job_id)
    assert info is not None and info.parent_id is None
    await asyncio.sleep(0)


async def test_removing_a_parent_removes_its_pending_children(
    make_queue: Make, queue_name: str
) -> None:
    q = make_queue()
    other = make_queue(name=f"{queue_name}-o")
    ids = await q.add_flow(
        Flow(
            "parent",
            None,
            [
                Flow("child", 1),
                Flow(
                    "parent",
                    None,
                    [Flow("child", 2), Flow("child", 3, queue=q.name)],
                    queue=other.name,
                ),
            ],
        )
    )
    assert (await other.get_stats()).waiting_children == 1
    await q.remove_job(ids.id)
    assert (await q.get_stats()).waiting == 0 and (await q.get_stats()).waiting_children == 0
    stats = await other.get_stats()
    assert (stats.waiting, stats.waiting_children) == (0, 0)
    nested = ids.children[1]
    for queue, job_id in [
        (q, ids.children[0].id),
        (other, nested.id),
        (other, nested.children[0].id),
        (q, nested.children[1].id),
    ]:
        assert await queue.get_job_status(job_id) is None


async def test_a_child_removed_by_its_retention_still_gives_its_result(make_queue: Make) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec)
    ids = await q.add_flow(Flow("parent", None, [Flow("child", 4, remove_on_complete=True)]))
    await q.start_worker()
    await final(q, ids.id)
    assert await q.get_job_status(ids.children[0].id) is None
    assert rec.read[ids.id] == {ids.children[0].id: {"double": 8}}
    tree = await q.get_flow(ids.id)
    assert tree.children[0].job is None


async def test_fleet_events_tell_of_parents_waiting_and_released(
    make_queue: Make, redis_url: str, queue_name: str
) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec)
    seen: list[tuple[str, str]] = []
    released = asyncio.Event()

    def record(event: JobEvent) -> None:
        seen.append((event.event.value, event.id))
        if event.event is QueueEvent.JOB_CHILDREN_DONE:
            released.set()

    async with QueueEvents(queue_name, redis=redis_url) as events:
        events.on(QueueEvent.JOB_WAITING_CHILDREN, record)
        events.on(QueueEvent.JOB_CHILDREN_DONE, record)
        ids = await q.add_flow(Flow("parent", None, [Flow("child", 1)]))
        await q.start_worker()
        await asyncio.wait_for(released.wait(), 10)
    assert seen == [("job-waiting-children", ids.id), ("job-children-done", ids.id)]


async def test_drain_takes_the_parents_waiting_for_children_along(make_queue: Make) -> None:
    q = make_queue()
    await q.add_flow(Flow("parent", None, [Flow("child", 1), Flow("child", 2)]))
    assert await q.drain() == 3
    stats = await q.get_stats()
    assert (stats.waiting, stats.waiting_children) == (0, 0)


async def test_grouped_children_and_a_grouped_parent(make_queue: Make) -> None:
    """The ack's flows tail follows its groups' tail (ack.lua)."""
    rec = Recorder()
    q = worker_queue(make_queue, rec)
    await q.set_group_limit("g", concurrency=1)
    ids = await q.add_flow(
        Flow("parent", None, [Flow("child", i, group="g") for i in range(4)], group="p")
    )
    await q.start_worker()
    assert (await final(q, ids.id)).return_value == 4
    assert (await q.get_stats(group="g")).active == 0


async def test_a_retried_add_completes_a_flow_cut_off_between_two_slots(
    make_queue: Make, redis_url: str, queue_name: str
) -> None:
    """The children's queue refuses the second call (a newer layout: nothing written
    there); the parent was written by the first. The same add again, with idempotency
    keys, adds the children under the first parent, which then runs once."""
    port = port_of(redis_url)
    rec = Recorder()
    other = f"{queue_name}-kids"
    q = worker_queue(make_queue, rec)
    kids = worker_queue(make_queue, rec, name=other)

    def flow() -> Flow:
        children = [Flow("child", i, queue=other, idempotency_key=f"k{i}") for i in range(3)]
        return Flow("parent", None, children, idempotency_key="root")

    redis_command(port, "HSET", f"jq:{{{other}}}:meta", "version", "99")
    with pytest.raises(LayoutVersionError):
        await q.add_flow(flow())
    info = await q.get_job_status("1")
    assert info is not None and info.status is JobStatus.WAITING_CHILDREN
    assert (await q.get_flow("1")).children == []  # the cut-off add: no child exists
    redis_command(port, "HSET", f"jq:{{{other}}}:meta", "version", "2")
    ids = await q.add_flow(flow())
    assert ids.id == "1" and len(ids.children) == 3
    assert (await q.add_flow(flow())) == ids  # and again: nothing twice
    await q.start_worker()
    await kids.start_worker()
    assert (await final(q, ids.id)).return_value == 3
    assert rec.ran.count((q.name, ids.id)) == 1
    assert (await kids.get_stats()).completed == 3


async def test_a_flow_added_inside_a_trace_stores_the_context_in_each_job(
    make_queue: Make, redis_url: str, queue_name: str
) -> None:
    def _record(job_id: str) -> list[bytes]:
        raw = redis_command(port_of(redis_url), "GET", f"jq:{{{queue_name}}}:j:{job_id}")
        assert isinstance(raw, bytes)
        return raw.split(b"\x1f")

    class Traced(Counter):
        def start_send_span(self, name: str, attributes: dict[str, Any]) -> Any:
            self.sent = attributes
            return self

        def trace_context(self, span: Any) -> str:
            return "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

        def start_process_span(self, name: str, attributes: dict[str, Any], ctx: Any) -> Any:
            return self

    telemetry = Traced()
    q = make_queue(telemetry=telemetry)
    ids = await q.add_flow(Flow("parent", None, [Flow("child", 1), Flow("child", 2)]))
    assert telemetry.sent["messaging.batch.message_count"] == 3
    for job_id in (ids.id, *(c.id for c in ids.children)):
        ext = _record(job_id)[10].decode()
        assert ext.startswith("t00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\x1e")
    child_ext = _record(ids.children[0].id)[10].decode()
    assert child_ext.endswith(f"\x1epfjq:{{{queue_name}}}: {ids.id}\x1e")


async def test_a_chain_deeper_than_pythons_recursion_limit(make_queue: Make) -> None:
    rec = Recorder()
    q = worker_queue(make_queue, rec)
    steps = 1500
    ids = await q.add_flow(chain(*(Flow("parent", i) for i in range(steps))))
    depth, node = 1, ids
    while node.children:
        depth, node = depth + 1, node.children[0]
    assert depth == steps
    tree = await q.get_flow(ids.id)
    depth, leaf = 1, tree
    while leaf.children:
        depth, leaf = depth + 1, leaf.children[0]
    assert depth == steps and leaf.job is not None and leaf.job.status is JobStatus.WAITING
    await q.start_worker()
    assert (await final(q, ids.id, timeout=120_000)).status is JobStatus.COMPLETED


async def test_concurrent_adds_share_a_call_and_bad_input_fails_only_its_own(
    make_queue: Make,
) -> None:
    q = make_queue()
    good = [Flow("parent", i, [Flow("child", i)]) for i in range(5)]
    bad = Flow("parent", None, [Flow("child", object())])
    outcomes = await asyncio.gather(
        *(q.add_flow(f) for f in [*good[:2], bad, *good[2:]]), return_exceptions=True
    )
    assert isinstance(outcomes[2], SerializationError)
    assert all(isinstance(o, FlowIds) for i, o in enumerate(outcomes) if i != 2)
    stats = await q.get_stats()
    assert (stats.waiting, stats.waiting_children) == (5, 5)


async def test_flows_go_on_the_event_loops_connection_but_on_a_cluster(
    make_queue: Make, queue_name: str
) -> None:
    q = make_queue()
    other = f"{queue_name}-o"
    for n in range(2):  # the native connection goes first, then the loop's opens
        ids = await q.add_flow(Flow("parent", n, [Flow("child", n), Flow("child", n, queue=other)]))
    # A single server and Sentinel's primary hold every slot; a cluster does not.
    assert (q._producer._conn is not None) == (TOPOLOGY != "cluster")
    tree = await q.get_flow(ids.id)
    assert [(c.queue, c.job.status) for c in tree.children] == [  # type: ignore[union-attr]
        (q.name, JobStatus.WAITING),
        (other, JobStatus.WAITING),
    ]
