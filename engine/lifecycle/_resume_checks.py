"""The checks before a run is resumed, or appended to from outside.

Who owns it, whether its code still matches what it recorded, and whether it can be
resumed at all.

Shared by `run_workflow(resume=True)`, `resume_run` and the time-travel operations
(rewind, retry-task, replay). Reads only; nothing is appended here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from smithers.eventstore import EventStore, decode_event
from smithers.eventstore.events import RunStarted

from .._shell import shell_command
from ..authoring import WorkflowIdentity, workflow_identity
from ..errors import (
    ResumeFrameMismatchError,
    ResumeMetadataMismatchError,
    RunNotResumableError,
)
from ..history import verify_frame
from ._ownership import DEFAULT_STALE_THRESHOLD_MS, owner_verdict, refuse_if_owned

if TYPE_CHECKING:
    from smithers.projections import RunState

    from ..authoring import Workflow

__all__ = (
    "NOT_RESUMABLE",
    "check_determinism",
    "check_resumable",
    "first_run_started",
    "identity_of",
    "not_resumable",
    "recorded_identity",
)

NOT_RESUMABLE = {
    "cancelled": "it was cancelled; start a new run, or fork it "
    "(`smithers fork RUN --frame N`) to continue from an earlier point",
    "continued": "it continued as a new run; resume that run instead",
}
"""Statuses `run_workflow(resume=True)` refuses, with why (``finished`` is a no-op)."""


def not_resumable(state: RunState) -> RunNotResumableError:
    """Return the refusal to resume a cancelled or continued run. No I/O.

    A continued run's refusal names its successor (``smithers up --resume NEW``).
    """
    why = NOT_RESUMABLE.get(state.status, "it has ended")
    new = state.continued_as_run_id
    if state.status == "continued" and new:
        resume = shell_command("up", options=[("--resume", new)])
        why = f"it continued as run {new}; resume that run instead (`{resume}`)"
    return RunNotResumableError(state.run_id, state.status, why)


async def check_resumable(
    store: EventStore,
    state: RunState,
    *,
    now_ms: int,
    stale_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    force: bool = False,
    wf: Workflow | None = None,
    workflow_path: str | os.PathLike[str] | None = None,
    allow_nondeterminism: bool = False,
) -> None:
    """Refuse what would make appending to `state`'s run and resuming it unsafe.

    For time-travel operations (rewind, retry-task), checked before they append: the
    ownership check of ``run_workflow(resume=True)`` (`owner_verdict`, then
    `refuse_if_owned`) and, given `wf`, the workflow identity and the determinism
    check of the run's last frame (`check_determinism`). Awaits reads.

    Args:
        store: The open store.
        state: The run's current state.
        now_ms: Now, Unix epoch ms.
        stale_ms: An owner silent for this long (ms) is stale (see `judge_owner`).
        force: Take over an owner that only looks alive (a fresh heartbeat from
            another host, or a run this process drives).
        wf: The workflow the run will resume with; None skips the identity and
            determinism checks.
        workflow_path: Its file (default: the builder's module file).
        allow_nondeterminism: Skip the determinism check.

    Raises:
        RunOwnerAliveError: if the owner process lives on this host (even with `force`).
        RunStillRunningError: if the run's owner elsewhere looks alive, or its owner is
            this process with a fresh lease; not with `force`.
        ResumeMetadataMismatchError: if `wf`'s code differs from the code the run
            recorded in its first `RunStarted` (a fork not run yet recorded none).
        ResumeFrameMismatchError: if `wf` does not re-render the run's last frame as
            recorded; not with `allow_nondeterminism`.
    """
    verdict = await owner_verdict(store, state, now_ms=now_ms, stale_threshold_ms=stale_ms)
    refuse_if_owned(verdict, force=force)
    if wf is None:
        return
    identity = identity_of(workflow_path or wf.source_path)
    recorded = recorded_identity(await first_run_started(store, state.run_id))
    if recorded is not None and identity is not None and recorded.digest != identity.digest:
        raise ResumeMetadataMismatchError(
            state.run_id, identity.diff(recorded), recorded.digest, identity.digest
        )
    if not allow_nondeterminism:
        await check_determinism(store, state, wf)


async def check_determinism(
    store: EventStore, state: RunState, wf: Workflow, *, replay: bool = False
) -> None:
    """Refuse to go on from `state` if `wf` no longer renders its last recorded frame.

    The resume (and replay) side of `verify_run`, Temporal's replayer as model: the
    frame is re-rendered with `wf` from the state the engine rendered it from and its
    hash compared with the recorded ``FrameCommitted.xml_hash`` (`verify_frame`). The
    frame is `state`'s last recorded one: for a fork with no frame of its own yet, the
    parent's frame it was forked at; a run with no frame at all is not checked. Costs
    one state rebuild (checkpoint plus the rows after it) and one render. Awaits reads.

    As in Temporal, what refuses is a render that contradicts the log: the builder
    raises, a task the log shows acting by the frame (an attempt, output, failure or
    skip) is added, removed or rendered differently, or the tree differs in a way not
    traced to tasks (its structure, or a recorded tree that cannot be rebuilt). A
    difference only in tasks still pending at the frame is let through: it changes
    what the run does next, which is what a fork onto edited code is for. `verify_run`
    reports every difference.

    Args:
        store: The open store.
        state: The state the run will go on from (a resume's current state; for a
            replay, the parent's state at the frame).
        wf: The workflow that will render from it.
        replay: Word the error for a replay instead of a resume.

    Raises:
        ResumeFrameMismatchError: naming the frame, the tasks that differ (or what the
            builder raised) and the next step (``smithers verify``, or
            ``--allow-nondeterminism``).
    """
    if state.frames:
        frame_run_id, frame_no = state.run_id, state.frames[-1].frame_no
    elif state.parent_run_id is not None and state.parent_frame_no is not None:
        frame_run_id, frame_no = state.parent_run_id, state.parent_frame_no
    else:
        return  # no frame recorded yet: nothing to compare with
    mismatch = await verify_frame(store, frame_run_id, frame_no, wf)
    if mismatch is None:
        return
    contradicting = [n for n in mismatch.nodes if n.ran]
    if mismatch.error is None and mismatch.nodes and not contradicting:
        return  # only tasks still pending at the frame differ: what runs next, not the past
    raise ResumeFrameMismatchError(
        state.run_id,
        frame_run_id=frame_run_id,
        frame_no=frame_no,
        nodes=[(n.node_id, n.change) for n in contradicting],
        recorded_hash=mismatch.recorded_hash,
        rendered_hash=mismatch.rendered_hash,
        error=mismatch.error,
        replay=replay,
    )


def recorded_identity(first: RunStarted | None) -> WorkflowIdentity | None:
    """The workflow identity a run recorded in `first`, or None if it recorded none."""
    if first is None or not first.workflow_hash:
        return None
    return WorkflowIdentity(digest=first.workflow_hash, files=first.workflow_files)


def identity_of(path: str | os.PathLike[str] | None) -> WorkflowIdentity | None:
    """The workflow file's identity, or None when the builder has no file."""
    return workflow_identity(path) if path and os.path.isfile(path) else None


async def first_run_started(store: EventStore, run_id: str) -> RunStarted | None:
    """The run's first `RunStarted` (within its first 50 events), or None. Awaits a read."""
    for row in await store.read(run_id, upto_seq=50):
        if row.type == "RunStarted":
            event = decode_event(row.type, row.data)
            return event if isinstance(event, RunStarted) else None
    return None
