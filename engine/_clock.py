"""Time, injected: the engine reads the wall clock only through a `Clock`."""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ("Clock", "SystemClock")


class Clock(Protocol):
    """Source of timestamps and sleeps (a test passes a fake)."""

    def now_ms(self) -> int:
        """Return Unix epoch milliseconds."""
        ...

    async def sleep_ms(self, ms: int) -> None:
        """Sleep `ms` milliseconds."""
        ...


class SystemClock:
    """The real clock: `time.time_ns` and `anyio.sleep`."""

    def now_ms(self) -> int:
        """Return Unix epoch milliseconds."""
        return time.time_ns() // 1_000_000

    async def sleep_ms(self, ms: int) -> None:
        """Sleep `ms` milliseconds."""
        await anyio.sleep(ms / 1000)
