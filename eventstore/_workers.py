"""The workers side table (``_smithers_workers``): which worker processes are alive.

Operational, not state, like leases: each ``smithers worker`` upserts its row every few
seconds (`WorkerRecord.heartbeat_at_ms`) and deletes it when it exits; ``smithers
workers`` lists the rows. Deleting the table loses nothing of any run's history. The
table is created on a worker's first write (``CREATE TABLE IF NOT EXISTS``), so stores
of an older schema need no migration; a store that never had a worker lists none.
"""

from __future__ import annotations

import msgspec

__all__ = ("WORKERS_TABLE", "WorkerRecord")

WORKERS_TABLE = "_smithers_workers"


class WorkerRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One row of the workers table: a worker process and what it drives."""

    name: str
    """The worker's name (unique: a second worker of the same name replaces the row)."""
    host: str
    pid: int
    queues: tuple[str, ...] = ()
    """The queues it takes runs from; empty: every queue."""
    concurrency: int = 1
    runs: tuple[str, ...] = ()
    """The runs it drives now."""
    started_at_ms: int = 0
    """Unix epoch ms when it started."""
    heartbeat_at_ms: int = 0
    """Unix epoch ms of its last row update."""
    draining: bool = False
    """Asked to stop: it claims nothing more and finishes its runs."""
