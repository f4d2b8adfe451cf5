"""The child runs of a run (`Subflow` nodes), as ``inspect`` and ``ps`` show them.

A child run's id is ``<parentRunId>:child:<nodeId>:<iteration>`` (``:<round>`` after
it for a retry of a failed child; `child_run_id`), so a run's children are found in
the runs index by id, without folding any log.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec

from .._run_ids import CHILD_MARKER, child_tail, parse_child_run_id
from ._queries import list_runs
from ._state import load_state

if TYPE_CHECKING:
    from smithers.eventstore import EventStore, RunRecord
    from smithers.projections import RunState

__all__ = ("ACTIVE_CHILD_STATUSES", "ChildRun", "active_descendants", "child_runs", "is_child_run")

ACTIVE_CHILD_STATUSES = frozenset({"running", "waiting-approval", "waiting-event", "waiting-timer"})
"""Statuses of a run that has not ended: live, or parked waiting for something."""


class ChildRun(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One child run of a run: which `Subflow` node started it, and how it stands."""

    run_id: str
    """The child run's id."""
    node_id: str
    """The parent's `Subflow` node."""
    iteration: int
    """That node's iteration."""
    status: str
    """The child's last recorded status."""
    workflow_name: str
    """The child workflow's name."""
    created_at_ms: int
    """Unix epoch ms of the child's first event."""


_CONT_SUFFIX = re.compile(r":cont:\d+:[0-9a-f]{6}$")
"""The suffix of a continue-as-new run's id (``<first run id>:cont:<depth>:<6 hex>``)."""


def is_child_run(record: RunRecord) -> bool:
    """Whether `record` is the child run of a `Subflow` (by its id). Pure.

    A run that continues a child (continue-as-new) is one too.
    """
    return parse_child_run_id(_CONT_SUFFIX.sub("", record.run_id)) is not None


async def child_runs(store: EventStore, run_id: str) -> list[ChildRun]:
    """Return the direct child runs of `run_id`, oldest first. Awaits one index read.

    Grandchildren (children of a child) are the child's, not listed here.

    Raises:
        DatabaseQueryError: if the database cannot be read.
    """
    prefix = run_id + CHILD_MARKER
    out: list[ChildRun] = []
    for record in await list_runs(store=store):
        if not record.run_id.startswith(prefix):
            continue
        parsed = child_tail(record.run_id[len(prefix) :])
        if parsed is None:
            continue
        out.append(
            ChildRun(
                run_id=record.run_id,
                node_id=parsed[0],
                iteration=parsed[1],
                status=record.status,
                workflow_name=record.workflow_name,
                created_at_ms=record.created_at_ms,
            )
        )
    out.sort(key=lambda c: (c.created_at_ms, c.run_id))
    return out


async def active_descendants(store: EventStore, run_id: str) -> list[RunState]:
    """Return the folded states of `run_id`'s active descendant runs. Awaits reads.

    Descendants are the child runs of its `Subflow` nodes, their children, and so on;
    active ones are live or parked (`ACTIVE_CHILD_STATUSES`): a child that ended
    waits for nothing and is not looked into. The order is the tree's, depth first:
    each child before its own children, then its next sibling; siblings in the order
    their parent mounted their `Subflow` nodes (a retry's child after the first), so
    the order does not depend on which child happened to start first. One read of the
    runs index (a descendant's id starts with ``<runId>:child:``), then one fold per
    run walked.

    Raises:
        DatabaseQueryError: if the database cannot be read.
    """
    prefix = run_id + CHILD_MARKER
    records = [
        r
        for r in await list_runs(store=store)
        if r.run_id.startswith(prefix) and r.status in ACTIVE_CHILD_STATUSES
    ]
    by_parent: dict[str, list[RunRecord]] = {}
    for record in records:
        parsed = parse_child_run_id(record.run_id)
        if parsed is not None:
            by_parent.setdefault(parsed[0], []).append(record)
    out: list[RunState] = []

    async def walk(parent: RunState) -> None:
        kids = by_parent.get(parent.run_id)
        if not kids:
            return
        mounted = {key: i for i, key in enumerate(parent.nodes)}

        def tree_order(record: RunRecord) -> tuple[int, int, str]:
            tail = child_tail(record.run_id[len(parent.run_id) + len(CHILD_MARKER) :])
            at = mounted.get(tail, len(mounted)) if tail is not None else len(mounted)
            return at, record.created_at_ms, record.run_id

        for record in sorted(kids, key=tree_order):
            state = await load_state(store, record.run_id)
            if state.status in ACTIVE_CHILD_STATUSES:
                out.append(state)
                await walk(state)

    if run_id in by_parent:
        await walk(await load_state(store, run_id))
    return out
