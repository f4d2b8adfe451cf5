"""Nodes that wait for something outside the run: `Approval`, `WaitForEvent`, `Timer`.

They are leaves of the tree like tasks (subclasses of `Task` with a `kind` of their own)
but run no callable: the engine records that the node waits, the run parks when nothing
else can go on, and a decision (``smithers approve``/``deny``), a signal (``smithers
signal``) or a due timer resolves the node into its output (DESIGN §6, "Parking").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from smithers.eventstore import encode_json

from ..errors import EngineError, InvalidInputError, UnsupportedFeatureError
from ._components import Task

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = (
    "Approval",
    "ApprovalDecision",
    "ApprovalRanking",
    "ApprovalSelection",
    "OnDeny",
    "OnTimeout",
    "Timer",
    "TimerOutput",
    "WaitForEvent",
    "parse_duration_ms",
)

OnDeny = Literal["fail", "continue", "skip"]
"""What a denied approval does: fail the node (``APPROVAL_DENIED``), finish it with the
denial as its output, or skip it."""

OnTimeout = Literal["fail", "skip", "continue"]
"""What a `WaitForEvent` whose timeout passed does: fail (``WAIT_FOR_EVENT_TIMEOUT``),
skip the node, or finish it with a null output."""


class ApprovalDecision(msgspec.Struct, kw_only=True, rename="camel"):
    """Output of an ``"approve"`` `Approval`: ``{approved, note, decidedBy, decidedAt}``."""

    approved: bool
    note: str | None = None
    decided_by: str | None = None
    decided_at: int | None = None
    """Unix epoch ms of the decision."""


class ApprovalSelection(msgspec.Struct, kw_only=True):
    """Output of a ``"select"`` `Approval`: ``{selected, notes}``."""

    selected: str | None
    notes: str | None = None


class ApprovalRanking(msgspec.Struct, kw_only=True):
    """Output of a ``"rank"`` `Approval`: ``{ranked, notes}``."""

    ranked: list[str]
    notes: str | None = None


class TimerOutput(msgspec.Struct, kw_only=True, rename="camel"):
    """Output of a `Timer`: when it was due and when it fired (Unix epoch ms)."""

    fires_at_ms: int
    fired_at_ms: int


_DEFAULT_OUTPUT: dict[str, type[Any]] = {
    "approve": ApprovalDecision,
    "select": ApprovalSelection,
    "rank": ApprovalRanking,
}


class ApprovalOptionsRequiredError(EngineError, ValueError):
    """A ``"select"`` or ``"rank"`` approval was given no options."""

    default_code = "APPROVAL_OPTIONS_REQUIRED"


class Approval(Task):
    """A decision node: the run stops until a person decides, as Smithers' ``<Approval>``.

    When reached, the node records ``ApprovalRequested`` and ``NodeWaitingApproval`` and
    waits; once nothing else can go on, the run parks with status ``waiting-approval``
    (``smithers up`` exits 3 and prints the ``smithers approve`` command). ``smithers
    approve``/``deny`` (or `RunHandle.approve`/`deny`) records the decision and resumes
    the run, and the node finishes with the decision as its output.

    Args:
        id: Node id.
        output: Output schema; default by mode: `ApprovalDecision` (``{approved, note,
            decidedBy, decidedAt}``), `ApprovalSelection` (``{selected, notes}``),
            `ApprovalRanking` (``{ranked, notes}``).
        request: ``{"title", "summary", "metadata"}`` shown to the person deciding.
        mode: ``"approve"`` (yes/no), ``"select"`` (one of `options`), ``"rank"``
            (order `options`).
        options: The choices for ``"select"``/``"rank"``.
        on_deny: ``"fail"`` (the node fails with ``APPROVAL_DENIED``), ``"continue"``
            (it finishes with ``approved: false``), ``"skip"`` (it is skipped).
        label, depends_on, skip_if: as for `Task`.

    Raises:
        TaskIdRequiredError: if `id` is empty.
        ApprovalOptionsRequiredError: ``APPROVAL_OPTIONS_REQUIRED``, for ``"select"`` or
            ``"rank"`` without options.
        UnsupportedFeatureError: for an unknown `mode` or `on_deny`, or a `request` that
            is not a mapping with JSON-able values.
    """

    __slots__ = ("metadata", "mode", "on_deny", "options", "summary", "title")

    def __init__(
        self,
        id: str,
        *,
        output: Any = None,
        request: Mapping[str, Any] | None = None,
        mode: Literal["approve", "select", "rank"] = "approve",
        options: Iterable[str] | None = None,
        on_deny: OnDeny = "fail",
        label: str | None = None,
        depends_on: Iterable[str] = (),
        skip_if: bool = False,
    ) -> None:
        if mode not in _DEFAULT_OUTPUT:
            raise UnsupportedFeatureError(
                f"Approval {id!r}: mode must be 'approve', 'select' or 'rank', got {mode!r}."
            )
        if on_deny not in ("fail", "continue", "skip"):
            raise UnsupportedFeatureError(
                f"Approval {id!r}: on_deny must be 'fail', 'continue' or 'skip', got {on_deny!r}."
            )
        opts = tuple(str(o) for o in options) if options is not None else ()
        if mode != "approve" and not opts:
            raise ApprovalOptionsRequiredError(
                f"Approval {id!r} in mode {mode!r} needs options=[...] to choose from.",
                hint="Pass options=['a', 'b', ...], or use mode='approve'.",
            )
        self._init_node(
            id,
            kind="approval",
            output=output if output is not None else _DEFAULT_OUTPUT[mode],
            label=label,
            depends_on=depends_on,
            skip_if=skip_if,
        )
        request = request or {}
        if not isinstance(request, Mapping):
            raise UnsupportedFeatureError(
                f"Approval {id!r}: request must be a mapping with title/summary/metadata."
            )
        self.mode = mode
        self.options = opts
        self.on_deny = on_deny
        self.title: str | None = _opt_str(request.get("title"))
        self.summary: str | None = _opt_str(request.get("summary"))
        metadata = request.get("metadata")
        try:
            self.metadata: bytes | None = encode_json(metadata) if metadata is not None else None
        except (TypeError, msgspec.EncodeError) as e:
            raise UnsupportedFeatureError(
                f"Approval {id!r}: request metadata is not JSON-serialisable: {e}."
            ) from e

    def __repr__(self) -> str:
        return f"Approval({self.id!r}, mode={self.mode!r})"


class WaitForEvent(Task):
    """Wait for a named signal from outside the run, as Smithers' ``<WaitForEvent>``.

    When reached, the node records ``NodeWaitingEvent`` and waits; once nothing else can
    go on, the run parks with status ``waiting-event``. ``smithers signal RUN NAME --data
    JSON`` (or `RunHandle.signal`) records a ``SignalReceived``: the oldest node already
    waiting for that name (and `correlation_id`, if it gives one) receives it, the run
    resumes, and the node finishes with the payload (validated against `output`) as its
    output. A signal sent before the wait began does not count.

    Args:
        id: Node id.
        event: The signal name to wait for.
        output: Schema of the payload (msgspec Struct type or ``dict``).
        correlation_id: Only a signal sent with this correlation id resolves the wait.
        timeout_ms: Give up after this many ms (from when the wait began); the
            supervisor wakes a parked run when it passes.
        on_timeout: ``"fail"`` (``WAIT_FOR_EVENT_TIMEOUT``), ``"skip"``, or
            ``"continue"`` (finish with a null output).
        label, depends_on, skip_if: as for `Task`.

    Raises:
        TaskIdRequiredError: if `id` is empty.
        UnsupportedFeatureError: for an empty `event`, a `timeout_ms` <= 0 or an unknown
            `on_timeout`.
    """

    __slots__ = ("correlation_id", "event", "on_timeout")

    def __init__(
        self,
        id: str,
        *,
        event: str,
        output: Any = dict,
        correlation_id: str | None = None,
        timeout_ms: int | None = None,
        on_timeout: OnTimeout = "fail",
        label: str | None = None,
        depends_on: Iterable[str] = (),
        skip_if: bool = False,
    ) -> None:
        if not isinstance(event, str) or not event:
            raise UnsupportedFeatureError(f"WaitForEvent {id!r} needs event='<signal name>'.")
        if timeout_ms is not None and (not isinstance(timeout_ms, int) or timeout_ms <= 0):
            raise UnsupportedFeatureError(
                f"WaitForEvent {id!r}: timeout_ms must be an int > 0, got {timeout_ms!r}."
            )
        if on_timeout not in ("fail", "skip", "continue"):
            raise UnsupportedFeatureError(
                f"WaitForEvent {id!r}: on_timeout must be 'fail', 'skip' or 'continue', "
                f"got {on_timeout!r}."
            )
        self._init_node(
            id,
            kind="event",
            output=output if output is not None else dict,
            label=label,
            depends_on=depends_on,
            skip_if=skip_if,
        )
        self.event = event
        self.correlation_id = correlation_id
        self.timeout_ms = timeout_ms
        self.on_timeout = on_timeout

    def __repr__(self) -> str:
        return f"WaitForEvent({self.id!r}, event={self.event!r})"


class Timer(Task):
    """A durable timer, as Smithers' ``<Timer>``: the node finishes when it is due.

    The first time the node is reached it records ``TimerCreated`` (with the absolute
    fire time) and ``NodeWaitingTimer``; a restart or resume never resets it. A run
    whose only waits are timers due soon keeps its process and sleeps; otherwise it
    parks as ``waiting-timer`` (no process) and ``smithers supervise`` wakes it when due.
    The output is `TimerOutput` (``{firesAtMs, firedAtMs}``).

    Args:
        id: Node id.
        duration: How long to wait from when the node is reached: ``"500ms"``,
            ``"30s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"``, combinations like
            ``"1h30m"``, or an int number of milliseconds.
        until: When to fire instead: an aware `datetime` (a naive one is taken as
            UTC) or an ISO 8601 string.
        label, depends_on, skip_if: as for `Task`.

    Raises:
        InvalidInputError: for a malformed duration or date, or neither/both given.
    """

    __slots__ = ("duration_ms", "until_ms")

    def __init__(
        self,
        id: str,
        *,
        duration: str | int | None = None,
        until: datetime | str | None = None,
        label: str | None = None,
        depends_on: Iterable[str] = (),
        skip_if: bool = False,
    ) -> None:
        if (duration is None) == (until is None):
            raise InvalidInputError(
                f"Timer {id!r} needs exactly one of duration= or until=.",
                details={"nodeId": id},
            )
        self._init_node(
            id,
            kind="timer",
            output=TimerOutput,
            label=label,
            depends_on=depends_on,
            skip_if=skip_if,
        )
        self.duration_ms: int | None = parse_duration_ms(duration) if duration is not None else None
        self.until_ms: int | None = _instant_ms(until) if until is not None else None

    def __repr__(self) -> str:
        when = (
            f"duration_ms={self.duration_ms}"
            if self.until_ms is None
            else f"until_ms={self.until_ms}"
        )
        return f"Timer({self.id!r}, {when})"


_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration_ms(value: str | int) -> int:
    """Return a duration in milliseconds.

    `value` is an int (ms) or a string such as ``"30s"``, ``"2h"``, ``"7d"``,
    ``"1h30m"``, ``"250ms"``, ``"1.5h"``.

    Raises:
        InvalidInputError: if `value` is negative, empty or not of that form.
    """
    if isinstance(value, bool):
        raise InvalidInputError(f"Not a duration: {value!r}.")
    if isinstance(value, int):
        if value < 0:
            raise InvalidInputError(f"A duration cannot be negative: {value!r} ms.")
        return value
    text = str(value).strip().lower()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if text[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if not text or pos == 0 or text[pos:].strip():
        raise InvalidInputError(
            f"Not a duration: {value!r}.",
            hint='Write it like "30s", "15m", "2h", "7d", "1h30m" or "500ms".',
        )
    return int(total)


def _instant_ms(value: datetime | str) -> int:
    """Unix epoch ms of a datetime (naive: UTC) or an ISO 8601 string."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as e:
            raise InvalidInputError(
                f"Not an ISO 8601 date-time: {value!r}.",
                hint='Write it like "2026-12-01T09:00:00Z".',
            ) from e
    if not isinstance(value, datetime):
        raise InvalidInputError(f"until= must be a datetime or an ISO string, got {value!r}.")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
