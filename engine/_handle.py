"""`RunHandle`: one run, reached through a `Client` (Temporal's `WorkflowHandle` shape).

Every method works on the client's one open store; none opens the database itself.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from smithers.eventstore import wait_for_append
from smithers.eventstore.errors import NotOpenError
from smithers.eventstore.events import TERMINAL_RUN_STATUSES

from ._handle_travel import TimeTravelOps
from .errors import (
    ResumeClaimFailedError,
    RunNotFoundError,
    RunOwnerAliveError,
    RunStillRunningError,
)
from .history import (
    active_descendants,
    child_runs,
    diff_runs,
    follow_events,
    frame_view,
    get_output,
    load_state,
    node_detail,
    read_events,
    state_at,
    timeline,
    verify_run,
)
from .lifecycle import (
    DEFAULT_STALE_THRESHOLD_MS,
    api_actor,
    approve,
    cancel_run,
    deny,
    owner_verdict,
    resume_run,
    run_result,
    run_workflow,
    signal,
    wake_parent_of,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Iterable

    import anyio
    from smithers.eventstore import EventStore, RunRecord, StoredEvent
    from smithers.eventstore.events import Actor, Event
    from smithers.projections import RunState

    from ._client import Client
    from .authoring import Workflow
    from .history import ChildRun, FrameView, NodeDetail, RunDiff, Timeline, VerifyResult
    from .lifecycle import CancelStep, DecisionResult, OwnerVerdict, RunResult, SignalResult

__all__ = ("RunHandle",)

_SETTLED_PREFIX = "waiting"
"""Statuses a run parks in (``waiting-approval``, ...): its driver has returned."""


class RunHandle(TimeTravelOps):
    """One run of a `Client`'s database: read it, wait for it, cancel it, travel in it.

    Got from `Client.start` (a run this client drives) or `Client.get_run`. Its time
    travel (`rewind`, `fork`, `replay`, `retry_task`) is in `TimeTravelOps`. Every
    method awaits I/O through the client's store, so use it inside the client's
    ``async with`` block.
    """

    def __init__(self, client: Client, run_id: str) -> None:
        self._client = client
        self.run_id = run_id
        """The run's id."""
        self._done: anyio.Event | None = None  # set when a run started here ends
        self._scope: anyio.CancelScope | None = None
        self._claimed = False
        self._result: RunResult | None = None
        self._error: Exception | None = None
        self._wf: Workflow | None = None  # the workflow, for a run started here

    def __repr__(self) -> str:
        return f"RunHandle(run_id={self.run_id!r})"

    async def _store(self) -> EventStore:
        return await self._client._open()

    # ------------------------------------------------------------------ waiting

    async def result(self, *, poll_interval_s: float = 0.5) -> RunResult:
        """Wait for the run to end (or park) and return its `RunResult`. Awaits I/O.

        For a run this client started, awaits its task. For another run, polls the
        runs index every `poll_interval_s` seconds (on PostgreSQL, also on each append
        to the run, `wait_for_append`) until the run's status is terminal
        (finished, failed, cancelled, continued) or waiting, then folds its log: a run
        nobody drives (its owner died, a fork not started yet) is waited for until
        someone resumes it, so bound the wait with ``anyio.fail_after`` if needed.

        Args:
            poll_interval_s: Seconds between looks at another process's run.

        Returns:
            The run's `RunResult` (``run_id``, ``status``, ``outputs``, ``error``).

        Raises:
            DatabaseWriteError, OwnershipLostError, ...: for a run started here, what
                `run_workflow` raised after the run was recorded.
            RunNotFoundError: if the run has no events.
            RuntimeError: if the client closed before the run it started ended.
        """
        if self._done is not None:
            await self._done.wait()
            if self._error is not None:
                raise self._error
            if self._result is None:
                raise NotOpenError(
                    f"Run {self.run_id} was cancelled when its client closed; "
                    "see its state with `smithers inspect`."
                )
            return self._result
        store = await self._store()
        while True:
            record = await store.get_run(self.run_id)
            if record is None:
                raise RunNotFoundError(self.run_id)
            if record.status in TERMINAL_RUN_STATUSES or record.status.startswith(_SETTLED_PREFIX):
                return run_result(await load_state(store, self.run_id))
            # PostgreSQL: woken by the run's next append (NOTIFY); else a sleep.
            await wait_for_append(store, self.run_id, timeout_s=poll_interval_s)

    async def resume(self, **options: Any) -> RunResult:
        """Resume the run from its log and run it to its end (see `resume_run`).

        The workflow file, input and config come from the log; a finished run is
        returned as it is. The NDJSON mirror goes next to the database unless
        ``log_dir`` says otherwise. Awaits I/O.

        Args:
            **options: Keyword arguments of `resume_run` (``force``,
                ``max_concurrency``, ``on_progress``, ``cancel``, ``log_dir``, ``by``
                and ``reason``: who resumes it and why, for the audit trail, ...).

        Returns:
            The `RunResult` of the resumed activation (or of the finished run).

        Raises:
            RunNotFoundError, RunNotResumableError, RunOwnerAliveError,
                RunStillRunningError, ResumeMetadataMismatchError,
                ResumeClaimFailedError: as `resume_run`.
        """
        store = await self._store()
        return await resume_run(self.run_id, store=store, db=self._client.path, **options)

    # ------------------------------------------------------------------ reading

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
        other: RunHandle | str | None = None,
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
        other_id = other.run_id if isinstance(other, RunHandle) else other
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

    # ------------------------------------------------------------------ control

    async def cancel(
        self,
        *,
        reason: str | None = None,
        source: str = "api",
        on_step: Callable[[CancelStep], Any] | None = None,
        by: str | None = None,
        actor: Actor | None = None,
        **options: Any,
    ) -> RunState:
        """Cancel the run, whether its owner is alive or dead (see `cancel_run`).

        A live owner (this client's task, or another process) is asked through the
        log and waited for; a dead one's run is finalized by this call.

        Args:
            reason: Why, recorded in the events.
            source: Who asks, recorded in the events.
            on_step: Called with ``"requested"`` / ``"finalizing"`` (see `cancel_run`).
            by: Who cancels, recorded as the request's ``actor`` with `reason`; None:
                ``$SMITHERS_ACTOR``, else the OS user.
            actor: The `Actor` to record instead of one built from `by` and `reason`.
            **options: Other keyword arguments of `cancel_run` (``wait_ms``,
                ``stale_threshold_ms``, ``clock``).

        Returns:
            The run's state after the cancel (status ``"cancelled"``, or how it ended
            on its own).

        Raises:
            RunNotFoundError: if the run has no events.
            InvalidInputError: if the run id is the supervisor's stream.
            SeqConflictError: if others kept appending through every attempt.
        """
        return await cancel_run(
            self.run_id,
            store=await self._store(),
            db=self._client.path,
            source=source,
            reason=reason,
            on_step=on_step,
            actor=api_actor(actor, by=by, reason=reason),
            **options,
        )

    # ------------------------------------------------------------------ decisions

    async def approve(
        self,
        node_id: str | None = None,
        *,
        iteration: int | None = None,
        note: str | None = None,
        by: str | None = None,
        selected: str | None = None,
        ranked: Iterable[str] | None = None,
        resume: bool = True,
        workflow: Workflow | None = None,
        reason: str | None = None,
        actor: Actor | None = None,
    ) -> DecisionResult:
        """Grant a pending approval of this run, then resume the run if it is parked.

        Records ``ApprovalGranted`` (see `approve`: which approval, concurrency,
        checks; an approval waiting in a `Subflow`'s child run is decided there). If
        the run was parked (``waiting-*``) and `resume` is true, it is resumed in the
        client's task group (a parked tree: this run, which resumes its child), as
        `Client.start` does: ``await handle.result()`` then waits for its end or its
        next park. A run with a live
        owner is left to it (the owner picks the decision up within about a second).
        If another process resumed the run first, `result` polls it instead. Awaits I/O.

        Args:
            node_id: The approval's node; None: the run's only pending approval.
            iteration: The node's loop iteration; None: the one pending.
            note: The decider's note.
            by: Who decides (recorded as ``decidedBy``, and as the ``actor``'s name;
                None: no ``decidedBy``, and ``$SMITHERS_ACTOR`` or the OS user).
            selected: For a ``"select"`` approval: the option chosen.
            ranked: For a ``"rank"`` approval: all its options, in order.
            resume: Resume a parked run (default True).
            workflow: The workflow to resume with; default: the one this client
                started the run with, else the file the run recorded.
            reason: Why, recorded in the event's ``actor`` (the audit trail).
            actor: The `Actor` to record instead of one built from `by` and `reason`
                (interface ``"api"``); the resume it starts records it too.

        Returns:
            The `DecisionResult` (node, iteration, the node's record, ``parked``).

        Raises:
            InvalidInputError, RunNotFoundError, NodeNotFoundError,
                NoPendingApprovalsError, AmbiguousApprovalError,
                ApprovalAlreadyDecidedError: as `approve`; nothing is recorded.
            RunNotResumableError, ResumeMetadataMismatchError,
                ResumeFrameMismatchError: the decision was recorded, but the run
                cannot be resumed from here (resume it with `resume` or ``smithers
                up --resume``).
        """
        who = api_actor(actor, by=by, reason=reason)
        result = await approve(
            await self._store(),
            self.run_id,
            node_id,
            iteration=iteration,
            note=note,
            decided_by=by,
            selected=selected,
            ranked=ranked,
            db=self._client.path,
            actor=who,
        )
        if resume and result.parked:
            await self._resume_target(result.resume_run_id, workflow, who)
        return result

    async def deny(
        self,
        node_id: str | None = None,
        *,
        iteration: int | None = None,
        note: str | None = None,
        by: str | None = None,
        resume: bool = True,
        workflow: Workflow | None = None,
        reason: str | None = None,
        actor: Actor | None = None,
    ) -> DecisionResult:
        """Deny a pending approval of this run, then resume the run if it is parked.

        Records ``ApprovalDenied`` (see `deny`); the node's ``on_deny`` decides what
        follows. Resuming, `by`, `reason` and `actor` are as `approve`'s. Awaits I/O.

        Returns:
            The `DecisionResult`.

        Raises:
            As `RunHandle.approve`.
        """
        who = api_actor(actor, by=by, reason=reason)
        result = await deny(
            await self._store(),
            self.run_id,
            node_id,
            iteration=iteration,
            note=note,
            decided_by=by,
            db=self._client.path,
            actor=who,
        )
        if resume and result.parked:
            await self._resume_target(result.resume_run_id, workflow, who)
        return result

    async def signal(
        self,
        name: str,
        data: Any = None,
        *,
        correlation_id: str | None = None,
        by: str | None = None,
        resume: bool = True,
        workflow: Workflow | None = None,
        reason: str | None = None,
        actor: Actor | None = None,
    ) -> SignalResult:
        """Send a signal to this run, then resume the run if it is parked and a wait got it.

        Records ``SignalReceived`` after checking `data` against the waiting node's
        ``output`` schema (see `signal`); the oldest `WaitForEvent` waiting for `name`
        (and `correlation_id`) receives it. Resuming is as `approve`'s. Awaits I/O.

        Args:
            name: The signal's name.
            data: The payload (a JSON-able value).
            correlation_id: The sender's correlation id.
            by: Who sends it (recorded as ``sentBy``, and as the ``actor``'s name).
            resume: Resume a parked run whose wait the signal resolved (default True).
            workflow: The workflow, to check the payload and resume with; default: the
                one this client started the run with, else the file the run recorded.
            reason: Why, recorded in the event's ``actor`` (the audit trail).
            actor: The `Actor` to record instead of one built from `by` and `reason`.

        Returns:
            The `SignalResult` (``delivered_to``: the wait resolved, or None).

        Raises:
            InvalidInputError: for a bad name, or data that does not fit the schema;
                nothing is recorded.
            RunNotFoundError, RunNotResumableError: as `signal`, and as `approve` for
                the resume.
        """
        wf = workflow or self._wf
        who = api_actor(actor, by=by, reason=reason)
        result = await signal(
            await self._store(),
            self.run_id,
            name,
            data,
            correlation_id=correlation_id,
            sent_by=by,
            wf=wf,
            db=self._client.path,
            actor=who,
        )
        if resume and result.parked:
            await self._resume_target(result.resume_run_id, wf, who)
        return result

    async def _resume_target(
        self, run_id: str, workflow: Workflow | None, actor: Actor | None = None
    ) -> None:
        """Resume `run_id`: this run, or the parked child run a request reached.

        A child is resumed through its own handle, from the file its log records
        (`workflow` is this run's, not the child's); its end wakes this run.
        """
        if not run_id or run_id == self.run_id:
            await self._resume_parked(workflow, actor)
            return
        child = await self._client.get_run(run_id)
        await child._resume_parked(None, actor)

    async def _resume_parked(self, workflow: Workflow | None, actor: Actor | None = None) -> None:
        """Resume the parked run in the client's task group (as `Client.start`).

        Another process resuming it first is not an error: `result` then polls.
        """
        client = self._client
        store = await self._store()
        wf = workflow or self._wf
        run_id = self.run_id

        async def runner(progress: Callable[[Event], Any]) -> RunResult:
            if wf is None:
                return await resume_run(
                    run_id, store=store, db=client.path, on_progress=progress, actor=actor
                )
            result = await run_workflow(
                wf,
                run_id=run_id,
                resume=True,
                store=store,
                db=client.path,
                on_progress=progress,
                actor=actor,
            )
            await wake_parent_of(run_id, result, db=client.path, store=store, actor=actor)
            return result

        await client._launch(self, runner)
        error = self._error
        if error is not None and not self._claimed:
            self._done = None  # not ours to drive: `result` polls the log
            self._error = None
            if not isinstance(
                error, ResumeClaimFailedError | RunOwnerAliveError | RunStillRunningError
            ):
                raise error
