"""SIGINT/SIGTERM on ``smithers up``: cancel the run gracefully, in bounded time (DESIGN §9).

The first signal asks the run to cancel (its tasks end with ``NodeCancelled``, the run
with ``RunCancelled``, source ``"signal"``); the command then exits 130 (SIGINT) or 143
(SIGTERM). A second signal, or `FORCE_AFTER_S` without the run ending, stops waiting:
the run is cancelled from outside (still recorded), and a watchdog ends the process if
even that hangs. Sync tasks run in worker threads that cannot be interrupted; once the
cancellation is recorded, `leave_promptly` does not wait for them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, TypeVar

import anyio

from ._text import safe

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("FORCE_AFTER_S", "Interrupt", "leave_promptly", "run_interruptible")

FORCE_AFTER_S = 10.0
"""After the first signal, how long the run may take to record its cancellation."""
_WATCHDOG_S = 5.0
"""After forcing, how long the recording may still take before the process exits."""
_T = TypeVar("_T")


class Interrupt:
    """The ``cancel=`` object given to `run_workflow`: fires on the first signal.

    The run loop reads its `source` and `reason` when it fires.
    """

    source = "signal"

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.signum: int | None = None
        self.reason: str | None = None
        self.forced = False

    async def wait(self) -> None:
        """Return once a signal arrived."""
        await self.event.wait()

    def fire(self, signum: int) -> None:
        """Record the signal and wake `wait`."""
        if self.signum is None:
            self.signum = signum
            self.reason = signal.Signals(signum).name
        self.event.set()

    @property
    def exit_code(self) -> int:
        """128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + (self.signum or signal.SIGINT)


def _can_watch_signals() -> bool:
    return threading.current_thread() is threading.main_thread()


def _exit_now(code: int) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(safe(line) + "\n")
        sys.stderr.flush()


async def _watch(interrupt: Interrupt, run_scope: anyio.CancelScope) -> None:
    try:
        receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        with receiver as signals:
            async for signum in signals:
                interrupt.fire(signum)
                _say(f"{interrupt.reason}: cancelling the run (a second signal stops waiting).")
                break
            with anyio.move_on_after(FORCE_AFTER_S):
                async for _ in signals:
                    break  # a second signal: stop waiting
            interrupt.forced = True
            _say("Stopping without waiting for the run's tasks.")
            timer = threading.Timer(_WATCHDOG_S, _exit_now, (interrupt.exit_code,))
            timer.daemon = True
            timer.start()
            run_scope.cancel()
    except (NotImplementedError, ValueError, RuntimeError):  # pragma: no cover - no signals
        return


async def run_interruptible(
    start: Callable[[Interrupt], Awaitable[_T]],
) -> tuple[_T | None, Interrupt]:
    """Run ``start(interrupt)`` while SIGINT/SIGTERM fire `interrupt` (main thread only).

    Returns:
        ``(result, interrupt)``; result is None if a second signal or the
        `FORCE_AFTER_S` bound cancelled the run from outside.
    """
    interrupt = Interrupt()
    result: _T | None = None
    with anyio.CancelScope() as run_scope:
        async with anyio.create_task_group() as tg:
            if _can_watch_signals():
                tg.start_soon(_watch, interrupt, run_scope)
            result = await start(interrupt)
            tg.cancel_scope.cancel()
    return result, interrupt


def _real_process() -> bool:
    """True when stdout is a real file descriptor (not a test runner's buffer)."""
    try:
        sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def leave_promptly(code: int, *, wait_s: float = 0.5) -> None:
    """Exit with `code` now if abandoned task threads would keep the process alive.

    A cancelled sync task keeps running in its worker thread (threads cannot be
    interrupted) and the interpreter waits for it at exit. Once the run's end is
    recorded nothing of it is needed, so exit without waiting. Does nothing when no
    such thread remains after `wait_s`, or inside a test runner.
    """
    if not _real_process():
        return
    main = threading.main_thread()
    others = [t for t in threading.enumerate() if t is not main and not t.daemon]
    end = time.monotonic() + wait_s
    for thread in others:  # idle worker threads stop as soon as the event loop ends
        thread.join(max(0.0, end - time.monotonic()))
    if any(t.is_alive() for t in others):
        _exit_now(code)
