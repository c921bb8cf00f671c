"""A flow's child that exists already under a new parent (docs/flows.md, "Known limits").

A child whose job id or idempotency key a job added outside the flow took is found
instead of created, and that job would never tell the flow's new parent: the parent would
wait forever. In the parent's own slot add_flow.lua refuses the call before writing. A
child in another slot is written by a later script call than its parent, so ``add_flow``
looks for such children before its first write (`refuse_found_children`); one taken in
between by another client is caught once its call returns (`check_wave`), and the jobs the
flow created are removed again before the error is raised.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .errors import InvalidStateError, JobNotFoundError
from .models import queue_name

if TYPE_CHECKING:
    from ._native import NativeFlows
    from .flows import _Node

_ADVICE = "give a flow's jobs ids and idempotency keys of their own"


def _foreign(node: _Node) -> bool:
    """Whether the job is a child written in another slot than its parent."""
    return node.parent is not None and node.parent.slot != node.slot


def _keyed(node: _Node) -> bool:
    """Whether adding the job can find one that exists (by custom id or idempotency key)."""
    row = node.row
    assert row is not None
    return row[0] is not None or row[7] is not None


async def refuse_found_children(native: NativeFlows, nodes: list[_Node]) -> None:
    """Before any write: refuse the flow if a child of another slot than its parent's
    exists already while its parent does not (a flow added again finds both: fine)."""
    children = [node for node in nodes if _foreign(node) and _keyed(node)]
    if not children:
        return  # the common case: no look, no cost
    asked: dict[int, _Node] = {}
    for child in children:
        asked[id(child)] = child
        parent = child.parent
        assert parent is not None
        if _keyed(parent):
            asked[id(parent)] = parent
    by_slot: dict[str, list[_Node]] = {}
    for node in asked.values():
        by_slot.setdefault(node.slot, []).append(node)
    replies = await asyncio.gather(
        *(
            native.find(slot, [(n.row[0] or "", n.row[7] or "") for n in part])  # type: ignore[index]
            for slot, part in by_slot.items()
        )
    )
    found: dict[int, str] = {}
    for part, reply in zip(by_slot.values(), replies, strict=True):
        for node, job_id in zip(part, reply, strict=True):
            if job_id:
                found[id(node)] = job_id
    for child in children:
        if id(child) in found and id(child.parent) not in found:
            raise InvalidStateError(
                f"{child.path} is job {found[id(child)]!r} of queue "
                f"{queue_name(child.slot)!r}, which exists already: its new parent would "
                f"wait for it forever; {_ADVICE}"
            )


async def check_wave(native: NativeFlows, wave: list[_Node], nodes: list[_Node]) -> None:
    """After a wave's calls: a child of another slot found instead of created under a
    parent this flow created was taken by another client since `refuse_found_children`
    looked. The jobs the flow created are removed (one that a worker started by now is
    left to finish) and the flow is refused."""
    taken = next(
        (n for n in wave if _foreign(n) and not n.created and n.parent.created),  # type: ignore[union-attr]
        None,
    )
    if taken is None:
        return
    for node in nodes:
        if node.created:
            try:
                await native.remove_job(node.slot, node.id)
            except (JobNotFoundError, InvalidStateError):
                continue  # taken along with its parent, or running
    raise InvalidStateError(
        f"{taken.path} is job {taken.id!r} of queue {queue_name(taken.slot)!r}, added by "
        f"another client while this flow was being added: its new parent would wait for "
        f"it forever, so the flow's jobs were removed again; {_ADVICE}"
    )
