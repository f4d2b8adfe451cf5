"""Built-in tools from compute tasks: `smithers.tools` on ``ctx.tools``, sandboxed, journaled."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine import InvalidInputError, load_workflow, read_events
from smithers.eventstore import decode_json
from smithers.eventstore.events import NodeFailed, ToolCallFinished, ToolCallStarted

import smithers
from smithers import Backoff, Task, TaskContext, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path


class Out(msgspec.Struct):
    text: str


NO_WAIT = Backoff(kind="fixed", initial_ms=0)
PATCH = "@@ -1,2 +1,2 @@\n-hello\n+HELLO\n world\n"


async def _tool_events(run_id: str, db: Path) -> list[ToolCallStarted | ToolCallFinished]:
    rows = await read_events(run_id, db=db)
    return [e for _, e in rows if isinstance(e, ToolCallStarted | ToolCallFinished)]


async def test_a_compute_task_writes_reads_and_edits_in_the_run_sandbox(
    db: Path, tmp_path: Path
) -> None:
    root = tmp_path / "sandbox"
    root.mkdir()

    async def work(ctx: TaskContext) -> dict[str, str]:
        if ctx.attempt == 1:
            await smithers.tools.write(ctx, path="notes/a.txt", content="hello\nworld\n")
            raise RuntimeError("first attempt fails after its tool call")
        await smithers.tools.edit(ctx, path="notes/a.txt", patch=PATCH)
        return {"text": await smithers.tools.read(ctx, path="notes/a.txt")}

    @workflow("tools")
    def flow(ctx: Any) -> Any:
        return Task("work", output=Out, run=work, retries=1, backoff=NO_WAIT)

    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db, root_dir=root)

    assert result.status == "finished"
    assert result.outputs["work"] == {"text": "HELLO\nworld\n"}
    assert (root / "notes" / "a.txt").read_text() == "HELLO\nworld\n"
    events = await _tool_events(result.run_id, db)
    calls = [
        (type(e).__name__, e.tool_name, e.attempt, e.seq, getattr(e, "status", None))
        for e in events
    ]
    assert calls == [
        ("ToolCallStarted", "write", 1, 1, None),
        ("ToolCallFinished", "write", 1, 1, "success"),
        ("ToolCallStarted", "edit", 2, 1, None),
        ("ToolCallFinished", "edit", 2, 1, "success"),
        ("ToolCallStarted", "read", 2, 2, None),
        ("ToolCallFinished", "read", 2, 2, "success"),
    ]
    assert {(e.node_id, e.iteration) for e in events} == {("work", 0)}
    assert decode_json(events[0].arguments) == {"path": "notes/a.txt", "content": "hello\nworld\n"}
    assert decode_json(events[-1].result) == "HELLO\nworld\n"


async def test_a_path_escape_fails_the_task_with_tool_path_escape(db: Path, tmp_path: Path) -> None:
    root = tmp_path / "sandbox"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("outside")

    async def peek(ctx: TaskContext) -> dict[str, str]:
        return {"text": await smithers.tools.read(ctx, path="../secret.txt")}

    @workflow("escape")
    def flow(ctx: Any) -> Any:
        return Task("peek", output=Out, run=peek)

    seen: list[Any] = []
    with anyio.fail_after(10):
        result = await run_workflow(flow, db=db, root_dir=root, on_progress=seen.append)

    assert result.status == "failed"
    (failed,) = [e for e in seen if isinstance(e, NodeFailed)]
    assert failed.error.code == "TOOL_PATH_ESCAPE"
    finished = [e for e in await _tool_events(result.run_id, db) if isinstance(e, ToolCallFinished)]
    assert [(f.tool_name, f.status) for f in finished] == [("read", "error")]
    assert finished[0].error is not None
    assert finished[0].error.code == "TOOL_PATH_ESCAPE"


async def test_the_run_limits_reach_the_tools(db: Path, tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 500)
    seen: list[tuple[Any, ...]] = []

    async def look(ctx: TaskContext) -> dict[str, str]:
        tools = ctx.tools
        assert tools is ctx.tools  # one sandbox per attempt
        seen.append((tools.root_dir, tools.allow_network, tools.tool_timeout_ms))
        return {"text": await smithers.tools.read(ctx, path="big.txt")}

    @workflow("limits")
    def flow(ctx: Any) -> Any:
        return Task("look", output=Out, run=look)

    result = await run_workflow(
        flow,
        db=db,
        root_dir=tmp_path,
        allow_network=True,
        max_output_bytes=100,
        tool_timeout_ms=1234,
    )

    assert result.status == "finished"
    assert seen == [(tmp_path.resolve(), True, 1234)]
    text = result.outputs["look"]["text"]
    assert text.startswith("x" * 100 + "\n[... output truncated")


async def test_a_task_using_no_tool_records_no_tool_event(db: Path) -> None:
    @workflow("plain")
    def flow(ctx: Any) -> Any:
        return Task("plain", output=Out, run=lambda: {"text": "ok"})

    result = await run_workflow(flow, db=db, root_dir=None)

    assert result.status == "finished"
    assert await _tool_events(result.run_id, db) == []


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"root_dir": "no/such/folder"}, "not an existing folder"),
        ({"max_output_bytes": 0}, "must be >= 1"),
        ({"tool_timeout_ms": -5}, "must be >= 1"),
    ],
)
async def test_bad_sandbox_options_are_refused_before_anything_is_recorded(
    db: Path, options: dict[str, Any], fragment: str
) -> None:
    @workflow("plain")
    def flow(ctx: Any) -> Any:
        return Task("plain", output=Out, run=lambda: {"text": "ok"})

    with pytest.raises(InvalidInputError, match=fragment) as info:
        await run_workflow(flow, db=db, run_id="bad-sandbox", **options)

    assert info.value.code == "INVALID_INPUT"
    assert not db.exists() or await read_events("bad-sandbox", db=db) == []


async def test_the_facade_takes_a_tool_context_too(tmp_path: Path) -> None:
    journal: list[Any] = []
    ctx = smithers.tools.ToolContext(tmp_path, journal=journal.append)

    await smithers.tools.write(ctx, path="a.txt", content="hi")

    assert await smithers.tools.read(ctx, path="a.txt") == "hi"
    assert [type(e).__name__ for e in journal] == ["ToolCallStarted", "ToolCallFinished"] * 2
    with pytest.raises(TypeError):
        await smithers.tools.read(object(), path="a.txt")  # type: ignore[arg-type]


GATED = """
    import smithers
    from smithers import Approval, Sequence, Task, workflow

    async def note(ctx):
        await smithers.tools.write(ctx, path="note.txt", content="after approval")
        return {"text": str(ctx.tools.root_dir)}

    @workflow("gated-tools")
    def gated(ctx):
        return Sequence(Approval("ok"), Task("note", output=dict, run=note))
"""


async def test_a_resumed_run_keeps_its_recorded_sandbox(db: Path, tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    path = tmp_path / "flows" / "gated.py"
    path.write_text(textwrap.dedent(GATED), encoding="utf-8")
    wf, _ = load_workflow(str(path))
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()

    async with smithers.connect(db) as client:
        first = await client.run(wf, run_id="r1", root_dir=sandbox, hold_ms=0)
        assert first.status == "waiting-approval"
        handle = await client.get_run("r1")
        await handle.approve()  # resumes the run from its log, in this process
        result = await handle.result()

    assert result.status == "finished"
    assert result.outputs["note"] == {"text": str(sandbox.resolve())}
    assert (sandbox / "note.txt").read_text() == "after approval"
    assert not (path.parent / "note.txt").exists()
