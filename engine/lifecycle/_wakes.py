"""When a run needs a process: pure verdicts shared by the supervisor and the workers.

A parked run (`PARKED_STATUSES`) costs no process until it becomes runnable
(`runnable_parked`: a wait resolved, or a deadline come, `wake_deadline`); a running
run whose owner is gone or stale is taken over (`needs_takeover`); a run resumed again
and again without progress is backed off (`fruitless_resumes`). No I/O here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..activation import SUBFLOW_EVENT_PREFIX

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smithers.projections import RunState

    from ._ownership import OwnerVerdict

__all__ = (
    "PARKED_STATUSES",
    "PROGRESS_TYPES",
    "WakeReason",
    "fruitless_resumes",
    "needs_takeover",
    "runnable_parked",
    "wake_deadline",
)

WakeReason = Literal["timer", "timeout", "retry"]
"""Why a parked run is woken: a timer is due, or a `WaitForEvent`'s timeout passed."""
PARKED_STATUSES = frozenset({"waiting-approval", "waiting-event", "waiting-timer"})
"""Statuses of a parked run: no owner, waiting for a decision, a signal or a timer."""

PROGRESS_TYPES = frozenset(
    {
        "NodeFinished",
        "NodeFailed",
        "NodeSkipped",
        "NodeWaitingApproval",
        "NodeWaitingTimer",
        "RunFinished",
        "RunFailed",
        "RunCancelled",
        "RunContinuedAsNew",
    }
)
"""Event types that show a resume got somewhere: a node outcome, a parked node or an end."""


def wake_deadline(state: RunState) -> tuple[int, WakeReason] | None:
    """Return when the parked run of `state` must be woken, and why; None if never. Pure.

    The earliest of: the fire time of a pending timer its node waits on
    (``"timer"``, `TimerRecord.fires_at_ms`, as recorded by `TimerCreated`: a restart
    never moves it), and the timeout of a `WaitForEvent` still waiting for its signal
    (``"timeout"``, `EventWaitRecord.timeout_at_ms`), and a retry due later than a
    process keeps sleeping for, e.g. after a provider's quota reset time
    (``"retry"``, `NodeRecord.next_attempt_at_ms`). Approvals, and waits without a
    timeout, have no deadline: a decision or a signal wakes them. Nor has a `Subflow`
    node waiting in its child run (``subflow:<childRunId>``, which copies the child's
    deadline): the child holds that deadline and is woken itself; its end wakes the
    parent (`wake_parent`). Waking both would race two resumers for the child.

    Returns:
        ``(due_at_ms, reason)``, Unix epoch ms, or None.
    """
    best: tuple[int, WakeReason] | None = None
    for rec in state.nodes.values():
        candidate: tuple[int, WakeReason]
        timer, wait = rec.timer, rec.wait
        if rec.state == "waiting-timer" and timer is not None and timer.state == "pending":
            candidate = (timer.fires_at_ms, "timer")
        elif (
            rec.state == "waiting-event"
            and wait is not None
            and not wait.received
            and wait.timeout_at_ms is not None
            and not wait.event_name.startswith(SUBFLOW_EVENT_PREFIX)
        ):
            candidate = (wait.timeout_at_ms, "timeout")
        elif rec.state == "pending" and rec.next_attempt_at_ms is not None:
            candidate = (rec.next_attempt_at_ms, "retry")
        else:
            continue
        if best is None or candidate[0] < best[0]:
            best = candidate
    return best


def needs_takeover(verdict: OwnerVerdict, stale_ms: int) -> bool:
    """Whether a running run's owner is past helping itself (counted as stale). Pure.

    Gone or stale owners are; so is a run nobody has claimed (after a rewind or a
    retry-task whose process died) once it has been silent for `stale_ms`. The
    supervisor and the workers (`run_worker`) take such runs over.
    """
    if verdict.kind == "none":
        return verdict.silent_ms is not None and verdict.silent_ms >= stale_ms
    return verdict.kind != "alive"


def runnable_parked(state: RunState, now_ms: int) -> bool:
    """Whether the parked run of `state` must be resumed now. Pure.

    True when a wait is resolved and not yet taken up (`RunState.resolved_waits`: an
    approval decided, a signal received) or its `wake_deadline` has come (Unix epoch
    `now_ms`). False for a run that is not parked.
    """
    if state.status not in PARKED_STATUSES:
        return False
    if state.resolved_waits():
        return True
    deadline = wake_deadline(state)
    return deadline is not None and deadline[0] <= now_ms


def fruitless_resumes(starts: Sequence[int | None], progress: Sequence[int]) -> int:
    """How many of the last resumes in a row got nowhere. Pure.

    Args:
        starts: Each resume's ``from_seq`` (the run's last seq when it began), oldest
            first; None where unknown (counting stops there).
        progress: Seqs of the run's events of `PROGRESS_TYPES`.

    Returns:
        The number of trailing resumes with no progress event after their start (and
        up to the next resume's start).
    """
    failures = 0
    for i in range(len(starts) - 1, -1, -1):
        start = starts[i]
        if start is None:
            break
        end = starts[i + 1] if i + 1 < len(starts) else None
        if any(s > start and (end is None or s <= end) for s in progress):
            break
        failures += 1
    return failures
