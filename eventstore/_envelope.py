"""The stored-event envelope: what the log keeps for each event, whatever its type."""

from __future__ import annotations

import msgspec

__all__ = ("StoredEvent", "RunRecord", "Lease")


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One row of `_smithers_events`.

    Storage does not interpret `data`; readers decode it with `decode_event`, which
    skips types this version does not know.
    """

    position: int
    """Global order across all runs, from 1."""
    run_id: str
    """Run (stream) id."""
    seq: int
    """Per-run sequence number, contiguous from 1."""
    type: str
    """Event type tag, e.g. ``"NodeFinished"``."""
    timestamp_ms: int
    """Unix epoch milliseconds when the event was recorded."""
    data: bytes
    """The encoded event (camelCase JSON)."""
    hash: bytes = b""
    """The row's chain hash (32 bytes, see `chain_hash`); set by `read_chained` only,
    empty (``b""``) from the other reads, which do not fetch it."""


class RunRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One row of the runs index: a cache of each run's summary, rebuildable from the log."""

    run_id: str
    workflow_name: str
    status: str
    """Last recorded `RunStatus`."""
    created_at_ms: int
    """Timestamp of the run's first event, Unix epoch ms."""
    updated_at_ms: int
    """Timestamp of the run's last event, Unix epoch ms."""
    last_seq: int
    """Seq of the run's last event."""


class Lease(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One row of the leases table: which process currently owns a run (DESIGN §6).

    Operational, not state: the claim itself is an append with `expected_seq`, and
    deleting every lease loses nothing of a run's history. The owner renews
    `heartbeat_at_ms` while it runs; a lease whose heartbeat is old marks an owner
    that may have died.
    """

    run_id: str
    """The run this lease is for (one lease per run)."""
    owner_id: str
    """Id of the owning runtime, as recorded in its `RunStarted` event."""
    pid: int
    """Process id of the owner on `host`."""
    host: str
    """Host name of the machine the owner runs on."""
    acquired_at_ms: int
    """Unix epoch milliseconds when the owner took the run."""
    heartbeat_at_ms: int
    """Unix epoch milliseconds of the owner's last heartbeat."""
