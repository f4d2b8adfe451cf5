"""Errors raised by the projections: a log or a checkpoint that cannot be folded."""

from __future__ import annotations

from smithers.eventstore.errors import SmithersError

__all__ = (
    "CheckpointDecodeError",
    "ForkBaseMismatchError",
    "InvalidRewindError",
    "ProjectionError",
)


class ProjectionError(SmithersError):
    """Base class of errors raised by the projections."""

    default_code = "INTERNAL_ERROR"


class InvalidRewindError(ProjectionError, ValueError):
    """A `RunRewound` cannot be folded.

    Raised by `fold`, `fold_stored`, `effective_events` and `apply_rewind` when a rewind
    recorded at `seq` targets a seq that is not before it, or one before the state the
    fold continues (a checkpoint or a given state cannot be rewound past its own seq:
    fold from an earlier checkpoint or from the start instead).

    Details: `runId`, `seq`, `toSeq`, `startSeq`.
    """

    def __init__(self, run_id: str, *, seq: int, to_seq: int, start_seq: int) -> None:
        if to_seq >= seq:
            summary = (
                f"RunRewound at seq {seq} of run {run_id!r} targets seq {to_seq}, "
                "which is not before it."
            )
            hint = "A rewind goes back to an earlier seq; the log is corrupt or mis-numbered."
        else:
            summary = (
                f"RunRewound at seq {seq} of run {run_id!r} targets seq {to_seq}, "
                f"before the state the fold starts from (seq {start_seq})."
            )
            hint = f"Fold from a checkpoint at or before seq {to_seq}, or from the start."
        super().__init__(
            summary,
            details={"runId": run_id, "seq": seq, "toSeq": to_seq, "startSeq": start_seq},
            hint=hint,
        )


class ForkBaseMismatchError(ProjectionError, ValueError):
    """The parent state given to `fork_state` is not the one `RunForked` names.

    Raised when the parent state belongs to another run than `parent_run_id`, or is
    not at `parent_seq`. Details: `runId`, `parentRunId`, `parentSeq`, `givenRunId`,
    `givenSeq`.
    """

    def __init__(
        self, run_id: str, *, parent_run_id: str, parent_seq: int, given_run_id: str, given_seq: int
    ) -> None:
        super().__init__(
            f"Fork {run_id!r} starts from run {parent_run_id!r} at seq {parent_seq}, "
            f"but the given parent state is run {given_run_id!r} at seq {given_seq}.",
            details={
                "runId": run_id,
                "parentRunId": parent_run_id,
                "parentSeq": parent_seq,
                "givenRunId": given_run_id,
                "givenSeq": given_seq,
            },
            hint="Fold the parent's log up to `parent_seq` and pass that state.",
        )


class CheckpointDecodeError(ProjectionError, ValueError):
    """`decode_state` was given bytes that are not a checkpoint of this format version.

    Checkpoints are a cache: discard it and fold from the log instead.
    Details: `reason`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"Cannot decode a RunState checkpoint: {reason}.",
            details={"reason": reason},
            hint="Checkpoints are a cache: drop this one and fold the run's log.",
        )
