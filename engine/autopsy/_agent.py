"""The optional second opinion: an agent with read-only tools investigating a failed run.

Configured by ``SMITHERS_AUTOPSY_AGENT``: ``claude``, ``codex`` or ``gemini`` (or a path to
one of those programs, e.g. a test double). The agent gets the evidence and the offline
verdict in its prompt and answers an `AgentOpinion`; `merge_opinion` folds it into the
verdict (the offline evidence is kept, and says which opinion won).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ._classify import (  # noqa: TC001 (msgspec resolves Struct annotations at run time)
    AutopsyVerdict,
    Confidence,
    FailureClass,
    Suggestion,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._evidence import Evidence

__all__ = (
    "AGENT_ENV",
    "AgentOpinion",
    "autopsy_agent",
    "autopsy_agent_spec",
    "autopsy_prompt",
    "merge_opinion",
)

AGENT_ENV = "SMITHERS_AUTOPSY_AGENT"
"""Names the investigating agent: ``claude``, ``codex``, ``gemini`` or a path to one."""
_KINDS = ("claude", "codex", "gemini")
_EVENTS_IN_PROMPT = 40
_SOURCE_IN_PROMPT = 8_000


class AgentOpinion(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What the investigating agent answers (the verdict's judgement fields)."""

    failure_class: FailureClass
    confidence: Confidence
    root_cause: str
    suggestion: Suggestion
    suggestion_detail: str
    commands: tuple[str, ...] = ()


def autopsy_agent_spec(env: Mapping[str, str] | None = None) -> str | None:
    """Return ``SMITHERS_AUTOPSY_AGENT`` when it names a known agent, else None. Pure."""
    value = (os.environ if env is None else env).get(AGENT_ENV, "").strip()
    if not value:
        return None
    return value if Path(value).name in _KINDS else None


def autopsy_agent(spec: str) -> Any:
    """Return the agent `spec` names, with read-only tools only.

    Claude Code in plan mode without its writing tools, Codex in its ``read-only``
    sandbox, Gemini in its ``default`` approval mode (asks before any write; headless,
    so none happens).

    Raises:
        AgentConfigInvalidError: ``AGENT_CONFIG_INVALID``, if `spec` names no known agent.
    """
    from ..agents import AgentConfigInvalidError, ClaudeCodeAgent, CodexAgent, GeminiAgent

    kind = Path(spec).name
    if kind == "claude":
        return ClaudeCodeAgent(
            binary=spec,
            permission_mode="plan",
            disallowed_tools=("Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"),
        )
    if kind == "codex":
        return CodexAgent(binary=spec, sandbox="read-only")
    if kind == "gemini":
        return GeminiAgent(binary=spec, approval_mode="default")
    raise AgentConfigInvalidError(
        f"{AGENT_ENV}={spec!r} names no known agent",
        details={"agentId": spec},
        hint=f"Set {AGENT_ENV} to claude, codex, gemini or a path to one of them.",
    )


def autopsy_prompt(ev: Evidence, verdict: AutopsyVerdict) -> str:
    """Return the investigating agent's prompt: the evidence and the first opinion. Pure."""
    lines = [
        f"Run {ev.target_run_id} of workflow {ev.workflow_name!r} ({ev.workflow_path}) failed.",
        "Investigate why, reading files only: never retry, rewind, edit or run anything.",
        "Classify it as workflow-bug, environment, agent-flake, smithers-bug or unknown.",
        "",
        "First opinion (an offline classifier):",
        msgspec.json.encode(verdict).decode(),
        "",
        "Last events:",
        *(
            f"  seq {e.seq} {e.type} {e.node_id or ''} {e.summary}"
            for e in ev.last_events[-_EVENTS_IN_PROMPT:]
        ),
    ]
    for node in ev.failed:
        if node.error.stack:
            lines += ["", f"Traceback of {node.node_id}:", node.error.stack]
    if ev.workflow_source:
        lines += ["", "Workflow source:", ev.workflow_source[:_SOURCE_IN_PROMPT]]
    return "\n".join(lines)


def merge_opinion(verdict: AutopsyVerdict, opinion: AgentOpinion | None) -> AutopsyVerdict:
    """Return the verdict with the agent's judgement, or `verdict` when it has none. Pure.

    The evidence keeps the offline lines and adds which opinion the verdict carries;
    the agent's commands come first, the offline ones after (without duplicates).
    """
    if opinion is None:
        return verdict
    commands = list(dict.fromkeys((*opinion.commands, *verdict.commands)))
    agrees = "agrees" if opinion.failure_class == verdict.failure_class else "disagrees"
    note = (
        f"The investigating agent {agrees} with the offline classifier "
        f"({verdict.failure_class}, {verdict.confidence}); the verdict is the agent's."
    )
    return msgspec.structs.replace(
        verdict,
        failure_class=opinion.failure_class,
        confidence=opinion.confidence,
        root_cause=opinion.root_cause,
        suggestion=opinion.suggestion,
        suggestion_detail=opinion.suggestion_detail,
        commands=tuple(commands),
        evidence=(*verdict.evidence, note),
        summary=f"{opinion.failure_class} ({opinion.confidence} confidence): {opinion.root_cause}",
    )
