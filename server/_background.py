"""Runs the server drives in its own process: resumes, retries and replays in the background.

`Client.start` runs new runs in the client's task group; a resume (and a retry or a
replay, which resume a run) is a call that lasts until the run ends or parks, so the
server runs it in its own task group and answers as soon as the run is claimed (its
first event), or with the error that stopped it before that.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

__all__ = ("Background",)

log = logging.getLogger("smithers.server")


class Background:
    """The server's background activations, keyed by run id.

    Args:
        tg: The task group they run in (the app's lifespan owns it).
    """

    def __init__(self, tg: TaskGroup) -> None:
        self._tg = tg
        self.active: dict[str, anyio.CancelScope] = {}
        """Run id -> cancel scope of the activation this server drives now."""

    async def launch(
        self, run_id: str, call: Callable[[Callable[[Any], None]], Awaitable[Any]]
    ) -> None:
        """Run ``call(on_progress)`` in the background; return once the run is claimed.

        Args:
            run_id: The run the call drives (for the registry and the log).
            call: Starts the activation; it must pass `on_progress` to the engine.

        Raises:
            SmithersError: what `call` raised before the run recorded anything
                (e.g. ``RUN_NOT_RESUMABLE``); later errors are logged.
        """
        ready = anyio.Event()
        failure: list[BaseException] = []
        scope = anyio.CancelScope()

        def progress(_event: Any) -> None:
            ready.set()

        async def drive() -> None:
            try:
                with scope:
                    self.active[run_id] = scope
                    await call(progress)
            except Exception as e:
                if ready.is_set():
                    log.warning("run %s stopped with an error: %s", run_id, e)
                else:
                    failure.append(e)
            finally:
                if self.active.get(run_id) is scope:
                    del self.active[run_id]
                ready.set()

        self._tg.start_soon(drive, name=f"smithers-server run {run_id}")
        await ready.wait()
        if failure:
            raise failure[0]
