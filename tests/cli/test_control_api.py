"""`cancel_run`, `down` and `resume_run` under the CLI, in-process (no subprocess)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from smithers.engine import (
    InvalidInputError,
    RunNotFoundError,
    cancel_run,
    down,
    resume_run,
)
from smithers.eventstore import Lease, SQLiteEventStore, decode_event
from smithers.eventstore.events import (
    NodeCancelled,
    NodeRetrying,
    NodeStarted,
    RunCancelled,
    RunCancelRequested,
    RunStarted,
    RunStatusChanged,
)

from smithers import Sequence, Task, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def record_running_run(
    db: Path, run_id: str, *, pid: int, heartbeat_age_ms: int = 0, lease: bool = True
) -> None:
    """A running run owned by `pid` on this host: s0 running, s1 waiting out a retry."""
    host = socket.gethostname()
    at = now_ms() - heartbeat_age_ms
    owner = f"{host}:{pid}:test"
    store = await SQLiteEventStore.open(db)
    try:
        await store.append(
            run_id,
            [
                RunStarted(run_id=run_id, timestamp_ms=at, owner_id=owner, pid=pid, host=host),
                RunStatusChanged(run_id=run_id, timestamp_ms=at, status="running"),
                NodeStarted(run_id=run_id, timestamp_ms=at, node_id="s0", attempt=1),
                NodeStarted(run_id=run_id, timestamp_ms=at, node_id="s1", attempt=1),
                NodeRetrying(run_id=run_id, timestamp_ms=at, node_id="s1", attempt=2, delay_ms=9),
            ],
            expected_seq=0,
            status="running",
        )
        if lease:
            await store.put_lease(
                Lease(
                    run_id=run_id,
                    owner_id=owner,
                    pid=pid,
                    host=host,
                    acquired_at_ms=at,
                    heartbeat_at_ms=at,
                )
            )
    finally:
        await store.close()


async def read(db: Path, run_id: str) -> tuple[list[Any], list[Lease]]:
    store = await SQLiteEventStore.open(db)
    try:
        rows = await store.read(run_id)
        return [decode_event(r.type, r.data) for r in rows], await store.list_leases()
    finally:
        await store.close()


@pytest.fixture
def live_pid() -> Any:
    """Pid of a live process that is not a smithers owner: it never reacts to a request."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


async def test_cancel_run_asks_a_live_owner_in_this_process(db: Path) -> None:
    started = anyio.Event()

    async def long() -> dict[str, int]:
        started.set()
        await anyio.sleep(30)
        return {}

    @workflow("long")
    def long_wf(ctx: Any) -> Any:
        return Sequence(Task("long", output=dict, run=long))

    steps: list[str] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def cancel_when_started() -> None:
                await started.wait()
                state = await cancel_run("owned", db=db, source="api", on_step=steps.append)
                assert state.status == "cancelled"

            tg.start_soon(cancel_when_started)
            result = await run_workflow(long_wf, input={}, run_id="owned", db=db)

    assert result.status == "cancelled"
    assert steps == ["requested"]
    events, leases = await read(db, "owned")
    assert [e.source for e in events if isinstance(e, RunCancelRequested)] == ["api"]
    last = events[-1]
    assert isinstance(last, RunCancelled)
    assert (last.source, last.reason) == ("api", "cancel-requested")
    assert leases == []


async def test_an_owner_that_does_not_stop_in_time_is_finalized(db: Path, live_pid: int) -> None:
    await record_running_run(db, "slow", pid=live_pid)
    steps: list[str] = []

    state = await cancel_run("slow", db=db, wait_ms=300, reason="stop", on_step=steps.append)

    assert steps == ["requested", "finalizing"]
    assert state.status == "cancelled"
    events, leases = await read(db, "slow")
    types = [type(e).__name__ for e in events[5:]]
    assert types == [
        "RunCancelRequested",  # the request the owner ignored; not repeated
        "NodeCancelled",
        "NodeCancelled",
        "RunStatusChanged",
        "RunCancelled",
    ]
    cancelled = {(e.node_id, e.attempt, e.reason) for e in events if isinstance(e, NodeCancelled)}
    assert cancelled == {("s0", 1, "cancelled"), ("s1", None, "cancelled")}
    assert (events[-1].reason, events[-1].source) == ("stop", "cli")
    assert leases == []  # the slow owner's lease is gone: it stops at its next heartbeat
    assert [rec.state for rec in state.nodes.values()] == ["cancelled", "cancelled"]


async def test_a_dead_owner_is_finalized_at_once(db: Path) -> None:
    # Above the kernel's largest pid (2**22): certainly not a live process.
    await record_running_run(db, "dead", pid=2**22 + 1, heartbeat_age_ms=0)
    steps: list[str] = []
    started = time.monotonic()
    state = await cancel_run("dead", db=db, on_step=steps.append)
    assert time.monotonic() - started < 2
    assert steps == ["finalizing"]
    assert state.status == "cancelled"


async def test_a_run_without_lease_whose_last_activation_lives_is_asked(
    db: Path, live_pid: int
) -> None:
    # Between its claim and its lease row, an owner has no lease: its RunStarted names it.
    await record_running_run(db, "claiming", pid=live_pid, lease=False)
    steps: list[str] = []
    state = await cancel_run("claiming", db=db, wait_ms=200, on_step=steps.append)
    assert steps == ["requested", "finalizing"]
    assert state.status == "cancelled"


async def test_cancel_run_of_an_ended_run_appends_nothing(db: Path) -> None:
    @workflow("quick")
    def quick(ctx: Any) -> Any:
        return [Task("a", output=dict, value={})]

    result = await run_workflow(quick, input={}, run_id="q", db=db)
    before, _ = await read(db, "q")
    steps: list[str] = []
    state = await cancel_run(result.run_id, db=db, on_step=steps.append)
    assert state.status == "finished"
    assert steps == []
    after, _ = await read(db, "q")
    assert len(after) == len(before)


async def test_cancel_run_errors(db: Path) -> None:
    await record_running_run(db, "x", pid=os.getpid())
    with pytest.raises(RunNotFoundError):
        await cancel_run("nope", db=db)
    with pytest.raises(InvalidInputError, match="supervisor"):
        await cancel_run("supervisor", db=db)


async def test_down_cancels_only_active_runs(db: Path, live_pid: int) -> None:
    await record_running_run(db, "a", pid=2**22 + 3)
    await record_running_run(db, "b", pid=live_pid)

    @workflow("quick")
    def quick(ctx: Any) -> Any:
        return [Task("a", output=dict, value={})]

    await run_workflow(quick, input={}, run_id="done", db=db)

    states = await down(db=db, wait_ms=200, source="api")

    assert sorted((s.run_id, s.status) for s in states) == [("a", "cancelled"), ("b", "cancelled")]
    assert await down(db=db) == []


async def test_resume_run_needs_a_recorded_workflow_file(db: Path) -> None:
    await record_running_run(db, "inline", pid=2**22 + 5)
    with pytest.raises(Exception, match="records no workflow file") as info:
        await resume_run("inline", db=db)
    assert getattr(info.value, "code", None) == "RUN_NOT_RESUMABLE"


async def test_cancel_run_converges_while_the_owner_appends_all_the_time(db: Path) -> None:
    finished = 0
    enough = anyio.Event()

    async def tick() -> dict[str, int]:
        nonlocal finished
        await anyio.sleep(0.005)
        finished += 1
        if finished == 20:
            enough.set()
        return {}

    @workflow("busy")
    def busy(ctx: Any) -> Any:
        return Sequence(*(Task(f"t{i}", output=dict, run=tick) for i in range(400)))

    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:

            async def cancel_when_busy() -> None:
                await enough.wait()
                state = await cancel_run("busy", db=db)
                assert state.status == "cancelled"

            tg.start_soon(cancel_when_busy)
            result = await run_workflow(busy, input={}, run_id="busy", db=db)

    assert result.status == "cancelled"
    events, _ = await read(db, "busy")
    assert sum(isinstance(e, RunCancelRequested) for e in events) == 1
    assert isinstance(events[-1], RunCancelled)
