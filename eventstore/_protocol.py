"""The `EventStore` protocol: the contract every backend keeps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from ._envelope import Lease, RunRecord, StoredEvent
    from ._sqlite_bulk import BulkDeletion, BulkRun, ImportOutcome
    from ._workers import WorkerRecord
    from .events import Event

__all__ = ("EventStore",)


class EventStore(Protocol):
    """An append-only log of run events with optimistic concurrency.

    Implementations: `SQLiteEventStore` (default) and `MemoryEventStore` (tests).
    Neither ever updates or deletes an event.

    Beside the log, two operational side tables that are not state (deleting them
    loses nothing of a run's history): leases (which process owns a run, DESIGN §6)
    and checkpoints (cached folds of a run's events, DESIGN §5).
    """

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        status: str | None = None,
        workflow_name: str | None = None,
    ) -> int:
        """Append a batch atomically after checking the run is at `expected_seq`.

        Each row gets its chain hash (`chain_hash`) from the run's previous row, in
        the same transaction; a run's first row chains from zeros, or, if it is a
        ``RunForked``, from its parent's row at ``parentSeq`` (`chain_origin`).

        Args:
            run_id: The run (stream) to append to.
            events: Events to append, in order; seqs ``expected_seq + 1 …`` are assigned.
            expected_seq: The run's current last seq (0 for a new run).
            status: New status for the runs index, when the batch changes it.
            workflow_name: Workflow name for the runs index (first batch).

        Returns:
            The run's new last seq.

        Raises:
            RunAlreadyExistsError: if `expected_seq` is 0 and the run has events.
            SeqConflictError: if the run's last seq is not `expected_seq`.
            DatabaseWriteError: if the write failed; nothing of the batch was kept.
        """
        ...

    async def read(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return the run's events with ``after_seq < seq <= upto_seq``, in seq order."""
        ...

    async def read_chained(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return what `read` returns, with each row's chain hash (`StoredEvent.hash`).

        For `verify_chain` (the rows' `position` tells a moved row). Awaits I/O.

        Args:
            run_id: The run to read.
            after_seq: Only rows with a seq above this.
            upto_seq: Only rows with a seq up to this (None: to the end).

        Returns:
            The rows in seq order, `hash` set (``b""`` where no chain was computed:
            a database of schema version 2 opened read-only).

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        ...

    async def read_all(
        self, *, after_position: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """Return events of every run with ``position > after_position``, in global order."""
        ...

    async def read_types(
        self,
        types: Sequence[str],
        *,
        run_ids: Sequence[str] | None = None,
        since_ms: int | None = None,
    ) -> list[StoredEvent]:
        """Return the events whose ``type`` is one of `types`, in global (position) order.

        Filtered by the stored type tag, so events of other types are not read or
        decoded: the audit trail lists operations across a database this way.

        Args:
            types: Event type tags (class names), e.g. ``["RunRewound"]``.
            run_ids: Only these streams (``run_id`` column); None: every stream.
            since_ms: Only events recorded at or after this Unix epoch ms.

        Returns:
            The matching events, oldest first.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        ...

    async def last_seq(self, run_id: str) -> int:
        """Return the run's last seq, 0 if it has no events."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run's index row, or None if the run does not exist."""
        ...

    async def list_runs(
        self, *, limit: int | None = None, statuses: Collection[str] | None = None
    ) -> list[RunRecord]:
        """Return runs, newest first.

        Args:
            limit: At most this many; None: all.
            statuses: Only runs whose index status is one of these; None: any. Applied
                by the database, so a worker's look at a long history reads only the
                runs it may take.
        """
        ...

    # -------------------------------------------------------------- leases

    async def put_lease(self, lease: Lease) -> None:
        """Record `lease` as the run's lease, replacing any lease the run had.

        The caller has already won the run through `append(expected_seq=...)`; this
        only records the new owner. Awaits I/O.

        Args:
            lease: The new owner's lease; `lease.run_id` picks the row.

        Raises:
            DatabaseWriteError: if the write failed; the previous lease is unchanged.
        """
        ...

    async def renew_lease(self, run_id: str, owner_id: str, heartbeat_at_ms: int) -> bool:
        """Set the lease's heartbeat if `owner_id` still holds the run's lease.

        Awaits I/O.

        Args:
            run_id: The run whose lease to renew.
            owner_id: The owner renewing; nothing changes unless it holds the lease.
            heartbeat_at_ms: The new heartbeat, Unix epoch milliseconds.

        Returns:
            True if the lease was renewed; False if the run has no lease or another
            owner holds it (the caller has lost the run).

        Raises:
            DatabaseWriteError: if the write failed; the lease is unchanged.
        """
        ...

    async def release_lease(self, run_id: str, owner_id: str) -> None:
        """Delete the run's lease if `owner_id` holds it; otherwise do nothing.

        Awaits I/O.

        Args:
            run_id: The run whose lease to release.
            owner_id: The releasing owner; another owner's lease is left in place.

        Raises:
            DatabaseWriteError: if the write failed; the lease is unchanged.
        """
        ...

    async def get_lease(self, run_id: str) -> Lease | None:
        """Return the run's lease, or None if it has none. Awaits I/O.

        Args:
            run_id: The run to look up.

        Returns:
            The lease, or None.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        ...

    async def list_leases(self) -> list[Lease]:
        """Return every lease, ordered by run id. Awaits I/O.

        Returns:
            The leases, ordered by `run_id`.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        ...

    # -------------------------------------------------------------- workers

    async def put_worker(self, record: WorkerRecord) -> None:
        """Insert or replace `record` in the workers side table (``smithers worker``).

        Operational, like leases (see `WorkerRecord`); the table is created on the first
        write. Awaits I/O.

        Raises:
            DatabaseWriteError: if the write failed.
        """
        ...

    async def delete_worker(self, name: str) -> None:
        """Delete the worker row named `name`, if any. Awaits I/O.

        Raises:
            DatabaseWriteError: if the write failed.
        """
        ...

    async def list_workers(self) -> list[WorkerRecord]:
        """Return every worker row, ordered by name (none if no worker ever ran).

        Awaits I/O.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        ...

    # -------------------------------------------------------------- checkpoints

    async def put_checkpoint(self, run_id: str, seq: int, data: bytes) -> None:
        """Store `data` as the run's checkpoint at `seq`, replacing one already there.

        Storage does not interpret `data` (the caller's encoded, folded state after
        the event at `seq`). Awaits I/O.

        Args:
            run_id: The run the checkpoint belongs to.
            seq: The seq of the last event folded into `data`.
            data: The encoded checkpoint.

        Raises:
            DatabaseWriteError: if the write failed; nothing of it was kept.
        """
        ...

    async def get_checkpoint(
        self, run_id: str, *, at_or_before_seq: int
    ) -> tuple[int, bytes] | None:
        """Return the run's latest checkpoint with ``seq <= at_or_before_seq``.

        Awaits I/O.

        Args:
            run_id: The run to look up.
            at_or_before_seq: The highest seq the checkpoint may have.

        Returns:
            ``(seq, data)`` of that checkpoint, or None if the run has none so early.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        ...

    async def delete_checkpoints(self, run_id: str | None = None) -> int:
        """Delete the checkpoints of `run_id`, or of every run if it is None.

        Awaits I/O. Loses nothing: checkpoints are rebuilt by folding the log.

        Args:
            run_id: The run whose checkpoints to delete; None for all runs.

        Returns:
            How many checkpoints were deleted.

        Raises:
            DatabaseWriteError: if the write failed; nothing was deleted.
        """
        ...

    async def close(self) -> None:
        """Release the store's resources; further calls fail."""
        ...

    # -------------------------------------------------------------- whole runs

    async def import_runs(self, runs: Sequence[BulkRun]) -> list[ImportOutcome]:
        """Write whole runs' rows verbatim (``smithers import``), all in one transaction.

        Payload bytes are stored exactly as given, never re-encoded. A run already
        stored is compared row by row: identical rows write nothing (``"identical"``),
        a stored prefix is extended (``"extended"``), stored rows beyond the given
        ones are kept (``"kept"``); a new run is ``"imported"``. Awaits I/O.

        Args:
            runs: The runs, each with its rows from seq 1 and its runs-index entry.

        Returns:
            One outcome per run, in order.

        Raises:
            RunAlreadyExistsError: code ``RUN_ALREADY_EXISTS`` if a run exists with
                different contents; nothing of any run was written.
            DatabaseWriteError: if the write failed; nothing was written.
        """
        ...

    async def delete_runs(
        self, deletions: Sequence[BulkDeletion], *, audit_stream: str, audit_event: Event | None
    ) -> int:
        """Delete whole runs (``smithers gc``) and record it, in one transaction.

        A deletion with `keep_seqs` keeps those rows (the run's audit) and sets its
        index status to `kept_status`; without, the run's rows and index entry go.
        Checkpoints and leases of every run named go too. `audit_event`, if given, is
        appended to the stream `audit_stream` (next seq) in the same transaction.
        Awaits I/O.

        Returns:
            How many event rows were deleted.

        Raises:
            SeqConflictError: if a deletion's `expected_last_seq` is not the run's last
                seq (it changed since it was chosen); nothing was deleted or recorded.
            DatabaseWriteError: if the write failed; nothing was deleted or recorded.
        """
        ...
