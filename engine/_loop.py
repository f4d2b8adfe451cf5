"""The run loop: render → schedule → execute → record, one append per tick (DESIGN §6).

One coordinator task owns the run's in-memory `RunState`, folds every event it appends,
and decides again on every completion (no batch barrier). Workers only execute attempts
and report outcomes through a memory stream; every event is written by the coordinator.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import (
    EventStore,
    SQLiteEventStore,
    decode_json,
    encode_json,
    resolve_db_path,
    to_raw,
)
from smithers.eventstore.errors import SmithersError
from smithers.eventstore.events import (
    ErrorInfo,
    Event,
    FrameCommitted,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStatusChanged,
)
from smithers.projections import RunState, apply_event

from ._clock import Clock, SystemClock
from ._context import TaskContext, WorkflowContext
from ._execute import Outcome, error_info, execute_attempt
from ._ndjson import NdjsonMirror
from ._render import Leaf, Plan, compile_tree
from ._schedule import Scheduler
from .errors import InvalidInputError, SchedulerError, UnsupportedFeatureError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._components import Workflow

__all__ = ("RunResult", "run_workflow", "SMITHERS_VERSION", "new_run_id")

log = logging.getLogger("smithers.engine")

SMITHERS_VERSION = "0.1.0"
_DEFAULT: Any = object()


class RunResult(msgspec.Struct, kw_only=True):
    """What `run_workflow` returns (Smithers' `RunResult`)."""

    run_id: str
    status: str
    """``"finished"``, ``"failed"``, ``"cancelled"`` (later: waiting statuses)."""
    outputs: dict[str, Any]
    """Each node's latest output as plain JSON values, by node id."""
    error: dict[str, Any] | None = None
    """For failed runs: ``{"name", "message", "code", ...}``, as `error_to_json`."""

    @property
    def output(self) -> Any:
        """``outputs.get("output")``, the conventional final output."""
        return self.outputs.get("output")


def new_run_id() -> str:
    """Return a new run id: ``run-<unix ms base36>-<6 hex>`` (sortable by start time)."""
    ms = time.time_ns() // 1_000_000
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    b36 = ""
    while ms:
        ms, r = divmod(ms, 36)
        b36 = digits[r] + b36
    return f"run-{b36}-{secrets.token_hex(3)}"


def _error_dict(info: ErrorInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"name": info.name, "message": info.message, "code": info.code}
    details = decode_json(info.details)
    if details is not None:
        out["details"] = details
    return out


def _abspath(path: str | os.PathLike[str] | None) -> str | None:
    """Absolute form of `path` (no filesystem access beyond the cwd)."""
    return os.path.abspath(path) if path else None


def _check_input(wf: Workflow, value: Any) -> tuple[Any, bytes]:
    """Validate the input; return (value for ctx.input, canonical JSON bytes)."""
    if value is None:
        value = {}
    if wf.input_type is not None and isinstance(value, wf.input_type):
        return value, encode_json(value)
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"Workflow input must be a JSON object, got {type(value).__name__}.",
            details={"errors": f"expected object, got {type(value).__name__}"},
            hint='Pass --input \'{"key": "value"}\'.',
        )
    try:
        raw = encode_json(dict(value))
    except (TypeError, msgspec.EncodeError) as e:
        raise InvalidInputError(
            f"Workflow input is not JSON-serialisable: {e}.", details={"errors": str(e)}
        ) from e
    if wf.input_type is None:
        return decode_json(raw), raw
    try:
        typed = msgspec.json.decode(raw, type=wf.input_type)
    except msgspec.ValidationError as e:
        raise InvalidInputError(
            f"Input of workflow {wf.name!r} does not match {wf.input_type.__name__}: {e}.",
            details={"errors": str(e)},
            hint="Fix the --input JSON to match the workflow's input type.",
        ) from e
    return typed, encode_json(typed)


class _Run:
    """One activation of a run: the coordinator's state."""

    def __init__(
        self,
        wf: Workflow,
        store: EventStore,
        run_id: str,
        *,
        input_value: Any,
        max_concurrency: int,
        on_progress: Callable[[Event], Any] | None,
        clock: Clock,
        mirror: NdjsonMirror | None,
    ) -> None:
        self.wf = wf
        self.store = store
        self.run_id = run_id
        self.input_value = input_value
        self.max_concurrency = max_concurrency
        self.on_progress = on_progress
        self.clock = clock
        self.mirror = mirror
        self.state = RunState(run_id=run_id)
        self.seq = 0  # last appended seq
        self.batch: list[Event] = []
        self.plan: Plan | None = None
        self.scheduler: Scheduler | None = None
        self.reads: set[str] = set()
        self.frame_no = 0
        # node id -> (attempt, cancel scope, leaf it was started from)
        self.running: dict[str, tuple[int, anyio.CancelScope, Leaf]] = {}
        self.backoff: dict[str, anyio.CancelScope] = {}
        self.cancel_reasons: dict[str, str] = {}
        self.failing: ErrorInfo | None = None
        self.cancelling: tuple[str, str] | None = None  # (reason, source)
        self.terminal: str | None = None
        self.send, self.recv = anyio.create_memory_object_stream[tuple[Any, ...]](math.inf)
        self.tg: TaskGroup | None = None
        self.status_for_index: str | None = None

    # ------------------------------------------------------------------ recording

    def emit(self, event: Event) -> None:
        """Fold `event` into the live state and queue it for this tick's append."""
        self.batch.append(event)
        apply_event(self.state, event, seq=self.seq + len(self.batch))
        if isinstance(event, RunStatusChanged):
            self.status_for_index = event.status

    async def flush(self) -> None:
        """Append this tick's events in one transaction, then publish them."""
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        first = self.seq + 1
        # Shielded: aiosqlite's thread commits even if we stop waiting, so a cancelled
        # wait would leave `self.seq` behind the log and lose what we record next.
        with anyio.CancelScope(shield=True):
            self.seq = await self.store.append(
                self.run_id,
                batch,
                expected_seq=self.seq,
                status=self.status_for_index,
                workflow_name=self.wf.name if first == 1 else None,
            )
        self.status_for_index = None
        if self.mirror is not None:
            self.mirror.write(batch, first)
        if self.on_progress is not None:
            for event in batch:
                try:
                    self.on_progress(event)
                except Exception:
                    log.exception("on_progress callback raised; the run goes on")

    def now(self) -> int:
        return self.clock.now_ms()

    # ------------------------------------------------------------------ decisions

    def _is_busy(self, node_id: str) -> bool:
        return node_id in self.running or node_id in self.backoff

    def render(self) -> None:
        """Render the tree, commit a frame, mount new tasks, rebuild the scheduler."""
        ctx = WorkflowContext(run_id=self.run_id, input=self.input_value, state=self.state)
        try:
            plan = compile_tree(self.wf.build(ctx))
        except Exception as e:
            self.fail(error_info(e))
            return
        self.reads = ctx.reads
        self._commit_frame(plan)
        now = self.now()
        nodes = self.state.nodes
        for node_id, leaf in plan.leaves.items():
            rec = nodes.get((node_id, 0))
            task = leaf.task
            if rec is None:
                if task.skip_if:
                    self.emit(
                        NodeSkipped(
                            run_id=self.run_id, timestamp_ms=now, node_id=node_id, reason="skip_if"
                        )
                    )
                else:
                    self.emit(
                        NodePending(
                            run_id=self.run_id, timestamp_ms=now, node_id=node_id, label=task.label
                        )
                    )
            elif rec.state == "pending" and task.skip_if and not self._is_busy(node_id):
                self.emit(
                    NodeSkipped(
                        run_id=self.run_id, timestamp_ms=now, node_id=node_id, reason="skip_if"
                    )
                )
        for node_id, (_, scope, _) in self.running.items():
            if node_id not in plan.leaves:
                self.cancel_reasons[node_id] = "unmounted"
                scope.cancel()
        self._drop_backoffs([n for n in self.backoff if n not in plan.leaves], "unmounted")

        def is_done(node_id: str) -> bool:
            rec = nodes.get((node_id, 0))
            if rec is None:
                return False
            if rec.state in ("finished", "skipped"):
                return True
            leaf = plan.leaves.get(node_id)
            return rec.state == "failed" and leaf is not None and leaf.task.continue_on_fail

        self.plan = plan
        self.scheduler = Scheduler(plan, is_done=is_done, is_busy=self._is_busy)
        for node_id in self.running:
            self.scheduler.claim(node_id)

    def _commit_frame(self, plan: Plan) -> None:
        self.emit(
            FrameCommitted(
                run_id=self.run_id,
                timestamp_ms=self.now(),
                frame_no=self.frame_no,
                xml_hash=plan.xml_hash,
            )
        )
        self.frame_no += 1

    def fail(self, error: ErrorInfo) -> None:
        """Mark the run as failing: nothing new starts; it fails once running tasks end.

        Retries waiting out a backoff will never start: they are closed now.
        """
        if self.failing is None:
            self.failing = error
            self._drop_backoffs(self.backoff, "run-failed")

    def _drop_backoffs(self, node_ids: Iterable[str], reason: str) -> None:
        """Cancel pending retries of `node_ids`, recording NodeCancelled for each."""
        now = self.now()
        for node_id in list(node_ids):
            scope = self.backoff.pop(node_id, None)
            if scope is None:
                continue
            scope.cancel()
            self.emit(
                NodeCancelled(run_id=self.run_id, timestamp_ms=now, node_id=node_id, reason=reason)
            )

    def record_outcome(self, leaf: Leaf, attempt: int, outcome: Outcome) -> bool:
        """Emit the events of an ended attempt; return True if a re-render is needed."""
        task = leaf.task
        node_id = task.id
        now = self.now()
        assert self.scheduler is not None
        if outcome.error is None:
            self.emit(
                NodeFinished(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=node_id,
                    attempt=attempt,
                    output=outcome.output,
                )
            )
            self.scheduler.complete(node_id)
            return node_id in self.reads
        error = outcome.error
        self.emit(
            NodeFailed(
                run_id=self.run_id, timestamp_ms=now, node_id=node_id, attempt=attempt, error=error
            )
        )
        retry = (
            self.cancelling is None
            and self.failing is None
            and node_id in self.scheduler.plan.leaves
        )
        if error.retryable and attempt <= task.retries and retry:
            delay = task.backoff.delay_ms(attempt)
            self.emit(
                NodeRetrying(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=node_id,
                    attempt=attempt + 1,
                    delay_ms=delay,
                )
            )
            if delay <= 0:
                self.scheduler.requeue(node_id)
            else:
                scope = anyio.CancelScope()
                self.backoff[node_id] = scope
                assert self.tg is not None
                self.tg.start_soon(self._backoff_timer, node_id, delay, scope)
        elif task.continue_on_fail:
            self.scheduler.complete(node_id)
        else:
            self.fail(error)
        return False

    def request_cancel(self, reason: str, source: str) -> None:
        """Abort running attempts and pending retries; the run ends cancelled."""
        if self.cancelling is not None:
            return
        self.cancelling = (reason, source)
        for node_id, (_, scope, _) in self.running.items():
            self.cancel_reasons.setdefault(node_id, "cancelled")
            scope.cancel()
        self._drop_backoffs(self.backoff, "cancelled")

    # ------------------------------------------------------------------ the tick

    async def tick(self, msgs: list[tuple[Any, ...]]) -> None:
        """Handle completions, decide, and append everything in one transaction."""
        need_render = self.plan is None
        for msg in msgs:
            kind = msg[0]
            if kind == "done":
                _, node_id, attempt, outcome = msg
                # The leaf it started from: recorded even if a re-render unmounted it.
                leaf = self.running.pop(node_id)[2]
                assert self.scheduler is not None
                self.scheduler.released(node_id)
                if self.record_outcome(leaf, attempt, outcome):
                    need_render = True
            elif kind == "cancelled":
                _, node_id, attempt, reason = msg
                del self.running[node_id]
                assert self.scheduler is not None
                self.scheduler.released(node_id)
                self.emit(
                    NodeCancelled(
                        run_id=self.run_id,
                        timestamp_ms=self.now(),
                        node_id=node_id,
                        attempt=attempt,
                        reason=reason,
                    )
                )
            elif kind == "retry":
                node_id = msg[1]
                if self.backoff.pop(node_id, None) is not None and self.scheduler is not None:
                    self.scheduler.requeue(node_id)
            elif kind == "cancel":
                self.request_cancel(msg[1], msg[2])

        if not need_render and self.plan is not None:
            # Nothing the last render read has changed: the tree is the same (empty delta).
            self._commit_frame(self.plan)
        to_spawn: list[tuple[Leaf, int]] = []
        while True:
            if need_render and self.failing is None and self.cancelling is None:
                self.render()
            need_render = False
            if self.failing is not None or self.cancelling is not None or self.scheduler is None:
                break
            leaves = self.scheduler.take(self.max_concurrency - len(self.running))
            if not leaves:
                break
            progressed = False
            for leaf in leaves:
                node_id = leaf.task.id
                rec = self.state.nodes.get((node_id, 0))
                attempt = (rec.attempt_count if rec is not None else 0) + 1
                self.emit(
                    NodeStarted(
                        run_id=self.run_id,
                        timestamp_ms=self.now(),
                        node_id=node_id,
                        attempt=attempt,
                    )
                )
                if leaf.task.kind == "static":
                    # No side effect: decided and recorded inline, in this same tick.
                    tctx = self._task_context(leaf, attempt)
                    outcome = await execute_attempt(leaf.task, tctx)
                    self.scheduler.released(node_id)
                    need_render = self.record_outcome(leaf, attempt, outcome) or need_render
                    progressed = True
                else:
                    self.running[node_id] = (attempt, anyio.CancelScope(), leaf)
                    to_spawn.append((leaf, attempt))
            if not progressed and not need_render:
                break
        if not self.running and not self.backoff and not to_spawn:
            self._finish()
        await self.flush()
        assert self.tg is not None
        for leaf, attempt in to_spawn:
            self.tg.start_soon(self._worker, leaf, attempt, self.running[leaf.task.id][1])

    def _finish(self) -> None:
        now = self.now()
        rid = self.run_id
        if self.cancelling is not None:
            reason, source = self.cancelling
            self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="cancelled"))
            self.emit(RunCancelled(run_id=rid, timestamp_ms=now, reason=reason, source=source))
            self.terminal = "cancelled"
            return
        if self.failing is None and self.scheduler is not None and not self.scheduler.finished:
            waiting = self.scheduler.waiting_on()
            err = SchedulerError(
                "The workflow cannot make progress: "
                + (
                    "; ".join(
                        f"{', '.join(ts)} wait(s) on {dep!r}, which can never finish "
                        "(not mounted, or a dependency cycle)"
                        for dep, ts in waiting.items()
                    )
                    if waiting
                    else "no task is ready and nothing is running"
                )
                + ".",
                details={"waitingOn": waiting},
            )
            self.fail(error_info(err))
        if self.failing is not None:
            self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="failed"))
            self.emit(RunFailed(run_id=rid, timestamp_ms=now, error=self.failing))
            self.terminal = "failed"
            return
        self.emit(RunStatusChanged(run_id=rid, timestamp_ms=now, status="finished"))
        self.emit(RunFinished(run_id=rid, timestamp_ms=now))
        self.terminal = "finished"

    # ------------------------------------------------------------------ tasks

    def _task_context(self, leaf: Leaf, attempt: int) -> TaskContext:
        return TaskContext(
            run_id=self.run_id,
            node_id=leaf.task.id,
            iteration=0,
            attempt=attempt,
            input=self.input_value,
        )

    async def _worker(self, leaf: Leaf, attempt: int, scope: anyio.CancelScope) -> None:
        outcome: Outcome | None = None
        with scope:
            outcome = await execute_attempt(leaf.task, self._task_context(leaf, attempt))
        node_id = leaf.task.id
        if outcome is None:
            reason = self.cancel_reasons.pop(node_id, "cancelled")
            self.send.send_nowait(("cancelled", node_id, attempt, reason))
        else:
            self.send.send_nowait(("done", node_id, attempt, outcome))

    async def _backoff_timer(self, node_id: str, delay_ms: int, scope: anyio.CancelScope) -> None:
        with scope:
            await self.clock.sleep_ms(delay_ms)
            self.send.send_nowait(("retry", node_id))

    async def _watch_cancel(self, cancel: Any) -> None:
        await cancel.wait()
        self.send.send_nowait(("cancel", "cancel-requested", "api"))

    # ------------------------------------------------------------------ driving

    async def drive(self, first_events: list[Event], cancel: Any) -> None:
        """Run the loop until the run finishes, fails or is cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                self.tg = tg
                for event in first_events:
                    self.emit(event)
                if cancel is not None:
                    tg.start_soon(self._watch_cancel, cancel)
                await self.tick([])
                while self.terminal is None:
                    msgs = [await self.recv.receive()]
                    while True:
                        try:
                            msgs.append(self.recv.receive_nowait())
                        except anyio.WouldBlock:
                            break
                    await self.tick(msgs)
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The task group wraps what a tick raised (e.g. a storage error): callers
            # should get the SmithersError itself, not a group of one.
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
                inner = group.exceptions[0]
                raise inner from inner.__cause__  # keeps e.g. the sqlite3 error as cause
            raise
        except anyio.get_cancelled_exc_class():
            # The caller cancelled us: record it, shielded, then let cancellation go on.
            with anyio.CancelScope(shield=True):
                await self._record_interrupted("interrupted", "api")
            raise
        except KeyboardInterrupt:
            with anyio.CancelScope(shield=True):
                await self._record_interrupted("interrupted", "signal")
            raise
        finally:
            self.send.close()
            self.recv.close()
            if self.mirror is not None:
                self.mirror.close()

    async def _record_interrupted(self, reason: str, source: str) -> None:
        if self.terminal is not None or self.seq == 0:
            return
        self.batch = []
        now = self.now()
        for node_id, (attempt, _, _) in self.running.items():
            self.emit(
                NodeCancelled(
                    run_id=self.run_id,
                    timestamp_ms=now,
                    node_id=node_id,
                    attempt=attempt,
                    reason=reason,
                )
            )
        self.running.clear()
        self._drop_backoffs(self.backoff, reason)
        self.cancelling = (reason, source)
        self._finish()
        try:
            await self.flush()
        except SmithersError:
            log.exception("could not record the cancellation of run %s", self.run_id)


async def run_workflow(
    wf: Workflow,
    *,
    input: Any = None,
    run_id: str | None = None,
    resume: bool = False,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    max_concurrency: int = 4,
    on_progress: Callable[[Event], Any] | None = None,
    cancel: Any = None,
    root_dir: str | os.PathLike[str] | None = None,
    log_dir: str | os.PathLike[str] | None = _DEFAULT,
    allow_network: bool = False,
    max_output_bytes: int = 200_000,
    tool_timeout_ms: int = 60_000,
    workflow_path: str | os.PathLike[str] | None = None,
    clock: Clock | None = None,
) -> RunResult:
    """Run a workflow to its end and return the result, as Smithers' `runWorkflow`.

    Every state change is appended to the run's log before it takes effect; the
    function returns when the run finishes, fails or is cancelled.

    Args:
        wf: The workflow (from ``@workflow``).
        input: A JSON object (dict) or an instance of the workflow's input type.
        run_id: Run id to use (default: a new one).
        resume: Resume `run_id` (not supported yet).
        db: SQLite database path (default: see `resolve_db_path`). Ignored with `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).
        max_concurrency: Run-wide cap on tasks executing at once (default 4).
        on_progress: Called with every event after it is recorded.
        cancel: An object with ``async wait()`` (e.g. `anyio.Event`); when it returns,
            running tasks are cancelled and the run ends ``"cancelled"``.
        root_dir: Root of the tool sandbox for agent tools (recorded in the run's config).
        allow_network: Whether agent tools may use the network (recorded).
        max_output_bytes: Cap on one tool call's output, in bytes (recorded).
        tool_timeout_ms: Cap on one tool call's duration, in ms (recorded).
        log_dir: Directory of the NDJSON mirror ``stream.ndjson``; None disables it.
            Default: ``<db dir>/executions/<run_id>/logs`` for a SQLite database.
        workflow_path: Workflow file path to record (default: the builder's module file).
        clock: Time source (tests pass a fake).

    Returns:
        A `RunResult` with status ``"finished"``, ``"failed"`` or ``"cancelled"``.

    Raises:
        InvalidInputError: if `input` is not an object or fails the input schema;
            nothing is recorded.
        RunAlreadyExistsError: if `run_id` already exists (``RUN_ALREADY_EXISTS``).
        DatabaseWriteError, DatabaseQueryError: on storage failures.

    Example:
        >>> result = await run_workflow(count, input={"start": 5}, db="runs.db")  # doctest: +SKIP
        >>> result.status, result.outputs["second"]  # doctest: +SKIP
        ('finished', {'n': 6})
    """
    if resume:
        raise UnsupportedFeatureError("resume=True is not supported by this version yet.")
    if max_concurrency < 1:
        raise InvalidInputError(f"max_concurrency must be >= 1, got {max_concurrency}.")
    input_value, input_raw = _check_input(wf, input)
    run_id = run_id or new_run_id()
    clock = clock or SystemClock()
    own_store = store is None
    db_path: Path | None = None
    if store is None:
        db_path = resolve_db_path(db)
        store = await SQLiteEventStore.open(db_path)
    try:
        if log_dir is _DEFAULT:
            log_dir = db_path.parent / "executions" / run_id / "logs" if db_path else None
        mirror = NdjsonMirror(Path(log_dir)) if log_dir is not None else None
        run = _Run(
            wf,
            store,
            run_id,
            input_value=input_value,
            max_concurrency=max_concurrency,
            on_progress=on_progress,
            clock=clock,
            mirror=mirror,
        )
        config = {
            "maxConcurrency": max_concurrency,
            "rootDir": str(root_dir) if root_dir is not None else None,
            "allowNetwork": allow_network,
            "maxOutputBytes": max_output_bytes,
            "toolTimeoutMs": tool_timeout_ms,
        }
        path = workflow_path or wf.source_path
        now = clock.now_ms()
        first: list[Event] = [
            RunStarted(
                run_id=run_id,
                timestamp_ms=now,
                workflow_name=wf.name,
                workflow_path=_abspath(path),
                input=msgspec.Raw(input_raw),
                config=to_raw(config),
                smithers_version=SMITHERS_VERSION,
                activation=1,
                owner_id=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}",
                pid=os.getpid(),
                host=socket.gethostname(),
            ),
            RunStatusChanged(run_id=run_id, timestamp_ms=now, status="running"),
        ]
        await run.drive(first, cancel)
        state = run.state
        outputs = {k: decode_json(v) for k, v in state.outputs().items()}
        return RunResult(
            run_id=run_id,
            status=state.status,
            outputs=outputs,
            error=_error_dict(state.error) if state.error is not None else None,
        )
    finally:
        if own_store:
            with anyio.CancelScope(shield=True):
                await store.close()
