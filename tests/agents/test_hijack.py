"""``smithers hijack``: stop a run mid-session, hand the session over, resume it later.

Every process is real: ``smithers up`` runs a workflow whose Claude Code agent is the
test double (tests/agents/doubles/claude) blocking mid-session; ``smithers hijack``
runs from another process; ``smithers up --resume`` continues the run.
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
from smithers.engine import hijack_run, read_events
from smithers.engine.activation import agent_sessions, find_agent_session
from smithers.engine.agents import interactive_command
from smithers.engine.errors import (
    InvalidInputError,
    NodeNotFoundError,
    TaskHijackUnsupportedError,
)
from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    NodeCancelled,
    NodeFinished,
    NodeStarted,
    RunHijacked,
    RunHijackRequested,
    RunStarted,
    RunStatusChanged,
    TaskHeartbeat,
)
from smithers.projections import fold

import smithers
from smithers import Approval, Sequence, Task, run_workflow, workflow

DOUBLE = Path(__file__).with_name("doubles") / "claude"

FLOW = """
    import msgspec
    from smithers import Task, workflow
    from smithers.agents import ClaudeCodeAgent

    class Summary(msgspec.Struct):
        files: int
        note: str

    @workflow("hj")
    def hj(ctx):
        agent = ClaudeCodeAgent(binary={double!r})
        return Task("work", output=Summary, agent=agent, prompt="Count the files.")
"""


def _setup(tmp_path: Path) -> tuple[dict[str, str], str]:
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW.format(double=str(DOUBLE))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMITHERS_")}
    env.update(
        CLAUDE_DOUBLE_SCENARIO="hang",
        CLAUDE_DOUBLE_PIDFILE=str(tmp_path / "cli.pid"),
        CLAUDE_DOUBLE_LOG=str(tmp_path / "calls.ndjson"),
        CLAUDE_DOUBLE_OUTPUT='{"files": 2, "note": "after the hijack"}',
        SMITHERS_ACTOR="ada",
    )
    return env, str(tmp_path / "runs.db")


def _smithers(
    tmp_path: Path, env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _events(db: str, run_id: str) -> list[tuple[int, Any]]:
    return anyio.run(lambda: read_events(run_id, db=db))


def _saved_session(db: str, run_id: str) -> str | None:
    try:
        rows = _events(db, run_id)
    except Exception:
        return None  # the database or the run does not exist yet
    for _, e in rows:
        if isinstance(e, TaskHeartbeat) and e.has_data:
            return str(decode_json(e.data)["sessionId"])
    return None


def _start_mid_session(tmp_path: Path, env: dict[str, str], db: str) -> tuple[Any, int, str]:
    """``smithers up`` in the background, once its agent's session id is in the log."""
    up = subprocess.Popen(
        [sys.executable, "-m", "smithers", "up", "flow.py", "--run-id", "h", "--db", db],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    session = None
    while session is None or not (tmp_path / "cli.pid").exists():
        assert up.poll() is None, up.communicate()
        assert time.monotonic() < deadline, "the agent never reported its session"
        time.sleep(0.1)
        session = _saved_session(db, "h")
    return up, int((tmp_path / "cli.pid").read_text()), session


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def _calls(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "calls.ndjson").read_text().splitlines()]


def test_hijacking_a_live_run_parks_it_and_the_resume_continues_the_session(
    tmp_path: Path,
) -> None:
    env, db = _setup(tmp_path)
    up, cli_pid, session = _start_mid_session(tmp_path, env, db)
    try:
        hijack = _smithers(tmp_path, env, "hijack", "h", "--db", db, "--reason", "take a look")
        _, up_err = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
        with contextlib.suppress(ProcessLookupError):
            if _alive(cli_pid):
                os.killpg(cli_pid, signal.SIGKILL)
    assert hijack.returncode == 0, hijack.stderr
    root = str(tmp_path.resolve())
    assert f"cd {root} && claude --resume {session}" in hijack.stdout
    assert "smithers up --resume h" in hijack.stdout
    assert "its owner stopped it" in hijack.stdout
    assert up.returncode == 3, up_err  # parked, not cancelled
    deadline = time.monotonic() + 5
    while _alive(cli_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(cli_pid), "the agent's process outlived the hijack"

    events = [e for _, e in _events(db, "h")]
    request = next(e for e in events if isinstance(e, RunHijackRequested))
    assert request.target == "work"
    assert request.actor is not None
    assert (request.actor.name, request.actor.reason) == ("ada", "take a look")
    cancelled = [e for e in events if isinstance(e, NodeCancelled)]
    assert [(e.node_id, e.attempt, e.reason) for e in cancelled] == [("work", 1, "hijacked")]
    hijacked = next(e for e in events if isinstance(e, RunHijacked))
    assert (hijacked.node_id, hijacked.attempt, hijacked.engine) == ("work", 1, "claude-code")
    assert (hijacked.resume, hijacked.cwd, hijacked.mode) == (session, root, "native-cli")
    statuses = [e.status for e in events if isinstance(e, RunStatusChanged)]
    assert statuses[-1] == "waiting-resume"
    assert "cancelled" not in statuses

    # A person works in the session; then the run goes on in that same session.
    env["CLAUDE_DOUBLE_SCENARIO"] = "ok"
    resumed = _smithers(tmp_path, env, "up", "--resume", "h", "--db", db, "--json")
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert out["status"] == "finished"
    assert out["outputs"]["work"] == {"files": 2, "note": "after the hijack"}
    calls = _calls(tmp_path)
    assert len(calls) == 2
    assert "--resume" not in calls[0]["argv"]
    argv = calls[1]["argv"]
    assert argv[argv.index("--resume") + 1] == session
    assert "interrupted" in calls[1]["stdin"]


def test_an_owner_too_slow_to_stop_is_overtaken_and_leaves_no_orphan(tmp_path: Path) -> None:
    env, db = _setup(tmp_path)
    up, cli_pid, session = _start_mid_session(tmp_path, env, db)
    try:
        # --wait 1ms: the command records the hijack itself before the owner's heartbeat.
        hijack = _smithers(tmp_path, env, "hijack", "h", "--db", db, "--wait", "1ms", "--json")
        up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
    assert hijack.returncode == 0, hijack.stderr
    out = json.loads(hijack.stdout)
    assert (out["status"], out["sessionId"]) == ("waiting-resume", session)
    # The owner saw the log move on without it: it stopped, and killed its agent.
    deadline = time.monotonic() + 5
    while _alive(cli_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(cli_pid)
    if alive:
        os.killpg(cli_pid, signal.SIGKILL)
    assert not alive, "the agent's process outlived its run's owner"
    events = [e for _, e in _events(db, "h")]
    assert sum(isinstance(e, RunHijacked) for e in events) == 1
    assert [e.status for e in events if isinstance(e, RunStatusChanged)][-1] == "waiting-resume"


def test_a_run_whose_owner_is_gone_is_hijacked_by_the_command_itself(tmp_path: Path) -> None:
    env, db = _setup(tmp_path)
    up, cli_pid, session = _start_mid_session(tmp_path, env, db)
    up.send_signal(signal.SIGKILL)
    up.communicate(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(cli_pid, signal.SIGKILL)  # the orphan of the SIGKILLed run

    first = _smithers(tmp_path, env, "hijack", "h", "--db", db, "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["action"] == "recorded"
    assert out["status"] == "waiting-resume"
    assert (out["nodeId"], out["attempt"], out["sessionId"]) == ("work", 1, session)
    assert out["command"] == f"cd {tmp_path.resolve()} && claude --resume {session}"

    # Hijacking the parked run again: recorded again, still parked, nothing re-closed.
    again = _smithers(tmp_path, env, "hijack", "h", "--node", "work", "--db", db, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["sessionId"] == session
    events = [e for _, e in _events(db, "h")]
    assert sum(isinstance(e, RunHijackRequested) for e in events) == 2
    assert sum(isinstance(e, RunHijacked) for e in events) == 2
    closed = [e.reason for e in events if isinstance(e, NodeCancelled)]
    assert closed == ["hijacked"]
    parks = [e.status for e in events if isinstance(e, RunStatusChanged)]
    assert parks.count("waiting-resume") == 1

    missing = _smithers(tmp_path, env, "hijack", "h", "--node", "nope", "--db", db)
    assert missing.returncode == 4
    assert "Error [NODE_NOT_FOUND]" in missing.stderr
    assert "Traceback" not in missing.stderr

    env["CLAUDE_DOUBLE_SCENARIO"] = "ok"
    resumed = _smithers(tmp_path, env, "up", "--resume", "h", "--db", db, "--json")
    assert resumed.returncode == 0, resumed.stderr
    argv = _calls(tmp_path)[-1]["argv"]
    assert argv[argv.index("--resume") + 1] == session

    # A finished run cannot be hijacked; the refusal still says how to open the session.
    ended = _smithers(tmp_path, env, "hijack", "h", "--db", db)
    assert ended.returncode == 4
    assert "Error [RUN_NOT_RESUMABLE]" in ended.stderr
    assert f"claude --resume {session}" in ended.stderr


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_run_without_an_agent_session_cannot_be_hijacked(tmp_path: Path) -> None:
    @workflow("gate")
    def gate(ctx: Any) -> Any:
        return Sequence(
            Task("build", output=dict, value={"n": 1}),
            Approval("ok", request={"title": "Deploy?"}),
        )

    db = tmp_path / "runs.db"
    parked = await run_workflow(gate, run_id="g", db=db)
    assert parked.status == "waiting-approval"

    with pytest.raises(InvalidInputError, match="no agent session to hijack"):
        await hijack_run("g", db=db)
    with pytest.raises(TaskHijackUnsupportedError) as unsupported:
        await hijack_run("g", node_id="build", db=db)
    assert unsupported.value.code == "TASK_HIJACK_UNSUPPORTED"
    assert unsupported.value.details == {"runId": "g", "nodeId": "build"}
    with pytest.raises(NodeNotFoundError):
        await hijack_run("g", node_id="nope", db=db)
    async with smithers.connect(db) as client:  # the same through a run's handle
        handle = await client.get_run("g")
        with pytest.raises(TaskHijackUnsupportedError):
            await handle.hijack("build", by="ops")
    # Nothing was recorded by the refusals: the run still waits for its approval.
    events = [type(e).__name__ for _, e in await read_events("g", db=db)]
    assert "RunHijackRequested" not in events
    assert events.count("RunStatusChanged") == 2


def test_each_cli_engine_has_its_interactive_resume_command() -> None:
    assert interactive_command("claude-code", "s1", "/w d") == "cd '/w d' && claude --resume s1"
    assert interactive_command("codex", "t-2") == "codex resume t-2"
    assert interactive_command("gemini", "u3", "/w") == "cd /w && gemini --resume u3"
    assert interactive_command("pydantic-ai", "x") is None


def _beat(node: str, at: int, payload: dict[str, Any], *, iteration: int = 0) -> list[Any]:
    common = {"run_id": "r", "node_id": node, "iteration": iteration, "attempt": 1}
    return [
        NodeStarted(timestamp_ms=at, **common),
        TaskHeartbeat(
            timestamp_ms=at + 1,
            has_data=True,
            data_size_bytes=1,
            data=msgspec.json.encode(payload),
            **common,
        ),
    ]


def test_the_session_taken_is_a_running_one_first_then_the_newest() -> None:
    events = [
        RunStarted(run_id="r", timestamp_ms=1, config=msgspec.Raw(b'{"rootDir": "/box"}')),
        *_beat("old", 10, {"engine": "codex", "sessionId": "t-old", "cwd": "/box/w"}),
        *_beat("mine", 20, {"engine": "user", "sessionId": "not-a-cli"}),
        *_beat("loop", 30, {"engine": "gemini", "sessionId": "g0"}, iteration=0),
        *_beat("loop", 40, {"engine": "gemini", "sessionId": "g1"}, iteration=1),
        NodeFinished(run_id="r", timestamp_ms=50, node_id="loop", iteration=1, attempt=1),
        NodeFinished(run_id="r", timestamp_ms=50, node_id="loop", iteration=0, attempt=1),
    ]
    state = fold("r", list(enumerate(events, 1)))

    sessions = agent_sessions(state)
    assert [(s.node_id, s.iteration, s.running) for s in sessions] == [
        ("old", 0, True),  # still running: taken first
        ("loop", 1, False),
        ("loop", 0, False),
    ]
    assert sessions[0].cwd == "/box/w"
    assert sessions[1].cwd == "/box"  # no folder in the payload: the run's root
    latest = find_agent_session(state, "loop")
    assert latest is not None
    assert latest.session_id == "g1"
    assert find_agent_session(state, "mine") is None  # a payload no CLI opens
