"""Retention (``smithers gc``): delete whole finished runs, keeping the audit on request.

Only whole runs go, and only runs that ended (finished, failed, cancelled, continued)
before the cutoff; never part of a run's history, never a run still going or parked,
never the supervisor's or the audit stream, and never a run another kept run forks from
(its fork would lose its starting state) unless `include_forked_from` is given, and
never a `Subflow`'s child run without its parent run.

With `keep_audit` a run keeps its operation events (any event with an ``actor``, and
the operation types `OPERATION_TYPES`) and its last row (its chain head); its index
entry stays with status ``collected`` (`COLLECTED_STATUS`), so ``ps`` lists it, the audit
listing stays complete, and readers can tell a collected run from a whole one.

Each batch of deletions is one transaction that also appends `RunsDeleted` (who, when,
which runs, the cutoff) to the database's audit stream ``"_audit"``: the deletion is
recorded as an operation although no run is left to hold it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from smithers.eventstore import BulkDeletion, SeqConflictError, decode_event
from smithers.eventstore.events import (
    TERMINAL_RUN_STATUSES,
    ReplayStarted,
    RunForked,
    RunsDeleted,
)

from .._clock import SystemClock
from .._run_ids import parse_child_run_id
from .._stores import existing_store
from ..errors import InvalidInputError
from ..history import AUDIT_STREAM_ID, COLLECTED_STATUS, SUPERVISOR_STREAM_ID

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from smithers.eventstore import EventStore, RunRecord
    from smithers.eventstore.events import Actor

    from .._clock import Clock

__all__ = ("COLLECTED_STATUS", "OPERATION_TYPES", "GcResult", "collect_runs")

OPERATION_TYPES = frozenset(
    {
        "RunStarted",
        "RunForked",
        "RunRewound",
        "RunCancelRequested",
        "RetryTaskStarted",
        "ApprovalGranted",
        "ApprovalDenied",
        "SignalReceived",
        "ReplayStarted",
    }
)
"""Event types kept by ``gc --keep-audit`` whether or not they carry an ``actor``."""

_BATCH_RUNS = 50
"""Runs deleted per transaction (each batch records its own `RunsDeleted`)."""


class GcResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `collect_runs` deleted (or, on a dry run, would delete)."""

    finished_before_ms: int
    """The cutoff, Unix epoch ms."""
    dry_run: bool
    keep_audit: bool
    run_ids: tuple[str, ...]
    """Runs deleted (or that would be), oldest activity first."""
    protected: tuple[str, ...] = ()
    """Runs old enough but kept: a kept run forks from them, or they are the subflow
    runs of a kept parent run."""
    deleted_events: int = 0
    """Event rows deleted (0 on a dry run)."""


async def _parent_of(store: EventStore, run_id: str) -> str | None:
    rows = await store.read(run_id, upto_seq=1)
    if not rows:
        return None
    first = decode_event(rows[0].type, rows[0].data)
    return first.parent_run_id if isinstance(first, RunForked | ReplayStarted) else None


async def _audit_seqs(store: EventStore, run_id: str) -> tuple[int, ...]:
    """Seqs of the run's operation events and of its last row."""
    rows = await store.read(run_id)
    keep = set()
    for row in rows:
        if row.type in OPERATION_TYPES:
            keep.add(row.seq)
            continue
        event = decode_event(row.type, row.data)
        if getattr(event, "actor", None) is not None:
            keep.add(row.seq)
    if rows:
        keep.add(rows[-1].seq)
    return tuple(sorted(keep))


async def collect_runs(
    *,
    finished_before_ms: int,
    actor: Actor,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    dry_run: bool = False,
    keep_audit: bool = False,
    include_forked_from: bool = False,
    clock: Clock | None = None,
    on_progress: Callable[[int, int], object] | None = None,
) -> GcResult:
    """Delete whole runs that ended before `finished_before_ms`. Awaits I/O.

    A run qualifies when its index status is terminal (finished, failed, cancelled,
    continued) and its last event is older than the cutoff. A qualifying run that a
    remaining run forks from (`RunForked`/`ReplayStarted` parent) is kept unless
    `include_forked_from`. Deletions go in batches of 50 runs, each one transaction
    that also appends a `RunsDeleted` (with `actor`) to the ``"_audit"`` stream.

    Args:
        finished_before_ms: The cutoff, Unix epoch ms.
        actor: Who deletes (`resolve_actor`), recorded in `RunsDeleted`.
        db: Database path (see `resolve_db_path`); must exist. Ignored with `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).
        dry_run: Only say what would go; nothing is deleted or recorded.
        keep_audit: Keep each run's operation events and last row, status ``collected``.
        include_forked_from: Delete runs other runs fork from too.
        clock: Time source of `RunsDeleted`'s timestamp.
        on_progress: Called with ``(runs deleted so far, runs to delete)`` after each
            batch.

    Returns:
        A `GcResult`: the runs deleted (or that would be), those protected, rows deleted.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `finished_before_ms` is negative.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        SeqConflictError: if a chosen run recorded more events meanwhile (rewound,
            resumed); that batch is not deleted, earlier batches stay done.
        DatabaseWriteError: if a batch cannot be written; earlier batches stay done.
    """
    if finished_before_ms < 0:
        raise InvalidInputError(
            f"finished_before_ms must be >= 0, got {finished_before_ms}.",
            details={"finishedBeforeMs": finished_before_ms},
        )
    now = (clock or SystemClock()).now_ms
    async with existing_store(db, store) as opened:
        every: list[RunRecord] = [
            r
            for r in await opened.list_runs()
            if r.run_id not in (SUPERVISOR_STREAM_ID, AUDIT_STREAM_ID)
        ]
        doomed = {
            r.run_id
            for r in every
            if r.status in TERMINAL_RUN_STATUSES and r.updated_at_ms < finished_before_ms
        }
        parents = {r.run_id: await _parent_of(opened, r.run_id) for r in every}
        protected: set[str] = set()
        changed = True
        while changed:  # a kept fork keeps its parent, which keeps its own parent
            changed = False
            for child, parent in parents.items():
                if not include_forked_from and parent in doomed and child not in doomed:
                    doomed.discard(parent)
                    protected.add(parent)
                    changed = True
            for rid in list(doomed):  # a Subflow's run goes only with its parent run
                owner = parse_child_run_id(rid)
                if owner is not None and owner[0] not in doomed and owner[0] in parents:
                    doomed.discard(rid)
                    protected.add(rid)
                    changed = True
        order = sorted((r for r in every if r.run_id in doomed), key=lambda r: r.updated_at_ms)
        run_ids = tuple(r.run_id for r in order)
        deleted = 0
        if not dry_run:
            for start in range(0, len(run_ids), _BATCH_RUNS):
                batch = run_ids[start : start + _BATCH_RUNS]
                last = {r.run_id: r.last_seq for r in order}
                deletions = [
                    BulkDeletion(
                        run_id=rid,
                        keep_seqs=await _audit_seqs(opened, rid) if keep_audit else (),
                        kept_status=COLLECTED_STATUS,
                        expected_last_seq=last[rid],
                    )
                    for rid in batch
                ]
                expected = sum(last[d.run_id] - len(d.keep_seqs) for d in deletions)
                try:
                    deleted_now = await opened.delete_runs(
                        deletions,
                        audit_stream=AUDIT_STREAM_ID,
                        audit_event=RunsDeleted(
                            run_id=AUDIT_STREAM_ID,
                            timestamp_ms=now(),
                            run_ids=batch,
                            finished_before_ms=finished_before_ms,
                            keep_audit=keep_audit,
                            include_forked_from=include_forked_from,
                            deleted_events=expected,
                            actor=actor,
                        ),
                    )
                except SeqConflictError as e:
                    e.summary = (
                        f"Run {e.run_id!r} recorded more events while gc ran (rewound or "
                        f"resumed); this batch of {len(batch)} runs was not deleted."
                    )
                    e.args = (e.summary,)
                    e.hint = "Run `smithers gc` again: it chooses the runs afresh."
                    raise
                deleted += deleted_now
                if on_progress is not None:
                    on_progress(start + len(batch), len(run_ids))
    return GcResult(
        finished_before_ms=finished_before_ms,
        dry_run=dry_run,
        keep_audit=keep_audit,
        run_ids=run_ids,
        protected=tuple(sorted(protected)),
        deleted_events=deleted,
    )
