"""The determinism check (issue 8): re-render a run at every recorded frame, compare hashes.

The builder must be a pure function of ``ctx`` (DESIGN §6, §11): given the state the
engine held when it rendered, it must return the same tree. `verify_run` replays the
run's log, and right before each `FrameCommitted` (that is, with the state the engine
rendered from) calls the workflow's builder again and hashes the tree; a hash that is
not the recorded `FrameCommitted.xml_hash` means the builder read something besides
``ctx`` (the clock, randomness, files, the environment) or its code changed since
the run recorded the frame. Temporal's replayer is the model.

Frames a rewind discarded are checked too (they were rendered from the state the log
had then). A fork's own frames are checked against the state it started from (its
parent's, with the reset nodes pending); the frames it inherited belong to the parent.

Nothing is written; the workflow file's module-level code runs in this process (as
`load_workflow` does), and so does the builder, once per frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from smithers.eventstore import decode_event, decode_json
from smithers.eventstore.events import FrameCommitted, RunForked, RunRewound
from smithers.projections import RunState, apply_event, apply_rewind, fork_state

from .._checkpoints import gc_paused
from .._stores import existing_store
from ..activation import error_info, render_state
from ..authoring import check_input, load_named_workflow
from ..errors import EngineError, RunNotFoundError, WorkflowMissingDefaultError
from ._chain_check import ChainCheck, check_chain
from ._state import find_frame, frame_not_found, load_state, state_at
from ._timeline import tree_at

if TYPE_CHECKING:
    from collections.abc import Collection

    from smithers.eventstore import EventStore, RunRecord
    from smithers.eventstore.events import Event

    from ..authoring import Workflow

__all__ = (
    "FrameMismatch",
    "TreeNodeChange",
    "VerifyResult",
    "recorded_workflow",
    "verify_frame",
    "verify_run",
)

DbPath = str | os.PathLike[str] | None
_Bad = tuple[
    int, FrameCommitted, str | None, dict[str, Any] | None, Exception | None, frozenset[str]
]
"""The first frame that differs: ``(seq, event, rendered hash, rendered tree, error,
ids of the tasks that had run by then)``."""


class TreeNodeChange(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A task of a frame's tree that the re-render added, removed or rendered differently."""

    node_id: str
    change: Literal["added", "removed", "changed"]
    """``added``: only the re-render has it; ``removed``: only the recorded tree;
    ``changed``: both, with different fields (label, kind, output type, prompt, ...)."""
    recorded: dict[str, Any] | None = None
    """The task's node in the recorded tree (without children), None if `added`."""
    rendered: dict[str, Any] | None = None
    """The task's node in the re-rendered tree (without children), None if `removed`."""
    ran: bool = False
    """True when the log records the task doing something by the frame (an attempt, an
    output, a failure, a skip): a change to it contradicts the log. False for a task
    still pending then, whose change only alters what the run does next."""


class FrameMismatch(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A frame whose re-render does not give the recorded tree."""

    frame_no: int
    seq: int
    """Seq of the frame's `FrameCommitted`."""
    recorded_hash: str
    """`FrameCommitted.xml_hash` as recorded."""
    rendered_hash: str | None
    """Hash of the re-rendered tree; None when the re-render raised."""
    error: dict[str, Any] | None = None
    """What the re-render raised (the error shape of ``NodeFailed.error``: ``name``,
    ``message``, ``code``, ...), None if it returned a tree."""
    nodes: list[TreeNodeChange] = msgspec.field(default_factory=list)
    """Tasks that differ; empty when only the structure (order, groups) differs, or the
    recorded tree is not in the log (frames recorded by an older version)."""


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The outcome of `verify_run`: the log check (`chain`), then the determinism check."""

    run_id: str
    workflow_name: str
    workflow_path: str | None
    """The workflow file the builder came from (None for a workflow passed in)."""
    frames_checked: int
    """How many frames were re-rendered."""
    mismatched_frames: list[int] = msgspec.field(default_factory=list)
    """Numbers of every frame whose re-render differs, in log order."""
    first_mismatch: FrameMismatch | None = None
    """The first of them in detail, None when every frame matches."""
    chain: ChainCheck | None = None
    """The log check, done first: the run's stored rows against their hash chain
    (None only in results made without it)."""
    log_only: bool = False
    """True when only the log was checked (no frame re-rendered)."""
    determinism_error: dict[str, Any] | None = None
    """With a broken chain, what stopped the determinism check (the error shape of
    ``NodeFailed.error``), e.g. a tampered row that no longer decodes; else None."""

    @property
    def ok(self) -> bool:
        """True when the chain is not broken and every checked frame re-rendered to its
        recorded hash."""  # noqa: D205, D209 - one sentence
        chain_ok = self.chain is None or self.chain.ok
        return chain_ok and self.first_mismatch is None and self.determinism_error is None


def recorded_workflow(state: RunState) -> tuple[Workflow, Path]:
    """Import the workflow a run recorded: its file, and its name if the file has several.

    Runs the file's module-level code in this process, as `load_workflow` does.

    Args:
        state: The run's folded state (its `workflow_path` and `workflow_name`).

    Returns:
        ``(workflow, absolute path of its file)``.

    Raises:
        WorkflowMissingDefaultError: if the run recorded no workflow file (it was started
            from Python code), the file no longer exists, or no longer defines it.
        EngineError: code ``INVALID_INPUT`` if the file raises while importing.
    """
    path = state.workflow_path
    if not path or not Path(path).is_file():
        why = f"its workflow file {path} no longer exists" if path else "it records no file"
        raise WorkflowMissingDefaultError(
            f"Cannot load the workflow of run {state.run_id!r}: {why}.",
            details={"runId": state.run_id, "path": path},
            hint="Pass the workflow itself: `await handle.verify(workflow=wf)` in Python.",
        )
    return load_named_workflow(path, state.workflow_name)


# ---------------------------------------------------------------------- trees


def _tasks(tree: Any) -> dict[str, dict[str, Any]]:
    """Every task node of a canonical tree by id, without children, in tree order."""
    out: dict[str, dict[str, Any]] = {}
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("tag") == "task" and isinstance(node.get("id"), str):
            out.setdefault(node["id"], {k: v for k, v in node.items() if k != "children"})
        children = node.get("children")
        if isinstance(children, list):
            stack.extend(reversed(children))
    return out


def _tree_changes(
    recorded: Any, rendered: Any, ran: frozenset[str] = frozenset()
) -> list[TreeNodeChange]:
    """Return the tasks that differ between two canonical trees, by task id. No I/O.

    `ran`: ids of the tasks the log records doing something by then (`_ran`).
    """
    old, new = _tasks(recorded), _tasks(rendered)
    out: list[TreeNodeChange] = []
    for node_id, node in old.items():
        if node_id not in new:
            out.append(
                TreeNodeChange(node_id=node_id, change="removed", recorded=node, ran=node_id in ran)
            )
        elif new[node_id] != node:
            out.append(
                TreeNodeChange(
                    node_id=node_id,
                    change="changed",
                    recorded=node,
                    rendered=new[node_id],
                    ran=node_id in ran,
                )
            )
    out.extend(
        TreeNodeChange(node_id=node_id, change="added", rendered=node, ran=node_id in ran)
        for node_id, node in new.items()
        if node_id not in old
    )
    return out


def _ran(state: RunState) -> frozenset[str]:
    """Ids of the nodes that `state` shows doing something: not pending, or an attempt."""
    return frozenset(
        rec.node_id for rec in state.nodes.values() if rec.state != "pending" or rec.attempts
    )


# ---------------------------------------------------------------------- the check


class _Renderer:
    """Re-renders `wf` from a state; the input decoded once per distinct input."""

    def __init__(self, wf: Workflow, run_id: str) -> None:
        self.wf = wf
        self.run_id = run_id
        self._input_raw: bytes | None = None
        self._input: Any = None

    def render(self, state: RunState) -> tuple[str | None, dict[str, Any] | None, Exception | None]:
        """``(hash, tree, None)``, or ``(None, None, error)`` when the render raises."""
        try:
            raw = bytes(state.input)
            if raw != self._input_raw:
                self._input, _ = check_input(self.wf, decode_json(state.input) or {})
                self._input_raw = raw
            plan, _ = render_state(self.wf, state, self._input)
        except Exception as e:  # whatever the builder raises is the finding
            return None, None, e
        return plan.xml_hash, plan.tree, None


def _error_json(err: Exception) -> dict[str, Any]:
    value: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(error_info(err)))
    return value


async def _check(
    store: EventStore,
    run_id: str,
    wf: Workflow,
    frames: Collection[int] | None,
) -> tuple[int, list[int], FrameMismatch | None]:
    rows = await store.read(run_id)
    if not rows:
        raise RunNotFoundError(run_id)
    with gc_paused():
        decoded = [(row.seq, decode_event(row.type, row.data)) for row in rows]
    pairs: list[tuple[int, Event]] = [(seq, e) for seq, e in decoded if e is not None]
    state = RunState(run_id=run_id)
    first = pairs[0][1] if pairs else None
    if isinstance(first, RunForked):
        parent = await state_at(store, first.parent_run_id, seq=first.parent_seq)
        state = fork_state(parent, first, run_id=run_id)
    targets = {
        e.to_seq: await state_at(store, run_id, seq=e.to_seq)
        for _, e in pairs
        if isinstance(e, RunRewound)
    }
    renderer = _Renderer(wf, run_id)
    checked = 0
    mismatched: list[int] = []
    first_bad: _Bad | None = None
    for seq, event in pairs:
        if isinstance(event, RunRewound):
            state = apply_rewind(state, event, seq=seq, target=targets[event.to_seq])
            continue
        if isinstance(event, FrameCommitted) and (frames is None or event.frame_no in frames):
            checked += 1
            digest, tree, error = renderer.render(state)
            if digest != event.xml_hash:
                mismatched.append(event.frame_no)
                if first_bad is None:
                    first_bad = (seq, event, digest, tree, error, _ran(state))
        apply_event(state, event, seq=seq)
    if first_bad is None:
        return checked, mismatched, None
    return checked, mismatched, await _describe(store, run_id, first_bad)


async def _describe(store: EventStore, run_id: str, bad: _Bad) -> FrameMismatch:
    """The `FrameMismatch` of a frame whose re-render differs (reads its recorded tree)."""
    seq, event, digest, tree, error, ran = bad
    try:
        recorded = await tree_at(run_id, event.frame_no, store=store)
    except EngineError:
        recorded = None  # frames that cannot be rebuilt: the hashes still tell
    nodes = _tree_changes(recorded, tree, ran) if recorded is not None and tree is not None else []
    return FrameMismatch(
        frame_no=event.frame_no,
        seq=seq,
        recorded_hash=event.xml_hash,
        rendered_hash=digest,
        error=_error_json(error) if error is not None else None,
        nodes=nodes,
    )


async def verify_frame(
    store: EventStore, run_id: str, frame_no: int, workflow: Workflow
) -> FrameMismatch | None:
    """Re-render one recorded frame of a run with `workflow` and compare its hash.

    What `verify_run` does for one frame, at the cost of one state rebuild (the nearest
    checkpoint plus the rows after it, `state_at`) and one render, however long the
    log: the state is the run's state right before the frame's `FrameCommitted` (what
    the engine rendered from). This is the check a resume or a replay runs before it
    appends. Awaits reads; writes nothing.

    Args:
        store: The open event store.
        run_id: The run whose own log has the frame (for a fork's inherited frames,
            the parent).
        frame_no: The frame's number (as `FrameCommitted.frame_no`).
        workflow: The workflow to re-render.

    Returns:
        None when the re-render gives the recorded hash, else the `FrameMismatch` (the
        tasks that differ, or what the builder raised).

    Raises:
        RunNotFoundError: if the run has no events.
        SnapshotNotFoundError: if the run's log has no frame `frame_no`.
    """
    found = await find_frame(store, run_id, frame_no)
    if found is None:
        raise await frame_not_found(store, run_id, frame_no)
    before = await state_at(store, run_id, seq=found.seq - 1)
    digest, tree, error = _Renderer(workflow, run_id).render(before)
    if digest == found.event.xml_hash:
        return None
    bad = (found.seq, found.event, digest, tree, error, _ran(before))
    return await _describe(store, run_id, bad)


async def verify_run(
    run_id: str,
    *,
    workflow: Workflow | None = None,
    frames: Collection[int] | None = None,
    db: DbPath = None,
    store: EventStore | None = None,
    log_only: bool = False,
) -> VerifyResult:
    """Check a run's stored log against its hash chain, then its workflow, frame by frame.

    First the log check (`check_chain`): the run's rows are read with their hashes
    and the chain recomputed; the first seq whose bytes or order do not match is
    named (`VerifyResult.chain`). Then, unless `log_only`, the determinism check:
    replaying the log, right before each `FrameCommitted` it calls the builder with
    the state the engine rendered from and compares the tree's hash with the recorded
    ``xml_hash`` (see the module docstring); it runs even when the chain is broken,
    and what stops it then (a tampered row that no longer decodes) is reported, not
    raised (`VerifyResult.determinism_error`). Awaits reads of the run's log (and of a
    fork's parent state, and the states its rewinds went back to); writes nothing.
    Costs one SHA-256 per row and one render per frame checked.

    Args:
        run_id: The run.
        workflow: The workflow to check; default: the file the run recorded, imported
            here (its module-level code runs in this process). Unused with `log_only`.
        frames: Only these frame numbers; default: every frame of the run's own log.
        db: Database path (see `resolve_db_path`); must exist. Ignored with `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).
        log_only: Stop after the log check: no workflow is imported, no frame rendered.

    Returns:
        A `VerifyResult`: ``.ok`` when the chain holds and every frame matched; else
        the chain's first bad seq (`chain`), and/or the numbers of the frames that
        differ and the first one in detail (the tasks that differ, or what the
        builder raised).

    Raises:
        RunNotFoundError: if the run does not exist.
        WorkflowMissingDefaultError: without `workflow` or `log_only`, if the run
            recorded no workflow file or it no longer exists or defines the workflow.
        EngineError: code ``INVALID_INPUT`` if the workflow file raises while importing.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> result = await verify_run("run-lx2k3j-1a2b3c")  # doctest: +SKIP
        >>> result.ok, result.chain.status, result.frames_checked  # doctest: +SKIP
        (True, 'ok', 4)
    """
    async with existing_store(db, store) as s:
        chain = await check_chain(s, run_id)
        if log_only:
            record = await s.get_run(run_id)
            return VerifyResult(
                run_id=run_id,
                workflow_name=record.workflow_name if record is not None else "",
                workflow_path=None,
                frames_checked=0,
                chain=chain,
                log_only=True,
            )
        path: Path | None = None
        try:
            if workflow is None:
                workflow, path = recorded_workflow(await load_state(s, run_id))
            checked, mismatched, mismatch = await _check(s, run_id, workflow, frames)
        except Exception as e:
            if chain.ok:
                raise
            # A tampered log may not decode, nor name a loadable workflow: the broken
            # chain is the finding, what stopped the re-render goes with it.
            record = await s.get_run(run_id)
            return VerifyResult(
                run_id=run_id,
                workflow_name=workflow.name if workflow is not None else _name(record),
                workflow_path=str(path) if path is not None else None,
                frames_checked=0,
                chain=chain,
                determinism_error=_error_json(e),
            )
    return VerifyResult(
        run_id=run_id,
        workflow_name=workflow.name,
        workflow_path=str(path) if path is not None else None,
        frames_checked=checked,
        mismatched_frames=mismatched,
        first_mismatch=mismatch,
        chain=chain,
    )


def _name(record: RunRecord | None) -> str:
    return record.workflow_name if record is not None else ""
