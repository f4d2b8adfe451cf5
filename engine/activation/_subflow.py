"""Running a `Subflow` node as an attempt: its child run, through an injected runner.

The activation room must not import the lifecycle room (`run_workflow` lives there), so
the run loop is handed a `ChildRunner` (built by `run_workflow`): given a
`SubflowRequest` it starts the child run, or resumes it, or reads the result of a child
that already ended, and reports a `ChildOutcome`. Here: the request of an attempt
(`subflow_request`), the attempt itself (`run_subflow`, awaited by a pooled worker like
any task, so the parent's ticks go on while the child runs), and the events that make
the node wait when the child parks (`subflow_waiting_events`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import anyio
import msgspec
from smithers.eventstore.events import (
    ErrorInfo,
    NodeCancelled,
    NodeWaitingApproval,
    NodeWaitingEvent,
    NodeWaitingTimer,
)

from .._run_ids import child_run_id
from ..errors import TaskTimeoutError, WorkflowExecutionFailedError
from ._execute import Outcome, error_info, validate_output

if TYPE_CHECKING:
    from smithers.eventstore.events import NodeEvent
    from smithers.projections import NodeRecord

    from .._clock import Clock
    from ..authoring import Subflow, Workflow

__all__ = (
    "SUBFLOW_EVENT_PREFIX",
    "ChildCancel",
    "ChildOutcome",
    "ChildParked",
    "ChildRunner",
    "SubflowRequest",
    "run_subflow",
    "subflow_request",
    "subflow_waiting_events",
)

SUBFLOW_EVENT_PREFIX = "subflow:"
"""`NodeWaitingEvent.event_name` of a `Subflow` node whose child waits for a signal:
``"subflow:<childRunId>"`` (signal the child, not the parent)."""

_PARKED = ("waiting-approval", "waiting-event", "waiting-timer")


class ChildCancel:
    """The child run's ``cancel`` object: set when the parent cancels the attempt.

    Has what `run_workflow` reads from a ``cancel`` object: ``async wait()`` and the
    ``reason``/``source`` recorded on the child's ``RunCancelled``.
    """

    __slots__ = ("_event", "reason", "source")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.reason: str | None = None
        self.source: str | None = None

    def set(self, reason: str, source: str = "parent") -> None:
        """Ask the child to cancel (once: later calls keep the first reason)."""
        if not self._event.is_set():
            self.reason, self.source = reason, source
            self._event.set()

    def is_set(self) -> bool:
        """Whether the cancellation was asked."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once the cancellation is asked."""
        await self._event.wait()


class SubflowRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What the runner needs to start or resume one `Subflow` attempt's child run."""

    parent_run_id: str
    """The parent run."""
    node_id: str
    """The parent's `Subflow` node."""
    iteration: int
    """That node's iteration."""
    child_run_id: str
    """The child's deterministic run id (`child_run_id`)."""
    workflow: Workflow
    """The child workflow."""
    input: dict[str, Any]
    """The child's input (a JSON object)."""
    cancel: ChildCancel
    """Set when the parent cancels the attempt: the child cancels itself."""


class ChildOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a child run's activation ended (or how it had ended already)."""

    status: str
    """The child's run status: ``finished``, ``failed``, ``cancelled``, ``continued``
    or a ``waiting-*`` status it parked in."""
    output: Any = None
    """The child's ``RunResult.output`` (its node named ``output``), plain JSON."""
    error: ErrorInfo | None = None
    """The child's error, for a failed child."""
    wake_at_ms: int | None = None
    """For a parked child: Unix epoch ms of its next timer or wait timeout, if any."""
    run_id: str | None = None
    """The run that stands so: the last run of the child's continue-as-new chain
    (None: the child run itself)."""


class ChildRunner(Protocol):
    """Starts, resumes or reads the child run of a `Subflow` attempt (set by lifecycle)."""

    async def __call__(self, request: SubflowRequest) -> ChildOutcome:
        """Run the child until it ends or parks; return how it did. Awaits the child.

        Raises:
            SmithersError: if the child cannot be started or resumed (bad input, a
                live owner, changed code, ...): the node fails with it.
        """
        ...


class ChildParked(msgspec.Struct, frozen=True, kw_only=True):
    """A child run parked: the `Subflow` node waits, with the child's status."""

    status: str
    """The child's ``waiting-*`` status."""
    child_run_id: str
    """The child run."""
    wake_at_ms: int | None = None
    """When to look at the child again (its next timer or timeout), if known."""


def subflow_request(
    task: Subflow, run_id: str, key: tuple[str, int], rec: NodeRecord | None
) -> SubflowRequest:
    """The request of the next attempt of `task`, given its record `rec`. Pure.

    The child's round is one more than the node's failed attempts: a retry after a
    failure starts a new child run, an attempt after a crash or a park (closed as
    cancelled) resumes the same child.
    """
    failed = sum(1 for a in rec.attempts if a.state == "failed") if rec is not None else 0
    return SubflowRequest(
        parent_run_id=run_id,
        node_id=key[0],
        iteration=key[1],
        child_run_id=child_run_id(run_id, key[0], key[1], round_no=failed + 1),
        workflow=task.workflow,
        input=task.input,
        cancel=ChildCancel(),
    )


async def run_subflow(
    task: Subflow,
    request: SubflowRequest,
    run_child: ChildRunner | None,
    clock: Clock,
    attempt: int,
) -> Outcome | ChildParked | None:
    """Run one attempt of a `Subflow` node: its child run, until it ends or parks.

    Awaits the child (through `run_child`). A `timeout_ms` asks the child to cancel
    and fails the attempt with ``TASK_TIMEOUT``.

    Returns:
        An `Outcome` (the child's output validated against the node's `output`, or
        the error: ``WORKFLOW_EXECUTION_FAILED`` with the child's error as cause, or
        what starting the child raised); `ChildParked` if the child parked; None if
        the parent cancelled the attempt (`request.cancel` set) and the child ended
        cancelled.
    """
    if run_child is None:
        return Outcome(
            error=error_info(
                WorkflowExecutionFailedError(
                    task.id, request.child_run_id, "not-started", "no child runner"
                )
            )
        )
    timed_out = False

    async def deadline(timeout_ms: int) -> None:
        nonlocal timed_out
        await clock.sleep_ms(timeout_ms)
        timed_out = True
        request.cancel.set("parent-timeout", "parent")

    async def call() -> ChildOutcome | Exception:
        try:
            return await run_child(request)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as e:
            return e

    if task.timeout_ms is None:
        child = await call()
    else:
        async with anyio.create_task_group() as tg:
            tg.start_soon(deadline, task.timeout_ms)
            child = await call()
            tg.cancel_scope.cancel()
    if isinstance(child, Exception):
        return Outcome(error=error_info(child))
    if timed_out and child.status != "finished":
        return Outcome(error=error_info(TaskTimeoutError(task.id, attempt, task.timeout_ms or 0)))
    if child.status == "finished":
        try:
            return Outcome(output=validate_output(task, child.output))
        except Exception as e:
            return Outcome(error=error_info(e))
    if child.status in _PARKED:
        return ChildParked(
            status=child.status,
            child_run_id=child.run_id or request.child_run_id,
            wake_at_ms=child.wake_at_ms,
        )
    if child.status == "cancelled" and request.cancel.is_set():
        return None
    reason = child.error.message if child.error is not None else None
    err = error_info(
        WorkflowExecutionFailedError(task.id, request.child_run_id, child.status, reason)
    )
    # As retryable as the child's own failure: a retry (`retries`) is a new child run.
    retryable = child.error.retryable if child.error is not None else True
    return Outcome(error=msgspec.structs.replace(err, cause=child.error, retryable=retryable))


def subflow_waiting_events(
    run_id: str,
    key: tuple[str, int],
    attempt: int,
    parked: ChildParked,
    now_ms: int,
) -> list[NodeEvent]:
    """The events of a `Subflow` node whose child parked. Pure.

    The attempt is closed (``NodeCancelled``, reason ``"subflow-waiting"``: the next
    attempt resumes the same child), then the node is marked waiting as its child
    does: ``NodeWaitingApproval``, ``NodeWaitingTimer`` (the child's next fire time),
    or ``NodeWaitingEvent`` named ``"subflow:<childRunId>"`` (so no signal sent to the
    parent resolves it: signal the child).
    """
    node_id, iteration = key
    events: list[NodeEvent] = [
        NodeCancelled(
            run_id=run_id,
            timestamp_ms=now_ms,
            node_id=node_id,
            iteration=iteration,
            attempt=attempt,
            reason="subflow-waiting",
        )
    ]
    common: dict[str, Any] = {
        "run_id": run_id,
        "timestamp_ms": now_ms,
        "node_id": node_id,
        "iteration": iteration,
    }
    if parked.status == "waiting-timer":
        fires_at = parked.wake_at_ms if parked.wake_at_ms is not None else now_ms
        events.append(NodeWaitingTimer(**common, fires_at_ms=fires_at))
    elif parked.status == "waiting-event":
        events.append(
            NodeWaitingEvent(
                **common,
                event_name=SUBFLOW_EVENT_PREFIX + parked.child_run_id,
                timeout_at_ms=parked.wake_at_ms,
            )
        )
    else:
        events.append(NodeWaitingApproval(**common))
    return events
