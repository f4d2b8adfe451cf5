"""What approvals and signals share: their result records and the checks of their input.

Validation happens where a request enters (`approve`, `deny`, `signal`), before
anything is opened or recorded (`_check_*`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from .._run_ids import EXISTING_RUN_HINT, validate_run_id
from ..errors import (
    InvalidInputError,
)
from ..history import SUPERVISOR_STREAM_ID

if TYPE_CHECKING:
    from smithers.projections import NodeRecord


__all__ = ("DecisionResult", "PendingApproval", "SignalResult")

_ROUNDS = 50
"""Attempts of a request's append before giving up on a run others keep appending to."""
_MAX_NAME = 256
"""The longest node id, signal name or correlation id accepted, in characters."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DecisionResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `approve`/`deny` recorded, and whether the run needs resuming."""

    run_id: str
    node_id: str
    iteration: int
    decision: Literal["granted", "denied"]
    seq: int
    """Seq of the recorded ``ApprovalGranted``/``ApprovalDenied``."""
    node: NodeRecord
    """The node's record with the decision folded in (``node.approval``)."""
    run_status: str
    """The run's status when the decision was recorded (``running``, ``waiting-*``)."""
    parked: bool
    """True if the run was parked (``waiting-*``, no owner): someone must resume it
    (``resume_run_id``) for the decision to take effect. False: its live owner picks
    the decision up."""
    requested_run_id: str = ""
    """The run the caller named; differs from `run_id` when the approval waited in
    one of its descendants (a `Subflow`'s child run). Empty: `run_id`."""
    resume_run_id: str = ""
    """The run to resume when ``parked`` (see the module docstring). Empty: `run_id`."""
    queue: str | None = None
    """When ``parked``: the queue the run to resume was submitted to (``smithers
    submit``); a worker of that queue resumes it (`run_worker`), so the caller leaves
    it alone. None: not submitted, the caller resumes it (or nothing is parked)."""


class SignalResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `signal` recorded: the ``SignalReceived`` and the wait it resolved, if any."""

    run_id: str
    signal_name: str
    correlation_id: str | None
    seq: int
    """Seq of the recorded ``SignalReceived``."""
    delivered_to: tuple[str, int] | None
    """``(node_id, iteration)`` of the `WaitForEvent` it resolved; None when no node
    was waiting for it (recorded for audit, it resolves nothing, later waits included)."""
    run_status: str
    """The run's status when the signal was recorded."""
    parked: bool
    """True if the run was parked (no owner) and the signal resolved a wait: someone
    must resume it (``resume_run_id``). False: a live owner picks it up, or there is
    nothing to resume."""
    requested_run_id: str = ""
    """The run the caller named; differs from `run_id` when the signal went to a wait
    in one of its descendants (no node of the run named waited for it). Empty:
    `run_id`."""
    resume_run_id: str = ""
    """The run to resume when ``parked`` (see the module docstring). Empty: `run_id`."""
    queue: str | None = None
    """When ``parked``: the queue the run to resume was submitted to (``smithers
    submit``); a worker of that queue resumes it (`run_worker`), so the caller leaves
    it alone. None: not submitted, the caller resumes it (or nothing is parked)."""


class PendingApproval(msgspec.Struct, frozen=True, kw_only=True):
    """An approval waiting for a decision (``smithers approvals``)."""

    run_id: str
    run_status: str
    workflow_name: str | None
    node_id: str
    iteration: int
    title: str | None
    summary: str | None
    mode: Literal["approve", "select", "rank"]
    options: tuple[str, ...]
    requested_at_ms: int
    """Unix epoch ms of the request (``ApprovalRequested``)."""
    metadata: Any = None
    """The request's metadata as plain JSON values (None without)."""
    root_run_id: str = ""
    """The top of the run's `Subflow` tree: the run whose child (or grandchild, ...)
    this run is; the run itself when it is no child. Empty: `run_id`."""


# ---------------------------------------------------------------------- checks


def _check_run(run_id: str) -> None:
    validate_run_id(run_id, hint=EXISTING_RUN_HINT)
    if run_id == SUPERVISOR_STREAM_ID:
        raise InvalidInputError(
            f"{run_id!r} is the supervisor's log, not a run.",
            details={"runId": run_id},
            hint="List runs with `smithers ps`.",
        )


def _check_name(value: object, what: str, *, optional: bool = False) -> str | None:
    """Refuse a node id, signal name or correlation id that is not a short plain string."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInputError(
            f"The {what} must be a non-empty string, got {value!r}.",
            details={"value": repr(value)},
        )
    if len(value) > _MAX_NAME or _CONTROL.search(value):
        why = "is too long" if len(value) > _MAX_NAME else "has control characters"
        raise InvalidInputError(
            f"The {what} {value[:80]!r} {why} (at most {_MAX_NAME} printable characters).",
            details={"value": value[:300]},
        )
    return value


def _check_iteration(iteration: object) -> int | None:
    if iteration is None:
        return None
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
        raise InvalidInputError(
            f"The iteration must be a whole number >= 0, got {iteration!r}.",
            details={"iteration": repr(iteration)},
        )
    return iteration


def _check_text(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidInputError(f"The {what} must be a string, got {type(value).__name__}.")


def _when(ms: int | None) -> str:
    """A Unix epoch ms as an ISO date-time in UTC (for messages)."""
    if ms is None:
        return "an unknown time"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")
