"""The API under the CLI: `load_workflow` and the read functions of `smithers.engine`."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import anyio
import msgspec
import pytest
from smithers.engine import (
    EngineError,
    NodeNotFoundError,
    RunNotFoundError,
    Workflow,
    WorkflowMissingDefaultError,
    event_to_json,
    follow_events,
    load_workflow,
)
from smithers.eventstore import SmithersError, SQLiteEventStore
from smithers.eventstore.events import (
    Event,
    NodeFinished,
    NodePending,
    NodeStarted,
    RunFinished,
    RunStarted,
    RunStatusChanged,
)

from smithers import get_output, list_runs, load_run, read_events, run_workflow

# ---------------------------------------------------------------------- load_workflow


def test_load_workflow_returns_the_workflow_and_its_absolute_path(flows: Any) -> None:
    wf, path = load_workflow(str(flows / "count.py"))
    assert isinstance(wf, Workflow)
    assert wf.name == "count"
    assert path == flows / "count.py"
    assert wf.source_path == str(path)


def test_load_workflow_imports_a_fresh_module_each_time(flows: Any) -> None:
    first, _ = load_workflow(str(flows / "count.py"))
    second, _ = load_workflow(str(flows / "count.py"))
    assert first is not second
    assert first.build.__module__ != second.build.__module__


def test_load_workflow_restores_sys_path(flows: Any) -> None:
    before = list(sys.path)
    load_workflow(str(flows / "uses_helper.py"))
    with pytest.raises(SmithersError):
        load_workflow(str(flows / "broken.py"))
    assert sys.path == before


def test_load_workflow_import_error_chains_the_cause(flows: Any) -> None:
    with pytest.raises(EngineError, match=r"^Could not import .*broken\.py") as info:
        load_workflow(str(flows / "broken.py"))
    assert info.value.code == "INVALID_INPUT"
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_load_workflow_missing_default_details(flows: Any) -> None:
    with pytest.raises(WorkflowMissingDefaultError) as info:
        load_workflow(str(flows / "empty.py"))
    assert info.value.code == "WORKFLOW_MISSING_DEFAULT"
    assert info.value.details == {"path": str(flows / "empty.py")}
    assert info.value.hint is not None
    assert "@workflow" in info.value.hint


def test_load_workflow_prefers_workflows_defined_in_the_file(flows: Any) -> None:
    (flows / "reexport.py").write_text(
        "from several import alpha\n"
        "from smithers import Task, workflow\n"
        "@workflow('own')\n"
        "def own(ctx):\n"
        "    return [Task('x', output=dict, value={})]\n"
    )
    wf, _ = load_workflow(str(flows / "reexport.py"))
    assert wf.name == "own"
    picked, _ = load_workflow(f"{flows / 'reexport.py'}:alpha")
    assert picked.name == "first-flow"


def test_load_workflow_missing_file(tmp_path: Any) -> None:
    with pytest.raises(EngineError, match="does not exist") as info:
        load_workflow(str(tmp_path / "nope.py"))
    assert info.value.code == "INVALID_INPUT"


# ---------------------------------------------------------------------- read API


@pytest.fixture
async def two_runs(flows: Any, db: Any) -> tuple[str, str]:
    wf, _ = load_workflow(str(flows / "count.py"))
    bad, _ = load_workflow(str(flows / "bad.py"))
    await run_workflow(wf, input={"start": 1}, run_id="ok", db=db, log_dir=None)
    await run_workflow(bad, run_id="ko", db=db, log_dir=None)
    return "ok", "ko"


async def test_list_runs_and_load_run(db: Any, two_runs: Any) -> None:
    assert [r.run_id for r in await list_runs(db)] == ["ko", "ok"]
    assert [r.run_id for r in await list_runs(db, status="finished")] == ["ok"]
    assert [r.run_id for r in await list_runs(db, limit=1)] == ["ko"]
    state = await load_run("ok", db=db)
    assert state.status == "finished"
    early = await load_run("ok", db=db, upto_seq=2)
    assert early.seq == 2
    assert early.status == "running"
    with pytest.raises(RunNotFoundError):
        await load_run("nope", db=db)


async def test_read_events_filters(db: Any, two_runs: Any) -> None:
    rows = await read_events("ok", db=db)
    assert [s.seq for s, _ in rows] == list(range(1, len(rows) + 1))
    finished = await read_events("ok", db=db, types=["NodeFinished"], limit=2)
    assert [e.node_id for _, e in finished] == ["first", "second"]  # type: ignore[attr-defined]
    assert [type(e).__name__ for _, e in await read_events("ok", db=db, node_id="third")] == [
        "NodePending",
        "NodeStarted",
        "NodeFinished",
    ]
    assert await read_events("ok", db=db, since_ms=rows[-1][0].timestamp_ms + 1) == []
    with pytest.raises(SmithersError, match="Unknown event type"):
        await read_events("ok", db=db, types=["Nope"])
    with pytest.raises(RunNotFoundError):
        await read_events("nope", db=db)


async def test_get_output(db: Any, two_runs: Any) -> None:
    assert await get_output("ok", "second", db=db) == {"n": 2}
    with pytest.raises(NodeNotFoundError):
        await get_output("ok", "zzz", db=db)
    with pytest.raises(SmithersError) as info:
        await get_output("ko", "second", db=db)
    assert info.value.code == "MISSING_OUTPUT"


async def test_event_to_json_is_the_stored_json_plus_seq(db: Any, two_runs: Any) -> None:
    stored, event = (await read_events("ok", db=db, types=["NodeFinished"]))[0]
    body = event_to_json(stored, event)
    assert list(body)[:2] == ["seq", "type"]
    assert body["seq"] == stored.seq
    assert {k: v for k, v in body.items() if k != "seq"} == msgspec.json.decode(stored.data)


class FutureThing(Event, frozen=True, kw_only=True):
    """An event type this version does not know (as if written by a newer one)."""

    detail: str = ""


async def test_read_api_skips_unknown_event_types(db: Any, two_runs: Any) -> None:
    store = await SQLiteEventStore.open(db)
    try:
        last = await store.last_seq("ok")
        await store.append("ok", [FutureThing(run_id="ok", timestamp_ms=1)], expected_seq=last)
    finally:
        await store.close()
    rows = await read_events("ok", db=db)
    assert len(rows) == last
    assert (await load_run("ok", db=db)).seq == last + 1


async def test_follow_events_yields_until_the_run_ends(db: Any) -> None:
    run = "live"
    first = [
        RunStarted(run_id=run, timestamp_ms=1, workflow_name="w"),
        RunStatusChanged(run_id=run, timestamp_ms=1, status="running"),
    ]
    later: list[tuple[list[Any], str | None]] = [
        ([NodePending(run_id=run, timestamp_ms=2, node_id="a")], None),
        ([NodeStarted(run_id=run, timestamp_ms=3, node_id="a", attempt=1)], None),
        (
            [
                NodeFinished(run_id=run, timestamp_ms=4, node_id="a", attempt=1),
                RunStatusChanged(run_id=run, timestamp_ms=5, status="finished"),
                RunFinished(run_id=run, timestamp_ms=5),
            ],
            "finished",
        ),
    ]
    seen: list[int] = []
    store = await SQLiteEventStore.open(db)

    async def writer() -> None:
        seq = len(first)
        for batch, status in later:
            await anyio.sleep(0.03)
            seq = await store.append(run, batch, expected_seq=seq, status=status)

    try:
        await store.append(run, first, expected_seq=0, status="running")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                stream = follow_events(run, db=db, poll_interval_s=0.01)
                async with contextlib.aclosing(stream) as events:
                    async for stored, _ in events:
                        seen.append(stored.seq)
    finally:
        await store.close()
    assert seen == list(range(1, 8))


async def test_follow_events_unknown_run(db: Any, two_runs: Any) -> None:
    async def drain() -> list[Any]:
        async with contextlib.aclosing(follow_events("nope", db=db)) as events:
            return [pair async for pair in events]

    with pytest.raises(RunNotFoundError):
        await drain()


def test_workflows_from_two_folders_each_get_their_own_sibling_module(tmp_path: Any) -> None:
    for name, value in (("a", "from a"), ("b", "from b")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "helper.py").write_text(f"GREETING = {value!r}\n", encoding="utf-8")
        (folder / "flow.py").write_text(
            "from helper import GREETING\n"
            "from smithers import Task, workflow\n\n"
            f"@workflow('{name}')\n"
            "def wf(ctx):\n"
            "    return Task('t', output=dict, value={'g': GREETING})\n",
            encoding="utf-8",
        )
    first, _ = load_workflow(str(tmp_path / "a" / "flow.py"))
    second, _ = load_workflow(str(tmp_path / "b" / "flow.py"))
    assert first.build.__globals__["GREETING"] == "from a"
    assert second.build.__globals__["GREETING"] == "from b"
