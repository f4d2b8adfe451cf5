"""Reading a run's past (DESIGN §7): its timeline, the tree at a frame, a frame's view.

Nothing here writes: every answer is a replay of the log (plus checkpoints, through
`state_at`). `render_graph` (`_graph`) renders a workflow without running it.

- `timeline`: a run's frames (number, seq, time, tree hash, nodes finished so far), its
  rewinds, and its descendants — forks (runs whose first event is `RunForked` from it,
  ``"replay"`` when they also record `ReplayStarted`) and continuations
  (`RunContinuedAsNew`) — as a tree. One pass over each run's log.
- `tree_at`: the canonical tree the engine rendered at a frame, rebuilt from the
  frames' keyframes and deltas (`_frames`), checked against the frame's `xml_hash`.
- `frame_view`: both, plus the state at that frame (what ``smithers state`` shows).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from smithers.eventstore import decode_event
from smithers.eventstore.events import (
    NULL_RAW,
    ContinuationLoaded,
    FrameCommitted,
    NodeEvent,
    ReplayStarted,
    RetryTaskStarted,
    RunContinuedAsNew,
    RunForked,
    RunRewound,
    TimerCancelled,
)
from smithers.projections import (
    RunState,
    apply_event,
    apply_rewind,
    effective_events,
    fork_state,
)

from .._checkpoints import gc_paused
from .._stores import existing_store
from ..activation import KEYFRAME_INTERVAL, apply_delta, decode_delta, tree_hash
from ..errors import EngineError, RunNotFoundError
from ._state import find_frame, frame_not_found, state_at

if TYPE_CHECKING:
    from smithers.eventstore import EventStore, StoredEvent
    from smithers.eventstore.events import Event
    from smithers.projections import FrameRecord, NodeRecord


__all__ = (
    "FrameView",
    "Timeline",
    "TimelineFrame",
    "TimelineRewind",
    "TimelineWait",
    "frame_view",
    "timeline",
    "tree_at",
)

DbPath = str | os.PathLike[str] | None
_MAX_DEPTH = 1_000
"""Deepest descendant chain followed (a guard against a corrupt, cyclic ancestry)."""


class TimelineWait(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A node that began or stopped waiting (an approval, a signal, a timer)."""

    node_id: str
    iteration: int
    kind: Literal["approval", "event", "timer"]
    """What it waits for: a decision, a signal (`WaitForEvent`), a timer."""
    change: Literal["started", "ended"]
    """``"started"``: it began waiting; ``"ended"``: the wait is over."""
    how: str | None = None
    """For ``"ended"``: ``"granted"``/``"denied"`` (approval), ``"received"``/
    ``"timed-out"`` (signal), ``"fired"``/``"cancelled"`` (timer), else the node's
    new state."""


class TimelineFrame(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One committed frame of a run."""

    frame_no: int
    seq: int
    """Seq of the `FrameCommitted` event."""
    timestamp_ms: int
    """Unix epoch ms when the frame was committed."""
    xml_hash: str
    """SHA-256 of the canonical tree rendered at this frame."""
    finished_count: int
    """Nodes (all iterations) in state ``finished`` in the run's state at this frame."""
    discarded: bool = False
    """True if a later rewind discarded this frame (it stays in the log for audit)."""
    waits: tuple[TimelineWait, ...] = ()
    """Nodes that began or stopped waiting since the previous frame, in log order
    (those recorded after the run's last frame count for the last frame)."""
    iterations: dict[str, int] = msgspec.field(default_factory=dict)
    """The current pass of each loop running at this frame: scoped loop id -> iteration."""


class TimelineRewind(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A `RunRewound` of the run."""

    seq: int
    """Seq of the `RunRewound` event."""
    timestamp_ms: int
    to_frame_no: int
    to_seq: int


class Timeline(msgspec.Struct, kw_only=True, rename="camel"):
    """A run's frames and rewinds, and its descendants, each a `Timeline` too."""

    run_id: str
    status: str
    """The run's status now."""
    workflow_name: str
    kind: Literal["run", "fork", "replay", "continuation"] = "run"
    """How this run came from its parent: ``"run"`` for the root of the timeline."""
    parent_run_id: str | None = None
    parent_frame_no: int | None = None
    """Frame of the parent it started from (for a continuation: the parent's last
    frame before it continued)."""
    parent_seq: int | None = None
    """Seq of the parent's log it started from."""
    branch_label: str | None = None
    frames: list[TimelineFrame] = msgspec.field(default_factory=list)
    """Every frame of the run's own log, in order (a fork's start after its
    `parent_frame_no`)."""
    rewinds: list[TimelineRewind] = msgspec.field(default_factory=list)
    children: list[Timeline] = msgspec.field(default_factory=list)
    """Forks, replays and continuations of this run, oldest first."""


class FrameView(msgspec.Struct, kw_only=True):
    """A run at one frame: the frame, the tree rendered then, and the state then."""

    run_id: str
    frame_no: int
    seq: int
    """Seq of the frame's `FrameCommitted`."""
    timestamp_ms: int
    xml_hash: str
    tree: dict[str, Any] | None
    """The canonical tree, or None if the frame was recorded without one (older logs)."""
    state: RunState
    """The run's state right after the frame was committed."""


# ---------------------------------------------------------------------- trees


async def _frame_event(store: EventStore, run_id: str, seq: int) -> FrameCommitted:
    rows = await store.read(run_id, after_seq=seq - 1, upto_seq=seq)
    event = decode_event(rows[0].type, rows[0].data) if rows else None
    if not isinstance(event, FrameCommitted):
        raise EngineError(
            f"Run {run_id!r} has no frame at seq {seq}: its log changed while being read.",
            details={"runId": run_id, "seq": seq},
        )
    return event


def _equal_hash_start(frames: list[FrameRecord], j: int) -> int:
    i = j
    while i > 0 and frames[i - 1].xml_hash == frames[j].xml_hash:
        i -= 1
    return i


async def _rebuild(
    store: EventStore, run_id: str, frames: list[FrameRecord], event: FrameCommitted
) -> dict[str, Any] | None:
    """The tree of `frames[-1]` (whose event is `event`), from keyframes and deltas.

    Walks back through the effective frames. A run of frames with the same hash has
    the same tree, so it is skipped in one step, looking only at its first frame and
    its first multiple of the keyframe interval (where the engine puts a keyframe
    after a change); so an unchanged tree costs no reads however long it lasted.
    """
    chain: list[list[dict[str, Any]]] = []
    j = len(frames) - 1
    current = event
    while True:
        if current.keyframe != NULL_RAW:
            with gc_paused():
                tree: Any = msgspec.json.decode(current.keyframe)
            break
        if current.delta == NULL_RAW:
            return None  # written before frames carried trees
        chain.append(decode_delta(current.delta))
        j -= 1
        if j < 0:
            return None  # no keyframe in this log (cannot happen for engine-written logs)
        i = _equal_hash_start(frames, j)
        keyed = next(
            (k for k in range(i, j + 1) if frames[k].frame_no % KEYFRAME_INTERVAL == 0), None
        )
        if keyed is not None and keyed != i:
            candidate = await _frame_event(store, run_id, frames[keyed].seq)
            if candidate.keyframe != NULL_RAW:
                current = candidate
                continue
        j = i
        current = await _frame_event(store, run_id, frames[i].seq)
    for ops in reversed(chain):
        tree = apply_delta(tree, ops)
    if not isinstance(tree, dict) or tree_hash(tree) != event.xml_hash:
        raise EngineError(
            f"The tree of frame {event.frame_no} of run {run_id!r} does not match its "
            "recorded hash: the log's frames are inconsistent.",
            details={"runId": run_id, "frameNo": event.frame_no},
        )
    return tree


async def _frame_view(store: EventStore, run_id: str, frame: int) -> FrameView:
    ref = await find_frame(store, run_id, frame)
    if ref is None:
        raise await frame_not_found(store, run_id, frame)
    state = await state_at(store, run_id, seq=ref.seq)
    if not state.frames or state.frames[-1].seq != ref.seq:  # pragma: no cover - a fold ends there
        raise EngineError(
            f"Frame {frame} of run {run_id!r} is not in the state folded up to it.",
            details={"runId": run_id, "frameNo": frame},
        )
    try:
        tree = await _rebuild(store, run_id, state.frames, ref.event)
    except ValueError as e:
        raise EngineError(
            f"The tree of frame {frame} of run {run_id!r} cannot be rebuilt: {e}.",
            details={"runId": run_id, "frameNo": frame},
        ) from e
    return FrameView(
        run_id=run_id,
        frame_no=frame,
        seq=ref.seq,
        timestamp_ms=ref.event.timestamp_ms,
        xml_hash=ref.event.xml_hash,
        tree=tree,
        state=state,
    )


async def frame_view(
    run_id: str, *, frame: int, db: DbPath = None, store: EventStore | None = None
) -> FrameView:
    """Return the run at frame `frame`: the frame, its tree and the state then.

    Awaits reads (a few small ones to find the frame, the nearest checkpoint and the
    events after it, and a few frames to rebuild the tree); writes nothing.

    Args:
        run_id: The run.
        frame: A frame number of the run's own log.
        db: Database path (see `resolve_db_path`); must exist. Ignored with `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).

    Returns:
        A `FrameView`; its `tree` is None for frames recorded without trees.

    Raises:
        RunNotFoundError: if the run does not exist.
        SnapshotNotFoundError: if the run has no frame `frame`.
        EngineError: if the log's frames cannot be rebuilt into the recorded tree.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
    """
    async with existing_store(db, store) as s:
        return await _frame_view(s, run_id, frame)


async def tree_at(
    run_id: str, frame: int, *, db: DbPath = None, store: EventStore | None = None
) -> dict[str, Any] | None:
    """Return the canonical tree the engine rendered at frame `frame` of the run.

    Rebuilt from the nearest keyframe and the deltas after it, and checked against the
    frame's `xml_hash`. Awaits reads (see `frame_view`).

    Args:
        run_id: The run.
        frame: A frame number of the run's own log.
        db: Database path (see `resolve_db_path`); must exist. Ignored with `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).

    Returns:
        The tree as plain JSON values (see `render_graph`), or None if the frame was
        recorded by a version that did not record trees.

    Raises:
        RunNotFoundError: if the run does not exist.
        SnapshotNotFoundError: if the run has no frame `frame`.
        EngineError: if the log's frames cannot be rebuilt into the recorded tree.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
    """
    return (await frame_view(run_id, frame=frame, db=db, store=store)).tree


# ---------------------------------------------------------------------- timeline


def _finished(state: RunState) -> int:
    return sum(1 for rec in state.nodes.values() if rec.state == "finished")


async def _run_timeline(
    store: EventStore, run_id: str
) -> tuple[Timeline, list[tuple[str, int | None, int]]]:
    """One run's frames and rewinds, and its continuations ``(new_run_id, frame, seq)``."""
    rows: list[StoredEvent] = await store.read(run_id)
    if not rows:
        raise RunNotFoundError(run_id)
    with gc_paused():
        decoded = [(row.seq, decode_event(row.type, row.data)) for row in rows]
        pairs = [(seq, e) for seq, e in decoded if e is not None]  # unknown types skipped
    first = pairs[0][1] if pairs else None
    state = RunState(run_id=run_id)
    if isinstance(first, RunForked):
        parent = await state_at(store, first.parent_run_id, seq=first.parent_seq)
        state = fork_state(parent, first, run_id=run_id)
    # The states rewinds go back to: read first, so the pass below does no I/O.
    targets = {
        e.to_seq: await state_at(store, run_id, seq=e.to_seq)
        for _, e in pairs
        if isinstance(e, RunRewound)
    }
    out = Timeline(run_id=run_id, status="pending", workflow_name="")
    with gc_paused():
        state, continuations = _one_pass(state, pairs, targets, out)
    if out.rewinds:
        kept = {seq for seq, _ in effective_events(pairs)}
        out.frames = [
            f if f.seq in kept else msgspec.structs.replace(f, discarded=True) for f in out.frames
        ]
    out.status = state.status
    out.workflow_name = state.workflow_name
    if isinstance(first, RunForked):
        replayed = any(isinstance(e, ReplayStarted) for _, e in pairs[:3])
        out.kind = "replay" if replayed else "fork"
        out.parent_run_id = first.parent_run_id
        out.parent_frame_no = first.parent_frame_no
        out.parent_seq = first.parent_seq
        out.branch_label = first.branch_label
    return out, continuations


def _one_pass(
    state: RunState,
    pairs: list[tuple[int, Event]],
    targets: dict[int, RunState],
    out: Timeline,
) -> tuple[RunState, list[tuple[str, int | None, int]]]:
    """Fold `pairs` into `state`, recording frames and rewinds in `out`. No I/O."""
    finished = _finished(state)
    continuations: list[tuple[str, int | None, int]] = []
    last_frame: int | None = None
    waits: list[TimelineWait] = []  # since the previous frame
    for seq, event in pairs:
        if isinstance(event, RunRewound):
            state = apply_rewind(state, event, seq=seq, target=targets[event.to_seq])
            out.rewinds.append(
                TimelineRewind(
                    seq=seq,
                    timestamp_ms=event.timestamp_ms,
                    to_frame_no=event.to_frame_no,
                    to_seq=event.to_seq,
                )
            )
            finished = _finished(state)
            continue
        # Counted incrementally: one event changes one node, except a retry's reset.
        key = None
        if isinstance(event, NodeEvent) and not isinstance(event, RetryTaskStarted):
            key = (event.node_id, event.iteration)
            before = state.nodes.get(key)
            finished -= before is not None and before.state == "finished"
        apply_event(state, event, seq=seq)
        if key is not None:
            after = state.nodes.get(key)
            finished += after is not None and after.state == "finished"
            change = _wait_change(before, after)
            if change is not None:
                waits.append(change)
        elif isinstance(event, RetryTaskStarted):
            finished = _finished(state)
        elif isinstance(event, FrameCommitted):
            last_frame = event.frame_no
            out.frames.append(
                TimelineFrame(
                    frame_no=event.frame_no,
                    seq=seq,
                    timestamp_ms=event.timestamp_ms,
                    xml_hash=event.xml_hash,
                    finished_count=finished,
                    waits=tuple(waits),
                    iterations={
                        lid: rec.iteration for lid, rec in state.loops.items() if not rec.finished
                    },
                )
            )
            waits = []
        elif isinstance(event, RunContinuedAsNew):
            continuations.append((event.new_run_id, last_frame, seq))
        elif isinstance(event, TimerCancelled):
            # The run ended (or the node unmounted) while its timer was pending.
            for rec in state.nodes.values():
                if rec.timer is not None and rec.timer.timer_id == event.timer_id:
                    if rec.state == "waiting-timer":
                        waits.append(
                            TimelineWait(
                                node_id=rec.node_id,
                                iteration=rec.iteration,
                                kind="timer",
                                change="ended",
                                how="cancelled",
                            )
                        )
                    break
    if waits and out.frames:
        last = out.frames[-1]
        out.frames[-1] = msgspec.structs.replace(last, waits=(*last.waits, *waits))
    return state, continuations


_WAIT_KINDS: dict[str, Literal["approval", "event", "timer"]] = {
    "waiting-approval": "approval",
    "waiting-event": "event",
    "waiting-timer": "timer",
}


def _wait_change(before: NodeRecord | None, after: NodeRecord | None) -> TimelineWait | None:
    """Whether one event made a node begin or stop waiting, and how. Pure."""
    was = _WAIT_KINDS.get(before.state) if before is not None else None
    now = _WAIT_KINDS.get(after.state) if after is not None else None
    if now is not None and was is None:
        assert after is not None
        return TimelineWait(
            node_id=after.node_id, iteration=after.iteration, kind=now, change="started"
        )
    if was is None or now is not None or after is None:
        return None
    how: str = after.state
    if was == "timer" and after.timer is not None and after.timer.state != "pending":
        how = after.timer.state
    elif was == "approval" and after.approval is not None and after.approval.decision:
        how = after.approval.decision
    elif was == "event" and after.wait is not None:
        how = "received" if after.wait.received else "timed-out"
    return TimelineWait(
        node_id=after.node_id, iteration=after.iteration, kind=was, change="ended", how=how
    )


async def _forks_by_parent(store: EventStore) -> dict[str, list[str]]:
    """Every run whose first event is `RunForked`, grouped by parent, oldest first."""
    out: dict[str, list[str]] = {}
    for record in reversed(await store.list_runs()):
        rows = await store.read(record.run_id, upto_seq=1)
        if rows and rows[0].type == RunForked.__name__:
            event = decode_event(rows[0].type, rows[0].data)
            if isinstance(event, RunForked):
                out.setdefault(event.parent_run_id, []).append(record.run_id)
    return out


async def _ancestor(store: EventStore, run_id: str) -> str | None:
    """The run `run_id` continues (continue-as-new) or was forked from, else None."""
    for row in await store.read(run_id, upto_seq=3):
        event = decode_event(row.type, row.data)
        if isinstance(event, ContinuationLoaded):
            return event.from_run_id
        if isinstance(event, RunForked):
            return event.parent_run_id
    return None


async def timeline(
    run_id: str,
    *,
    db: DbPath = None,
    store: EventStore | None = None,
    follow_ancestry: bool = False,
) -> Timeline:
    """Return the run's timeline: its frames and rewinds, and its descendants as a tree.

    Each run's log is read once (no fold per frame); finding forks reads the first
    event of every run in the database. Awaits reads; writes nothing.

    Args:
        run_id: The run.
        db: Database path (see `resolve_db_path`); must exist. Ignored with `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).
        follow_ancestry: Start from the first ancestor of the run instead: the run it
            continues (continue-as-new) or was forked from, and so on back to the first
            run; the returned tree then holds the whole chain.

    Returns:
        A `Timeline` whose `children` are the run's forks, replays and continuations,
        each with its own frames and children.

    Raises:
        RunNotFoundError: if the run does not exist.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> tl = await timeline("run-lx2k3j-1a2b3c")  # doctest: +SKIP
        >>> [(f.frame_no, f.finished_count) for f in tl.frames]  # doctest: +SKIP
        [(0, 0), (1, 1), (2, 2)]
    """
    async with existing_store(db, store) as s:
        if follow_ancestry:
            chain = {run_id}
            while (up := await _ancestor(s, run_id)) is not None and up not in chain:
                if len(chain) > _MAX_DEPTH or await s.last_seq(up) == 0:
                    break
                chain.add(up)
                run_id = up
        forks = await _forks_by_parent(s)
        seen: set[str] = set()

        async def build(rid: str, depth: int) -> Timeline:
            seen.add(rid)
            node, continuations = await _run_timeline(s, rid)
            if depth >= _MAX_DEPTH:
                return node
            for child in forks.get(rid, []):
                if child not in seen:
                    node.children.append(await build(child, depth + 1))
            for child, frame_no, seq in continuations:
                if child in seen or await s.last_seq(child) == 0:
                    continue
                sub = await build(child, depth + 1)
                sub.kind = "continuation"
                sub.parent_run_id = rid
                sub.parent_frame_no = frame_no
                sub.parent_seq = seq
                node.children.append(sub)
            return node

        return await build(run_id, 0)
