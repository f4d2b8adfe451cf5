"""Rebuilding a run's state from its log (the read side of every engine operation).

A forked run's log starts with `RunForked`: its state is the parent's state at
`parent_seq` (rebuilt the same way, recursively) with the reset nodes pending, then the
child's own events. Rewinds inside a log are handled by the fold (`fold_stored`).

It starts from the nearest checkpoint at or before the wanted seq when there is one
(`smithers.engine._checkpoints`) and folds only the rows after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.eventstore import decode_event
from smithers.eventstore.errors import InvalidArgumentError
from smithers.eventstore.events import FrameCommitted, RunForked
from smithers.projections import RunState, fold_stored, fork_state

from .._checkpoints import gc_paused, nearest_checkpoint
from ..errors import RunNotFoundError, SnapshotNotFoundError

if TYPE_CHECKING:
    from smithers.eventstore import EventStore, StoredEvent

__all__ = (
    "AUDIT_STREAM_ID",
    "SUPERVISOR_STREAM_ID",
    "FrameRef",
    "find_frame",
    "frame_not_found",
    "frame_range",
    "load_state",
    "state_at",
)

SUPERVISOR_STREAM_ID = "supervisor"
"""Stream (``run_id`` column) of the supervisor's own events: not a run.

`list_runs`, `down` and the supervisor skip it; `run_workflow` refuses it as a run id.
"""

AUDIT_STREAM_ID = "_audit"
"""Stream of the database's own operations that no run can hold (``gc``'s `RunsDeleted`).

Not a run: `list_runs` skips it; ``gc`` never deletes it.
"""

_MAX_ANCESTRY = 1_000
"""Deepest fork chain followed (a guard against a corrupt, cyclic ancestry)."""
_FRAME = FrameCommitted.__name__
_PROBE_ROWS = 64
"""Rows read per probe when looking for a frame (doubled while none is found)."""


async def load_state(
    store: EventStore, run_id: str, *, upto_seq: int | None = None, _depth: int = 0
) -> RunState:
    """Fold the run's log (up to `upto_seq`) into its `RunState`. Awaits reads.

    Starts from the nearest checkpoint when there is one (see `state_at`).

    Raises:
        RunNotFoundError: if the run has no events (up to `upto_seq`), or a fork's parent
            is missing.
    """
    return await _fold_upto(store, run_id, upto_seq, _depth)


async def state_at(
    store: EventStore, run_id: str, *, seq: int | None = None, frame: int | None = None
) -> RunState:
    """Return the run's state at a past moment: after event `seq`, or at frame `frame`.

    The state at frame N is the state right after its `FrameCommitted` was recorded
    (what the engine held when it committed the frame). It is the fold of the log up
    to that point, rewinds and fork ancestry included, computed as the nearest
    checkpoint plus the rows after it; without checkpoints, or if one fails to decode,
    the whole log is folded, with the same result. Awaits reads; writes nothing.

    Args:
        store: The open event store.
        run_id: The run.
        seq: A seq of the run's log (>= 1); a seq past its end means its end.
        frame: A frame number of the run (as `FrameCommitted.frame_no`). A fork's
            frames start after its `parent_frame_no`; earlier ones are the parent's.
        Neither: the run's current state.

    Returns:
        A new `RunState` (the caller may keep and mutate it).

    Raises:
        ValueError: if both `seq` and `frame` are given, or `seq` < 1.
        RunNotFoundError: if the run has no events, or a fork's parent is missing.
        SnapshotNotFoundError: if the run has no frame `frame` (the message gives the
            run's frame range).

    Example:
        >>> state = await state_at(store, run_id, frame=3)  # doctest: +SKIP
        >>> state.frames[-1].frame_no, state.counts()  # doctest: +SKIP
        (3, {'finished': 2, 'pending': 1})
    """
    if seq is not None and frame is not None:
        raise InvalidArgumentError("Pass seq or frame, not both.")
    if seq is not None and seq < 1:
        raise InvalidArgumentError(f"seq must be >= 1, got {seq}.")
    if frame is not None:
        found = await find_frame(store, run_id, frame)
        if found is None:
            raise await frame_not_found(store, run_id, frame)
        seq = found.seq
    return await _fold_upto(store, run_id, seq, 0)


async def _fold_upto(store: EventStore, run_id: str, upto: int | None, depth: int) -> RunState:
    last = await store.last_seq(run_id)
    if last == 0:
        raise RunNotFoundError(run_id)
    upto = last if upto is None else min(upto, last)
    state, rows = await nearest_checkpoint(store, run_id, upto)
    if state is not None:
        with gc_paused():
            return fold_stored(run_id, rows, state=state)
    rows = await store.read(run_id, upto_seq=upto)
    if not rows:
        raise RunNotFoundError(run_id)
    base = None
    first = decode_event(rows[0].type, rows[0].data)
    if isinstance(first, RunForked) and depth < _MAX_ANCESTRY:
        parent = await _fold_upto(store, first.parent_run_id, first.parent_seq, depth + 1)
        base = fork_state(parent, first, run_id=run_id)
    with gc_paused():
        return fold_stored(run_id, rows, base=base)


# ---------------------------------------------------------------------- frames


class FrameRef:
    """Where a frame is in a run's log: its number, seq and event."""

    __slots__ = ("event", "frame_no", "seq")

    def __init__(self, frame_no: int, seq: int, event: FrameCommitted) -> None:
        self.frame_no = frame_no
        self.seq = seq
        self.event = event


def _frame_in(row: StoredEvent) -> FrameRef | None:
    if row.type != _FRAME:
        return None
    event = decode_event(row.type, row.data)
    return FrameRef(event.frame_no, row.seq, event) if isinstance(event, FrameCommitted) else None


async def _first_frame_from(store: EventStore, run_id: str, seq: int, last: int) -> FrameRef | None:
    """The first frame at or after `seq`, or None."""
    after = seq - 1
    width = _PROBE_ROWS
    while after < last:
        for row in await store.read(run_id, after_seq=after, upto_seq=after + width):
            ref = _frame_in(row)
            if ref is not None:
                return ref
        after += width
        width *= 2
    return None


async def find_frame(store: EventStore, run_id: str, frame_no: int) -> FrameRef | None:
    """Find the `FrameCommitted` of frame `frame_no` in the run's own log. Awaits reads.

    Frame numbers strictly increase along a run's log (they are never reused, even
    after a rewind), so this searches seqs, reading a few rows per probe: probes
    alternate between interpolating (frames are spread about evenly, so a handful of
    probes usually suffice) and bisecting (so never more than about 2 log2(n)).

    Returns:
        The frame's number, seq and event, or None if the log has no such frame.
    """
    last = await store.last_seq(run_id)
    lo, hi = 1, last  # the frame, if it exists, has lo <= seq <= hi
    below: tuple[int, int] = (0, -1)  # (seq, frame_no) of a point before it
    above: tuple[int, int] | None = None  # (seq, frame_no) of a frame after it
    step = 0
    while lo <= hi:
        mid = (lo + hi) // 2
        if step % 2 == 0 and above is not None and above[1] > below[1]:
            span = (above[0] - below[0]) * (frame_no - below[1]) // (above[1] - below[1])
            mid = min(hi, max(lo, below[0] + span))
        step += 1
        ref = await _first_frame_from(store, run_id, mid, hi)
        if ref is None or ref.frame_no > frame_no:
            hi = mid - 1
            if ref is not None:
                above = (ref.seq, ref.frame_no)
        elif ref.frame_no == frame_no:
            return ref
        else:
            lo = ref.seq + 1
            below = (ref.seq, ref.frame_no)
    return None


async def frame_range(store: EventStore, run_id: str) -> tuple[int, int] | None:
    """Return the first and last frame numbers of the run's own log; None if it has none.

    Awaits reads.
    """
    last = await store.last_seq(run_id)
    first = await _first_frame_from(store, run_id, 1, last)
    if first is None:
        return None
    upto, width = last, _PROBE_ROWS
    while upto > 0:
        rows = await store.read(run_id, after_seq=max(0, upto - width), upto_seq=upto)
        for row in reversed(rows):
            ref = _frame_in(row)
            if ref is not None:
                return first.frame_no, ref.frame_no
        upto -= width
        width *= 2
    return first.frame_no, first.frame_no  # pragma: no cover - `first` is in the log


async def frame_not_found(store: EventStore, run_id: str, frame_no: int) -> Exception:
    if await store.last_seq(run_id) == 0:
        return RunNotFoundError(run_id)
    return SnapshotNotFoundError(run_id, frame_no, await frame_range(store, run_id))
