"""One write path (`RunWriter`): conflicts, the runs index, and a mirror that is the log.

Whoever appends to a run (its owner, a cancel from another process, the finalisation of
a run whose owner died, rewind, fork, replay, retry-task), the run's ``stream.ndjson``
holds exactly the run's events, seq 1..N, each line the event as the store has it, in
the database's order.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from smithers.engine import cancel_run, default_log_dir
from smithers.engine.activation import NdjsonMirror, RunWriter
from smithers.eventstore import (
    MemoryEventStore,
    RunAlreadyExistsError,
    SeqConflictError,
    SQLiteEventStore,
)
from smithers.eventstore.events import (
    NodePending,
    NodeStarted,
    RetryTaskFinished,
    RetryTaskStarted,
    RunCancelRequested,
    RunForked,
    RunRewound,
    RunStarted,
    RunStatusChanged,
)

from smithers import (
    Parallel,
    Sequence,
    Task,
    fork,
    replay,
    retry_task,
    rewind,
    run_workflow,
    workflow,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from smithers.engine import Workflow
    from smithers.eventstore.events import Event


@pytest.fixture
async def store_of(db: Path) -> AsyncIterator[Any]:
    """``await store_of()``: a new connection to the test's database, closed at the end."""
    opened: list[SQLiteEventStore] = []

    async def open_() -> SQLiteEventStore:
        store = await SQLiteEventStore.open(db)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


async def read_rows(db: Path, run_id: str) -> list[Any]:
    store = await SQLiteEventStore.open(db, create=False)
    try:
        return await store.read(run_id)
    finally:
        await store.close()


def stream_of(db: Path, run_id: str) -> Path:
    """The run's mirror in its default log folder."""
    return default_log_dir(db, run_id) / "stream.ndjson"


def mirror_lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), "the mirror ends with a torn line"
    return [json.loads(line) for line in data.splitlines()]


async def assert_mirror_is_the_log(db: Path, run_id: str, path: Path | None = None) -> int:
    """The run's mirror holds exactly its events, in the log's order; returns N."""
    path = path or stream_of(db, run_id)
    rows = await read_rows(db, run_id)
    lines = mirror_lines(path)
    assert [line["seq"] for line in lines] == list(range(1, len(rows) + 1))
    assert lines == [{"seq": row.seq, **json.loads(row.data)} for row in rows]
    return len(rows)


def two_steps() -> Workflow:
    @workflow("two-steps")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Task("a", output=dict, value={"v": 1}),
            Task("b", output=dict, run=lambda: {"v": 2}),
        )

    return wf


def chain() -> Workflow:
    """a -> Parallel(b, c) -> d."""

    @workflow("chain")
    def wf(ctx: Any) -> Any:
        return Sequence(
            Task("a", output=dict, run=lambda: {"v": 1}),
            Parallel(
                Task("b", output=dict, run=lambda: {"v": 2}),
                Task("c", output=dict, run=lambda: {"v": 3}),
            ),
            Task("d", output=dict, run=lambda: {"v": 4}),
        )

    return wf


def busy(ticks: int = 400, *, after: int = 20) -> tuple[Workflow, anyio.Event]:
    """A long sequence of tiny tasks: the owner appends all the time. Event: `after` done."""
    done = 0
    enough = anyio.Event()

    async def tick() -> dict[str, int]:
        nonlocal done
        await anyio.sleep(0.005)
        done += 1
        if done == after:
            enough.set()
        return {}

    @workflow("busy")
    def wf(ctx: Any) -> Any:
        return Sequence(*(Task(f"t{i}", output=dict, run=tick) for i in range(ticks)))

    return wf, enough


def started(run_id: str, at: int = 1) -> list[Event]:
    return [
        RunStarted(run_id=run_id, timestamp_ms=at, workflow_name="w"),
        RunStatusChanged(run_id=run_id, timestamp_ms=at, status="running"),
    ]


def pending(run_id: str, *node_ids: str) -> list[Event]:
    return [NodePending(run_id=run_id, timestamp_ms=2, node_id=n) for n in node_ids]


# ---------------------------------------------------------------------- the writer


def test_only_the_writer_appends_to_a_log() -> None:
    engine = Path(__file__).resolve().parents[2] / "engine"
    appenders = sorted(
        str(path.relative_to(engine))
        for path in engine.rglob("*.py")
        if "store.append(" in path.read_text(encoding="utf-8")
    )
    assert appenders == ["activation/_writer.py"]


async def test_a_conflict_without_rebase_is_raised_and_nothing_is_written(tmp_path: Path) -> None:
    store = MemoryEventStore()
    mirror = NdjsonMirror(tmp_path)
    writer = RunWriter(store, "r", mirror=mirror)
    assert await writer.append(started("r"), expected_seq=0) == 2

    with pytest.raises(SeqConflictError) as info:
        await writer.append(pending("r", "x"), expected_seq=1)

    assert (info.value.expected_seq, info.value.actual_seq) == (1, 2)
    assert await store.last_seq("r") == 2
    assert [line["seq"] for line in mirror_lines(tmp_path / "stream.ndjson")] == [1, 2]
    with pytest.raises(RunAlreadyExistsError):
        await writer.append(started("r"), expected_seq=0)
    writer.close()


async def test_a_rebase_decides_again_and_the_mirror_gets_the_others_events(
    tmp_path: Path,
) -> None:
    store = MemoryEventStore()
    writer = RunWriter(store, "r", mirror=NdjsonMirror(tmp_path))
    await writer.append(started("r"), expected_seq=0)
    other = RunWriter(store, "r")  # another process, mirroring nowhere
    request = RunCancelRequested(run_id="r", timestamp_ms=3, source="api")
    await other.append([request], expected_seq=2)
    seen: list[SeqConflictError] = []

    async def rebase(conflict: SeqConflictError) -> int:
        seen.append(conflict)
        return conflict.actual_seq

    last = await writer.append(pending("r", "x"), expected_seq=2, rebase=rebase, retries=1)

    assert last == 4
    assert [(c.expected_seq, c.actual_seq) for c in seen] == [(2, 3)]
    lines = mirror_lines(tmp_path / "stream.ndjson")
    assert [(line["seq"], line["type"]) for line in lines] == [
        (1, "RunStarted"),
        (2, "RunStatusChanged"),
        (3, "RunCancelRequested"),
        (4, "NodePending"),
    ]


async def test_a_rebase_gives_up_by_raising_and_retries_are_bounded() -> None:
    store = MemoryEventStore()
    writer = RunWriter(store, "r")
    await writer.append(started("r"), expected_seq=0)
    calls = 0

    async def stale(conflict: SeqConflictError) -> int:
        nonlocal calls
        calls += 1
        return 1  # never the run's seq: every attempt conflicts

    with pytest.raises(SeqConflictError):
        await writer.append(pending("r", "x"), expected_seq=1, rebase=stale, retries=3)
    assert calls == 3

    class Refused(Exception):
        pass

    async def refuse(conflict: SeqConflictError) -> int:
        raise Refused from conflict

    with pytest.raises(Refused):
        await writer.append(pending("r", "x"), expected_seq=1, rebase=refuse, retries=3)
    assert await store.last_seq("r") == 2


async def test_the_runs_index_follows_the_batch(db: Path, store_of: Any) -> None:
    store = await store_of()
    writer = RunWriter(store, "r")
    await writer.append(started("r"), expected_seq=0)
    record = await store.get_run("r")
    assert (record.workflow_name, record.status) == ("w", "running")

    done = [RunStatusChanged(run_id="r", timestamp_ms=5, status="finished")]
    await writer.append(pending("r", "x") + done, expected_seq=2)
    assert (await store.get_run("r")).status == "finished"
    await writer.append(pending("r", "y"), expected_seq=4, status="waiting-approval")
    assert (await store.get_run("r")).status == "waiting-approval"


@pytest.mark.parametrize("durability", ["normal", "full"], ids=["loop-thread", "conn-thread"])
async def test_a_cancelled_caller_does_not_cut_an_append_short(
    tmp_path: Path, durability: Any
) -> None:
    # "normal": the append commits on the loop's thread and never suspends; "full": it
    # waits for the connection thread. Either way it completes and returns its seq
    # although the caller's scope is cancelled (the caller must not fall behind the log).
    store = await SQLiteEventStore.open(tmp_path / "s.db", durability=durability)
    try:
        writer = RunWriter(store, "r", mirror=NdjsonMirror(tmp_path))
        seqs: list[int] = []
        with anyio.CancelScope() as scope:
            scope.cancel()
            seqs.append(await writer.append(started("r"), expected_seq=0))
            seqs.append(await writer.append(pending("r", "x"), expected_seq=2))
            await anyio.sleep(0)  # the cancellation lands here, after both appends
        assert scope.cancelled_caught
        assert seqs == [2, 3]
        assert [row.seq for row in await store.read("r")] == [1, 2, 3]
        lines = mirror_lines(tmp_path / "stream.ndjson")
        assert [line["seq"] for line in lines] == [1, 2, 3]
        writer.close()
    finally:
        await store.close()


async def test_a_mirror_started_late_holds_the_whole_log(tmp_path: Path) -> None:
    store = MemoryEventStore()
    await RunWriter(store, "r").append(started("r") + pending("r", "a", "b"), expected_seq=0)

    writer = RunWriter(store, "r", mirror=NdjsonMirror(tmp_path))
    await writer.append(pending("r", "c"), expected_seq=4)

    lines = mirror_lines(tmp_path / "stream.ndjson")
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line.get("nodeId") for line in lines[2:]] == ["a", "b", "c"]


@pytest.mark.parametrize("same_writer", [True, False], ids=["same-writer", "new-writer"])
async def test_a_torn_last_line_is_cut_off(tmp_path: Path, same_writer: bool) -> None:
    store = MemoryEventStore()
    writer = RunWriter(store, "r", mirror=NdjsonMirror(tmp_path))
    await writer.append(started("r") + pending("r", "a"), expected_seq=0)
    path = tmp_path / "stream.ndjson"
    # A process died while writing seq 4's line: its line ends mid-way.
    with path.open("ab") as f:
        f.write(b'{"seq":4,"type":"NodePending","runId":"r","timesta')
    await RunWriter(store, "r").append(pending("r", "b"), expected_seq=3)  # no mirror

    if not same_writer:
        writer.close()
        writer = RunWriter(store, "r", mirror=NdjsonMirror(tmp_path))
    await writer.append(pending("r", "c"), expected_seq=4)

    lines = mirror_lines(path)
    assert [(line["seq"], line.get("nodeId")) for line in lines] == [
        (1, None),
        (2, None),
        (3, "a"),
        (4, "b"),
        (5, "c"),
    ]
    writer.close()


async def test_runs_sharing_a_log_folder_each_keep_their_order(tmp_path: Path) -> None:
    store = MemoryEventStore()
    one = RunWriter(store, "one", mirror=NdjsonMirror(tmp_path))
    two = RunWriter(store, "two", mirror=NdjsonMirror(tmp_path))
    await one.append(started("one"), expected_seq=0)
    await two.append(started("two"), expected_seq=0)
    await RunWriter(store, "one").append(pending("one", "unmirrored"), expected_seq=2)
    await one.append(pending("one", "a"), expected_seq=3)
    await two.append(pending("two", "b"), expected_seq=2)

    lines = mirror_lines(tmp_path / "stream.ndjson")
    by_run = {
        run: [(line["seq"], line["type"]) for line in lines if line["runId"] == run]
        for run in ("one", "two")
    }
    assert by_run == {
        "one": [(1, "RunStarted"), (2, "RunStatusChanged"), (3, "NodePending"), (4, "NodePending")],
        "two": [(1, "RunStarted"), (2, "RunStatusChanged"), (3, "NodePending")],
    }


async def test_a_mirror_ahead_of_the_log_turns_off_and_the_append_stands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = MemoryEventStore()  # a database since deleted, whose run had the same id
    await RunWriter(old, "r", mirror=NdjsonMirror(tmp_path)).append(
        started("r") + pending("r", "a", "b", "c"), expected_seq=0
    )
    before = (tmp_path / "stream.ndjson").read_bytes()
    store = MemoryEventStore()
    writer = RunWriter(store, "r", mirror=NdjsonMirror(tmp_path))

    with caplog.at_level(logging.WARNING, logger="smithers.engine"):
        assert await writer.append(started("r"), expected_seq=0) == 2
        assert await writer.append(pending("r", "x"), expected_seq=2) == 3

    assert (tmp_path / "stream.ndjson").read_bytes() == before
    warnings = [r.getMessage() for r in caplog.records if "NDJSON mirror" in r.getMessage()]
    assert len(warnings) == 1
    assert "which the log does not have" in warnings[0]


async def test_a_mirror_that_cannot_be_written_never_fails_the_run(
    db: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log folder should be")

    result = await run_workflow(two_steps(), input={}, db=db, log_dir=blocked / "logs")

    assert result.status == "finished"


# ---------------------------------------------------------------------- cancel


async def test_a_cancel_by_another_connection_reaches_the_owners_mirror(
    db: Path, store_of: Any
) -> None:
    wf, enough = busy()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:

            async def cancel_when_busy() -> None:
                await enough.wait()
                # Its own connection and no mirror: the owner mirrors the request.
                state = await cancel_run("busy", store=await store_of(), source="api")
                assert state.status == "cancelled"

            tg.start_soon(cancel_when_busy)
            result = await run_workflow(wf, input={}, run_id="busy", db=db)

    assert result.status == "cancelled"
    await assert_mirror_is_the_log(db, "busy")
    types = [line["type"] for line in mirror_lines(stream_of(db, "busy"))]
    assert types.count("RunCancelRequested") == 1
    assert types[-1] == "RunCancelled"


async def test_a_cancel_from_another_process_while_the_owner_appends(db: Path) -> None:
    wf, enough = busy(5_000, after=5)  # runs for long: the canceller needs to start
    argv = [sys.executable, "-m", "smithers", "cancel", "busy", "--db", str(db)]
    with anyio.fail_after(40):
        async with anyio.create_task_group() as tg:

            async def cancel_when_busy() -> None:
                await enough.wait()
                done = await anyio.run_process(argv, check=False)
                assert done.returncode == 0, done.stderr.decode()

            tg.start_soon(cancel_when_busy)
            result = await run_workflow(wf, input={}, run_id="busy", db=db)

    assert result.status == "cancelled"
    await assert_mirror_is_the_log(db, "busy")
    rows = await read_rows(db, "busy")
    assert [r.type for r in rows].count("RunCancelRequested") == 1


SLOW_FLOW = """
    import anyio
    from smithers import Sequence, Task, workflow

    async def nap():
        await anyio.sleep(60)
        return {}

    @workflow("slow")
    def slow(ctx):
        return Sequence(
            Task("first", output=dict, value={"n": 1}),
            Task("nap", output=dict, run=nap),
        )
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("torn", [False, True], ids=["clean", "torn-last-line"])
async def test_the_finalisation_of_a_dead_owners_run_is_mirrored(
    db: Path, tmp_path: Path, torn: bool
) -> None:
    flow = tmp_path / "slow.py"
    flow.write_text(textwrap.dedent(SLOW_FLOW), encoding="utf-8")
    stream = stream_of(db, "dead")
    argv = [sys.executable, "-m", "smithers", "up", str(flow), "--run-id", "dead", "--db", str(db)]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with anyio.fail_after(20):
            # Another process cannot be driven by a fake clock: poll its mirror.
            while not (stream.is_file() and b'"nodeId":"nap"' in stream.read_bytes()):
                assert proc.poll() is None, proc.communicate()
                await anyio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    if torn:
        with stream.open("ab") as f:
            f.write(b'{"seq":99,"type":"TaskHeart')

    state = await cancel_run("dead", db=db, reason="owner died")

    assert state.status == "cancelled"
    n = await assert_mirror_is_the_log(db, "dead")
    lines = mirror_lines(stream)
    assert [line["type"] for line in lines[-4:]] == [
        "RunCancelRequested",
        "NodeCancelled",
        "RunStatusChanged",
        "RunCancelled",
    ]
    assert lines[-1] == {**lines[-1], "seq": n, "reason": "owner died"}


async def test_a_run_without_a_mirror_gets_none_from_a_cancel_or_a_rewind(db: Path) -> None:
    await run_workflow(two_steps(), input={}, run_id="quiet", db=db, log_dir=None)
    await rewind("quiet", frame=1, db=db)
    # Rewound to a running state whose owner is this process: asked, then finalized.
    state = await cancel_run("quiet", db=db, wait_ms=0)

    assert state.status == "cancelled"
    assert not (db.parent / "executions").exists()


# ---------------------------------------------------------------------- time travel


async def test_a_rewound_then_resumed_run_is_mirrored(db: Path) -> None:
    wf = chain()
    result = await run_workflow(wf, input={}, db=db)

    await rewind(result.run_id, frame=1, db=db)
    resumed = await run_workflow(wf, run_id=result.run_id, resume=True, db=db)

    assert resumed.status == "finished"
    await assert_mirror_is_the_log(db, result.run_id)
    types = [line["type"] for line in mirror_lines(stream_of(db, result.run_id))]
    assert types.count(RunRewound.__name__) == 1
    assert types.count(RunStarted.__name__) == 2


async def test_a_fork_is_mirrored_with_its_own_events_only(db: Path) -> None:
    wf = chain()
    parent = await run_workflow(wf, input={}, db=db)
    n_parent = await assert_mirror_is_the_log(db, parent.run_id)

    child = await fork(parent.run_id, frame=1, db=db, label="again")

    assert await assert_mirror_is_the_log(db, child) == 1
    assert mirror_lines(stream_of(db, child))[0]["type"] == "RunForked"
    result = await run_workflow(wf, run_id=child, resume=True, db=db)
    assert result.status == "finished"
    lines = mirror_lines(stream_of(db, child))
    assert {line["runId"] for line in lines} == {child}
    assert lines[0]["type"] == RunForked.__name__
    await assert_mirror_is_the_log(db, child)
    assert await assert_mirror_is_the_log(db, parent.run_id) == n_parent


async def test_a_replay_is_mirrored(db: Path) -> None:
    wf = chain()
    parent = await run_workflow(wf, input={}, db=db)

    result = await replay(parent.run_id, frame=1, db=db, workflow=wf)

    assert result.status == "finished"
    await assert_mirror_is_the_log(db, result.run_id)
    types = [line["type"] for line in mirror_lines(stream_of(db, result.run_id))]
    assert types[:2] == ["RunForked", "ReplayStarted"]


async def test_a_retried_task_is_mirrored(db: Path) -> None:
    wf = chain()
    original = await run_workflow(wf, input={}, db=db)

    result = await retry_task(original.run_id, node="b", db=db, workflow=wf)

    assert result.status == "finished"
    await assert_mirror_is_the_log(db, original.run_id)
    lines = mirror_lines(stream_of(db, original.run_id))
    types = [line["type"] for line in lines]
    assert types.index(RetryTaskStarted.__name__) < types.index(RetryTaskFinished.__name__)
    assert types[-1] == "RunFinished"  # the run's end records the retry's end before it
    reran = [line["nodeId"] for line in lines if line["type"] == NodeStarted.__name__][-2:]
    assert reran == ["b", "d"]
