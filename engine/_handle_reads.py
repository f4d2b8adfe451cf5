"""A `RunHandle`'s reads: its record, state, owner, events, outputs, timeline, diff, verify.

A mixin of `RunHandle` (as `TimeTravelOps` is): every method reads through the
client's one open store and writes nothing.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from .errors import (
    RunNotFoundError,
)
from .history import (
    active_descendants,
    child_runs,
    diff_runs,
    follow_events,
    frame_view,
    get_output,
    node_detail,
    read_events,
    state_at,
    timeline,
    verify_run,
)
from .lifecycle import (
    DEFAULT_STALE_THRESHOLD_MS,
    owner_verdict,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterable

    from smithers.eventstore import EventStore, RunRecord, StoredEvent
    from smithers.eventstore.events import Event
    from smithers.projections import RunState

    from ._client import Client
    from .authoring import Workflow
    from .history import ChildRun, FrameView, NodeDetail, RunDiff, Timeline, VerifyResult
    from .lifecycle import OwnerVerdict

__all__ = ("RunReads",)


class RunReads:
    """The read methods of a `RunHandle`."""

    _client: Client
    run_id: str

    if TYPE_CHECKING:

        async def _store(self) -> EventStore: ...

    async def describe(self) -> RunRecord:
        """Return the run's row of the runs index (status, times, last seq). One read.

        Cheaper than `state`: nothing is folded.

        Raises:
            RunNotFoundError: if the run has no events.
        """
        record = await (await self._store()).get_run(self.run_id)
        if record is None:
            raise RunNotFoundError(self.run_id)
        return record

    async def children(self) -> list[ChildRun]:
        """Return the run's child runs (its `Subflow` nodes' runs), oldest first.

        Each `ChildRun` has the child's ``run_id``, the parent's ``node_id`` and
        ``iteration`` that started it, its ``status`` and ``workflow_name``. Awaits one
        read of the runs index.
        """
        return await child_runs(await self._store(), self.run_id)

    async def active_descendants(self) -> list[RunState]:
        """Return the states of the run's live or parked descendant runs, in tree order.

        The child runs of its `Subflow` nodes, their children, and so on, depth first
        (each child, oldest first, before its own children); runs that ended are left
        out (see `active_descendants`). What a parked parent really waits for is in
        them: ``inspect`` and ``ps`` show it. Awaits one read of the runs index and
        one fold per descendant.
        """
        return await active_descendants(await self._store(), self.run_id)

    async def state(self, *, frame: int | None = None, seq: int | None = None) -> RunState:
        """Return the run's state now, at frame `frame`, or after event `seq` (`state_at`).

        Args:
            frame: A frame number of the run (see `timeline`).
            seq: A seq of the run's log (>= 1).

        Returns:
            A new `RunState` folded from the log (nearest checkpoint plus the rest).

        Raises:
            ValueError: if both `frame` and `seq` are given, or `seq` < 1.
            RunNotFoundError: if the run has no events.
            SnapshotNotFoundError: if the run has no frame `frame`.
        """
        return await state_at(await self._store(), self.run_id, seq=seq, frame=frame)

    async def owner(
        self, *, stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS, now_ms: int | None = None
    ) -> OwnerVerdict:
        """Return who owns the run and whether that owner lives (`judge_owner`).

        Awaits reads (the run's state and lease). A run the log says is ``"running"``
        whose process died (or stopped writing, e.g. after a storage failure) is
        ``"gone"`` or ``"stale"`` here, though its status stays ``"running"`` until a
        resume or cancel.

        Args:
            stale_threshold_ms: How long (ms) an owner may be silent before it is stale.
            now_ms: Now, Unix epoch ms (default: the system clock).

        Returns:
            The `OwnerVerdict` (``kind``: alive, stale, gone or none).

        Raises:
            RunNotFoundError: if the run has no events.
        """
        state = await self.state()
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        return await owner_verdict(
            await self._store(), state, now_ms=now, stale_threshold_ms=stale_threshold_ms
        )

    async def events(
        self,
        *,
        node_id: str | None = None,
        types: Iterable[str] | None = None,
        after_seq: int = 0,
        since_ms: int | None = None,
        limit: int | None = None,
        follow_ancestry: bool = False,
    ) -> list[tuple[StoredEvent, Event]]:
        """Return the run's events, decoded, in seq order (see `read_events`).

        Args:
            node_id: Only events about this node.
            types: Only events of these types (class names, e.g. ``"NodeFinished"``).
            after_seq: Only events with ``seq > after_seq``.
            since_ms: Only events recorded at or after this Unix epoch millisecond.
            limit: At most this many events (the first ones matching).
            follow_ancestry: For a fork, its ancestors' events up to the fork point first.

        Returns:
            ``(stored envelope, decoded event)`` pairs.

        Raises:
            RunNotFoundError: if the run has no events.
            SmithersError: code ``INVALID_EVENTS_OPTIONS`` for an unknown type or a
                negative `after_seq`/`limit`.
        """
        return await read_events(
            self.run_id,
            store=await self._store(),
            node_id=node_id,
            types=types,
            after_seq=after_seq,
            since_ms=since_ms,
            limit=limit,
            follow_ancestry=follow_ancestry,
        )

    async def follow_events(
        self,
        *,
        after_seq: int = 0,
        poll_interval_s: float = 0.5,
        follow_ancestry: bool = False,
    ) -> AsyncGenerator[tuple[StoredEvent, Event], None]:
        """Yield the run's events as they are recorded, until it ends (`follow_events`).

        Use it with `contextlib.aclosing` when you may stop early.

        Args:
            after_seq: Start after this seq (0: from the first event).
            poll_interval_s: Seconds between polls when nothing new was found.
            follow_ancestry: For a fork, its ancestors' events up to the fork point first.

        Yields:
            ``(stored envelope, decoded event)`` pairs in seq order.

        Raises:
            RunNotFoundError: if the run has no events.
        """
        store = await self._store()
        stream = follow_events(
            self.run_id,
            store=store,
            after_seq=after_seq,
            poll_interval_s=poll_interval_s,
            follow_ancestry=follow_ancestry,
        )
        async with contextlib.aclosing(stream) as events:
            async for pair in events:
                yield pair

    async def output(self, node_id: str, iteration: int | None = None) -> Any:
        """Return a node's output as plain JSON values (see `get_output`).

        Args:
            node_id: The node's id.
            iteration: Loop iteration; None for the latest one that has an output.

        Returns:
            The decoded output of the node's last finished attempt.

        Raises:
            RunNotFoundError: if the run has no events.
            NodeNotFoundError: if the run has no node `node_id`.
            MissingOutputError: if the node (or that iteration) has no output.
        """
        return await get_output(
            self.run_id, node_id, store=await self._store(), iteration=iteration
        )

    async def node(self, node_id: str, iteration: int | None = None) -> NodeDetail:
        """Return a node's whole story in this run (see `node_detail`). Awaits I/O.

        Args:
            node_id: The node's id.
            iteration: Only this loop iteration; None for all of them.

        Returns:
            A `NodeDetail`: per iteration, every attempt (start, end, duration in ms,
            error with its traceback and file:line, heartbeats) and the output; and
            every event about the node.

        Raises:
            RunNotFoundError: if the run has no events.
            NodeNotFoundError: if the run has no node `node_id`, or not in iteration
                `iteration`.
        """
        return await node_detail(
            self.run_id, node_id, iteration=iteration, store=await self._store()
        )

    async def timeline(self, *, follow_ancestry: bool = False) -> Timeline:
        """Return the run's frames, rewinds and descendants (see `timeline`).

        Args:
            follow_ancestry: Start from the run's first ancestor (continue-as-new and
                forks), so the tree holds the whole chain.

        Raises:
            RunNotFoundError: if the run has no events.
        """
        return await timeline(
            self.run_id, store=await self._store(), follow_ancestry=follow_ancestry
        )

    async def frame_view(self, frame: int) -> FrameView:
        """Return the run at frame `frame`: its tree and its state (see `frame_view`).

        Raises:
            RunNotFoundError: if the run has no events.
            SnapshotNotFoundError: if the run has no frame `frame`.
            EngineError: if the frame's tree cannot be rebuilt (a corrupt log).
        """
        return await frame_view(self.run_id, frame=frame, store=await self._store())

    async def diff(
        self,
        other: RunReads | str | None = None,
        *,
        from_frame: int | None = None,
        to_frame: int | None = None,
        frame: int | None = None,
    ) -> RunDiff:
        """Return what changed between this run and `other`, or between two of its frames.

        Side a is this run at `from_frame` (else `frame`, else now); side b is `other`
        (default: this run) at `to_frame` (else `frame`, else now). See `diff_runs`.
        Awaits reads; writes nothing.

        Args:
            other: Another run (a handle or a run id), e.g. a fork or a replay of this one.
            from_frame: Side a's frame.
            to_frame: Side b's frame.
            frame: Both sides' frame, where `from_frame`/`to_frame` are not given.

        Returns:
            A `RunDiff` (``.empty`` when nothing differs): status, input, and nodes added,
            removed or changed (state, output as a JSON diff).

        Raises:
            InvalidInputError: if `frame` is given with `from_frame`/`to_frame`.
            RunNotFoundError: if either run does not exist.
            SnapshotNotFoundError: if a run has no such frame.

        Example:
            >>> d = await handle.diff(fork_handle)  # doctest: +SKIP
            >>> [(n.node_id, n.change) for n in d.nodes]  # doctest: +SKIP
            [('second', 'changed')]
        """
        other_id = other.run_id if isinstance(other, RunReads) else other
        return await diff_runs(
            self.run_id,
            other_id,
            from_frame=from_frame,
            to_frame=to_frame,
            frame=frame,
            store=await self._store(),
        )

    async def verify(
        self, *, workflow: Workflow | None = None, log_only: bool = False
    ) -> VerifyResult:
        """Check the run's log against its hash chain, then re-render every frame.

        The log check, then the determinism check (see `verify_run`): ``.ok`` when
        the chain holds and the workflow renders what the run recorded at every
        frame; otherwise the chain's first bad seq, the first frame that differs and
        its tasks. Awaits reads; writes nothing; runs the builder once per frame.

        Args:
            workflow: The workflow to check; default: the file the run recorded.
            log_only: Only the log check (no workflow imported, no frame rendered).

        Returns:
            A `VerifyResult`.

        Raises:
            RunNotFoundError: if the run does not exist.
            WorkflowMissingDefaultError: without `workflow`, if the run recorded no
                workflow file (it was started from Python code) or it is gone.
        """
        return await verify_run(
            self.run_id, workflow=workflow, store=await self._store(), log_only=log_only
        )
