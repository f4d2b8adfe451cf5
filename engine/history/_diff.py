"""Diffs of a run's state: between two frames of a run, or between two runs (issue 8).

`diff_runs` compares two points of history, each a run at a frame (or its latest
state): a fork against its parent, a replay against the original, a run at frame 3
against itself at frame 9. It reports

- the run's status and input, when they differ (the input as a JSON diff);
- nodes, keyed by ``(node_id, iteration)``: added (only on the second side), removed
  (only on the first), changed (their state or their output differs; the output as a
  JSON diff).

Nothing here writes; every side is a replay of the log (plus checkpoints).

A JSON diff is a list of `JsonChange`: ``{"path": "$.items[2].name", "op": "changed",
"old": "a", "new": "b"}``; objects are compared key by key, lists item by item by
position, scalars by JSON equality (``1`` differs from ``1.0`` and from ``true``).
Paths use the frames' dialect (`smithers.engine.activation.format_path`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from smithers.eventstore import decode_event
from smithers.eventstore.events import NULL_RAW, RunForked

from .._stores import existing_store
from ..activation import canonical_json, format_path
from ..errors import InvalidInputError, RunNotFoundError
from ._state import find_frame, frame_not_found, load_state, state_at

if TYPE_CHECKING:
    from smithers.eventstore import EventStore
    from smithers.projections import NodeRecord, RunState

__all__ = ("DiffSide", "JsonChange", "NodeDiff", "RunDiff", "diff_runs", "json_diff")

DbPath = str | os.PathLike[str] | None
PathPart = str | int
_MAX_ANCESTRY = 1_000
"""Deepest fork chain followed to find a frame (a guard against a corrupt ancestry)."""


class JsonChange(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One difference between two JSON values."""

    path: str
    """Where, from the root ``$`` (``$.items[2].name``)."""
    op: Literal["added", "removed", "changed"]
    """``added``: only the new value has it; ``removed``: only the old; ``changed``: both,
    with different values."""
    old: Any = None
    """The old value (None when `op` is ``added``)."""
    new: Any = None
    """The new value (None when `op` is ``removed``)."""


class NodeDiff(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """How one node (one iteration) differs between the two sides."""

    node_id: str
    iteration: int
    change: Literal["added", "removed", "changed"]
    """``added``: only on side b; ``removed``: only on side a; ``changed``: on both, with
    a different state or output."""
    state_a: str | None
    """The node's state on side a (None when `change` is ``added``)."""
    state_b: str | None
    """The node's state on side b (None when `change` is ``removed``)."""
    output: list[JsonChange] = msgspec.field(default_factory=list)
    """JSON diff of the node's output, a to b (a missing output counts as absent, so a
    node that finished on one side only has one ``$`` change); empty if equal."""


class DiffSide(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One side of a diff: a run at a frame, or at its latest event."""

    run_id: str
    frame_no: int | None
    """The frame compared, None for the run's latest state."""
    seq: int
    """Seq of the last event folded (for a frame an ancestor recorded, the ancestor's)."""
    source_run_id: str
    """The run whose log holds that frame: `run_id`, or the ancestor a fork inherited it
    from (a fork's frames up to its `parentFrameNo` are its parent's)."""
    status: str
    """The run's status at that point."""


class RunDiff(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What changed from side `a` to side `b` (see the module docstring)."""

    a: DiffSide
    b: DiffSide
    status: tuple[str, str] | None = None
    """``(status on a, status on b)`` when they differ, else None."""
    input: list[JsonChange] = msgspec.field(default_factory=list)
    """JSON diff of the run's input, a to b; empty if equal."""
    nodes: list[NodeDiff] = msgspec.field(default_factory=list)
    """Nodes added, removed or changed, in the order side a mounted them, then the ones
    only side b has, in its order."""

    @property
    def empty(self) -> bool:
        """True when the two sides have the same status, input, node states and outputs."""
        return self.status is None and not self.input and not self.nodes


# ---------------------------------------------------------------------- JSON diff


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict | list):
        return canonical_json(a) == canonical_json(b)
    return bool(a == b) or (isinstance(a, float) and a != a and b != b)  # NaN is itself


def json_diff(old: Any, new: Any) -> list[JsonChange]:
    """Return the differences between two JSON values, in document order. No I/O.

    Args:
        old: A JSON value (dicts, lists, str, int, float, bool, None).
        new: Another.

    Returns:
        A list of `JsonChange` (``[]`` if the values are JSON-equal): objects key by
        key (keys of `old` first, in its order, then keys only `new` has), lists item by
        item by position (extra items are ``added`` or ``removed``).

    Example:
        >>> [(c.path, c.op) for c in json_diff({"n": 1, "a": [1]}, {"n": 2, "a": [1, 2]})]
        [('$.n', 'changed'), ('$.a[1]', 'added')]
    """
    out: list[JsonChange] = []
    stack: list[tuple[Any, Any, tuple[PathPart, ...]]] = [(old, new, ())]
    while stack:  # iterative: deep JSON must not hit the recursion limit
        a, b, path = stack.pop()
        if _same(a, b):
            continue
        here: list[tuple[Any, Any, tuple[PathPart, ...]]] = []
        if isinstance(a, dict) and isinstance(b, dict):
            for key, value in a.items():
                if key in b:
                    here.append((value, b[key], (*path, key)))
                else:
                    here.append((value, _ABSENT, (*path, key)))
            here.extend((_ABSENT, value, (*path, key)) for key, value in b.items() if key not in a)
        elif isinstance(a, list) and isinstance(b, list):
            for i in range(max(len(a), len(b))):
                here.append(
                    (a[i] if i < len(a) else _ABSENT, b[i] if i < len(b) else _ABSENT, (*path, i))
                )
        elif a is _ABSENT:
            out.append(JsonChange(path=format_path(path), op="added", new=b))
            continue
        elif b is _ABSENT:
            out.append(JsonChange(path=format_path(path), op="removed", old=a))
            continue
        else:
            out.append(JsonChange(path=format_path(path), op="changed", old=a, new=b))
            continue
        stack.extend(reversed(here))
    return out


class _Absent:
    """Marks a key or item one side does not have."""

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def _decode(raw: msgspec.Raw) -> Any:
    return None if raw == NULL_RAW else msgspec.json.decode(raw)


def _output(rec: NodeRecord) -> Any:
    return _decode(rec.output) if rec.has_output else _ABSENT


def _node_diff(a: NodeRecord | None, b: NodeRecord | None) -> NodeDiff | None:
    if a is None and b is None:  # pragma: no cover - keys come from one side or the other
        return None
    if a is None or b is None:
        rec = a if a is not None else b
        assert rec is not None
        return NodeDiff(
            node_id=rec.node_id,
            iteration=rec.iteration,
            change="removed" if b is None else "added",
            state_a=a.state if a is not None else None,
            state_b=b.state if b is not None else None,
        )
    if a.state == b.state and a.has_output == b.has_output and a.output == b.output:
        return None
    output = json_diff(_output(a), _output(b))
    if a.state == b.state and not output:
        return None  # the same JSON, written differently
    return NodeDiff(
        node_id=a.node_id,
        iteration=a.iteration,
        change="changed",
        state_a=a.state,
        state_b=b.state,
        output=output,
    )


def _diff_states(a: RunState, b: RunState, side_a: DiffSide, side_b: DiffSide) -> RunDiff:
    """Return the `RunDiff` of two folded states (`side_a`/`side_b` describe them). No I/O."""
    nodes: list[NodeDiff] = []
    for key, rec in a.nodes.items():
        d = _node_diff(rec, b.nodes.get(key))
        if d is not None:
            nodes.append(d)
    for key, rec in b.nodes.items():
        if key not in a.nodes:
            d = _node_diff(None, rec)
            if d is not None:
                nodes.append(d)
    inputs = [] if a.input == b.input else json_diff(_decode(a.input), _decode(b.input))
    return RunDiff(
        a=side_a,
        b=side_b,
        status=None if a.status == b.status else (a.status, b.status),
        input=inputs,
        nodes=nodes,
    )


# ---------------------------------------------------------------------- sides


async def _side(store: EventStore, run_id: str, frame: int | None) -> tuple[RunState, DiffSide]:
    """The run's state at `frame` (its latest without one), and how to describe it.

    A frame a fork inherited from its parent (at or before its `parent_frame_no`) is
    looked up in the parent's log, and so on up the ancestry.
    """
    if frame is None:
        state = await load_state(store, run_id)
        side = DiffSide(
            run_id=run_id,
            frame_no=None,
            seq=state.seq,
            source_run_id=run_id,
            status=state.status,
        )
        return state, side
    source = run_id
    for _ in range(_MAX_ANCESTRY):
        ref = await find_frame(store, source, frame)
        if ref is not None:
            state = await state_at(store, source, seq=ref.seq)
            side = DiffSide(
                run_id=run_id,
                frame_no=frame,
                seq=ref.seq,
                source_run_id=source,
                status=state.status,
            )
            return state, side
        rows = await store.read(source, upto_seq=1)
        if not rows:
            raise RunNotFoundError(source)
        first = decode_event(rows[0].type, rows[0].data)
        if not isinstance(first, RunForked) or first.parent_frame_no < frame:
            break
        source = first.parent_run_id
    raise await frame_not_found(store, run_id, frame)


async def diff_runs(
    run_id: str,
    other: str | None = None,
    *,
    from_frame: int | None = None,
    to_frame: int | None = None,
    frame: int | None = None,
    db: DbPath = None,
    store: EventStore | None = None,
) -> RunDiff:
    """Return what changed between two points of history (see the module docstring).

    Side a is `run_id` at `from_frame` (else `frame`, else its latest state); side b
    is `other` (default: `run_id` again) at `to_frame` (else `frame`, else its latest
    state). So ``diff_runs(r, from_frame=3, to_frame=9)`` is a run between two of its
    frames, ``diff_runs(fork_id, parent_id)`` a fork against its parent now, and
    ``diff_runs(a, b, frame=4)`` two runs at the same frame. A frame a fork inherited
    (at or before its parent frame) is read from its parent. Awaits reads (the nearest
    checkpoint and the events after it, per side); writes nothing.

    Args:
        run_id: The run of side a.
        other: The run of side b; None for `run_id` itself.
        from_frame: Side a's frame.
        to_frame: Side b's frame.
        frame: Both sides' frame, where `from_frame`/`to_frame` are not given.
        db: Database path (see `resolve_db_path`); must exist. Ignored with `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).

    Returns:
        A `RunDiff`; ``.empty`` when nothing differs.

    Raises:
        InvalidInputError: if `frame` is given with `from_frame` or `to_frame`, or a
            frame number is negative.
        RunNotFoundError: if either run does not exist.
        SnapshotNotFoundError: if a run has no such frame (nor inherited one).
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> d = await diff_runs(fork_id, parent_id)  # doctest: +SKIP
        >>> [(n.node_id, n.state_a, n.state_b) for n in d.nodes]  # doctest: +SKIP
        [('second', 'pending', 'finished')]
    """
    if frame is not None and (from_frame is not None or to_frame is not None):
        raise InvalidInputError(
            "Pass --frame, or --from/--to, not both.",
            details={"frame": frame, "fromFrame": from_frame, "toFrame": to_frame},
        )
    for name, value in (("from", from_frame), ("to", to_frame), ("frame", frame)):
        if value is not None and value < 0:
            raise InvalidInputError(
                f"Frame numbers are >= 0, got --{name} {value}.", details={name: value}
            )
    a_frame = from_frame if from_frame is not None else frame
    b_frame = to_frame if to_frame is not None else frame
    async with existing_store(db, store) as s:
        state_a, side_a = await _side(s, run_id, a_frame)
        state_b, side_b = await _side(s, other or run_id, b_frame)
    return _diff_states(state_a, state_b, side_a, side_b)
