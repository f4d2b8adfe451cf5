"""Task heartbeat bookkeeping, coalesced into `TaskHeartbeat` events.

When each task was last seen, its latest payload, and which heartbeats become events
(at most one per task per `BEAT_COALESCE_MS`, so the log stays small).

Pure bookkeeping (no I/O, no clock): the run loop passes the time in and emits the
events this returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.eventstore.events import NULL_RAW, TaskHeartbeat

if TYPE_CHECKING:
    import msgspec
    from smithers.projections import NodeKey

__all__ = ("BEAT_COALESCE_MS", "BeatBook")

BEAT_COALESCE_MS = 500
"""At most one TaskHeartbeat event per task per this many ms."""


class BeatBook:
    """Heartbeats of one run's tasks, by node key ``(node_id, iteration)``."""

    __slots__ = ("_emitted_at", "_last_at", "_payload", "_pending", "run_id", "timed_out")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._last_at: dict[NodeKey, int] = {}
        self._payload: dict[NodeKey, msgspec.Raw] = {}
        self._pending: dict[NodeKey, tuple[int, msgspec.Raw]] = {}
        self._emitted_at: dict[NodeKey, int] = {}
        self.timed_out: set[NodeKey] = set()
        """Node keys whose running attempt the watchdog stopped for silence."""

    def started(self, key: NodeKey, now_ms: int) -> None:
        """An attempt started: it counts as seen now."""
        self._last_at[key] = now_ms

    def last_at(self, key: NodeKey) -> int:
        """Unix epoch ms the node's running attempt was last seen (0 if never)."""
        return self._last_at.get(key, 0)

    def payload(self, key: NodeKey) -> msgspec.Raw | None:
        """The latest payload a heartbeat of this node carried in this activation."""
        return self._payload.get(key)

    def record(
        self, key: NodeKey, attempt: int, raw: msgspec.Raw | None, now_ms: int
    ) -> TaskHeartbeat | None:
        """Note a heartbeat; return the event to record, unless coalesced away."""
        self._last_at[key] = now_ms
        if raw is not None:
            self._payload[key] = raw
            self._pending[key] = (attempt, raw)
        if now_ms - self._emitted_at.get(key, 0) < BEAT_COALESCE_MS:
            return None
        self._pending.pop(key, None)
        return self._event(key, attempt, raw, now_ms)

    def flush(self, key: NodeKey, now_ms: int) -> TaskHeartbeat | None:
        """The event for a payload coalesced away, before the attempt's end is recorded."""
        pending = self._pending.pop(key, None)
        if pending is None:
            return None
        return self._event(key, pending[0], pending[1], now_ms)

    def _event(
        self, key: NodeKey, attempt: int, raw: msgspec.Raw | None, now_ms: int
    ) -> TaskHeartbeat:
        self._emitted_at[key] = now_ms
        return TaskHeartbeat(
            run_id=self.run_id,
            timestamp_ms=now_ms,
            node_id=key[0],
            iteration=key[1],
            attempt=attempt,
            has_data=raw is not None,
            data_size_bytes=len(raw) if raw is not None else 0,
            data=raw if raw is not None else NULL_RAW,
        )
