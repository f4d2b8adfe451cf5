"""A run SIGKILLed in the middle of a model conversation resumes without paying twice.

The run is ``smithers up`` in its own process, talking to the OpenAI chat-completions
stub (`stub_llm`) through ``smithers.agents.openai`` (Pydantic AI's real provider). The
conversation: the model calls the side-effecting tool ``note``, then the tool ``gate``
(which waits for a file), then answers. The process is killed while ``gate`` runs; the
resumed run replays the two recorded responses and ``note``'s recorded result, runs
``gate`` again (it never finished), and sends only the third request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

pytest.importorskip("pydantic_ai")

from smithers.engine import read_events
from smithers.eventstore import decode_json
from smithers.eventstore.events import AgentEvent, ToolCallStarted
from stub_llm import StubLLM, duplicate_fingerprints

if TYPE_CHECKING:
    from pathlib import Path

FLOW = """
    import os

    import anyio
    import msgspec

    import smithers
    from smithers import Task, workflow
    from smithers.tools import define_tool


    class Plan(msgspec.Struct):
        steps: list[str]
        done: bool


    async def note(ctx, args):
        with open(os.environ["CRASH_NOTES"], "a") as f:
            f.write(args["text"] + "\\n")
        return {"noted": args["text"]}


    async def gate(ctx, args):
        while not os.path.exists(os.environ["CRASH_GATE"]):
            await anyio.sleep(0.02)
        return {"open": True}


    TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    NOTE = define_tool("note", TEXT, note, side_effect=True, description="Write a note.")
    GATE = define_tool("gate", {"type": "object", "properties": {}}, gate, idempotent=True)
    AGENT = smithers.agents.openai("gpt-stub", base_url=os.environ["STUB_URL"], api_key="x")


    @workflow("crashy")
    def crashy(ctx):
        return Task("plan", output=Plan, agent=AGENT, prompt="Plan the release.",
                    tools=[NOTE, GATE])
"""

SCRIPT = [
    {"tool_calls": [{"name": "note", "arguments": {"text": "first"}, "id": "call_1"}]},
    {"tool_calls": [{"name": "gate", "arguments": {}, "id": "call_2"}]},
    {
        "tool_calls": [
            {
                "name": "final_result",
                "arguments": {"steps": ["build", "ship"], "done": True},
                "id": "call_3",
            }
        ]
    },
]


def _env(tmp: Path, stub: StubLLM) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMITHERS_", "OPENAI_"))}
    env.update(
        STUB_URL=stub.openai_base_url,
        CRASH_NOTES=str(tmp / "notes.txt"),
        CRASH_GATE=str(tmp / "gate.open"),
    )
    return env


def _smithers(tmp: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "smithers", *args],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _tool_started(db: Path, run_id: str, tool: str) -> bool:
    async def look() -> bool:
        try:
            rows = await read_events(run_id, db=db)
        except Exception:
            return False  # the database or the run does not exist yet
        return any(isinstance(e, ToolCallStarted) and e.tool_name == tool for _, e in rows)

    return anyio.run(look)


def _run_to_end(tmp: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = _smithers(tmp, env, *args, "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def _setup(tmp: Path, stub: StubLLM) -> tuple[dict[str, str], Path]:
    tmp.mkdir()
    (tmp / "flow.py").write_text(textwrap.dedent(FLOW), encoding="utf-8")
    stub.add(*SCRIPT)
    return _env(tmp, stub), tmp / "runs.db"


def test_a_conversation_killed_mid_way_resumes_without_repeating_paid_work(
    tmp_path: Path,
) -> None:
    # The reference: the same conversation, never interrupted.
    with StubLLM() as calm_stub:
        calm = tmp_path / "calm"
        env, db = _setup(calm, calm_stub)
        (calm / "gate.open").touch()
        expected = _run_to_end(calm, env, "up", "flow.py", "--run-id", "r", "--db", str(db))
        assert len(calm_stub.requests) == 3

    with StubLLM() as stub:
        tmp = tmp_path / "crash"
        env, db = _setup(tmp, stub)
        proc = _smithers(tmp, env, "up", "flow.py", "--run-id", "r", "--db", str(db))
        try:
            deadline = time.monotonic() + 30
            while not _tool_started(db, "r", "gate"):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the run never reached the gate tool"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
        assert len(stub.requests) == 2

        (tmp / "gate.open").touch()
        resumed = _run_to_end(tmp, env, "up", "--resume", "r", "--db", str(db))

        assert resumed["status"] == "finished"
        assert resumed["outputs"] == expected["outputs"]
        assert resumed["outputs"]["plan"] == {"steps": ["build", "ship"], "done": True}
        # Three requests in all, none sent twice; the side effect happened once.
        assert len(stub.requests) == 3
        assert duplicate_fingerprints(stub.requests) == []
        assert (tmp / "notes.txt").read_text() == "first\n"

        async def agent_events() -> list[tuple[int, dict[str, Any]]]:
            rows = await read_events("r", db=db, types=["AgentEvent"])
            return [(e.attempt, decode_json(e.event)) for _, e in rows if isinstance(e, AgentEvent)]

        events = anyio.run(agent_events)
        replayed = [ev for attempt, ev in events if attempt == 2 and ev["type"] == "replayed"]
        assert replayed == [{"type": "replayed", "responses": 2, "toolResults": 1}]
        live = [ev["type"] for attempt, ev in events if attempt == 2 and ev["type"] == "request"]
        assert live == ["request"]
