"""The one write path of a run's log (DESIGN §3, §5): `RunWriter`.

Everything the engine appends to a run goes through a `RunWriter`: the run loop's
ticks, time travel (rewind, fork, replay, retry-task), cancel (its request, and the
finalisation of a run whose owner is gone) and the supervisor's stream. The writer
owns what every append needs, so no caller can forget a part of it:

- the ``expected_seq`` check, its typed conflict (`SeqConflictError`) and
  the caller's retry strategy (a `Rebase` hook: re-read, decide again, or give up with
  the caller's own error);
- the runs-index fields of the append (status, workflow name);
- the NDJSON mirror: after each append, the run's ``stream.ndjson`` is brought up to
  the appended events, in the log's order, including what other processes appended
  before them (fetched from the store when the file lacks them);
- the checkpoint policy (`checkpoint_due`): the folded state is cached in the store's
  checkpoint table, encoded at once and compressed and stored in the background.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, cast

import anyio
from smithers.eventstore import encode_event
from smithers.eventstore.errors import SeqConflictError, SmithersError
from smithers.eventstore.events import RunStarted, RunStatusChanged
from smithers.projections import encode_state

from .._checkpoints import checkpoint_due, compress_checkpoint
from ._ndjson import NdjsonMirror

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
    from pathlib import Path

    from anyio.abc import TaskGroup
    from smithers.eventstore import EventStore, StoredEvent
    from smithers.eventstore.events import Event
    from smithers.projections import RunState

__all__ = ("Rebase", "RunWriter", "append_to_run")

log = logging.getLogger("smithers.engine")

_T = TypeVar("_T")

Rebase: TypeAlias = "Callable[[SeqConflictError], Awaitable[int]]"
"""A caller's answer to a conflict: ``await rebase(conflict) -> new expected_seq``.

Called when another process appended to the run first (the conflict is a
`RunAlreadyExistsError` if the caller expected a new run). It re-reads what it needs,
decides again (e.g. re-applies its batch on top), and returns the seq to append
after; or raises to give up (the conflict, or its own error, e.g.
``ResumeClaimFailedError``)."""

_MIRROR_ROUNDS = 3
"""Times the mirror is brought up to date before it gives up (others keep writing)."""


class RunWriter:
    """Appends to one run's log: the only caller of `EventStore.append` in the engine.

    Cheap to create; one per activation (the run loop), per operation (time travel,
    cancel) or per stream (the supervisor's). Several writers, in one process or many,
    may append to the same run: ``expected_seq`` orders them and the mirror stays in
    the log's order.

    Args:
        store: The open event store.
        run_id: The run (stream) appended to.
        mirror: The run's NDJSON mirror, or None for none. The writer does not close
            it unless `close` is called.

    Example:
        >>> writer = RunWriter(store, run_id, mirror=NdjsonMirror(log_dir))  # doctest: +SKIP
        >>> seq = await writer.append(events, expected_seq=seq)  # doctest: +SKIP
    """

    def __init__(self, store: EventStore, run_id: str, *, mirror: NdjsonMirror | None = None):
        self.store = store
        self.run_id = run_id
        self.mirror = mirror

    async def append(
        self,
        events: Sequence[Event],
        *,
        expected_seq: int,
        status: str | None = None,
        workflow_name: str | None = None,
        rebase: Rebase | None = None,
        retries: int = 0,
    ) -> int:
        """Append `events` in one transaction after the run's seq `expected_seq`.

        Shielded from cancellation (the store's thread commits even if the caller
        stops waiting, so a cancelled wait would leave the caller behind the log), and
        so is the mirror's update that follows. Awaits I/O.

        Args:
            events: The batch, in order; it gets seqs ``expected_seq + 1 …``.
            expected_seq: The run's last seq as the caller knows it (0: a new run).
            status: The runs index's new status; default: the status of the batch's
                last `RunStatusChanged`, if any (give it when the status changes by
                another event, e.g. ``RunRewound`` or ``RunForked``).
            workflow_name: The runs index's workflow name; default: for a new run,
                its `RunStarted`'s.
            rebase: Called on a conflict to decide again (see `Rebase`); None: the
                conflict is raised.
            retries: How many conflicts `rebase` may answer before the next one is
                raised.

        Returns:
            The run's new last seq (``expected_seq + len(events)`` after the last
            rebase).

        Raises:
            SeqConflictError: if the run was not at `expected_seq` and there
                is no `rebase`, or `retries` rebases did not help;
                `RunAlreadyExistsError` (its subclass) if `expected_seq` was 0.
            DatabaseWriteError: if the write failed; nothing of the batch was kept.
            Exception: whatever `rebase` raises.
        """
        if not events:
            return expected_seq
        if status is None:
            status = _index_status(events)
        if workflow_name is None and expected_seq == 0:
            workflow_name = _index_workflow_name(events)
        return await _shielded(
            self._append(events, expected_seq, status, workflow_name, rebase, retries)
        )

    async def _append(
        self,
        events: Sequence[Event],
        expected_seq: int,
        status: str | None,
        workflow_name: str | None,
        rebase: Rebase | None,
        retries: int,
    ) -> int:
        attempt = 0
        while True:
            try:
                last = await self.store.append(
                    self.run_id,
                    events,
                    expected_seq=expected_seq,
                    status=status,
                    workflow_name=workflow_name,
                )
                break
            except SeqConflictError as e:  # RunAlreadyExistsError too
                if rebase is None or attempt >= retries:
                    raise
                attempt += 1
                expected_seq = await rebase(e)
        if self.mirror is not None:
            await self._mirror(last - len(events) + 1, [encode_event(e) for e in events])
        return last

    async def read_new(self, after_seq: int) -> list[StoredEvent]:
        """Return the run's events after `after_seq` (others' appends), mirrored.

        Awaits I/O.

        Args:
            after_seq: The last seq the caller has seen.

        Returns:
            The stored events with ``seq > after_seq``, in seq order.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        rows = await self.store.read(self.run_id, after_seq=after_seq)
        if rows and self.mirror is not None:
            with anyio.CancelScope(shield=True):
                await self._mirror(rows[0].seq, [row.data for row in rows])
        return rows

    async def checkpoint(
        self, state: RunState, *, first_seq: int, tg: TaskGroup | None = None
    ) -> None:
        """Cache `state` in the checkpoint table if the policy says one is due.

        Call after appending the batch ``first_seq..state.seq``, with the run's state
        folded through it and known to match the log. The state is encoded here,
        synchronously (the caller goes on mutating it in place); compression and the
        write run in a task of `tg` if given (awaited here otherwise), shielded, so
        the end of `tg` waits for them rather than leaving a write in flight on a
        store about to be closed. A failed write is logged and loses nothing (a cache).

        Args:
            state: The run's folded state at its last seq, ``state.seq``.
            first_seq: Seq of the first event of the batch just appended.
            tg: The task group to store the checkpoint from, or None to await it.
        """
        if not checkpoint_due(first_seq, state.seq, state):
            return
        data = encode_state(state)
        if tg is None:
            await self._store_checkpoint(state.seq, data)
        else:
            tg.start_soon(self._store_checkpoint, state.seq, data)

    def close(self) -> None:
        """Close the mirror's file, if any. Does not close the store."""
        if self.mirror is not None:
            self.mirror.close()

    # ------------------------------------------------------------------ internals

    async def _store_checkpoint(self, seq: int, data: bytes) -> None:
        with anyio.CancelScope(shield=True):
            try:
                packed = await anyio.to_thread.run_sync(compress_checkpoint, data)
                await self.store.put_checkpoint(self.run_id, seq, packed)
            except SmithersError:
                log.warning("could not write a checkpoint of run %s at seq %d", self.run_id, seq)

    async def _mirror(self, first: int, payloads: list[bytes]) -> None:
        """Bring the mirror up to seq ``first + len(payloads) - 1``; never raises.

        The lines are written in seq order from what the file holds: events other
        processes appended before `first` and did not mirror (they may mirror into
        another folder, or none) are read from the store first.
        """
        mirror = self.mirror
        assert mirror is not None
        last = first + len(payloads) - 1
        try:
            for _ in range(_MIRROR_ROUNDS):
                have = mirror.extend(self.run_id, first, payloads)
                if have is None:
                    return
                if have >= first - 1:
                    if have > last and have > await self.store.last_seq(self.run_id):
                        mirror.turn_off(
                            f"it holds seq {have} of run {self.run_id}, which the log does "
                            "not have (a file of another database?)"
                        )
                    return
                rows = await self.store.read(self.run_id, after_seq=have, upto_seq=first - 1)
                if [row.seq for row in rows] != list(range(have + 1, first)):
                    break
                payloads = [row.data for row in rows] + payloads
                first = have + 1
        except SmithersError as e:
            mirror.turn_off(f"could not read the run's events: {e}")
            return
        mirror.turn_off(f"it could not be brought up to seq {last}")


async def _shielded(coro: Coroutine[Any, Any, _T]) -> _T:
    """Await `coro` shielded from cancellation, paying for the shield only if it waits.

    Cancellation lands only where a coroutine suspends, and an append that commits on
    the loop's thread (the SQLite store's inline path: most ticks of a run) never does,
    while a ``CancelScope(shield=True)`` costs ~6 us per append to create, enter and
    exit. So `coro` is run up to its first suspension; if it finished, that is the
    result; if it suspended, the rest is awaited inside the shield, entered before the
    event loop runs again (nothing can be cancelled in between). Same guarantee as
    shielding the whole await.
    """
    try:
        step = coro.send(None)
    except StopIteration as done:
        return cast("_T", done.value)
    with anyio.CancelScope(shield=True):
        result = await _Rest(coro, step)
    return result


class _Rest(Generic[_T]):
    """The rest of a coroutine that suspended once already, as an awaitable.

    `step` is what it yielded for the event loop; what the loop sends or throws is
    passed through to the coroutine, as ``await`` does.
    """

    __slots__ = ("_coro", "_step")

    def __init__(self, coro: Coroutine[Any, Any, _T], step: Any) -> None:
        self._coro = coro
        self._step = step

    def __await__(self) -> Generator[Any, Any, _T]:
        coro, step = self._coro, self._step
        while True:
            try:
                sent = yield step
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation, thrown in by the loop
                try:
                    step = coro.throw(exc)
                except StopIteration as done:
                    return cast("_T", done.value)
            else:
                try:
                    step = coro.send(sent)
                except StopIteration as done:
                    return cast("_T", done.value)


async def append_to_run(
    store: EventStore,
    run_id: str,
    events: Sequence[Event],
    *,
    expected_seq: int,
    status: str | None = None,
    workflow_name: str | None = None,
    log_dir: Path | None = None,
) -> int:
    """One append by a process that does not drive the run (time travel, cancel).

    Goes through a `RunWriter` (see `RunWriter.append`) whose mirror is
    ``<log_dir>/stream.ndjson``: created for a new run (`expected_seq` 0), otherwise
    only extended if it exists (a run started with ``--no-log`` gets none). Awaits I/O.

    Args:
        store: The open event store.
        run_id: The run.
        events: The batch, in order.
        expected_seq: The run's last seq as the caller knows it (0: a new run).
        status: The runs index's new status (default: see `RunWriter.append`).
        workflow_name: The runs index's workflow name (default: see `RunWriter.append`).
        log_dir: The run's log folder (`default_log_dir`), or None for no mirror.

    Returns:
        The run's new last seq.

    Raises:
        RunAlreadyExistsError: if `expected_seq` is 0 and the run exists.
        SeqConflictError: if the run is not at `expected_seq`.
        DatabaseWriteError: if the write failed; nothing of the batch was kept.
    """
    mirror = NdjsonMirror(log_dir, create=expected_seq == 0) if log_dir is not None else None
    writer = RunWriter(store, run_id, mirror=mirror)
    try:
        return await writer.append(
            events, expected_seq=expected_seq, status=status, workflow_name=workflow_name
        )
    finally:
        writer.close()


def _index_status(events: Sequence[Event]) -> str | None:
    for event in reversed(events):
        if isinstance(event, RunStatusChanged):
            return event.status
    return None


def _index_workflow_name(events: Sequence[Event]) -> str | None:
    for event in events:
        if isinstance(event, RunStarted):
            return event.workflow_name or None
    return None
