"""Every tool call is journaled as ToolCallStarted/ToolCallFinished; user tools too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from smithers.engine.tools import (
    BUILTIN_TOOLS,
    ToolArgumentsError,
    ToolContext,
    ToolPathEscapeError,
    define_tool,
    read,
    write,
)
from smithers.eventstore import SQLiteEventStore, decode_event
from smithers.eventstore.errors import ERROR_DEFINITIONS, is_known_error_code
from smithers.eventstore.events import ToolCallFinished, ToolCallStarted

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.eventstore.events import Event

SEED_TOOL_CODES = (
    "TOOL_PATH_INVALID",
    "TOOL_PATH_ESCAPE",
    "TOOL_FILE_TOO_LARGE",
    "TOOL_CONTENT_TOO_LARGE",
    "TOOL_PATCH_TOO_LARGE",
    "TOOL_PATCH_FAILED",
    "TOOL_NETWORK_DISABLED",
    "TOOL_GIT_REMOTE_DISABLED",
    "TOOL_COMMAND_FAILED",
    "TOOL_GREP_FAILED",
)


async def test_a_call_is_bracketed_by_started_and_finished(
    ctx: ToolContext, journal: list[Event]
) -> None:
    await write(ctx, path="a.txt", content="hello")
    started, finished = journal
    assert isinstance(started, ToolCallStarted)
    assert isinstance(finished, ToolCallFinished)
    assert (started.run_id, started.node_id, started.iteration, started.attempt) == (
        "run-1",
        "fix",
        0,
        1,
    )
    assert (started.tool_name, started.seq) == ("write", 1)
    assert json.loads(bytes(started.arguments)) == {"path": "a.txt", "content": "hello"}
    assert (finished.tool_name, finished.seq, finished.status) == ("write", 1, "success")
    assert json.loads(bytes(finished.result)) == {"path": "a.txt", "bytesWritten": 5}
    assert finished.result_size_bytes == len(bytes(finished.result))
    assert finished.duration_ms >= 0
    assert finished.error is None
    assert started.timestamp_ms <= finished.timestamp_ms


async def test_an_error_is_journaled_and_raised(ctx: ToolContext, journal: list[Event]) -> None:
    with pytest.raises(ToolPathEscapeError):
        await read(ctx, path="../x.txt")
    finished = journal[-1]
    assert isinstance(finished, ToolCallFinished)
    assert finished.status == "error"
    assert finished.error is not None
    assert (finished.error.code, finished.error.retryable) == ("TOOL_PATH_ESCAPE", False)
    assert json.loads(bytes(finished.error.details))["path"] == "../x.txt"


async def test_seq_counts_calls_within_the_attempt(ctx: ToolContext, journal: list[Event]) -> None:
    await write(ctx, path="a.txt", content="1")
    with pytest.raises(ToolPathEscapeError):
        await read(ctx, path="/etc/hostname")
    await read(ctx, path="a.txt")
    assert [(type(e).__name__, getattr(e, "seq", None)) for e in journal] == [
        ("ToolCallStarted", 1),
        ("ToolCallFinished", 1),
        ("ToolCallStarted", 2),
        ("ToolCallFinished", 2),
        ("ToolCallStarted", 3),
        ("ToolCallFinished", 3),
    ]


async def test_journaled_events_go_to_a_real_log_and_back(
    ctx: ToolContext, journal: list[Event], tmp_path: Path
) -> None:
    await write(ctx, path="a.txt", content="hello")
    async with await SQLiteEventStore.open(tmp_path / "smithers.db") as store:
        await store.append("run-1", journal, expected_seq=0)
        stored = await store.read("run-1")
    assert [decode_event(s.type, s.data) for s in stored] == journal


class Ticket(msgspec.Struct):
    title: str
    priority: int = 3


async def test_define_tool_with_a_struct_schema(ctx: ToolContext, journal: list[Event]) -> None:
    seen: list[Any] = []

    async def open_ticket(tool_ctx: ToolContext, args: Ticket) -> dict[str, Any]:
        """Open a ticket in the tracker."""
        seen.append((args, tool_ctx.idempotency_key))
        return {"id": 7, "title": args.title}

    ctx.idempotency_key = "run-1:fix:0"
    tool = define_tool("open_ticket", Ticket, open_ticket, side_effect=True)
    assert (tool.side_effect, tool.idempotent) == (True, False)
    assert tool.description == "Open a ticket in the tracker."
    assert tool.parameters["properties"]["title"] == {"type": "string"}
    assert tool.parameters["required"] == ["title"]
    assert await tool.call(ctx, {"title": "crash"}) == {"id": 7, "title": "crash"}
    assert seen == [(Ticket(title="crash"), "run-1:fix:0")]
    assert [getattr(e, "tool_name", None) for e in journal] == ["open_ticket"] * 2
    with pytest.raises(ToolArgumentsError, match="priority"):
        await tool.call(ctx, {"title": "x", "priority": "high"})


async def test_define_tool_with_a_json_schema_and_a_sync_function(ctx: ToolContext) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    tool = define_tool("double", schema, lambda _ctx, args: args["a"] * 2, idempotent=True)
    assert tool.parameters == schema
    assert await tool.call(ctx, {"a": 21}) == 42


def test_tool_names_are_checked() -> None:
    with pytest.raises(ValueError, match="tool name"):
        define_tool("no spaces", {}, lambda _c, _a: None)


def test_builtin_tools_have_schemas_and_flags() -> None:
    by_name = {t.name: t for t in BUILTIN_TOOLS}
    assert list(by_name) == ["read", "write", "edit", "grep", "bash"]
    assert by_name["bash"].parameters["properties"]["command"]["type"] == "array"
    assert by_name["read"].side_effect is False
    assert by_name["write"].side_effect
    assert by_name["edit"].side_effect
    assert by_name["bash"].side_effect


@pytest.mark.parametrize("code", SEED_TOOL_CODES)
def test_every_seed_tool_code_is_defined(code: str) -> None:
    definition = ERROR_DEFINITIONS[code]
    assert definition.category == "tools"
    assert definition.retryable is (code in ("TOOL_COMMAND_FAILED", "TOOL_GREP_FAILED"))


def test_every_tool_error_class_has_a_known_code() -> None:
    from smithers.engine import tools

    classes = [
        getattr(tools, name)
        for name in tools.__all__
        if name.startswith("Tool") and name.endswith("Error")
    ]
    assert classes
    assert all(is_known_error_code(cls.default_code) for cls in classes)
    raised = {cls.default_code for cls in classes}
    assert set(SEED_TOOL_CODES) <= raised
