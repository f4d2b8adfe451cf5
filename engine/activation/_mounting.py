"""What a render mounts: its tasks' first events, what counts as done, a stuck run's error.

Pure helpers of the `Decider` (no I/O, no clock: the time is passed in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.eventstore.events import NodePending, NodeSkipped

from ..errors import SchedulerError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from smithers.eventstore.events import NodeEvent
    from smithers.projections import NodeKey, NodeRecord

    from ._render import Plan

__all__ = ("done_check", "mount_events", "mounted", "stuck")


def mount_events(
    plan: Plan,
    nodes: Mapping[NodeKey, NodeRecord],
    is_busy: Callable[[NodeKey], bool],
    run_id: str,
    now_ms: int,
) -> list[NodeEvent]:
    """The events a render records for its tasks: pending when new, skipped by ``skip_if``.

    A task already recorded is skipped only while pending and not busy (running or
    waiting out a backoff).
    """
    out: list[NodeEvent] = []
    for node_id, leaf in plan.leaves.items():
        key = leaf.key
        rec = nodes.get(key)
        task = leaf.task
        if rec is None and not task.skip_if:
            out.append(
                NodePending(
                    run_id=run_id,
                    timestamp_ms=now_ms,
                    node_id=node_id,
                    iteration=key[1],
                    label=task.label,
                )
            )
        elif task.skip_if and (rec is None or (rec.state == "pending" and not is_busy(key))):
            out.append(
                NodeSkipped(
                    run_id=run_id,
                    timestamp_ms=now_ms,
                    node_id=node_id,
                    iteration=key[1],
                    reason="skip_if",
                )
            )
    return out


def done_check(plan: Plan, nodes: Mapping[NodeKey, NodeRecord]) -> Callable[[NodeKey], bool]:
    """Whether a node is done for ordering: finished, skipped, or failed and let go."""
    leaves = plan.leaves

    def is_done(key: NodeKey) -> bool:
        rec = nodes.get(key)
        if rec is None:
            return False
        if rec.state in ("finished", "skipped"):
            return True
        leaf = leaves.get(key[0])
        return rec.state == "failed" and leaf is not None and leaf.task.continue_on_fail

    return is_done


def mounted(plan: Plan, key: NodeKey) -> bool:
    """Whether `plan` mounts the task of `key` (that node, in that iteration)."""
    leaf = plan.leaves.get(key[0])
    return leaf is not None and leaf.key == key


def stuck(waiting: dict[str, list[str]]) -> SchedulerError:
    """The error of a run that cannot make progress, naming what waits on what."""
    return SchedulerError(
        "The workflow cannot make progress: "
        + (
            "; ".join(
                f"{', '.join(ts)} wait(s) on {dep!r}, which can never finish "
                "(not mounted, or a dependency cycle)"
                for dep, ts in waiting.items()
            )
            if waiting
            else "no task is ready and nothing is running"
        )
        + ".",
        details={"waitingOn": waiting},
    )
