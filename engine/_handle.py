"""`RunHandle`: one run, reached through a `Client` (Temporal's `WorkflowHandle` shape).

Every method works on the client's one open store; none opens the database itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smithers.eventstore import wait_for_append
from smithers.eventstore.errors import NotOpenError
from smithers.eventstore.events import TERMINAL_RUN_STATUSES

from ._handle_reads import RunReads
from ._handle_travel import TimeTravelOps
from .errors import (
    ResumeClaimFailedError,
    RunNotFoundError,
    RunOwnerAliveError,
    RunStillRunningError,
)
from .history import (
    load_state,
)
from .lifecycle import (
    api_actor,
    approve,
    cancel_run,
    deny,
    hijack_run,
    resume_run,
    run_result,
    run_workflow,
    signal,
    wake_parent_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import anyio
    from smithers.eventstore import EventStore
    from smithers.eventstore.events import Actor, Event
    from smithers.projections import RunState

    from ._client import Client
    from .authoring import Workflow
    from .lifecycle import (
        CancelStep,
        DecisionResult,
        HijackResult,
        HijackStep,
        RunResult,
        SignalResult,
    )

__all__ = ("RunHandle",)

_SETTLED_PREFIX = "waiting"
"""Statuses a run parks in (``waiting-approval``, ...): its driver has returned."""


class RunHandle(RunReads, TimeTravelOps):
    """One run of a `Client`'s database: read it, wait for it, cancel it, travel in it.

    Got from `Client.start` (a run this client drives) or `Client.get_run`. Its reads
    (`state`, `events`, `timeline`, ...) are in `RunReads`, its time travel (`rewind`,
    `fork`, `replay`, `retry_task`) in `TimeTravelOps`. Every
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

    async def hijack(
        self,
        node_id: str | None = None,
        *,
        reason: str | None = None,
        on_step: Callable[[HijackStep], Any] | None = None,
        by: str | None = None,
        actor: Actor | None = None,
        **options: Any,
    ) -> HijackResult:
        """Stop the run, park it ``waiting-resume`` and return its agent session's command.

        As ``smithers hijack`` (see `hijack_run`): a live owner is asked through the log
        and waited for; then the command that opens the session of `node_id` (None: the
        run's latest agent session) interactively is returned, for a person to take
        over. ``resume`` continues the run afterwards.

        Args:
            node_id: The node whose session to take; None: the latest agent session.
            reason: Why, recorded with the request's ``actor``.
            on_step: Called with ``"requested"`` / ``"finalizing"`` (see `HijackStep`).
            by: Who hijacks, recorded as the request's ``actor``; None:
                ``$SMITHERS_ACTOR``, else the OS user.
            actor: The `Actor` to record instead of one built from `by` and `reason`.
            **options: Other keyword arguments of `hijack_run` (``wait_ms``,
                ``stale_threshold_ms``, ``clock``).

        Returns:
            The `HijackResult`: the session, the command that opens it, the run's status.

        Raises:
            RunNotFoundError, NodeNotFoundError, InvalidInputError,
                TaskHijackUnsupportedError, RunNotResumableError: as `hijack_run` (no
                agent session to take, the run ended); nothing is recorded.
        """
        return await hijack_run(
            self.run_id,
            node_id=node_id,
            store=await self._store(),
            db=self._client.path,
            actor=api_actor(actor, by=by, reason=reason),
            on_step=on_step,
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
            resume: Resume a parked run (default True); a submitted run
                (``result.queue``) is left to the workers of its queue.
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
        if resume and result.parked and result.queue is None:
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
        if resume and result.parked and result.queue is None:
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
            resume: Resume a parked run whose wait the signal resolved (default True);
                a submitted run (``result.queue``) is left to its queue's workers.
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
        if resume and result.parked and result.queue is None:
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
