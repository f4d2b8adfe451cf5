"""The pack's ``review`` with a model: ``OPENAI_API_KEY`` set, the model-API stub answering.

The stub (tests/agents/stub_llm.py, run as its own process on 127.0.0.1) plays an
OpenAI chat-completions server: the reviewer's verdict comes back through the
structured-output tool and is validated against the workflow's `Verdict` schema.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

STUB = Path(__file__).resolve().parents[1] / "agents" / "stub_llm.py"

VERDICT = {
    "approved": False,
    "summary": "greet() lost its docstring.",
    "comments": [
        {"file": "app.py", "line": 1, "severity": "minor", "message": "Keep the docstring."}
    ],
}


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(OpenAI base URL, request log) of a stub process answering one review."""
    pytest.importorskip("pydantic_ai")
    script = tmp_path / "script.json"
    call = {"name": "final_result", "arguments": VERDICT, "id": "call-verdict"}
    script.write_text(json.dumps([{"tool_calls": [call]}]), encoding="utf-8")
    log = tmp_path / "requests.ndjson"
    proc = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", "--script", str(script), "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on "), first
        yield first.removeprefix("listening on ") + "/v1", log
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_model_reviews_the_diff_with_a_schemad_verdict(
    project: Any, stub: tuple[str, Path]
) -> None:
    base_url, log = stub
    (project.root / "app.py").write_text(
        'def greet(name):\n    return f"Hello, {name}!"\n', encoding="utf-8"
    )

    result = project.run_json(
        "review",
        "--input",
        '{"instructions": "docstrings"}',
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": base_url},
    )

    assert result["status"] == "finished", result["error"]
    assert result["outputs"]["review"] == VERDICT
    assert result["outputs"]["output"]["files"] == ["app.py"]
    [request] = [json.loads(line) for line in log.read_text().splitlines() if '"body"' in line]
    assert request["body"]["model"] == "gpt-4o-mini"
    prompt = json.dumps(request["body"]["messages"])
    assert "Pay attention to: docstrings" in prompt
    assert "Say hello." in prompt  # the diff's removed line reached the model
    tool = request["body"]["tools"][0]["function"]
    assert set(tool["parameters"]["properties"]) == {"approved", "summary", "comments"}
