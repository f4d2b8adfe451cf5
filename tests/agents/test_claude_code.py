"""`ClaudeCodeAgent` against a test double of ``claude -p --output-format stream-json``.

The double (tests/agents/doubles/claude) prints Claude Code 2.1's stream-json lines
for a scenario; these tests run real workflows with it as a real subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from smithers.engine import read_events
from smithers.engine.agents import ClaudeCodeAgent
from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    AgentEvent,
    NodeFailed,
    NodeOutput,
    TaskHeartbeat,
    TokenUsageReported,
    ToolCallFinished,
    ToolCallStarted,
)

from smithers import Backoff, Task, run_workflow, workflow

DOUBLE = Path(__file__).with_name("doubles") / "claude"


class Summary(msgspec.Struct):
    files: int
    note: str


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("a")
    monkeypatch.setenv("CLAUDE_DOUBLE_LOG", str(tmp_path / "calls.ndjson"))
    monkeypatch.setenv("CLAUDE_DOUBLE_OUTPUT", '{"files": 1, "note": "ok"}')
    return root


def _calls(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "calls.ndjson"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _run(tmp_path: Path, root: Path, agent: Any, **task: Any) -> Any:
    @workflow("cc")
    def flow(ctx: Any) -> Any:
        return Task("work", output=Summary, agent=agent, prompt="Count the files.", **task)

    with anyio.fail_after(30):
        return await run_workflow(flow, db=tmp_path / "runs.db", root_dir=root)


async def _events(tmp_path: Path, run_id: str) -> list[Any]:
    return [e for _, e in await read_events(run_id, db=tmp_path / "runs.db")]


async def test_a_claude_code_session_lands_in_the_log(tmp_path: Path, box: Path) -> None:
    agent = ClaudeCodeAgent(binary=str(DOUBLE), model="sonnet", allowed_tools=["Bash(ls *)"])

    result = await _run(tmp_path, box, agent)

    assert result.status == "finished", result.error
    assert result.outputs["work"] == {"files": 1, "note": "ok"}
    (call,) = _calls(tmp_path)
    assert call["stdin"] == "Count the files."
    argv = call["argv"]
    assert argv[:4] == ["-p", "--output-format", "stream-json", "--verbose"]
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert argv[argv.index("--allowedTools") + 1] == "Bash(ls *)"
    schema = json.loads(argv[argv.index("--json-schema") + 1])
    assert schema["required"] == ["files", "note"]
    events = await _events(tmp_path, result.run_id)
    kinds = [decode_json(e.event)["type"] for e in events if isinstance(e, AgentEvent)]
    assert kinds == [
        "start",
        "init",
        "message",
        "message",
        "message",
        "message",
        "result",
        "output",
    ]
    init = next(
        ev
        for ev in (decode_json(e.event) for e in events if isinstance(e, AgentEvent))
        if ev["type"] == "init"
    )
    beats = [decode_json(e.data) for e in events if isinstance(e, TaskHeartbeat) and e.has_data]
    assert beats == [
        {"engine": "claude-code", "sessionId": init["sessionId"], "cwd": str(box.resolve())}
    ]
    tools = [
        (type(e).__name__, e.tool_name, e.call_id)
        for e in events
        if isinstance(e, ToolCallStarted | ToolCallFinished)
    ]
    assert tools == [
        ("ToolCallStarted", "Bash", "toolu_01"),
        ("ToolCallFinished", "Bash", "toolu_01"),
    ]
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    assert decode_json(finished.result) == "a.txt"  # ls ran in the sandbox root
    text = "".join(e.text for e in events if isinstance(e, NodeOutput))
    assert text == "I'll look at the folder.Done."
    (usage,) = [e for e in events if isinstance(e, TokenUsageReported)]
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (200, 40, 50)
    assert usage.agent == "claude-code:sonnet"


@pytest.mark.parametrize(
    ("scenario", "code", "retryable"),
    [
        ("not-logged-in", "AGENT_CONFIG_INVALID", False),
        ("unknown-model", "AGENT_CONFIG_INVALID", False),
        ("usage-limit", "AGENT_QUOTA_EXCEEDED", True),
        ("no-result", "AGENT_CLI_ERROR", True),
    ],
)
async def test_failures_map_to_the_catalogue(
    tmp_path: Path,
    box: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    code: str,
    retryable: bool,
) -> None:
    monkeypatch.setenv("CLAUDE_DOUBLE_SCENARIO", scenario)
    monkeypatch.setenv("CLAUDE_DOUBLE_RESET", "")  # a limit that says no reset time

    agent = ClaudeCodeAgent(binary=str(DOUBLE))
    result = await _run(
        tmp_path, box, agent, retries=0, backoff=Backoff(kind="fixed", initial_ms=0)
    )

    assert result.status == "failed"
    fails = [e for e in await _events(tmp_path, result.run_id) if isinstance(e, NodeFailed)]
    failed = fails[-1]
    assert failed.error.code == code
    assert failed.error.retryable is retryable
    # A usage limit keeps the task's retries (retries=0 here): retried up to 10 times.
    assert len(fails) == (11 if code == "AGENT_QUOTA_EXCEEDED" else 1)
    if scenario == "no-result":
        assert "fatal: cannot continue" in decode_json(failed.error.details)["stderr"]


async def test_a_missing_binary_is_process_spawn_failed_with_a_hint(
    tmp_path: Path, box: Path
) -> None:
    agent = ClaudeCodeAgent(binary=str(tmp_path / "no-such-claude"))

    result = await _run(tmp_path, box, agent, retries=0)

    (failed,) = [e for e in await _events(tmp_path, result.run_id) if isinstance(e, NodeFailed)]
    assert failed.error.code == "PROCESS_SPAWN_FAILED"
    assert not failed.error.retryable


async def test_a_retry_continues_the_same_session(
    tmp_path: Path, box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # First answer does not fit the schema twice over (3 replies), so the attempt fails
    # with INVALID_OUTPUT; the retry resumes the session the heartbeat saved.
    monkeypatch.setenv("CLAUDE_DOUBLE_OUTPUT", '{"files": "many"}')
    agent = ClaudeCodeAgent(binary=str(DOUBLE))

    result = await _run(tmp_path, box, agent, retries=0)

    calls = _calls(tmp_path)
    assert result.status == "failed"
    assert len(calls) == 3  # the first reply and two repair turns, one session
    first_session = json.loads(
        next(line for line in (tmp_path / "calls.ndjson").read_text().splitlines())
    )
    assert "--resume" not in first_session["argv"]
    resumed = [c["argv"][c["argv"].index("--resume") + 1] for c in calls[1:]]
    assert len(set(resumed)) == 1
    assert "did not match the required output schema" in calls[1]["stdin"]


def test_killing_the_run_kills_the_cli_and_the_resume_continues_its_session(
    tmp_path: Path,
) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        textwrap.dedent(
            f"""
            import msgspec
            from smithers import Task, workflow
            from smithers.agents import ClaudeCodeAgent

            class Summary(msgspec.Struct):
                files: int
                note: str

            @workflow("cc")
            def cc(ctx):
                agent = ClaudeCodeAgent(binary={str(DOUBLE)!r})
                return Task("work", output=Summary, agent=agent, prompt="Count the files.")
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMITHERS_")}
    env.update(
        CLAUDE_DOUBLE_SCENARIO="hang",
        CLAUDE_DOUBLE_PIDFILE=str(tmp_path / "cli.pid"),
        CLAUDE_DOUBLE_LOG=str(tmp_path / "calls.ndjson"),
        CLAUDE_DOUBLE_OUTPUT='{"files": 2, "note": "resumed"}',
    )
    db = str(tmp_path / "runs.db")
    up = subprocess.Popen(
        [sys.executable, "-m", "smithers", "up", str(flow), "--run-id", "k", "--db", db],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "cli.pid").exists():
            assert up.poll() is None, up.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # the init line is read and the session saved
        cli_pid = int((tmp_path / "cli.pid").read_text())
    finally:
        up.send_signal(signal.SIGKILL)
        up.communicate(timeout=10)
    # The run died by SIGKILL, so nothing could kill its CLI: that is what resume is for.
    # Its process group is still there; a resume must not start a second session.
    session = _calls(tmp_path)[0]
    env["CLAUDE_DOUBLE_SCENARIO"] = "ok"
    resumed = subprocess.run(
        [sys.executable, "-m", "smithers", "up", "--resume", "k", "--db", db, "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    with contextlib.suppress(ProcessLookupError):
        os.killpg(cli_pid, signal.SIGKILL)  # the orphan of the SIGKILLed run
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["outputs"]["work"] == {"files": 2, "note": "resumed"}
    calls = _calls(tmp_path)
    assert len(calls) == 2
    assert "--resume" not in session["argv"]
    argv = calls[1]["argv"]

    async def saved_session() -> str:
        rows = await read_events("k", db=db, types=["TaskHeartbeat"])
        beats = [decode_json(e.data) for _, e in rows if isinstance(e, TaskHeartbeat)]
        return str(next(b["sessionId"] for b in beats if b))

    assert argv[argv.index("--resume") + 1] == anyio.run(saved_session)
    assert "interrupted" in calls[1]["stdin"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_cancelling_the_run_kills_the_cli_process_group(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        textwrap.dedent(
            f"""
            import msgspec
            from smithers import Task, workflow
            from smithers.agents import ClaudeCodeAgent

            class Summary(msgspec.Struct):
                files: int
                note: str

            @workflow("cc")
            def cc(ctx):
                agent = ClaudeCodeAgent(binary={str(DOUBLE)!r})
                return Task("work", output=Summary, agent=agent, prompt="Count.")
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMITHERS_")}
    env.update(CLAUDE_DOUBLE_SCENARIO="hang", CLAUDE_DOUBLE_PIDFILE=str(tmp_path / "cli.pid"))
    up = subprocess.Popen(
        [sys.executable, "-m", "smithers", "up", str(flow), "--db", str(tmp_path / "r.db")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    cli_pid = None
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "cli.pid").exists():
            assert up.poll() is None, up.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cli_pid = int((tmp_path / "cli.pid").read_text())
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=30)
        deadline = time.monotonic() + 5
        while _alive(cli_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(cli_pid), "the CLI outlived its cancelled run"
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
        if cli_pid is not None and _alive(cli_pid):
            os.kill(cli_pid, signal.SIGKILL)


@pytest.mark.slow  # three processes import the MCP SDK: ~10 s
async def test_smithers_tools_reach_claude_code_over_mcp_sandboxed_and_journaled(
    tmp_path: Path, box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mcp")
    monkeypatch.setenv("CLAUDE_DOUBLE_SCENARIO", "mcp")
    (box.parent / "outside.txt").write_text("secret")
    agent = ClaudeCodeAgent(binary=str(DOUBLE), builtin_tools=False)

    result = await _run(tmp_path, box, agent, tools=["read", "grep"])

    assert result.status == "finished", result.error
    note = result.outputs["work"]["note"]
    assert note.startswith("a | TOOL_PATH_ESCAPE")  # the escape was refused by the sandbox
    assert result.outputs["work"]["files"] == 2  # the MCP server listed read and grep
    (call,) = _calls(tmp_path)
    argv = call["argv"]
    assert argv[argv.index("--tools") + 1] == ""  # Claude Code's own tools are off
    assert "--strict-mcp-config" in argv
    assert argv[argv.index("--allowedTools") + 1] == "mcp__smithers"
    events = await _events(tmp_path, result.run_id)
    # Each call journaled once, by the bridge, under smithers' tool name.
    finished = [
        (e.tool_name, e.status, e.call_id) for e in events if isinstance(e, ToolCallFinished)
    ]
    assert finished == [("read", "success", "mcp-1"), ("read", "error", "mcp-2")]


async def test_a_cli_killed_from_outside_is_process_aborted(
    tmp_path: Path, box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "cli.pid"
    monkeypatch.setenv("CLAUDE_DOUBLE_SCENARIO", "hang")
    monkeypatch.setenv("CLAUDE_DOUBLE_PIDFILE", str(pidfile))

    async def killer() -> None:
        while not pidfile.exists():
            await anyio.sleep(0.05)
        await anyio.sleep(0.2)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)

    async with anyio.create_task_group() as tg:
        tg.start_soon(killer)
        result = await _run(tmp_path, box, ClaudeCodeAgent(binary=str(DOUBLE)), retries=0)

    (failed,) = [e for e in await _events(tmp_path, result.run_id) if isinstance(e, NodeFailed)]
    assert failed.error.code == "PROCESS_ABORTED"
    assert failed.error.retryable
    assert "signal 9" in failed.error.message


async def test_an_idle_cli_is_stopped_with_process_idle_timeout(
    tmp_path: Path, box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDE_DOUBLE_SCENARIO", "hang")
    agent = ClaudeCodeAgent(binary=str(DOUBLE), idle_timeout_ms=500)

    result = await _run(tmp_path, box, agent, retries=0)

    (failed,) = [e for e in await _events(tmp_path, result.run_id) if isinstance(e, NodeFailed)]
    assert failed.error.code == "PROCESS_IDLE_TIMEOUT"
    assert decode_json(failed.error.details)["idleTimeoutMs"] == 500
