"""The `EventStore` protocol: the contract every backend keeps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._envelope import RunRecord, StoredEvent
    from .events import Event

__all__ = ("EventStore",)


class EventStore(Protocol):
    """An append-only log of run events with optimistic concurrency.

    Implementations: `SQLiteEventStore` (default) and `MemoryEventStore` (tests).
    Neither ever updates or deletes an event.
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
            StreamVersionConflictError: if the run's last seq is not `expected_seq`.
            DatabaseWriteError: if the write failed; nothing of the batch was kept.
        """
        ...

    async def read(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return the run's events with ``after_seq < seq <= upto_seq``, in seq order."""
        ...

    async def read_all(
        self, *, after_position: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """Return events of every run with ``position > after_position``, in global order."""
        ...

    async def last_seq(self, run_id: str) -> int:
        """Return the run's last seq, 0 if it has no events."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run's index row, or None if the run does not exist."""
        ...

    async def list_runs(self, *, limit: int | None = None) -> list[RunRecord]:
        """Return runs, newest first."""
        ...

    async def close(self) -> None:
        """Release the store's resources; further calls fail."""
        ...
