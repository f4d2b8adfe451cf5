"""The client handle (DESIGN §12): `connect`, `Client`, `RunHandle` on a real SQLite file.

Every operation goes through the client's one store; the last tests count the opens.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from smithers.engine import (
    Client,
    InvalidInputError,
    MissingOutputError,
    RunHandle,
    RunNotFoundError,
    SnapshotNotFoundError,
    load_run,
    load_workflow,
    read_events,
)
from smithers.eventstore import RunAlreadyExistsError, SmithersError, SQLiteEventStore
from smithers.eventstore.events import (
    NodeFinished,
    ReplayStarted,
    RetryTaskFinished,
    RetryTaskStarted,
    RunForked,
    RunRewound,
)

import smithers
from smithers import Sequence, Task, connect, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.engine import Workflow

FLOW = """
import msgspec
from smithers import Sequence, Task, workflow


class Count(msgspec.Struct):
    n: int


def second(task):
    if task.input["start"] < 0:
        raise ValueError("negative start")
    return {"n": task.input["start"] + 1}


@workflow("checked")
def checked(ctx):
    first = ctx.output_maybe(Count, "first")
    return Sequence(
        Task("first", output=Count, value={"n": 1}),
        Task("second", output=Count, run=second),
        first and Task("third", output=Count, value={"n": first.n + 10}),
    )
"""


@pytest.fixture
def checked(tmp_path: Path) -> Workflow:
    """A workflow loaded from a file (time travel imports it again from the log)."""
    path = tmp_path / "checked.py"
    path.write_text(textwrap.dedent(FLOW), encoding="utf-8")
    wf, _ = load_workflow(str(path))
    return wf


def gated(gate: anyio.Event) -> Workflow:
    """A run whose task "wait" finishes only once `gate` is set."""

    async def wait() -> dict[str, Any]:
        await gate.wait()
        return {"opened": True}

    @workflow("gated")
    def build(ctx: Any) -> Any:
        return Sequence(
            Task("first", output=dict, value={"n": 1}),
            Task("wait", output=dict, run=wait),
        )

    return build


def test_the_facade_exports_the_client() -> None:
    assert smithers.connect is connect
    assert smithers.Client is Client
    assert smithers.RunHandle is RunHandle


# ---------------------------------------------------------------------- runs


async def test_start_returns_once_recorded_and_result_awaits_the_end(db: Path) -> None:
    gate = anyio.Event()
    async with connect(db) as client:
        handle = await client.start(gated(gate), input={}, run_id="g")
        assert handle.run_id == "g"
        assert (await handle.describe()).status == "running"
        assert await client.get_run("g") is handle
        gate.set()
        result = await handle.result()
    assert (result.run_id, result.status) == ("g", "finished")
    assert result.outputs["wait"] == {"opened": True}


async def test_run_creates_the_database_and_returns_the_result(
    tmp_path: Path, checked: Any
) -> None:
    db = tmp_path / "new" / "smithers.db"
    async with connect(db) as client:
        assert client.path == db
        result = await client.run(checked, input={"start": 5})
    assert db.is_file()
    assert result.status == "finished"
    assert result.outputs == {"first": {"n": 1}, "second": {"n": 6}, "third": {"n": 11}}


async def test_runs_filters_by_status_and_limit(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        await client.run(checked, input={"start": 1}, run_id="a")
        await client.run(checked, input={"start": -1}, run_id="b")
        await client.run(checked, input={"start": 2}, run_id="c")
        assert [r.run_id for r in await client.runs()] == ["c", "b", "a"]
        assert [r.run_id for r in await client.runs(status="failed")] == ["b"]
        assert [r.run_id for r in await client.runs(status="finished", limit=1)] == ["c"]
        assert [r.run_id for r in await client.runs(limit=2)] == ["c", "b"]


async def test_get_run_of_a_missing_run_is_run_not_found(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        await client.run(checked, input={"start": 1}, run_id="a")
        with pytest.raises(RunNotFoundError, match="nope"):
            await client.get_run("nope")


async def test_reads_of_a_missing_database_are_cli_db_not_found(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    async with connect(db) as client:
        with pytest.raises(SmithersError, match="No smithers database") as info:
            await client.runs()
        assert info.value.code == "CLI_DB_NOT_FOUND"
        with pytest.raises(SmithersError, match="No smithers database"):
            await client.get_run("r")
    assert not db.exists()


async def test_start_raises_what_fails_before_the_run_is_recorded(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        with pytest.raises(InvalidInputError):
            await client.start(checked, input=["not", "an", "object"])
        await client.run(checked, input={"start": 1}, run_id="taken")
        with pytest.raises(RunAlreadyExistsError):
            await client.start(checked, input={"start": 1}, run_id="taken")
        assert [r.run_id for r in await client.runs()] == ["taken"]


async def test_start_resume_needs_a_run_id(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        with pytest.raises(InvalidInputError, match="run_id"):
            await client.start(checked, resume=True)


async def test_started_runs_share_the_store_concurrently(db: Path) -> None:
    gate = anyio.Event()
    async with connect(db) as client:
        handles = [await client.start(gated(gate), input={}, run_id=f"g{i}") for i in range(3)]
        gate.set()
        with anyio.fail_after(20):
            results = [await handle.result() for handle in handles]
    assert [(r.run_id, r.status) for r in results] == [(f"g{i}", "finished") for i in range(3)]


async def test_errors_after_the_start_are_raised_by_result(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = anyio.Event()
    async with connect(db) as client:
        handle = await client.start(gated(gate), input={}, run_id="g")

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise SmithersError("the disk is gone", code="DB_WRITE_FAILED")

        store = await client._open()
        monkeypatch.setattr(store, "append", broken)
        gate.set()
        with pytest.raises(SmithersError, match="the disk is gone"):
            await handle.result()


async def test_result_of_a_run_of_another_process_waits_for_its_end(db: Path, checked: Any) -> None:
    done = await run_workflow(checked, input={"start": 5}, db=db, run_id="elsewhere")
    async with connect(db) as client:
        result = await (await client.get_run("elsewhere")).result()
    assert result == done


async def test_result_polls_a_run_driven_elsewhere(db: Path) -> None:
    gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_workflow(gated(gate), input={}, db=db, run_id="other"))
        async with connect(db) as client:
            while True:
                try:
                    handle = await client.get_run("other")
                    break
                except SmithersError:  # no database or no run yet
                    await anyio.sleep(0.01)

            async def open_gate() -> None:
                await anyio.sleep(0.05)
                gate.set()

            tg.start_soon(open_gate)
            with anyio.fail_after(10):
                result = await handle.result(poll_interval_s=0.01)
    assert result.status == "finished"


# ---------------------------------------------------------------------- exit


async def test_leaving_the_block_waits_for_started_runs(db: Path) -> None:
    gate = anyio.Event()
    async with connect(db) as client:
        handle = await client.start(gated(gate), input={}, run_id="g")
        gate.set()
    assert (await load_run("g", db=db)).status == "finished"
    with pytest.raises(RuntimeError, match="closed"):
        await handle.describe()
    with pytest.raises(RuntimeError, match="closed"):
        await client.runs()


async def test_an_error_in_the_block_cancels_started_runs_and_propagates(db: Path) -> None:
    handles: list[RunHandle] = []

    async def body() -> None:
        async with connect(db) as client:
            handles.append(await client.start(gated(anyio.Event()), input={}, run_id="g"))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):  # not wrapped in an exception group
        await body()
    state = await load_run("g", db=db)
    assert state.status == "cancelled"
    with pytest.raises(RuntimeError, match="cancelled when its client closed"):
        await handles[0].result()


# ---------------------------------------------------------------------- reading


async def test_state_by_frame_and_by_seq(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        result = await client.run(checked, input={"start": 5})
        run = await client.get_run(result.run_id)
        tl = await run.timeline()
        frames = [(f.frame_no, f.finished_count) for f in tl.frames]
        assert frames == [(0, 0), (1, 1), (2, 2), (3, 3)]
        at_frame = await run.state(frame=1)
        assert at_frame.seq == tl.frames[1].seq
        assert at_frame.counts().get("finished") == 1
        at_seq = await run.state(seq=tl.frames[1].seq)
        assert at_seq.seq == at_frame.seq
        assert at_seq.counts() == at_frame.counts()
        now = await run.state()
        assert now.status == "finished"
        with pytest.raises(SnapshotNotFoundError):
            await run.state(frame=99)
        view = await run.frame_view(1)
        assert (view.frame_no, view.seq) == (1, tl.frames[1].seq)
        assert view.tree is not None


async def test_events_with_filters_and_follow(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        result = await client.run(checked, input={"start": 5})
        run = await client.get_run(result.run_id)
        every = await run.events()
        assert [s.seq for s, _ in every] == list(range(1, len(every) + 1))
        finished = await run.events(types=["NodeFinished"])
        assert [e.node_id for _, e in finished if isinstance(e, NodeFinished)] == [
            "first",
            "second",
            "third",
        ]
        assert all(e.node_id == "second" for _, e in await run.events(node_id="second"))  # type: ignore[attr-defined]
        assert [s.seq for s, _ in await run.events(after_seq=3, limit=2)] == [4, 5]
        followed = [pair async for pair in run.follow_events(poll_interval_s=0.01)]
        assert followed == every


async def test_output_with_iteration(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        result = await client.run(checked, input={"start": 5})
        run = await client.get_run(result.run_id)
        assert await run.output("second") == {"n": 6}
        assert await run.output("second", iteration=0) == {"n": 6}
        with pytest.raises(MissingOutputError, match="no iteration 1"):
            await run.output("second", iteration=1)


# ---------------------------------------------------------------------- control


async def test_cancel_of_a_started_run(db: Path) -> None:
    async with connect(db) as client:
        handle = await client.start(gated(anyio.Event()), input={}, run_id="g")
        steps: list[str] = []
        with anyio.fail_after(20):
            state = await handle.cancel(reason="enough", on_step=steps.append)
            result = await handle.result()
    assert state.status == "cancelled"
    assert steps == ["requested"]
    assert result.status == "cancelled"
    types = [s.type for s, _ in await read_events("g", db=db)]
    assert "RunCancelRequested" in types
    assert types[-1] == "RunCancelled"


async def test_down_cancels_every_active_run(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        await client.run(checked, input={"start": 1}, run_id="done")
        await client.start(gated(anyio.Event()), input={}, run_id="g")
        with anyio.fail_after(20):
            states = await client.down(reason="maintenance")
    assert [(s.run_id, s.status) for s in states] == [("g", "cancelled")]


# ---------------------------------------------------------------------- time travel


def mirrored(db: Path, run_id: str) -> list[str]:
    """Event types in the run's NDJSON mirror next to the database."""
    path = db.parent / "executions" / run_id / "logs" / "stream.ndjson"
    return [json.loads(line)["type"] for line in path.read_text().splitlines()]


async def test_rewind_then_resume(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        result = await client.run(checked, input={"start": 5}, run_id="r")
        run = await client.get_run(result.run_id)
        state = await run.rewind(1)
        assert state.frames[-1].frame_no == 1
        assert state.node("second").state == "pending"  # type: ignore[union-attr]
        resumed = await run.resume()
    assert resumed.status == "finished"
    assert resumed.outputs["third"] == {"n": 11}
    events = [e for _, e in await read_events("r", db=db)]
    assert sum(isinstance(e, RunRewound) for e in events) == 1
    assert "RunRewound" in mirrored(db, "r")


async def test_fork_gives_the_childs_handle(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        parent = await client.run(checked, input={"start": -1}, run_id="p")
        assert parent.status == "failed"
        run = await client.get_run("p")
        child = await run.fork(1, input={"start": 5}, label="fix", run_id_new="c")
        assert isinstance(child, RunHandle)
        assert child.run_id == "c"
        assert (await child.describe()).status == "pending"
        result = await child.resume()
        assert (result.status, result.outputs["second"]) == ("finished", {"n": 6})
        assert (await child.state()).parent_run_id == "p"
    first = (await read_events("c", db=db))[0][1]
    assert isinstance(first, RunForked)
    assert first.branch_label == "fix"
    assert mirrored(db, "c")[0] == "RunForked"


async def test_replay_runs_a_fork_now(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        await client.run(checked, input={"start": -1}, run_id="p")
        run = await client.get_run("p")
        fixed = await run.replay(1, input={"start": 5}, run_id_new="fixed")
        assert (fixed.run_id, fixed.status) == ("fixed", "finished")
        assert fixed.outputs["second"] == {"n": 6}
        after = await (await client.get_run("fixed")).state()
        assert after.node("first").attempt_count == 1  # type: ignore[union-attr]
    events = [e for _, e in await read_events("fixed", db=db)]
    assert isinstance(events[0], RunForked)
    assert isinstance(events[1], ReplayStarted)
    assert mirrored(db, "fixed")[:2] == ["RunForked", "ReplayStarted"]


async def test_retry_task_reruns_the_node_and_its_dependents(db: Path, checked: Any) -> None:
    async with connect(db) as client:
        await client.run(checked, input={"start": 5}, run_id="r")
        run = await client.get_run("r")
        result = await run.retry_task("second")
        assert result.status == "finished"
    events = [e for _, e in await read_events("r", db=db)]
    started = [e for e in events if isinstance(e, RetryTaskStarted)]
    assert [e.reset_nodes for e in started] == [("second", "third")]
    ended = [e for e in events if isinstance(e, RetryTaskFinished)]
    assert [e.success for e in ended] == [True]
    assert sum(isinstance(e, NodeFinished) and e.node_id == "second" for e in events) == 2
    assert mirrored(db, "r")[-1] == "RunFinished"  # the run's end records the retry's
    assert "RetryTaskFinished" in mirrored(db, "r")


# ---------------------------------------------------------------------- one store


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every `SQLiteEventStore.open` call's path, in order."""
    calls: list[Any] = []
    real = SQLiteEventStore.open.__func__  # type: ignore[attr-defined]

    async def counting(cls: type[SQLiteEventStore], path: Any, **kwargs: Any) -> Any:
        calls.append(path)
        return await real(cls, path, **kwargs)

    monkeypatch.setattr(SQLiteEventStore, "open", classmethod(counting))
    return calls


async def test_the_client_opens_the_database_once(db: Path, checked: Any, opens: list[Any]) -> None:
    async with connect(db) as client:
        await client.run(checked, input={"start": -1}, run_id="p")
        await client.runs(status="failed")
        run = await client.get_run("p")
        await run.describe()
        await run.state(frame=1)
        await run.state(seq=3)
        await run.events(types=["NodeFailed"])
        await run.timeline()
        await run.frame_view(1)
        await run.output("first")
        await run.result()
        child = await run.fork(1, input={"start": 5})
        await child.resume()
        await run.replay(1, input={"start": 6})
        await run.rewind(1)
        await run.resume()
        await run.retry_task("first", deps=False)
        await run.cancel()
        handle = await client.start(checked, input={"start": 7})
        await handle.result()
    assert opens == [db]
