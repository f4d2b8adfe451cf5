"""Errors of run ownership and resume: who drives a run, and whether it may go on.

Re-exported by `errors` (import them from there).
"""

from __future__ import annotations

from typing import Any

from ._error_base import EngineError
from ._shell import shell_command

__all__ = (
    "OwnershipLostError",
    "ResumeClaimFailedError",
    "ResumeFrameMismatchError",
    "ResumeMetadataMismatchError",
    "RunNotResumableError",
    "RunOwnerAliveError",
    "RunStillRunningError",
)


class ResumeClaimFailedError(EngineError):
    """Another process claimed the run first (its append won).

    Details: `runId`, `runtimeOwnerId`.
    """

    default_code = "RUN_RESUME_CLAIM_FAILED"

    def __init__(self, run_id: str, owner_id: str) -> None:
        super().__init__(
            f"Could not claim run {run_id!r}: another process appended to it first.",
            details={"runId": run_id, "runtimeOwnerId": owner_id},
            hint=f"See who runs it now with `{shell_command('inspect', args=[run_id])}`.",
        )


class OwnershipLostError(EngineError):
    """This process lost the run's lease to another owner mid-run (it was deemed stale).

    Details: `runId`, `runtimeOwnerId`.
    """

    default_code = "RUN_RESUME_CLAIM_LOST"

    def __init__(self, run_id: str, owner_id: str) -> None:
        super().__init__(
            f"Run {run_id!r} was taken over by another process; this one stopped without "
            "writing more.",
            details={"runId": run_id, "runtimeOwnerId": owner_id},
            hint="Raise the supervisor's --stale-threshold if the owner was only slow.",
        )


class RunOwnerAliveError(EngineError):
    """The run's owner process is alive on this host.

    Details: `runId`, `runtimeOwnerId`, `pid`; `heartbeatAgeMs` when its heartbeat is
    stale (then ``--force`` takes it over).
    """

    default_code = "RUN_OWNER_ALIVE"

    def __init__(
        self, run_id: str, owner_id: str, pid: int, *, silent_ms: int | None = None
    ) -> None:
        details: dict[str, object] = {"runId": run_id, "runtimeOwnerId": owner_id, "pid": pid}
        if silent_ms is None:
            super().__init__(
                f"Run {run_id!r} is still owned by live process {pid} on this host.",
                details=details,
                hint=f"Wait for it, or stop it with `{shell_command('cancel', args=[run_id])}`.",
            )
            return
        # A stale heartbeat (`silent_ms`): the process lives but does not drive the run.
        details["heartbeatAgeMs"] = silent_ms
        super().__init__(
            f"Run {run_id!r} is owned by process {pid} on this host, which is alive but "
            f"has not renewed its lease for {silent_ms} ms (stopped or hung?).",
            details=details,
            hint="Take the run over with "
            f"`{shell_command('up', options=[('--resume', run_id), ('--force', None)])}` "
            "(the old process stops without writing if it wakes), or stop it with "
            f"`{shell_command('cancel', args=[run_id])}`.",
        )


class RunStillRunningError(EngineError):
    """The run's owner heartbeat is fresh (owner on another host, or unknown).

    Details: `runId`, `heartbeatAgeMs`.
    """

    default_code = "RUN_STILL_RUNNING"

    def __init__(self, run_id: str, age_ms: int) -> None:
        super().__init__(
            f"Run {run_id!r} looks active: its owner renewed its lease {age_ms} ms ago.",
            details={"runId": run_id, "heartbeatAgeMs": age_ms},
            hint="If that owner is really gone, resume with --force.",
        )


class RunNotResumableError(EngineError):
    """The run cannot be resumed in its current state. Details: `runId`, `status`."""

    default_code = "RUN_NOT_RESUMABLE"

    def __init__(self, run_id: str, status: str, why: str) -> None:
        super().__init__(
            f"Run {run_id!r} ({status}) cannot be resumed: {why}.",
            details={"runId": run_id, "status": status},
        )


class ResumeMetadataMismatchError(EngineError):
    """The workflow's code changed since the run recorded it.

    Details: `mismatches` (changed relative paths), `existing`, `current` (hashes).
    """

    default_code = "RESUME_METADATA_MISMATCH"

    def __init__(self, run_id: str, mismatches: list[str], existing: str, current: str) -> None:
        shown = ", ".join(mismatches[:5]) + (", …" if len(mismatches) > 5 else "")
        fork = shell_command("fork", args=[run_id], options=[("--frame", "N")])
        super().__init__(
            f"Run {run_id!r} was recorded with different workflow code (changed: {shown}).",
            details={"mismatches": mismatches, "existing": existing, "current": current},
            hint=(
                "Revert the files to resume this run, or keep the edit and fork/replay it "
                f"onto the new code (`{fork}`), "
                "or start a fresh run."
            ),
        )


class ResumeFrameMismatchError(EngineError):
    """The workflow, re-rendered at a recorded frame, does not give the recorded tree.

    Raised by a resume (`run_workflow(resume=True)`, `resume_run`, ``up --resume``) for
    the run's last recorded frame, and by `replay` for the parent's frame it starts from,
    before anything is appended, unless ``allow_nondeterminism=True``
    (``--allow-nondeterminism``). The builder read something besides ``ctx`` (the clock,
    randomness, files, a global) or its code changed since the frame was recorded.

    Details: `runId` (the run resumed or replayed), `frameRunId` and `frameNo` (the
    frame re-rendered: the parent's for a fork that has no frame of its own), `nodes`
    (``{"nodeId", "change"}`` of each task that differs and that the log shows acting
    by the frame, change ``added``, ``removed`` or ``changed``; empty when the builder
    raised or only the tree's structure differs), `recordedHash`, `renderedHash` (None
    when the builder raised), `error` (what the builder raised, or None).
    """

    default_code = "RESUME_FRAME_MISMATCH"

    def __init__(
        self,
        run_id: str,
        *,
        frame_run_id: str,
        frame_no: int,
        nodes: list[tuple[str, str]],
        recorded_hash: str,
        rendered_hash: str | None,
        error: dict[str, Any] | None = None,
        replay: bool = False,
    ) -> None:
        where = f"frame {frame_no}"
        if frame_run_id != run_id:
            where += f" of run {frame_run_id!r}"
        if error is not None:
            why = f"the builder raised {error.get('name')}: {error.get('message')}"
        elif nodes:
            shown = ", ".join(f"{n} ({c})" for n, c in nodes[:5])
            why = f"tasks that differ: {shown}" + (", …" if len(nodes) > 5 else "")
        else:
            why = "the tree differs in its structure (order or grouping), not in a task"
        verb = "replay" if replay else "resume"
        super().__init__(
            f"Cannot {verb} run {run_id!r}: its workflow no longer renders what the log "
            f"recorded at {where} ({why}).",
            details={
                "runId": run_id,
                "frameRunId": frame_run_id,
                "frameNo": frame_no,
                "nodes": [{"nodeId": n, "change": c} for n, c in nodes],
                "recordedHash": recorded_hash,
                "renderedHash": rendered_hash,
                "error": error,
            },
            hint=(
                "The builder must be a pure function of ctx (no clock, randomness, files "
                f"or globals) and its code unchanged. See every frame that differs with "
                f"`{shell_command('verify', args=[frame_run_id])}`; to {verb} anyway, pass "
                "--allow-nondeterminism (Python: allow_nondeterminism=True)."
            ),
        )
