"""Signals: `signal` delivers a named event (with data) to a run's `WaitForEvent`.

As Smithers' signals: the signal is recorded as `SignalReceived` in the target run's
log (a child run's, when the wait is in a Subflow), its data validated against the
wait's schema, and the run resumed in the background unless asked not to. Shares the
input checks and the resume step with approvals (`_decisions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore import (
    MAX_JSON_DEPTH,
    EventStore,
    JsonValueError,
    SeqConflictError,
    decode_json,
    encode_json,
    encode_json_strict,
)
from smithers.eventstore.events import (
    TERMINAL_RUN_STATUSES,
    SignalReceived,
)

from .._clock import Clock, SystemClock
from .._shell import shell_command
from ..activation import DEFAULT_MAX_TASK_OUTPUT_BYTES, default_log_dir, render_state
from ..activation import append_to_run as _append_to_run
from ..authoring import WaitForEvent, check_input
from ..errors import (
    InvalidInputError,
)
from ..history import active_descendants, load_state
from ._actors import api_actor
from ._resume import load_recorded_workflow

if TYPE_CHECKING:
    import os

    from smithers.eventstore.events import Actor
    from smithers.projections import NodeRecord, RunState

    from ..authoring import Workflow


from ._decisions import _resume_target
from ._requests import _ROUNDS, SignalResult, _check_name, _check_run, _check_text

__all__ = ("MAX_SIGNAL_PAYLOAD_BYTES", "signal")

MAX_SIGNAL_PAYLOAD_BYTES = DEFAULT_MAX_TASK_OUTPUT_BYTES
"""Default cap on a signal's data as JSON, in bytes (64 MiB): it becomes the output of
the `WaitForEvent` node it resolves, so it has a task output's limit."""


# ---------------------------------------------------------------------- signals


def _target(state: RunState, name: str, correlation_id: str | None) -> NodeRecord | None:
    """The wait a ``SignalReceived`` would resolve now: as the fold chooses (oldest)."""
    return state.signal_target(name, correlation_id)


def _schema_of(wf: Workflow, state: RunState, rec: NodeRecord) -> Any:
    """The `output` schema of the `WaitForEvent` `rec`, from a render of `wf` at `state`.

    Raises:
        InvalidInputError: if the render fails or does not mount the node as a
            `WaitForEvent` (the payload cannot be checked, so it is not recorded).
    """
    try:
        value, _ = check_input(wf, decode_json(state.input) or {})
        plan, _ = render_state(wf, state, value)
    except Exception as e:
        raise InvalidInputError(
            f"Cannot check the signal's payload: the workflow {wf.name!r} does not render "
            f"from the run's state ({type(e).__name__}: {e}).",
            details={"runId": state.run_id, "nodeId": rec.node_id},
            hint=f"See `{shell_command('verify', args=[state.run_id])}`.",
        ) from e
    key = (rec.node_id, rec.iteration)
    for leaf in plan.leaves.values():
        if leaf.key == key and isinstance(leaf.task, WaitForEvent):
            return leaf.task.output
    raise InvalidInputError(
        f"Cannot check the signal's payload: the workflow no longer mounts the "
        f"WaitForEvent {rec.node_id!r} the run waits in.",
        details={"runId": state.run_id, "nodeId": rec.node_id},
        hint=f"See `{shell_command('verify', args=[state.run_id])}`.",
    )


def _payload(data: Any, max_bytes: int) -> bytes:
    """`data` as JSON bytes: a JSON-able value, or ``msgspec.Raw``/bytes holding JSON.

    Strict as task outputs (`encode_json_strict`), and at most `max_bytes` long.
    """
    try:
        if isinstance(data, msgspec.Raw | bytes | bytearray):
            raw = bytes(data) or b"null"
            encode_json_strict(msgspec.json.decode(raw))
        else:
            raw = encode_json_strict(data)
    except JsonValueError as e:
        details: dict[str, Any] = {"errors": e.reason}
        if e.max_depth is not None:
            details["maxDepth"] = e.max_depth
        raise InvalidInputError(
            f"The signal's data cannot be stored: {e.reason}.",
            details=details,
            hint="Pass a JSON value, e.g. --data '{\"ok\": true}'.",
        ) from e
    except RecursionError as e:  # decoding JSON nested far too deep
        raise InvalidInputError(
            f"The signal's data is nested deeper than {MAX_JSON_DEPTH} levels.",
            details={"errors": "nested too deep", "maxDepth": MAX_JSON_DEPTH},
        ) from e
    except (msgspec.DecodeError, msgspec.EncodeError, TypeError) as e:
        raise InvalidInputError(
            f"The signal's data is not JSON: {e}.",
            hint="Pass a JSON value, e.g. --data '{\"ok\": true}'.",
        ) from e
    if len(raw) > max_bytes:
        raise InvalidInputError(
            f"The signal's data is {len(raw):,} bytes of JSON; the limit is {max_bytes:,}. "
            "Nothing was recorded.",
            details={"sizeBytes": len(raw), "maxBytes": max_bytes},
            hint="Send a reference (a path, an id) instead of the data itself.",
        )
    return raw


def _validated(raw: bytes, schema: Any, rec: NodeRecord, name: str) -> bytes:
    """Raise ``INVALID_INPUT`` if `raw` does not fit `schema`; else the canonical JSON."""
    try:
        value = msgspec.json.decode(raw, type=schema)
    except msgspec.ValidationError as e:
        shown = getattr(schema, "__name__", repr(schema))
        raise InvalidInputError(
            f"The {name!r} signal's data does not match the output of {rec.node_id!r} "
            f"({shown}): {e}. Nothing was recorded.",
            details={"nodeId": rec.node_id, "iteration": rec.iteration, "errors": str(e)},
            hint=f"Send data shaped like {shown}.",
        ) from e
    return encode_json(value)


async def signal(
    store: EventStore,
    run_id: str,
    name: str,
    data: Any = None,
    *,
    correlation_id: str | None = None,
    sent_by: str | None = None,
    wf: Workflow | None = None,
    db: str | os.PathLike[str] | None = None,
    clock: Clock | None = None,
    max_bytes: int = MAX_SIGNAL_PAYLOAD_BYTES,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> SignalResult:
    """Send a signal to a run: append ``SignalReceived`` (``smithers signal``).

    The oldest `WaitForEvent` node already waiting for `name` (and for
    `correlation_id`, when the node names one) receives it; when no node of the run
    waits for it, the oldest such wait in its active descendants (`Subflow` child
    runs, recursively: the signal is recorded in that child's log, the result's
    ``run_id``); the payload is first
    validated against that node's ``output`` schema, found by rendering the workflow
    (`wf`, else the file the run recorded, imported here) from the run's state. A
    signal no node waits for is recorded anyway, for audit: it resolves nothing,
    later waits included (``delivered_to`` is None). The append is guarded by
    ``expected_seq``; on a conflict the log is read and the target chosen and checked
    again. The run is not resumed here (see ``parked``). Awaits I/O.

    Args:
        store: The open event store.
        run_id: The run.
        name: The signal's name (a `WaitForEvent`'s ``event``).
        data: The payload: a JSON-able value, or JSON text as bytes/``msgspec.Raw``.
        correlation_id: The sender's correlation id.
        sent_by: Who sends it (recorded as ``sentBy``).
        wf: The run's workflow, to check the payload with; default: the file the run
            recorded (only loaded when a node waits for the signal).
        db: The database path, to extend the run's NDJSON mirror (None: no mirror).
        clock: Time source (tests pass a fake).
        max_bytes: Largest payload accepted, as JSON bytes (default
            `MAX_SIGNAL_PAYLOAD_BYTES`, 64 MiB, as a task's output).
        by: Who sends it, recorded as the event's ``actor``; None:
            ``$SMITHERS_ACTOR``, else the OS user. `sent_by` is recorded as given.
        reason: Why, recorded in the ``actor``.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``): the CLI passes its own.

    Returns:
        A `SignalResult`: the event's seq, the wait it resolved (or None), the run's
        status and whether it is parked with a wait resolved.

    Raises:
        InvalidInputError: ``INVALID_INPUT`` for a bad run id, name or correlation
            id, data that is not JSON, is over `max_bytes` (details ``sizeBytes``,
            ``maxBytes``) or does not fit the waiter's schema, or a
            workflow that cannot be rendered to find that schema; nothing is recorded.
        RunNotFoundError: if the run has no events.
        RunNotResumableError: if a node waits but the run recorded no workflow file
            (started from Python code) and `wf` is not given.
        SeqConflictError: if others kept appending through every attempt (50).
        DatabaseWriteError: on storage failures.
    """
    _check_run(run_id)
    name = _check_name(name, "signal name") or ""
    correlation_id = _check_name(correlation_id, "correlation id", optional=True)
    sent_by = _check_text(sent_by, "sender's name")
    who = api_actor(actor, by=by, reason=reason)
    raw = _payload(data, max_bytes)
    clock = clock or SystemClock()
    conflict: SeqConflictError | None = None
    requested = run_id
    workflows: dict[str, Workflow] = {} if wf is None else {requested: wf}
    for _ in range(_ROUNDS):
        state = await load_state(store, requested)
        rec = _target(state, name, correlation_id)
        if rec is None and state.status not in TERMINAL_RUN_STATUSES:
            found = await _descendant_target(store, requested, name, correlation_id)
            if found is not None:
                state, rec = found
        run_id = state.run_id
        payload = raw
        if rec is not None:
            workflow = workflows.get(run_id)
            if workflow is None:
                workflow, _ = load_recorded_workflow(state)
                workflows[run_id] = workflow
            payload = _validated(raw, _schema_of(workflow, state, rec), rec, name)
        event = SignalReceived(
            run_id=run_id,
            timestamp_ms=clock.now_ms(),
            signal_name=name,
            data=msgspec.Raw(payload),
            correlation_id=correlation_id,
            sent_by=sent_by,
            actor=who,
        )
        log_dir = default_log_dir(Path(db), run_id) if db is not None else None
        try:
            seq = await _append_to_run(
                store, run_id, [event], expected_seq=state.seq, log_dir=log_dir
            )
        except SeqConflictError as e:
            conflict = e
            continue
        status = state.status
        parked, resume_id, queue = False, run_id, None
        if rec is not None:
            parked, resume_id, queue = await _resume_target(store, requested, state)
        return SignalResult(
            run_id=run_id,
            signal_name=name,
            correlation_id=correlation_id,
            seq=seq,
            delivered_to=(rec.node_id, rec.iteration) if rec is not None else None,
            run_status=status,
            parked=parked,
            requested_run_id=requested,
            resume_run_id=resume_id,
            queue=queue if parked else None,
        )
    assert conflict is not None
    raise conflict


async def _descendant_target(
    store: EventStore, run_id: str, name: str, correlation_id: str | None
) -> tuple[RunState, NodeRecord] | None:
    """The descendant wait a signal to `run_id` resolves when no node of `run_id` waits.

    Among `run_id`'s active descendants (tree order), each one's oldest matching
    waiter (`_target`), then the one whose wait began first (``since_ms``); a tie
    goes to the first in tree order. None if no descendant waits for it.
    """
    best: tuple[RunState, NodeRecord] | None = None
    for child in await active_descendants(store, run_id):
        rec = _target(child, name, correlation_id)
        if rec is None or rec.wait is None:
            continue
        if best is None or (best[1].wait is not None and rec.wait.since_ms < best[1].wait.since_ms):
            best = (child, rec)
    return best
