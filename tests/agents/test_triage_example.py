"""examples/triage_issues.py: offline in-process, and as ``smithers up`` against the stub.

Offline, the example's stand-in agent triages the reports. Against the stub, the same
file runs as a real subprocess with ``OPENAI_API_KEY`` set and ``OPENAI_BASE_URL`` at a
local OpenAI chat-completions server: each triage is a two-request conversation (the
model calls ``read``, then answers through the structured-output tool), the way a real
model would do it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from smithers.engine import read_events
from smithers.eventstore import decode_json
from smithers.eventstore.events import AgentEvent, TokenUsageReported, ToolCallFinished

from smithers import run_workflow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "triage_issues.py"
ISSUES = EXAMPLE.parent / "issues"
EXPECTED_KINDS = {
    "issues/001-crash-on-resume.txt": "bug",
    "issues/002-dark-mode.txt": "feature",
    "issues/003-typo-in-help.txt": "docs",
    "issues/004-slow-events.txt": "bug",
    "issues/005-how-to-retry.txt": "question",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A sandbox root holding a copy of the example's reports."""
    box = tmp_path / "root"
    shutil.copytree(ISSUES, box / "issues")
    return box


def _load(monkeypatch: pytest.MonkeyPatch) -> Any:
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    spec = importlib.util.spec_from_file_location("_triage_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "_triage_example", module)
    spec.loader.exec_module(module)
    return module


async def test_the_example_triages_offline_in_parallel_and_writes_a_report(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = _load(monkeypatch)
    assert type(example.AGENT).__name__ == "KeywordTriager"

    with anyio.fail_after(30):
        result = await run_workflow(
            example.triage_issues, db=tmp_path / "runs.db", root_dir=root, input={}
        )

    assert result.status == "finished", result.error
    kinds = {
        path: result.outputs[example._node_id(os.path.basename(path))]["kind"]
        for path in EXPECTED_KINDS
    }
    assert kinds == EXPECTED_KINDS
    report = result.outputs["report"]
    assert report["counts"] == {"bug": 2, "feature": 1, "docs": 1, "question": 1}
    assert report["most_severe"] == "issues/001-crash-on-resume.txt"
    text = (root / "triage-report.md").read_text()
    assert text.startswith("# Issue triage")
    assert text.count("\n- ") == 5
    reads = [
        e
        for _, e in await read_events(result.run_id, db=tmp_path / "runs.db")
        if isinstance(e, ToolCallFinished) and e.tool_name == "read"
    ]
    assert sorted(e.node_id for e in reads) == sorted(
        example._node_id(os.path.basename(p)) for p in EXPECTED_KINDS
    )


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """The stub model: read the report first, then answer from its first line."""
    messages = body["messages"]
    last = messages[-1]
    if last["role"] == "tool":
        text = last["content"]
        kind = "bug"
        for word, label in (("How do I", "question"), ("Typo", "docs"), ("be nice", "feature")):
            if word in text:
                kind = label
        first = text.replace("\\n", "\n").strip('"').splitlines()[0]
        title = first.split("Title: ", 1)[-1]
        answer = {"kind": kind, "severity": 2, "component": "engine", "summary": title}
        call = {"name": "final_result", "arguments": answer, "id": f"out-{len(messages)}"}
        return {"tool_calls": [call], "usage": {"input": 120, "output": 30}}
    prompt = next(m["content"] for m in messages if m["role"] == "user")
    path = re.search(r"issues/[\w.-]+\.txt", prompt)
    assert path is not None, prompt
    call = {"name": "read", "arguments": {"path": path.group(0)}, "id": f"read-{len(messages)}"}
    return {"tool_calls": [call], "usage": {"input": 80, "output": 12}}


def test_the_example_runs_against_an_openai_compatible_server(
    stub_llm: Any, root: Path, tmp_path: Path
) -> None:
    pytest.importorskip("pydantic_ai")
    stub_llm.add(*([_answer] * 10))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMITHERS_", "ANTHROPIC_"))}
    env.update(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=stub_llm.openai_base_url)
    db = tmp_path / "runs.db"
    proc = subprocess.run(
        [sys.executable, "-m", "smithers", "up", str(EXAMPLE), "--root", str(root),
         "--run-id", "t1", "--db", str(db), "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "finished"
    assert result["outputs"]["report"]["counts"] == {
        "bug": 2,
        "feature": 1,
        "docs": 1,
        "question": 1,
    }
    assert len(stub_llm.requests) == 10
    assert {r["body"]["model"] for r in stub_llm.requests} == {"gpt-4o-mini"}

    async def events() -> list[Any]:
        return [e for _, e in await read_events("t1", db=db)]

    log = anyio.run(events)
    usage = [e for e in log if isinstance(e, TokenUsageReported)]
    assert len(usage) == 10
    assert sum(e.input_tokens for e in usage) == 5 * (80 + 120)
    kinds = [decode_json(e.event)["type"] for e in log if isinstance(e, AgentEvent)]
    assert kinds.count("request") == kinds.count("response") == 10
