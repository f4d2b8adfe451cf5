"""The time travel of a `RunHandle`: rewind, fork, replay and retry-task of its run.

A mixin of `RunHandle` (import that); every method goes through the handle's client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .timetravel import fork, replay, retry_task, rewind

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Self

    from smithers.eventstore import EventStore
    from smithers.projections import RunState

    from ._client import Client
    from .lifecycle import RunResult

__all__ = ("TimeTravelOps",)


class TimeTravelOps:
    """Rewind, fork, replay and retry-task, as methods of a `RunHandle`."""

    _client: Client
    run_id: str

    if TYPE_CHECKING:

        def __init__(self, client: Client, run_id: str) -> None: ...

        async def _store(self) -> EventStore: ...

    async def rewind(self, frame: int, *, force: bool = False, **options: Any) -> RunState:
        """Rewind the run to frame `frame`: append ``RunRewound`` (see `rewind`).

        Resume it afterwards with `resume`.

        Args:
            frame: Frame number of the run (see `timeline`).
            force: Rewind although an owner on another host seems alive.
            **options: Other keyword arguments of `rewind` (``by``, ``reason``:
                who and why, recorded as the operation's ``actor``; ``stale_threshold_ms``,
                ``clock``).

        Returns:
            The run's state after the rewind.

        Raises:
            RunNotFoundError, SnapshotNotFoundError, RunOwnerAliveError,
            RunStillRunningError, SeqConflictError: as `rewind`.
        """
        return await rewind(
            self.run_id,
            frame=frame,
            store=await self._store(),
            db=self._client.path,
            force=force,
            **options,
        )

    async def fork(
        self,
        frame: int,
        *,
        reset_nodes: Iterable[str] = (),
        input: Any = None,
        label: str | None = None,
        run_id_new: str | None = None,
        **options: Any,
    ) -> Self:
        """Fork the run at frame `frame` into a new run, not started (see `fork`).

        Args:
            frame: Frame number of this run (see `timeline`).
            reset_nodes: Node ids the fork runs again although they finished by then.
            input: The fork's input (a JSON object); None keeps this run's.
            label: Branch label of the fork.
            run_id_new: The fork's run id (default: a new one).
            **options: Other keyword arguments of `fork` (``by``, ``reason``:
                who and why, recorded as the operation's ``actor``; ``clock``).

        Returns:
            The fork's handle; run it with its `resume`.

        Raises:
            RunNotFoundError, SnapshotNotFoundError, NodeNotFoundError,
            InvalidInputError, RunAlreadyExistsError: as `fork`.
        """
        child = await fork(
            self.run_id,
            frame=frame,
            reset_nodes=reset_nodes,
            input=input,
            label=label,
            store=await self._store(),
            db=self._client.path,
            run_id_new=run_id_new,
            **options,
        )
        return type(self)(self._client, child)

    async def replay(
        self,
        frame: int,
        *,
        input: Any = None,
        reset_nodes: Iterable[str] = (),
        label: str | None = None,
        **options: Any,
    ) -> RunResult:
        """Fork the run at frame `frame` and run the fork now, to its end (see `replay`).

        Args:
            frame: Frame number of this run (see `timeline`).
            input: The replay's input (a JSON object); None keeps this run's.
            reset_nodes: Node ids to run again although they finished by the frame.
            label: Branch label of the fork.
            **options: Other keyword arguments of `replay` (``by``, ``reason``:
                who and why, recorded as the operation's ``actor``; ``workflow``,
                ``run_id_new``) and of `run_workflow` (``on_progress``, ...).

        Returns:
            The fork's `RunResult` (its `run_id` is the fork's).

        Raises:
            RunNotFoundError, SnapshotNotFoundError, NodeNotFoundError,
                InvalidInputError, RunAlreadyExistsError: as `fork`; and what
                `run_workflow` raises while the fork runs.
        """
        return await replay(
            self.run_id,
            frame=frame,
            input=input,
            reset_nodes=reset_nodes,
            label=label,
            store=await self._store(),
            db=self._client.path,
            **options,
        )

    async def retry_task(
        self,
        node_id: str,
        *,
        iteration: int | None = None,
        deps: bool = True,
        force: bool = False,
        **options: Any,
    ) -> RunResult:
        """Run a task again, with its dependents, in this run (see `retry_task`).

        Args:
            node_id: The task's node id.
            iteration: Loop iteration (pass) of the node; None: its latest. Inside a
                Loop, the loop goes back to that pass and later passes run again.
            deps: Also reset the node's dependents.
            force: Proceed although an owner on another host seems alive.
            **options: Other keyword arguments of `retry_task` (``by``, ``reason``:
                who and why, recorded as the operation's ``actor``; ``workflow``,
                ``stale_threshold_ms``) and of `run_workflow` (``on_progress``, ...).

        Returns:
            The run's `RunResult` after the resume.

        Raises:
            RunNotFoundError, NodeNotFoundError, RunNotResumableError,
                RunOwnerAliveError, RunStillRunningError, ResumeMetadataMismatchError,
                SeqConflictError: as `retry_task`; and what `run_workflow`
                raises while the run resumes.
        """
        return await retry_task(
            self.run_id,
            node=node_id,
            iteration=iteration,
            deps=deps,
            force=force,
            store=await self._store(),
            db=self._client.path,
            **options,
        )
