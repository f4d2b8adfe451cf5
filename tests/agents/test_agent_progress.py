"""Streamed model text reaches ``on_progress`` as coalesced ``NodeOutput`` (issue 10, item 2).

A run's ``on_progress`` callback gets every event after it is recorded. Here the agent is
``smithers.agents.openai``/``anthropic`` against `stub_llm`, which streams the reply in
8-character pieces (SSE, the providers' real formats): the callback must see the whole
text as ``NodeOutput`` events of the task, fewer events than pieces (coalesced, not one
per token), all before the task's ``NodeFinished``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest

pytest.importorskip("pydantic_ai")

from smithers.eventstore.events import NodeFinished, NodeOutput

import smithers
from smithers import Task, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

    from stub_llm import StubLLM

PIECE_CHARS = 8
"""The stub streams text in pieces of this many characters (``stub_llm._pieces``)."""
TEXT = "Looking at the question carefully. " * 12
"""What the model says (streamed) before it answers through the output tool."""


class Answer(msgspec.Struct):
    ok: bool
    n: int


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_streamed_text_reaches_on_progress_coalesced(
    stub_llm: StubLLM, provider: str, tmp_path: Path
) -> None:
    answer = {"name": "final_result", "arguments": {"ok": True, "n": 3}, "id": "out-1"}
    stub_llm.add({"text": TEXT, "tool_calls": [answer]})
    if provider == "openai":
        agent = smithers.agents.openai("gpt-stub", base_url=stub_llm.openai_base_url, api_key="k")
    else:
        agent = smithers.agents.anthropic(
            "claude-stub", base_url=stub_llm.anthropic_base_url, api_key="k"
        )

    @workflow("progress")
    def flow(ctx: Any) -> Any:
        return Task("say", output=Answer, agent=agent, prompt="Say it.")

    seen: list[Any] = []
    with anyio.fail_after(30):
        result = await run_workflow(
            flow, db=tmp_path / "runs.db", root_dir=tmp_path, on_progress=seen.append
        )

    assert result.status == "finished", result.error
    assert result.outputs["say"] == {"ok": True, "n": 3}
    (request,) = stub_llm.requests
    assert request["body"]["stream"] is True  # the reply really came as a stream
    outputs = [e for e in seen if isinstance(e, NodeOutput) and e.node_id == "say"]
    assert "".join(e.text for e in outputs) == TEXT
    pieces = -(-len(TEXT) // PIECE_CHARS)
    assert 1 <= len(outputs) < pieces // 4, f"{len(outputs)} NodeOutput for {pieces} pieces"
    finished = next(i for i, e in enumerate(seen) if isinstance(e, NodeFinished))
    assert all(seen.index(e) < finished for e in outputs)
