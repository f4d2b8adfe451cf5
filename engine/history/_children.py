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

if TYPE_CHECKING:
    from smithers.eventstore import EventStore, RunRecord

__all__ = ("ChildRun", "child_runs", "is_child_run")


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
