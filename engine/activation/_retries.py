"""Retries beyond the task's backoff: quota waits, deferred retries, retry-task's end.

Pure helpers of the `Decider` (no I/O, no clock: the time is passed in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.eventstore.events import RetryTaskFinished

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from smithers.eventstore.events import ErrorInfo
    from smithers.projections import NodeKey, NodeRecord, RunState

    from ._render import Plan

__all__ = ("MAX_QUOTA_WAITS", "QUOTA_CODE", "retries_due_later", "retry_end", "spent_retries")

QUOTA_CODE = "AGENT_QUOTA_EXCEEDED"
MAX_QUOTA_WAITS = 10
"""Quota failures of one node retried without spending its ``retries`` (seed 001: "the
failure is transient; retries are preserved"); past this many the retries count again."""


def spent_retries(attempt: int, error: ErrorInfo, rec: NodeRecord | None) -> int:
    """How many of a task's ``retries`` its failed attempt `attempt` has spent.

    Attempts that failed on a provider's quota (`error` one of them, and the earlier
    ones recorded on `rec`) do not count, up to `MAX_QUOTA_WAITS` of them.
    """
    if error.code != QUOTA_CODE or rec is None:
        return attempt
    quota = sum(1 for a in rec.attempts if a.error is not None and a.error.code == QUOTA_CODE)
    return attempt if quota > MAX_QUOTA_WAITS else attempt - quota


def retries_due_later(
    plan: Plan,
    nodes: Mapping[NodeKey, NodeRecord],
    now_ms: int,
    is_busy: Callable[[NodeKey], bool],
) -> list[tuple[NodeKey, int]]:
    """Mounted pending nodes whose announced retry (`NodeRetrying`) is not due yet.

    Returns:
        ``(key, due_ms)`` pairs: a resumed run does not start them before then.
    """
    out = []
    for key, rec in nodes.items():
        due = rec.next_attempt_at_ms
        if due is None or due <= now_ms or rec.state != "pending" or is_busy(key):
            continue
        leaf = plan.leaves.get(key[0])
        if leaf is not None and leaf.key == key:
            out.append((key, due))
    return out


def retry_end(state: RunState, run_id: str, now_ms: int, *, ok: bool) -> RetryTaskFinished | None:
    """The `RetryTaskFinished` of a `retry-task` still open when the run ends, or None.

    `retry_task` records it itself when the resume it started drives the run to its
    end; if that process died (or another resume finished the run), the run's end
    records it, so a retry never stays open in the log. `ok`: the run ends neither
    failed nor cancelled (and then success means the retried node finished).
    """
    retry = state.open_retry
    if retry is None:
        return None
    rec = state.nodes.get((retry.node_id, retry.iteration))
    return RetryTaskFinished(
        run_id=run_id,
        timestamp_ms=now_ms,
        node_id=retry.node_id,
        iteration=retry.iteration,
        reset_nodes=retry.reset_nodes,
        success=ok and rec is not None and rec.state == "finished",
    )
