"""`CodexAgent` and `GeminiAgent` against test doubles of their JSONL streams.

The doubles (tests/agents/doubles/codex, .../gemini) print the lines of
``codex exec --json`` and ``gemini --output-format stream-json`` for a scenario; the
workflows here run them as real subprocesses in the run's sandbox root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from smithers.engine import read_events
from smithers.engine.agents import CodexAgent, GeminiAgent
from smithers.engine.agents._codex import strict_schema
from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    AgentEvent,
    NodeFailed,
    NodeOutput,
    TaskHeartbeat,
    TokenUsageReported,
    ToolCallFinished,
)

from smithers import Backoff, Task, run_workflow, workflow

DOUBLES = Path(__file__).with_name("doubles")


class Summary(msgspec.Struct):
    files: int
    note: str | None = None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    box = tmp_path / "root"
    box.mkdir()
    (box / "a.txt").write_text("a")
    return box


def _calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _run(tmp_path: Path, root: Path, agent: Any, **task: Any) -> tuple[Any, list[Any]]:
    @workflow("cli")
    def flow(ctx: Any) -> Any:
        return Task("work", output=Summary, agent=agent, prompt="Count the files.", **task)

    db = tmp_path / "runs.db"
    with anyio.fail_after(30):
        result = await run_workflow(flow, db=db, root_dir=root)
    return result, [e for _, e in await read_events(result.run_id, db=db)]


async def test_a_codex_session_lands_in_the_log(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "codex.ndjson"
    monkeypatch.setenv("CODEX_DOUBLE_LOG", str(log))
    monkeypatch.setenv("CODEX_DOUBLE_OUTPUT", '{"files": 1, "note": null}')
    agent = CodexAgent(binary=str(DOUBLES / "codex"), model="gpt-5-codex")

    result, events = await _run(tmp_path, root, agent)

    assert result.status == "finished", result.error
    assert result.outputs["work"] == {"files": 1, "note": None}
    (call,) = _calls(log)
    assert call["stdin"] == "Count the files."
    argv = call["argv"]
    assert argv[:3] == ["exec", "--json", "--skip-git-repo-check"]
    assert argv[argv.index("-C") + 1] == str(root)
    assert argv[argv.index("-m") + 1] == "gpt-5-codex"
    # The schema file is strict, as OpenAI structured outputs require.
    assert call["schema"]["additionalProperties"] is False
    assert call["schema"]["required"] == ["files", "note"]
    tools = [(e.tool_name, e.status, e.call_id) for e in events if isinstance(e, ToolCallFinished)]
    assert tools == [("shell", "success", "item_1"), ("file_change", "success", "item_2")]
    assert (root / "NOTES.md").exists()  # it worked in the sandbox root
    beats = [decode_json(e.data) for e in events if isinstance(e, TaskHeartbeat) and e.has_data]
    assert len(beats) == 1
    assert beats[0]["engine"] == "codex"
    (usage,) = [e for e in events if isinstance(e, TokenUsageReported)]
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (200, 40, 10)
    assert "".join(e.text for e in events if isinstance(e, NodeOutput)) == (
        '{"files": 1, "note": null}'
    )
    kinds = [decode_json(e.event)["type"] for e in events if isinstance(e, AgentEvent)]
    assert kinds[:3] == ["start", "init", "reasoning"]
    assert kinds[-2:] == ["turn", "output"]


async def test_a_codex_repair_turn_resumes_the_thread(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "codex.ndjson"
    monkeypatch.setenv("CODEX_DOUBLE_LOG", str(log))
    monkeypatch.setenv("CODEX_DOUBLE_OUTPUT", '{"files": "many"}')

    result, _ = await _run(tmp_path, root, CodexAgent(binary=str(DOUBLES / "codex")), retries=0)

    assert result.status == "failed"
    calls = _calls(log)
    assert len(calls) == 3
    assert "resume" not in calls[0]["argv"]
    threads = {c["argv"][c["argv"].index("resume") + 1] for c in calls[1:]}
    assert len(threads) == 1
    assert "did not match the required output schema" in calls[1]["stdin"]


@pytest.mark.parametrize(
    ("scenario", "code"),
    [("unknown-model", "AGENT_CONFIG_INVALID"), ("quota", "AGENT_QUOTA_EXCEEDED")],
)
async def test_codex_failures_map_to_the_catalogue(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, code: str
) -> None:
    monkeypatch.setenv("CODEX_DOUBLE_SCENARIO", scenario)

    agent = CodexAgent(binary=str(DOUBLES / "codex"), model="bad-model")
    no_wait = Backoff(kind="fixed", initial_ms=0)
    result, events = await _run(tmp_path, root, agent, retries=0, backoff=no_wait)

    assert result.status == "failed"
    failed = [e for e in events if isinstance(e, NodeFailed)][-1]
    assert failed.error.code == code


async def test_a_gemini_session_lands_in_the_log(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "gemini.ndjson"
    monkeypatch.setenv("GEMINI_DOUBLE_LOG", str(log))
    monkeypatch.setenv("GEMINI_DOUBLE_OUTPUT", 'Here: {"files": 1}')
    agent = GeminiAgent(binary=str(DOUBLES / "gemini"), model="gemini-2.5-pro")

    result, events = await _run(tmp_path, root, agent)

    assert result.status == "finished", result.error
    assert result.outputs["work"] == {"files": 1, "note": None}
    (call,) = _calls(log)
    assert call["stdin"].startswith("Count the files.")
    assert "JSON" in call["stdin"]  # the prompt contract: Gemini CLI has no schema flag
    argv = call["argv"]
    assert argv[:4] == ["--output-format", "stream-json", "--skip-trust", "-m"]
    assert argv[argv.index("--approval-mode") + 1] == "yolo"
    tools = [(e.tool_name, e.status) for e in events if isinstance(e, ToolCallFinished)]
    assert tools == [("list_directory", "success")]
    (usage,) = [e for e in events if isinstance(e, TokenUsageReported)]
    assert (usage.model, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (
        "gemini-2.5-pro",
        200,
        40,
        20,
    )
    text = "".join(e.text for e in events if isinstance(e, NodeOutput))
    assert text == 'I\'ll list the folder.Here: {"files": 1}'
    kinds = [decode_json(e.event)["type"] for e in events if isinstance(e, AgentEvent)]
    assert "error" in kinds  # a non-fatal warning line is kept, and the run goes on


@pytest.mark.parametrize(
    ("scenario", "needle"),
    [("no-auth", "Auth method"), ("unknown-model", "is not found")],
)
async def test_gemini_auth_and_model_failures_are_config_errors(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, needle: str
) -> None:
    monkeypatch.setenv("GEMINI_DOUBLE_SCENARIO", scenario)

    _, events = await _run(tmp_path, root, GeminiAgent(binary=str(DOUBLES / "gemini")), retries=0)

    (failed,) = [e for e in events if isinstance(e, NodeFailed)]
    assert failed.error.code == "AGENT_CONFIG_INVALID"
    assert not failed.error.retryable
    assert needle in failed.error.message


def test_strict_schema_closes_objects_and_makes_optional_fields_nullable() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "object", "properties": {"c": {"type": "string"}}, "required": ["c"]},
        },
        "required": ["a"],
    }
    assert strict_schema(schema) == {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {
                "anyOf": [
                    {
                        "type": "object",
                        "properties": {"c": {"type": "string"}},
                        "required": ["c"],
                        "additionalProperties": False,
                    },
                    {"type": "null"},
                ]
            },
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    }


@pytest.mark.slow  # three processes import the MCP SDK: ~10 s
async def test_smithers_tools_reach_gemini_over_mcp_in_the_users_settings(
    tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mcp")
    log = tmp_path / "calls.ndjson"
    monkeypatch.setenv("GEMINI_DOUBLE_LOG", str(log))
    monkeypatch.setenv("GEMINI_DOUBLE_SCENARIO", "mcp")
    (root.parent / "outside.txt").write_text("secret")
    home = tmp_path / "home"  # the user's Gemini CLI home, with settings of their own
    (home / ".gemini").mkdir(parents=True)
    own = {"security": {"auth": {"selectedType": "gemini-api-key"}}, "mcpServers": {}}
    own["mcpServers"] = {"theirs": {"command": "false", "trust": True}}
    (home / ".gemini" / "settings.json").write_text(json.dumps(own))
    agent = GeminiAgent(binary=str(DOUBLES / "gemini"), env={"GEMINI_CLI_HOME": str(home)})

    result, events = await _run(tmp_path, root, agent, tools=["read", "grep"])

    assert result.status == "finished", result.error
    assert result.outputs["work"]["files"] == 2  # the MCP server listed read and grep
    assert result.outputs["work"]["note"].startswith("a | TOOL_PATH_ESCAPE")  # sandboxed
    (call,) = _calls(log)
    argv = call["argv"]
    assert argv[argv.index("--allowed-mcp-server-names") + 1] == "smithers"
    finished = [
        (e.tool_name, e.status, e.call_id) for e in events if isinstance(e, ToolCallFinished)
    ]
    assert finished == [("read", "success", "mcp-1"), ("read", "error", "mcp-2")]
    # The user's settings are untouched, and the session was saved in their home,
    # where a retry or `gemini --resume <id>` (a hijack) finds it.
    assert json.loads((home / ".gemini" / "settings.json").read_text()) == own
    (beat,) = [decode_json(e.data) for e in events if isinstance(e, TaskHeartbeat) and e.has_data]
    chats = home / ".gemini" / "tmp" / "project" / "chats"
    assert (chats / f"session-{beat['sessionId']}.json").is_file()


def test_gemini_without_tools_gets_no_mcp_flag() -> None:
    argv = GeminiAgent(binary="gemini").argv(session_id=None)
    assert "--allowed-mcp-server-names" not in argv
