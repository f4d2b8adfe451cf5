"""An in-memory event store with the same contract as the SQLite one (for tests)."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

import msgspec

from ._chain import ZERO_HASH, chain_hash, chain_origin
from ._codec import encode_event
from ._envelope import Lease, RunRecord, StoredEvent
from ._sqlite_bulk import compare_rows, parents_first
from .errors import NotOpenError, RunAlreadyExistsError, SeqConflictError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from ._sqlite_bulk import BulkDeletion, BulkRun, ImportOutcome
    from ._workers import WorkerRecord
    from .events import Event

__all__ = ("MemoryEventStore",)


class MemoryEventStore:
    """`EventStore` kept in process memory; lost when the process ends.

    Events are encoded on append exactly as the SQLite store encodes them, so a test
    on this store sees the same bytes and the same unknown-type handling.
    """

    def __init__(self) -> None:
        self._events: list[StoredEvent] = []
        self._by_run: dict[str, list[StoredEvent]] = {}
        # Each run's chain hashes, by seq - 1 (apart: `read` returns rows without them).
        self._hashes: dict[str, list[bytes]] = {}
        self._runs: dict[str, RunRecord] = {}
        self._leases: dict[str, Lease] = {}
        self._checkpoints: dict[str, dict[int, bytes]] = {}
        self._worker_rows: dict[str, WorkerRecord] = {}
        self._closed = False

    async def __aenter__(self) -> MemoryEventStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise NotOpenError("The event store is closed.")

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        status: str | None = None,
        workflow_name: str | None = None,
    ) -> int:
        """Append a batch atomically (see `EventStore.append`)."""
        self._check_open()
        if not events:
            return expected_seq
        stream = self._by_run.get(run_id, [])
        actual = stream[-1].seq if stream else 0
        if actual != expected_seq:
            if expected_seq == 0:
                raise RunAlreadyExistsError(run_id, actual_seq=actual)
            raise SeqConflictError(run_id, expected_seq=expected_seq, actual_seq=actual)
        # Encode everything first so a bad event leaves the log untouched (atomic batch).
        encoded = [encode_event(e) for e in events]
        base = self._events[-1].position if self._events else 0  # gaps after delete_runs
        new = [
            StoredEvent(
                position=base + i,
                run_id=run_id,
                seq=expected_seq + i,
                type=type(e).__name__,
                timestamp_ms=e.timestamp_ms,
                data=data,
            )
            for i, (e, data) in enumerate(zip(events, encoded, strict=True), 1)
        ]
        hashes = self._hashes.setdefault(run_id, [])
        prev = hashes[-1] if hashes else self._origin_hash(new[0])
        for row in new:
            prev = chain_hash(prev, row.seq, row.type, row.data)
            hashes.append(prev)
        self._events.extend(new)
        self._by_run.setdefault(run_id, []).extend(new)
        last = new[-1]
        old = self._runs.get(run_id)
        self._runs[run_id] = RunRecord(
            run_id=run_id,
            workflow_name=workflow_name or (old.workflow_name if old else ""),
            status=status or (old.status if old else "running"),
            created_at_ms=old.created_at_ms if old else new[0].timestamp_ms,
            updated_at_ms=last.timestamp_ms,
            last_seq=last.seq,
        )
        return last.seq

    async def read(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return the run's events with ``after_seq < seq <= upto_seq``."""
        self._check_open()
        stream = self._by_run.get(run_id, [])
        if stream and stream[-1].seq != len(stream):  # rows deleted by `delete_runs`
            top = upto_seq if upto_seq is not None else stream[-1].seq
            return [e for e in stream if after_seq < e.seq <= top]
        end = len(stream) if upto_seq is None else max(0, min(upto_seq, len(stream)))
        return stream[max(after_seq, 0) : end]

    async def read_chained(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return what `read` does, each row's chain `hash` set."""
        rows = await self.read(run_id, after_seq=after_seq, upto_seq=upto_seq)
        hashes = self._hashes.get(run_id, [])
        return [msgspec.structs.replace(r, hash=hashes[r.seq - 1]) for r in rows]

    def _origin_hash(self, first: StoredEvent) -> bytes:
        # What a run's first row chains from (see `chain_origin`).
        origin = chain_origin(first.type, first.data)
        if origin is None:
            return ZERO_HASH
        parent = self._hashes.get(origin[0], [])
        seq = origin[1]
        return parent[seq - 1] if 1 <= seq <= len(parent) else ZERO_HASH

    async def read_all(
        self, *, after_position: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """Return events of all runs with ``position > after_position``."""
        self._check_open()
        start = bisect.bisect_right([e.position for e in self._events], after_position)
        tail = self._events[start:]
        return tail if limit is None else tail[:limit]

    async def last_seq(self, run_id: str) -> int:
        """Return the run's last seq, 0 if it has no events."""
        self._check_open()
        stream = self._by_run.get(run_id)
        return stream[-1].seq if stream else 0

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run's index row, or None."""
        self._check_open()
        return self._runs.get(run_id)

    async def list_runs(
        self, *, limit: int | None = None, statuses: Collection[str] | None = None
    ) -> list[RunRecord]:
        """Return runs, newest first (see `EventStore.list_runs`)."""
        self._check_open()
        # Newest first; ties broken by creation order, newest first (as SQLite's rowid).
        runs = [
            r for r in reversed(self._runs.values()) if statuses is None or r.status in statuses
        ]
        runs.sort(key=lambda r: r.created_at_ms, reverse=True)
        return runs if limit is None else runs[:limit]

    # ------------------------------------------------------------------ leases

    async def put_lease(self, lease: Lease) -> None:
        """Record `lease` as its run's lease, replacing any (see `EventStore.put_lease`)."""
        self._check_open()
        self._leases[lease.run_id] = lease

    async def renew_lease(self, run_id: str, owner_id: str, heartbeat_at_ms: int) -> bool:
        """Set the heartbeat if `owner_id` holds the lease (see `EventStore.renew_lease`).

        Returns:
            True if renewed; False if the run has no lease or another owner holds it.
        """
        self._check_open()
        lease = self._leases.get(run_id)
        if lease is None or lease.owner_id != owner_id:
            return False
        self._leases[run_id] = msgspec.structs.replace(lease, heartbeat_at_ms=heartbeat_at_ms)
        return True

    async def release_lease(self, run_id: str, owner_id: str) -> None:
        """Delete the run's lease if `owner_id` holds it (see `EventStore.release_lease`)."""
        self._check_open()
        lease = self._leases.get(run_id)
        if lease is not None and lease.owner_id == owner_id:
            del self._leases[run_id]

    async def get_lease(self, run_id: str) -> Lease | None:
        """Return the run's lease, or None."""
        self._check_open()
        return self._leases.get(run_id)

    async def list_leases(self) -> list[Lease]:
        """Return every lease, ordered by run id."""
        self._check_open()
        return [self._leases[run_id] for run_id in sorted(self._leases)]

    # ------------------------------------------------------------------ workers

    async def put_worker(self, record: WorkerRecord) -> None:
        """Insert or replace the worker's row (see `EventStore.put_worker`)."""
        self._check_open()
        self._worker_rows[record.name] = record

    async def delete_worker(self, name: str) -> None:
        """Delete the worker's row, if any (see `EventStore.delete_worker`)."""
        self._check_open()
        self._worker_rows.pop(name, None)

    async def list_workers(self) -> list[WorkerRecord]:
        """Every worker row, ordered by name."""
        self._check_open()
        return [self._worker_rows[name] for name in sorted(self._worker_rows)]

    # ------------------------------------------------------------------ checkpoints

    async def put_checkpoint(self, run_id: str, seq: int, data: bytes) -> None:
        """Store the run's checkpoint at `seq` (see `EventStore.put_checkpoint`)."""
        self._check_open()
        # bytes() copies a bytearray or memoryview, as SQLite does, so a caller reusing
        # its buffer cannot change a stored checkpoint (and is free for `bytes`).
        self._checkpoints.setdefault(run_id, {})[seq] = bytes(data)

    async def get_checkpoint(
        self, run_id: str, *, at_or_before_seq: int
    ) -> tuple[int, bytes] | None:
        """Return ``(seq, data)`` of the latest checkpoint with ``seq <= at_or_before_seq``.

        Returns:
            The checkpoint, or None if the run has none that early.
        """
        self._check_open()
        by_seq = self._checkpoints.get(run_id, {})
        seq = max((s for s in by_seq if s <= at_or_before_seq), default=None)
        return None if seq is None else (seq, by_seq[seq])

    async def delete_checkpoints(self, run_id: str | None = None) -> int:
        """Delete the checkpoints of `run_id`, or of every run if None.

        Returns:
            How many checkpoints were deleted.
        """
        self._check_open()
        if run_id is None:
            count = sum(len(by_seq) for by_seq in self._checkpoints.values())
            self._checkpoints.clear()
            return count
        return len(self._checkpoints.pop(run_id, {}))

    async def read_types(
        self,
        types: Sequence[str],
        *,
        run_ids: Sequence[str] | None = None,
        since_ms: int | None = None,
    ) -> list[StoredEvent]:
        """Return the events whose type is one of `types`, in global order."""
        self._check_open()
        wanted = frozenset(types)
        runs = None if run_ids is None else frozenset(run_ids)
        return [
            e
            for e in self._events
            if e.type in wanted
            and (runs is None or e.run_id in runs)
            and (since_ms is None or e.timestamp_ms >= since_ms)
        ]

    async def close(self) -> None:
        """Mark the store closed."""
        self._closed = True

    # ------------------------------------------------------------------ whole runs

    async def import_runs(self, runs: Sequence[BulkRun]) -> list[ImportOutcome]:
        """Write whole runs' rows verbatim, all or nothing (see `EventStore.import_runs`)."""
        self._check_open()
        plans = []
        for run in runs:  # compare everything first: a conflict leaves the log untouched
            have = [
                (e.seq, e.type, e.timestamp_ms, e.data) for e in self._by_run.get(run.run_id, [])
            ]
            plans.append(compare_rows(run.run_id, have, run.rows))
        start_of = {run.run_id: start for run, (_, start) in zip(runs, plans, strict=True)}
        for run in parents_first(runs):  # a fork's first row chains from its parent's
            start = start_of[run.run_id]
            new = [
                StoredEvent(
                    position=(self._events[-1].position if self._events else 0) + i,
                    run_id=run.run_id,
                    seq=seq,
                    type=type_name,
                    timestamp_ms=ms,
                    data=bytes(payload),
                )
                for i, (seq, type_name, ms, payload) in enumerate(run.rows[start:], 1)
            ]
            if not new:
                continue
            hashes = self._hashes.setdefault(run.run_id, [])
            prev = hashes[-1] if hashes else self._origin_hash(new[0])
            for row in new:
                prev = chain_hash(prev, row.seq, row.type, row.data)
                hashes.append(prev)
            self._events.extend(new)
            self._by_run.setdefault(run.run_id, []).extend(new)
            old = self._runs.get(run.run_id)
            self._runs[run.run_id] = RunRecord(
                run_id=run.run_id,
                workflow_name=old.workflow_name if old else run.workflow_name,
                status=run.status,
                created_at_ms=old.created_at_ms if old else run.rows[0][2],
                updated_at_ms=new[-1].timestamp_ms,
                last_seq=new[-1].seq,
            )
        return [outcome for outcome, _ in plans]

    async def delete_runs(
        self, deletions: Sequence[BulkDeletion], *, audit_stream: str, audit_event: Event | None
    ) -> int:
        """Delete runs and record it (see `EventStore.delete_runs`)."""
        self._check_open()
        if audit_event is not None:
            encode_event(audit_event)  # fails before anything is deleted
        for d in deletions:  # check first: a conflict deletes nothing
            actual = await self.last_seq(d.run_id)
            if d.expected_last_seq is not None and actual != d.expected_last_seq:
                raise SeqConflictError(
                    d.run_id, expected_seq=d.expected_last_seq, actual_seq=actual
                )
        deleted = 0
        for d in deletions:
            keep = set(d.keep_seqs)
            stream = self._by_run.pop(d.run_id, [])
            kept = [e for e in stream if e.seq in keep]
            deleted += len(stream) - len(kept)
            gone = {id(e) for e in stream if e.seq not in keep}
            self._events = [e for e in self._events if id(e) not in gone]
            if kept:
                self._by_run[d.run_id] = kept
                old = self._runs[d.run_id]
                self._runs[d.run_id] = msgspec.structs.replace(old, status=d.kept_status)
            else:
                self._runs.pop(d.run_id, None)
                self._hashes.pop(d.run_id, None)  # kept rows keep theirs (by seq)
            self._checkpoints.pop(d.run_id, None)
            self._leases.pop(d.run_id, None)
        if audit_event is not None:
            await self.append(
                audit_stream,
                [audit_event],
                expected_seq=await self.last_seq(audit_stream),
                status="audit",
            )
        return deleted
