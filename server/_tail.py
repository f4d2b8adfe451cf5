"""One reader per run for every event stream on it (the fan-out of ``/events``).

However many clients follow a run, the server reads and encodes each of its events
once: a `RunTail` follows the run's log (`RunHandle.follow_events`) in the server's
task group and keeps the encoded SSE payloads; each subscriber walks that list from
its own position and waits for more. Seqs are contiguous from 1, so ``after_seq``
is an index. A tail with no subscriber left is stopped and dropped, so memory is
held only for the runs someone is watching.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import anyio
import msgspec
from smithers.engine import event_to_json

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import TaskGroup
    from smithers.engine import RunHandle

__all__ = ("RunTail", "Tails")

log = logging.getLogger("smithers.server")
_encode = msgspec.json.Encoder().encode


class RunTail:
    """The encoded events of one run, read once, shared by its subscribers."""

    def __init__(self, handle: RunHandle, poll_interval_s: float) -> None:
        self.handle = handle
        self.poll_interval_s = poll_interval_s
        self.messages: list[tuple[int, str]] = []
        """``(seq, data)`` for seqs 1, 2, ... read so far."""
        self.ended = False
        self.error: Exception | None = None
        self.subscribers = 0
        self.scope = anyio.CancelScope()
        self._changed = anyio.Event()

    async def follow(self) -> None:
        """Read the run's events until it ends (or the tail is cancelled)."""
        try:
            with self.scope:
                stream = self.handle.follow_events(poll_interval_s=self.poll_interval_s)
                async with contextlib.aclosing(stream) as pairs:
                    async for stored, _event in pairs:
                        data = _encode(event_to_json(stored)).decode()
                        self.messages.append((stored.seq, data))
                        self._wake()
        except Exception as e:  # reported to the subscribers, who end their streams
            log.warning("could not follow run %s: %s", self.handle.run_id, e)
            self.error = e
        finally:
            self.ended = True
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def events(self, after_seq: int) -> AsyncIterator[tuple[int, str]]:
        """Yield ``(seq, data)`` for every event after `after_seq`, live, until the end."""
        index = after_seq
        while True:
            changed = self._changed
            while index < len(self.messages):
                yield self.messages[index]
                index += 1
            if self.ended:
                return
            await changed.wait()


class Tails:
    """The server's `RunTail`s, by run id, started in its task group."""

    def __init__(self, tg: TaskGroup, poll_interval_s: float) -> None:
        self._tg = tg
        self._poll_interval_s = poll_interval_s
        self._tails: dict[str, RunTail] = {}

    @contextlib.asynccontextmanager
    async def subscribe(self, handle: RunHandle) -> AsyncIterator[RunTail]:
        """Hold the run's tail (started if new) while the block runs; drop it when unused."""
        tail = self._tails.get(handle.run_id)
        if tail is None:
            tail = RunTail(handle, self._poll_interval_s)
            self._tails[handle.run_id] = tail
            self._tg.start_soon(tail.follow, name=f"smithers-server tail {handle.run_id}")
        tail.subscribers += 1
        try:
            yield tail
        finally:
            tail.subscribers -= 1
            if tail.subscribers == 0 and self._tails.get(handle.run_id) is tail:
                del self._tails[handle.run_id]
                tail.scope.cancel()
