"""``smithers migrate``: copy every run of a SQLite database into a PostgreSQL one.

Each run's rows are read from the source and written with `EventStore.import_runs`, the
same verbatim write ``smithers import`` uses: the same seqs, types, timestamps and payload
bytes, so every row's chain hash (and each run's chain head) recomputes identically on the
target. Runs are copied oldest first, in batches of `MIGRATE_BATCH_RUNS` (each batch one
transaction on the target), so a fork is written after the run it forks from. Each run's
latest checkpoint is copied too (a cache: the target would rebuild it by folding).

Running it again is a no-op for runs already copied (``identical``), extends runs that
grew since (``extended``), and refuses a run id the target holds with other events
(``RUN_ALREADY_EXISTS``, nothing of that batch written). Leases are not copied: a run
that was still running in the source has no owner in the target until one takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import msgspec
from smithers.eventstore import BulkRun, SmithersError, is_postgres_url, open_store, redact_url

if TYPE_CHECKING:
    import os

    from smithers.eventstore import EventStore, RunRecord

__all__ = ("MIGRATE_BATCH_RUNS", "MigrateResult", "MigratedRun", "migrate_database")

MIGRATE_BATCH_RUNS = 50
"""Runs written per target transaction."""

ProgressCallback = Callable[[int, int], None]
"""Called after each batch with ``(runs done, runs in total)``."""


class MigratedRun(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One run copied by `migrate_database`."""

    run_id: str
    outcome: str
    """``imported``, ``identical``, ``extended`` or ``kept`` (see `ImportOutcome`)."""
    rows: int
    """Rows the source holds for the run."""
    checkpoint_seq: int | None
    """Seq of the checkpoint copied with it, None if the source had none."""


class MigrateResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `migrate_database` did."""

    source: str
    """The source database file."""
    target: str
    """The target URL, password hidden."""
    runs: tuple[MigratedRun, ...]
    events: int
    """Rows in the source, over all runs."""
    written: int
    """Runs whose rows were written now (``imported`` or ``extended``)."""


def _invalid(message: str, hint: str, **details: object) -> SmithersError:
    return SmithersError(message, code="INVALID_INPUT", details=dict(details), hint=hint)


def check_migrate_args(source: str | os.PathLike[str], target: str) -> Path:
    """Validate ``--from`` / ``--to`` before anything is opened.

    Args:
        source: The SQLite database file to copy from.
        target: The PostgreSQL URL to copy to.

    Returns:
        The source as a `Path`.

    Raises:
        SmithersError: code ``INVALID_INPUT`` if `target` is not a ``postgresql://`` URL
            or `source` is a URL or not an existing file.
    """
    if not is_postgres_url(target):
        raise _invalid(
            f"--to takes a postgresql:// URL, not {target!r}.",
            "Give the target server, e.g. --to postgresql://USER@HOST:5432/DB.",
            to=target,
        )
    text = str(source)
    if "://" in text:
        raise _invalid(
            f"--from takes a SQLite database file, not the URL {redact_url(text)}.",
            "Give the file, e.g. --from runs/smithers.db.",
            source=redact_url(text),
        )
    path = Path(source)
    if not path.is_file():
        raise _invalid(
            f"No SQLite database at {path}: nothing to migrate.",
            "Give an existing file, e.g. --from runs/smithers.db (`smithers ps --db FILE` "
            "lists its runs).",
            source=str(path),
        )
    return path


async def _bulk(store: EventStore, record: RunRecord) -> BulkRun:
    rows = await store.read(record.run_id)
    return BulkRun(
        run_id=record.run_id,
        rows=tuple((r.seq, r.type, r.timestamp_ms, r.data) for r in rows),
        status=record.status,
        workflow_name=record.workflow_name,
    )


async def migrate_database(
    source: str | os.PathLike[str],
    target: str,
    *,
    on_progress: ProgressCallback | None = None,
    batch_runs: int = MIGRATE_BATCH_RUNS,
) -> MigrateResult:
    """Copy every run (rows verbatim, latest checkpoint) of `source` into `target`.

    Awaits I/O. The source is opened read-only; the target's tables are created if
    missing. Idempotent: a second call writes nothing new (see the module docstring).

    Args:
        source: The SQLite database file.
        target: A ``postgresql://`` URL.
        on_progress: Called with ``(done, total)`` runs after each batch.
        batch_runs: Runs per target transaction (at least 1).

    Returns:
        A `MigrateResult`: each run's outcome, rows and copied checkpoint.

    Raises:
        SmithersError: ``INVALID_INPUT`` for a bad `source`/`target` (`check_migrate_args`);
            ``SMITHERS_MIGRATION_REQUIRED`` if the target has an older schema.
        RunAlreadyExistsError: ``RUN_ALREADY_EXISTS`` if the target holds a run id with
            other events; the batches before it stay written.
        DatabaseQueryError / DatabaseWriteError: if either database fails.
    """
    path = check_migrate_args(source, target)
    src = await open_store(path, read_only=True)
    try:
        dst = await open_store(target)
        try:
            return await _copy(src, dst, path, target, on_progress, max(1, batch_runs))
        finally:
            with anyio.CancelScope(shield=True):
                await dst.close()
    finally:
        with anyio.CancelScope(shield=True):
            await src.close()


async def _copy(
    src: EventStore,
    dst: EventStore,
    path: Path,
    target: str,
    on_progress: ProgressCallback | None,
    batch_runs: int,
) -> MigrateResult:
    records = sorted(await src.list_runs(), key=lambda r: (r.created_at_ms, r.run_id))
    done: list[MigratedRun] = []
    events = 0
    written = 0
    for start in range(0, len(records), batch_runs):
        batch = [await _bulk(src, r) for r in records[start : start + batch_runs]]
        outcomes = await dst.import_runs(batch)
        for run, outcome in zip(batch, outcomes, strict=True):
            last = run.rows[-1][0] if run.rows else 0
            checkpoint = await src.get_checkpoint(run.run_id, at_or_before_seq=last)
            if checkpoint is not None:
                await dst.put_checkpoint(run.run_id, checkpoint[0], checkpoint[1])
            events += len(run.rows)
            written += outcome in ("imported", "extended")
            done.append(
                MigratedRun(
                    run_id=run.run_id,
                    outcome=outcome,
                    rows=len(run.rows),
                    checkpoint_seq=checkpoint[0] if checkpoint is not None else None,
                )
            )
        if on_progress is not None:
            on_progress(len(done), len(records))
    return MigrateResult(
        source=str(path),
        target=redact_url(target),
        runs=tuple(done),
        events=events,
        written=written,
    )
