"""Flows: jobs that wait for other jobs (docs/flows.md).

A `Flow` is a job with children; the parent waits in ``WAITING_CHILDREN`` until
every child completed, then becomes waiting like any job (its delay and priority apply
then). ``JobQueue.add_flow`` writes a tree with one script call per queue slot involved
(per wave: a child in another slot than its parent needs the parent's id first), and
returns a tree of ids (`FlowIds`). `chain()` and `group()` build common
shapes. Everything that decides (counting children, moving or failing the parent) runs in
the scripts (``src/lua/lib_flows.lua``); this module checks input and places jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _validate as v
from ._native import NativeFlows, to_json
from .config import JobOptions
from .errors import (
    InvalidOptionError,
    InvalidStateError,
    JobNotFoundError,
    PayloadTooLargeError,
)
from .flow_conflicts import check_wave, refuse_found_children
from .models import JobInfo, queue_name, split_ref
from .partitions import partition_name

if TYPE_CHECKING:
    from ._native import AddedJob, FlowFamily, NewJob
    from .loop_connection import ProducerConnections
    from .queue import JobQueue

#: on_failure -> the policy letter a child's record keeps (lib_flows.lua).
POLICIES = {"fail_parent": "f", "ignore": "i", "wait": "w"}
_POLICY_NAMES = tuple(POLICIES)


class Flow:
    """A job and the jobs it waits for. ``queue`` is the queue of the job (None: its
    parent's, for the root the queue ``add_flow`` is called on). ``on_failure`` says what
    a child's final failure does to its parent: ``"fail_parent"`` (the parent fails, with
    a reason naming the child; the failure travels up), ``"ignore"`` (the parent runs;
    ``job.children_failures()`` lists it) or ``"wait"`` (the parent waits until the child
    is retried or replayed from the DLQ and completes). Other keywords are job options
    (as ``add_job``'s), or pass them as ``opts``."""

    __slots__ = ("children", "data", "name", "on_failure", "options", "queue")

    def __init__(
        self,
        name: str,
        data: Any = None,
        children: Sequence[Flow] = (),
        *,
        queue: str | None = None,
        on_failure: str = "fail_parent",
        opts: JobOptions | Mapping[str, Any] | None = None,
        **job_options: Any,
    ) -> None:
        self.name = name
        self.data = data
        kind = type(children)
        if (
            kind is not list
            and kind is not tuple
            and (isinstance(children, (str, bytes)) or not isinstance(children, Sequence))
        ):
            raise InvalidOptionError(
                "children", f"must be a list of Flow, got {v.type_name(children)}"
            )
        for i, child in enumerate(children):
            if type(child) is not Flow and not isinstance(child, Flow):
                raise InvalidOptionError(
                    f"children[{i}]", f"must be a Flow, got {v.type_name(child)}"
                )
        self.children: tuple[Flow, ...] = tuple(children)
        self.queue = queue
        if on_failure not in _POLICY_NAMES:
            v.one_of(on_failure, _POLICY_NAMES, "on_failure")
        self.on_failure = on_failure
        options = JobOptions.coerce(opts)
        if job_options:
            options = JobOptions.coerce(job_options).merged_over(options)
        self.options = options

    def with_children(self, children: Sequence[Flow]) -> Flow:
        """The same job with ``children`` in place of its own."""
        flow = Flow(self.name, self.data, children, queue=self.queue, on_failure=self.on_failure)
        flow.options = self.options
        return flow

    def __repr__(self) -> str:
        return f"Flow({self.name!r}, children={len(self.children)})"


def chain(*steps: Flow) -> Flow:
    """Steps that run one after the other: each waits for the one before and can read its
    result (``await job.children_results()``). Returns the last step, to add."""
    if not steps:
        raise InvalidOptionError("steps", "chain() needs at least one Flow")
    flow: Flow | None = None
    for i, step in enumerate(steps):
        if not isinstance(step, Flow):
            raise InvalidOptionError(f"steps[{i}]", f"must be a Flow, got {v.type_name(step)}")
        flow = step.with_children([*step.children, flow] if flow is not None else step.children)
    assert flow is not None
    return flow


def group(*jobs: Flow, then: Flow) -> Flow:
    """Jobs that run side by side, and ``then``, which runs once all completed (a chord):
    ``then`` reads their results with ``await job.children_results()``. Returns ``then``
    with the jobs as its children, to add."""
    if not isinstance(then, Flow):
        raise InvalidOptionError("then", f"must be a Flow, got {v.type_name(then)}")
    for i, job in enumerate(jobs):
        if not isinstance(job, Flow):
            raise InvalidOptionError(f"jobs[{i}]", f"must be a Flow, got {v.type_name(job)}")
    return then.with_children([*then.children, *jobs])


class FlowIds(NamedTuple):
    """The ids of an added flow: this job's ``id`` and ``queue``, and its children's."""

    id: str
    queue: str
    children: list[FlowIds]


@dataclass
class FlowTree:
    """A flow as ``get_flow`` reads it: the job (None when it no longer exists: removed
    by its retention, whose result its parent still holds) and its children."""

    id: str
    queue: str
    job: JobInfo | None
    children: list[FlowTree] = field(default_factory=list)


class _Node:
    """A job of a flow being added: where it goes and how it hangs together."""

    __slots__ = (
        "children",
        "created",
        "flow",
        "id",
        "index",
        "index_in_call",
        "parent",
        "row",
        "slot",
        "wave",
    )

    def __init__(self, flow: Flow, parent: _Node | None, index: int) -> None:
        self.flow = flow
        self.parent = parent
        self.index = index  # its place among its parent's children
        self.children: list[_Node] = []
        if parent is not None:
            parent.children.append(self)
        self.slot = ""  # the queue name, or a partition's (`name#i`)
        self.wave = 0
        self.row: NewJob | None = None
        self.id = ""
        self.created = False  # by this add (False: found, as its id or key was taken)
        self.index_in_call = 0  # its place in its add_flow.lua call, from 1

    @property
    def path(self) -> str:
        """Where the job is in the tree, for error messages: ``flow.children[2]...``."""
        parts, node = [], self
        while node.parent is not None:
            parts.append(f".children[{node.index}]")
            node = node.parent
        return "flow" + "".join(reversed(parts))


#: One add_flow.lua call's part: its jobs, families and parents (indices from 1).
_Part = tuple["list[NewJob]", "list[FlowFamily]", "list[tuple[int, int]]"]


#: A slot's queued flow jobs are sent at once when they reach this many, without waiting
#: for the end of the loop iteration.
FLUSH_JOBS = 128


class _SlotBatch:
    """The add_flow.lua calls of one slot made in one event-loop iteration (concurrent
    ``add_flow`` calls), sent as one script call: a flow of a few jobs would otherwise pay
    a whole call's cost (the layout check, the clock, the events entry) alone. The flush
    runs at the end of the iteration (``call_soon``, never a timer). Each part stays atomic
    (the call is); bad input in one part (caught by the native side before any I/O) sends
    the parts one by one, so that only its own caller gets the error. The call goes on the
    event loop's connection when it is open (``ProducerConnections.add_flow``)."""

    def __init__(self, producer: ProducerConnections, native: NativeFlows, slot: str) -> None:
        self._producer = producer
        self._native = native
        self._slot = slot
        self._queued: list[tuple[_Part, asyncio.Future[list[AddedJob]]]] = []
        self._jobs = 0  # in the queued parts

    def add(
        self, rows: list[NewJob], families: list[FlowFamily], parents: list[tuple[int, int]]
    ) -> asyncio.Future[list[AddedJob]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[AddedJob]] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append(((rows, families, parents), future))
        self._jobs += len(rows)
        if self._jobs >= FLUSH_JOBS:
            # Sent now: Redis runs it while this iteration goes on preparing the rest.
            self._flush()
        return future

    def _flush(self) -> None:
        queued, self._queued, self._jobs = self._queued, [], 0
        if not queued:  # sent already, by the size bound
            return
        if len(queued) == 1:
            self._send(queued)
            return
        rows: list[NewJob] = []
        families: list[FlowFamily] = []
        parents: list[tuple[int, int]] = []
        for (part_rows, part_families, part_parents), _ in queued:
            offset = len(rows)
            rows += part_rows
            families += [
                (None if at is None else at + offset, ref, first + offset, count, policies)
                for at, ref, first, count, policies in part_families
            ]
            parents += [(i + offset, count) for i, count in part_parents]
        try:
            reply = self._producer.add_flow(self._native, self._slot, rows, families, parents)
        except Exception:  # bad input, before any I/O: each part alone, for its own error
            for one in queued:
                self._send([one])
            return
        self._settle(reply, queued)

    def _send(self, queued: list[tuple[_Part, asyncio.Future[list[AddedJob]]]]) -> None:
        (rows, families, parents), future = queued[0]
        try:
            reply = self._producer.add_flow(self._native, self._slot, rows, families, parents)
        except Exception as exc:
            future.set_exception(exc)
            return
        self._settle(reply, queued)

    @staticmethod
    def _settle(
        reply: asyncio.Future[list[AddedJob]],
        queued: list[tuple[_Part, asyncio.Future[list[AddedJob]]]],
    ) -> None:
        """Give each caller its part of the reply, once it comes (an asyncio future: no
        task is made for it)."""

        def settle(done: asyncio.Future[list[AddedJob]]) -> None:
            if done.cancelled():
                for _, future in queued:
                    future.cancel()
                return
            error = done.exception()
            if error is not None:
                for _, future in queued:
                    if not future.done():
                        future.set_exception(error)
                return
            results, at = done.result(), 0
            for (rows, _, _), future in queued:
                if not future.done():  # a caller cancelled: its jobs were written anyway
                    future.set_result(results[at : at + len(rows)])
                at += len(rows)

        reply.add_done_callback(settle)


class FlowAdder:
    """Adds flows for one ``JobQueue``: checks the whole tree before writing anything,
    then writes it wave by wave, one script call per queue slot of a wave."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._native = NativeFlows(queue._native)
        self._batches: dict[str, _SlotBatch] = {}

    def base(self, slot: str) -> str:
        """The key base of queue (or partition) ``slot``."""
        return f"{self._queue.prefix}:{{{slot}}}:"

    def _nodes(self, root: Flow, trace: str | None = None) -> list[_Node]:
        """The tree's jobs, parents before children (breadth first), checked and placed;
        ``trace``: the trace context to store in each (see jobqueue.tracing)."""
        from .queue import _message, _queue_name

        if not isinstance(root, Flow):
            raise InvalidOptionError("flow", f"must be a Flow, got {v.type_name(root)}")
        queue = self._queue
        nodes = [_Node(root, None, 0)]
        for node in nodes:  # the list grows as it is read: breadth first
            for i, child in enumerate(node.flow.children):
                nodes.append(_Node(child, node, i))
        try:
            rows = queue._rows(
                [(n.flow.name, n.flow.data, n.flow.options) for n in nodes],
                single=False,
                trace=trace,
            )
        except InvalidOptionError as exc:
            # "jobs[<i>].<field>" of the batch: named by the job's place in the tree.
            index, _, rest = exc.field.removeprefix("jobs[").partition("].")
            raise InvalidOptionError(f"{nodes[int(index)].path}.{rest}", _message(exc)) from None
        plain = queue._partitions is None
        for node, row in zip(nodes, rows, strict=True):
            node.row = row
            parent = node.parent
            own = node.flow.queue
            if plain and own is None and parent is not None:  # the common case, made short
                node.slot = parent.slot
                node.wave = parent.wave
                continue
            name = queue.name if parent is None else queue_name(parent.slot)
            if own is not None and own != queue.name:
                try:
                    name = _queue_name(own)
                except InvalidOptionError as exc:
                    raise InvalidOptionError(f"{node.path}.queue", _message(exc)) from None
            elif own is not None:
                name = own
            node.slot = self._slot(name, node, parent)
            if parent is not None:
                node.wave = parent.wave + (parent.slot != node.slot)
        return nodes

    def _slot(self, name: str, node: _Node, parent: _Node | None) -> str:
        """The queue (or partition of this queue) the job goes to. On a partitioned
        queue a job with a key (group, idempotency key, partition key, custom id) goes
        where that key says; else it stays in its parent's partition (one slot: its
        completion tells the parent at once). Other queues' jobs go to their partition 0."""
        queue = self._queue
        partitions = queue._partitions
        if name != queue.name or partitions is None:
            return name
        row = node.row
        assert row is not None
        options = node.flow.options
        keyed = any(k is not None for k in (row[0], row[7], row[8], options.partition_key))
        if not keyed and parent is not None and queue_name(parent.slot) == name:
            return parent.slot
        index = partitions.router.place(row, options.partition_key, f"{node.path}.job_id")
        return partition_name(name, index)

    def _check_payloads(self, nodes: list[_Node]) -> None:
        """Serialize and size-check every job's data before the first write (a flow over
        several slots is written in several calls: a bad job must stop all of them)."""
        limit = self._queue.config.settings.max_payload_bytes
        for node in nodes:
            row = node.row
            assert row is not None
            size = len(to_json(row[2], f"{node.path}.data"))
            if size > limit:
                raise PayloadTooLargeError(
                    f"{node.path}.data of job {row[1]!r} is {size} bytes, over "
                    f"max_payload_bytes={limit}"
                )

    async def add(self, root: Flow) -> FlowIds:
        tracer = self._queue._tracer
        if tracer is None:
            return await self._add(root, None)
        # One send span for the whole flow; its context is stored in every job of it.
        span, trace = tracer.start_send(_count(root) if isinstance(root, Flow) else 1)
        try:
            ids = await self._add(root, trace)
            span.set_attribute("messaging.message.id", ids.id)
            return ids
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            span.end()

    async def _add(self, root: Flow, trace: str | None) -> FlowIds:
        nodes = self._nodes(root, trace)
        if self._queue._partitions is not None:
            await self._queue._partitions.check()
        # The calls, per wave and slot, in one pass (a job's wave is its parent's or the
        # next one: none is empty).
        by_wave: list[dict[str, list[_Node]]] = [{}]
        for node in nodes:
            while node.wave >= len(by_wave):
                by_wave.append({})
            calls = by_wave[node.wave]
            part = calls.get(node.slot)
            if part is None:
                part = calls[node.slot] = []
            part.append(node)
        waves = len(by_wave)
        if waves > 1 or len(by_wave[0]) > 1:
            self._check_payloads(nodes)
        if waves > 1:
            await refuse_found_children(self._native, nodes)
        for wave, calls in enumerate(by_wave):
            if len(calls) == 1:  # the common case: one call, no task to gather
                await self._call(*next(iter(calls.items())))
            else:
                await asyncio.gather(*(self._call(slot, part) for slot, part in calls.items()))
            if wave > 0:
                await check_wave(self._native, [n for p in calls.values() for n in p], nodes)
        if waves > 1:
            await self._link(nodes)
        return _ids(nodes)

    async def _call(self, slot: str, part: list[_Node]) -> None:
        """One add_flow.lua call: the jobs of one slot in one wave."""
        rows: list[NewJob] = []
        families: list[FlowFamily] = []
        parents: list[tuple[int, int]] = []
        # The open family: its parent, the parent's index or ref, first index, policies.
        parent_of: _Node | None = None
        inside: int | None = None
        ref: str | None = None
        first = 0
        policies: list[str] = []
        for i, node in enumerate(part, start=1):
            node.index_in_call = i
            rows.append(node.row)  # type: ignore[arg-type]  # set by _nodes
            if node.children:
                parents.append((i, len(node.children)))
            parent = node.parent
            if parent is None:
                continue
            # A parent's children in this call follow each other (breadth-first order);
            # the parent is in this call when it shares the child's slot and wave.
            if parent is not parent_of:
                if parent_of is not None:
                    families.append((inside, ref, first, len(policies), "".join(policies)))
                parent_of, first, policies = parent, i, []
                if parent.slot == node.slot and parent.wave == node.wave:
                    inside, ref = parent.index_in_call, None
                else:
                    inside, ref = None, f"{self.base(parent.slot)} {parent.id}"
            policies.append(POLICIES[node.flow.on_failure])
        if parent_of is not None:
            families.append((inside, ref, first, len(policies), "".join(policies)))
        await self._queue._producer.open_here()
        results = await self._batch(slot).add(rows, families, parents)
        for node, (job_id, created, _, _) in zip(part, results, strict=True):
            node.id, node.created = job_id, created
        queue = self._queue
        if queue_name(slot) == queue.name:
            queue._report_added(rows, results)
            if queue._partitions is not None and slot != queue.name:
                await queue._partitions.wake([int(slot.rpartition("#")[2])])

    def _batch(self, slot: str) -> _SlotBatch:
        batch = self._batches.get(slot)
        if batch is None:
            batch = self._batches[slot] = _SlotBatch(self._queue._producer, self._native, slot)
        return batch

    async def _link(self, nodes: list[_Node]) -> None:
        """List the children added in another slot than their parent's in its ``deps``."""
        links = []
        for node in nodes:
            foreign = [
                f"{self.base(child.slot)} {child.id}"
                for child in node.children
                if child.slot != node.slot
            ]
            if foreign:
                links.append(self._native.link(node.slot, node.id, foreign))
        await asyncio.gather(*links)

    async def remove_children(self, refs: list[str]) -> None:
        """Remove pending children of removed parents, in their slots (and theirs in
        turn). A child that is running by now, or gone, is left alone."""
        while refs:
            more: list[str] = []
            for ref in refs:
                try:
                    more += await self._native.remove_job(*split_ref(ref))
                except (JobNotFoundError, InvalidStateError):
                    continue
            refs = more

    async def get_flow(self, slot: str, job_id: str) -> FlowTree:
        """The flow under job ``job_id`` of ``slot``, read level by level (two reads per
        job, those of a level all at once)."""
        root = FlowTree(job_id, queue_name(slot), None, [])
        level: list[tuple[str, FlowTree]] = [(slot, root)]
        while level:
            jobs, deps = await asyncio.gather(
                asyncio.gather(*(self._native.get_job(at, tree.id) for at, tree in level)),
                asyncio.gather(*(self._native.children(at, tree.id) for at, tree in level)),
            )
            below: list[tuple[str, FlowTree]] = []
            for (_, tree), found, refs in zip(level, jobs, deps, strict=True):
                if found is not None:
                    tree.job = JobInfo.from_redis(tree.id, *found)
                for ref, _ in refs:
                    child_slot, child_id = split_ref(ref)
                    child = FlowTree(child_id, queue_name(child_slot), None, [])
                    tree.children.append(child)
                    below.append((child_slot, child))
            level = below
        return root


def _count(flow: Flow) -> int:
    """The jobs of the tree under ``flow`` (without recursion: trees may be deep)."""
    count, todo = 0, [flow]
    while todo:
        count += 1
        todo.extend(todo.pop().children)
    return count


def _ids(nodes: list[_Node]) -> FlowIds:
    """The ids of the tree whose jobs are ``nodes`` (breadth first, root first), built
    from the root down: each job's ids go into its parent's, made before, in the order of
    its children (and no recursion, as trees may be deep)."""
    made: dict[_Node, FlowIds] = {}
    names: dict[str, str] = {}
    for node in nodes:
        name = names.get(node.slot)
        if name is None:
            name = names[node.slot] = queue_name(node.slot)
        ids = made[node] = FlowIds(node.id, name, [])
        if node.parent is not None:
            made[node.parent].children.append(ids)
    return made[nodes[0]]
