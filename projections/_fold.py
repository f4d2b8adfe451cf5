"""Folding a run's log into its `RunState`, rewinds included (DESIGN §5, §7).

Time travel is plain replay of the log. A `RunRewound{to_seq}` recorded at seq R means:
from R on, the run's state is its state at `to_seq`, and the events after R apply on
top. "The state at seq S" always means the fold of the log's first S events with these
semantics, so a rewind may target a seq after an earlier rewind, or one inside history
an earlier rewind discarded. Discarded events stay in the log for audit.

So the events that count (`effective_events`) form a path back through the log: from
the last event, step to the previous row, except at a rewind, where the step goes to
the last row at or before its `to_seq`. Folding that path is the whole fold; nothing is
recomputed per rewind and only the rows on the path are decoded.

Folding updates a state in place (`apply_event`, in `_apply.py`): its fields and its
`nodes`/`frames` containers change, while the records they hold are frozen Structs,
replaced on change and never mutated. Each event costs O(1) whatever the run's size;
a fold that copied the whole state per event would make long runs quadratic. The
functions here start from a new state, a copy of `base`, or the `state` they are
given, which they continue in place.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

from smithers.eventstore import decode_event
from smithers.eventstore.errors import InvalidArgumentError
from smithers.eventstore.events import FrameCommitted, RunRewound

from ._apply import apply_event
from ._run_state import RunState
from .errors import InvalidRewindError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from smithers.eventstore import StoredEvent
    from smithers.eventstore.events import Event

__all__ = ("apply_rewind", "effective_events", "fold", "fold_stored")

_REWOUND = RunRewound.__name__
_FRAME = FrameCommitted.__name__


def _effective_path(
    seqs: Sequence[int],
    rewind_to: Callable[[int], tuple[str, int] | None],
    *,
    start_seq: int,
) -> list[int]:
    """Indices (into `seqs`) of the rows that count, in log order.

    `rewind_to(i)` is ``(run_id, to_seq)`` if row i is a `RunRewound`, else None. It is
    called only for rows on the path, so discarded rewinds are never decoded.
    """
    path: list[int] = []
    i = len(seqs) - 1
    while i >= 0:
        path.append(i)
        rewind = rewind_to(i)
        if rewind is None:
            i -= 1
            continue
        run_id, to_seq = rewind
        seq = seqs[i]
        if not start_seq <= to_seq < seq:
            raise InvalidRewindError(run_id, seq=seq, to_seq=to_seq, start_seq=start_seq)
        # The state at `to_seq` is the state after the last row at or before it (the
        # start state if there is none).
        i = bisect_right(seqs, to_seq, 0, i) - 1
    path.reverse()
    return path


def effective_events(
    rows: Sequence[tuple[int, Event]], *, start_seq: int = 0
) -> list[tuple[int, Event]]:
    """Return the ``(seq, event)`` pairs of `rows` that count for the run's state.

    Each `RunRewound` kept is followed only by what was recorded after it; what it
    rewound over is left out, as are rewinds it discarded. The last row always counts,
    and folding the result equals folding `rows` (except `RunState.next_frame_no`,
    which counts the discarded frames too). The result's own effective events are
    itself. Does no I/O.

    Args:
        rows: A run's log or a slice of it, seqs strictly increasing (as the store
            returns them); gaps are allowed, so an effective list can be passed again.
        start_seq: The seq of the state the rows continue (0 for the whole log). A
            rewind to ``start_seq`` goes back to that state.

    Returns:
        A new list of pairs from `rows`, in order.

    Raises:
        InvalidRewindError: if a rewind that counts targets a seq not before its own,
            or before `start_seq`.
    """

    def rewind_to(i: int) -> tuple[str, int] | None:
        event = rows[i][1]
        return (event.run_id, event.to_seq) if isinstance(event, RunRewound) else None

    if not any(isinstance(event, RunRewound) for _, event in rows):
        return list(rows)
    path = _effective_path([seq for seq, _ in rows], rewind_to, start_seq=start_seq)
    return [rows[i] for i in path]


def _start(run_id: str, state: RunState | None, base: RunState | None) -> RunState:
    if state is not None and base is not None:
        raise InvalidArgumentError("pass `state` (continued in place) or `base` (copied), not both")
    if base is not None:
        if base.run_id != run_id:
            raise InvalidArgumentError(
                f"base is a state of run {base.run_id!r}, not of {run_id!r}; "
                "for a fork pass fork_state(parent, forked, run_id=...)"
            )
        return base.copy()
    return state if state is not None else RunState(run_id=run_id)


def fold(
    run_id: str,
    events: Iterable[tuple[int, Event]],
    *,
    state: RunState | None = None,
    base: RunState | None = None,
) -> RunState:
    """Fold ``(seq, event)`` pairs into a `RunState`, rewinds included. Does no I/O.

    The result is the fold of `effective_events` of the pairs, with `seq` the last
    pair's seq and `next_frame_no` counting every frame of the pairs, discarded or not.
    The events are applied in place to one state (see the module docstring): `state`
    when given, else a new one or a copy of `base`.

    Args:
        run_id: The run's id (used for a new state; must match `base`).
        events: The run's events in seq order (seqs strictly increasing).
        state: A state to continue in place (the pairs follow its `seq`), e.g. one
            decoded from a checkpoint. Rewinds may not go back before its seq.
        base: The state before the first pair, copied, never modified; for a forked
            run, ``fork_state(parent, forked, run_id=run_id)``.

    Returns:
        `state` if given, else a new `RunState`.

    Raises:
        InvalidRewindError: if a rewind that counts targets a seq not before its own,
            or before the seq of `state`/`base`.
        ValueError: if both `state` and `base` are given, or `base` is another run's.
    """
    s = _start(run_id, state, base)
    rows: Sequence[tuple[int, Event]] = events if isinstance(events, list | tuple) else list(events)
    if any(isinstance(event, RunRewound) for _, event in rows):
        next_frame_no = max(
            (e.frame_no + 1 for _, e in rows if isinstance(e, FrameCommitted)), default=0
        )
        rows = effective_events(rows, start_seq=s.seq)
        s.next_frame_no = max(s.next_frame_no, next_frame_no)
    for seq, event in rows:
        apply_event(s, event, seq=seq)
    return s


def fold_stored(
    run_id: str,
    stored: Iterable[StoredEvent],
    *,
    state: RunState | None = None,
    base: RunState | None = None,
) -> RunState:
    """Decode stored events and fold them, as `fold`. Does no I/O.

    Unknown event types are skipped (`seq` still advances). Rows a rewind discarded
    are not decoded, except frames (for `next_frame_no`). A forked run's log starts
    with `RunForked`: fold the parent's log up to its `parent_seq` first and pass
    ``base=fork_state(parent_state, forked, run_id=run_id)``; without a base the fork's
    state has its ancestry but not the parent's nodes.

    Args:
        run_id: The run's id (used for a new state; must match `base`).
        stored: The run's rows in seq order, e.g. from `EventStore.read`.
        state: A state to continue in place (the rows follow its `seq`), e.g. one
            decoded from a checkpoint. Rewinds may not go back before its seq.
        base: The state before the first row, copied, never modified (see above).

    Returns:
        `state` if given, else a new `RunState`.

    Raises:
        msgspec.DecodeError: if a stored event of a known type is malformed.
        InvalidRewindError: if a rewind that counts targets a seq not before its own,
            or before the seq of `state`/`base`.
        ValueError: if both `state` and `base` are given, or `base` is another run's.
    """
    s = _start(run_id, state, base)
    rows: Sequence[StoredEvent] = stored if isinstance(stored, list | tuple) else list(stored)
    if any(row.type == _REWOUND for row in rows):

        def rewind_to(i: int) -> tuple[str, int] | None:
            row = rows[i]
            if row.type != _REWOUND:
                return None
            event = decode_event(row.type, row.data)
            return (row.run_id, event.to_seq) if isinstance(event, RunRewound) else None

        path = _effective_path([row.seq for row in rows], rewind_to, start_seq=s.seq)
        for row in rows:
            if row.type == _FRAME:
                frame = decode_event(row.type, row.data)
                if isinstance(frame, FrameCommitted):
                    s.next_frame_no = max(s.next_frame_no, frame.frame_no + 1)
        rows = [rows[i] for i in path]
    for row in rows:
        event = decode_event(row.type, row.data)
        if event is None:
            s.seq = row.seq
            continue
        apply_event(s, event, seq=row.seq)
    return s


def apply_rewind(state: RunState, event: RunRewound, *, seq: int, target: RunState) -> RunState:
    """Return the state after a `RunRewound` recorded at `seq`: the live step. No I/O.

    The engine keeps its state with `apply_event`, which cannot rewind. After
    appending a rewind, it folds the log (or a checkpoint and the rows after it) up to
    `event.to_seq` and continues from this function's result. Equal to folding the log
    up to `seq`.

    Args:
        state: The state at ``seq - 1`` (not modified); only its `next_frame_no` is
            used, as frame numbers are never reused.
        event: The rewind.
        seq: The seq it was recorded at.
        target: The state at `event.to_seq` (not modified).

    Returns:
        A new `RunState` at `seq`: `target`'s history, `rewinds` + 1.

    Raises:
        InvalidRewindError: if `event.to_seq` is not before `seq`.
        ValueError: if `target` is another run's state than `state`, or is past
            `event.to_seq`.
    """
    if target.run_id != state.run_id:
        raise InvalidArgumentError(
            f"target is a state of run {target.run_id!r}, not {state.run_id!r}"
        )
    if event.to_seq >= seq:
        raise InvalidRewindError(state.run_id, seq=seq, to_seq=event.to_seq, start_seq=0)
    if target.seq > event.to_seq:
        raise InvalidArgumentError(
            f"target is the state at seq {target.seq}, past to_seq {event.to_seq}"
        )
    s = target.copy()
    s.next_frame_no = max(s.next_frame_no, state.next_frame_no)
    return apply_event(s, event, seq=seq)
