"""One attempt of an agent task: pick the agent, ask it, validate, repair, record.

As Smithers' agent tasks (DESIGN §8, seed 002):

- `agent=[a, b, c]` is a fallback chain: attempt n uses the n-th agent (failed attempts
  counted; a crash's abandoned attempt does not move on) and the last one from then on;
  an agent whose provider refused its configuration (``AGENT_CONFIG_INVALID``) is skipped
  for the rest of the run, and that failure is retried on the next agent when one is
  left (without a fallback it is not retried);
- the output is validated by msgspec against the task's `output`; when it does not fit,
  up to `SCHEMA_REPAIR_TURNS` repair prompts in the same conversation show the model
  its errors, then the attempt fails with ``INVALID_OUTPUT``;
- everything the agent streams goes through the attempt's `AgentJournal`, which also
  replays what an interrupted attempt recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ..tools import BUILTIN_TOOLS
from ._journal import AgentJournal
from ._protocol import AgentRequest, AgentResult, agent_id_of, engine_of
from ._structured import (
    SCHEMA_REPAIR_TURNS,
    ValidationProblem,
    invalid_output_error,
    output_instructions,
    output_json_schema,
    repair_prompt,
    validate_output,
)
from .errors import AgentConfigInvalidError, AgentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smithers.projections import AgentReplay, NodeRecord, RunState

    from ..authoring import Task, TaskContext
    from ..tools import Tool
    from ._protocol import Agent

__all__ = ("AgentPlan", "as_agent", "plan_agent_attempt", "run_agent_task")


class AgentPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What the run's state says about an agent attempt before it starts (pure data)."""

    failed_attempts: int = 0
    """Attempts of this node that ended failed (a crash's abandoned ones not counted)."""
    disabled: frozenset[str] = frozenset()
    """Ids of agents that failed with ``AGENT_CONFIG_INVALID`` anywhere in this run."""
    replay: AgentReplay | None = None
    """What interrupted attempts of this node recorded, to replay."""


class _AgentIdDetails(msgspec.Struct):
    agentId: str | None = None


_details = msgspec.json.Decoder(_AgentIdDetails)


def plan_agent_attempt(state: RunState, rec: NodeRecord | None, chain_len: int) -> AgentPlan:
    """The `AgentPlan` of the next attempt of node `rec`, from the run's state. Pure.

    Scans the run's failed attempts for refused agents only when the task has a
    fallback chain (`chain_len` > 1).
    """
    failed = sum(1 for a in rec.attempts if a.state == "failed") if rec is not None else 0
    disabled: set[str] = set()
    if chain_len > 1:
        for node in state.nodes.values():
            for a in node.attempts:
                err = a.error
                if err is None or err.code != "AGENT_CONFIG_INVALID":
                    continue
                try:
                    agent = _details.decode(err.details).agentId
                except msgspec.DecodeError:
                    continue
                if agent:
                    disabled.add(agent)
    return AgentPlan(
        failed_attempts=failed,
        disabled=frozenset(disabled),
        replay=rec.agent_replay if rec is not None else None,
    )


def as_agent(obj: object) -> Agent:
    """`obj` as an `Agent`: itself if it has ``generate``, a `pydantic_ai.Agent` wrapped.

    Raises:
        AgentConfigInvalidError: if `obj` is neither.
    """
    if callable(getattr(obj, "generate", None)):
        return obj  # type: ignore[return-value]
    if type(obj).__module__.startswith("pydantic_ai") and callable(getattr(obj, "run", None)):
        from ._pydantic import PydanticAIAgent

        return PydanticAIAgent(obj)
    raise AgentConfigInvalidError(
        f"{type(obj).__name__} is not an agent: it needs an async generate(request) method",
        hint="Pass an object with async generate(request) -> AgentResult, or a "
        "pydantic_ai.Agent (pip install 'smithers-py[ai]').",
    )


def _choose(chain: Sequence[Agent], plan: AgentPlan) -> tuple[int, Agent]:
    """The index and agent of the next attempt (see the module docstring).

    Raises:
        AgentConfigInvalidError: if every agent of the chain was refused in this run.
    """
    ids = [agent_id_of(a) for a in chain]
    start = min(plan.failed_attempts, len(chain) - 1)
    order = list(range(start, len(chain))) + list(range(start - 1, -1, -1))
    for i in order:
        if ids[i] not in plan.disabled:
            return i, chain[i]
    raise AgentConfigInvalidError(
        f"every agent of the chain ({', '.join(ids)}) was refused by its provider earlier "
        "in this run",
        details={"agents": ids},
        hint="Fix the agents' credentials or models, then start a fresh run.",
    )


_BUILTINS = {tool.name: tool for tool in BUILTIN_TOOLS}


def _tools_of(task: Task) -> tuple[Tool, ...]:
    """The task's tools (built-in names resolved), those ``allow_tools`` allows."""
    tools: tuple[Tool, ...] = tuple(_BUILTINS[t] if isinstance(t, str) else t for t in task.tools)
    if task.allow_tools is not None:
        allowed = set(task.allow_tools)
        tools = tuple(t for t in tools if t.name in allowed)
    return tools


def _prompt_of(task: Task, tctx: TaskContext) -> str:
    prompt = task.prompt
    text = prompt(tctx) if callable(prompt) else prompt
    if not isinstance(text, str):
        raise AgentConfigInvalidError(
            f"Task {task.id!r}: prompt must be a str or return one, got {type(text).__name__}",
            details={"nodeId": task.id},
        )
    return text


def _last_heartbeat(tctx: TaskContext) -> Any:
    return tctx.last_heartbeat


async def run_agent_task(task: Task, tctx: TaskContext, plan: AgentPlan) -> Any:
    """Run one attempt of agent task `task`; return its validated output.

    Args:
        task: An agent task (``task.kind == "agent"``).
        tctx: The attempt's context (its ``tools`` is the sandbox and journal).
        plan: What the run's state says about this attempt (`plan_agent_attempt`).

    Returns:
        The output, an instance of ``task.output``.

    Raises:
        InvalidOutputError: once the repair turns are spent (``INVALID_OUTPUT``, with
            ``details.schemaRetryAttempts``).
        AgentError: what the agent raised (``AGENT_*``); an ``AGENT_CONFIG_INVALID``
            with a fallback left carries ``fallback_available = True`` and
            ``details.fallbackAgentId``.
        Exception: anything else the agent raised.
    """
    chain = [as_agent(a) for a in task.agents]
    index, agent = _choose(chain, plan)
    agent_id = agent_id_of(agent)
    tool_ctx = tctx.tools
    replay = plan.replay if plan.replay and plan.replay.agent_id == agent_id else None
    journal = AgentJournal(
        run_id=tctx.run_id,
        node_id=tctx.node_id,
        iteration=tctx.iteration,
        attempt=tctx.attempt,
        engine=engine_of(agent),
        agent_id=agent_id,
        send=tool_ctx.journal or (lambda _e: None),
        beat=tctx.heartbeat,
        now_ms=tool_ctx.now_ms,
        replay=replay,
    )
    schema = task.output
    journal.event(
        "start",
        {
            "agent": agent_id,
            "model": getattr(agent, "model", None)
            if isinstance(getattr(agent, "model", None), str)
            else None,
            "chainIndex": index,
            "replayable": len(replay.responses) if replay else 0,
        },
    )
    abort = anyio.Event()
    request = AgentRequest(
        prompt=_prompt_of(task, tctx),
        output_type=schema,
        output_schema=output_json_schema(schema) if schema is not dict else None,
        instructions=output_instructions(schema),
        tools=_tools_of(task),
        tool_context=tool_ctx,
        journal=journal,
        timeout_ms=task.timeout_ms,
        heartbeat_timeout_ms=task.heartbeat_timeout_ms,
        last_heartbeat=_last_heartbeat(tctx),
        abort=abort,
        idempotency_key=tctx.idempotency_key,
    )
    try:
        for turn in range(SCHEMA_REPAIR_TURNS + 1):
            journal.usage_reported = False
            result = await agent.generate(request)
            if not isinstance(result, AgentResult):
                raise AgentConfigInvalidError(
                    f"{type(agent).__name__}.generate returned {type(result).__name__}, "
                    "not an AgentResult",
                    details={"agentId": agent_id},
                )
            if result.usage is not None and not journal.usage_reported:
                journal.usage(result.usage)
            raw = result.output if result.output is not None else result.text
            value = validate_output(raw, schema)
            if not isinstance(value, ValidationProblem):
                journal.event("output", {"finishReason": result.finish_reason, "turns": turn + 1})
                return value
            if turn == SCHEMA_REPAIR_TURNS:
                raise invalid_output_error(
                    value,
                    node_id=task.id,
                    schema_name=task.output_name,
                    schema_retry_attempts=turn + 1,
                )
            journal.event("repair", {"turn": turn + 1, "problem": value.describe()})
            request = AgentRequest(
                prompt=repair_prompt(value, turn + 1, schema=schema),
                messages=result.messages,
                output_type=schema,
                output_schema=request.output_schema,
                instructions=request.instructions,
                tools=request.tools,
                tool_context=tool_ctx,
                journal=journal,
                timeout_ms=task.timeout_ms,
                heartbeat_timeout_ms=task.heartbeat_timeout_ms,
                last_heartbeat=_last_heartbeat(tctx),
                abort=abort,
                idempotency_key=tctx.idempotency_key,
                repair_turn=turn + 1,
            )
        raise AssertionError("unreachable")  # pragma: no cover
    except anyio.get_cancelled_exc_class():
        abort.set()
        raise
    except AgentError as e:
        e.details.setdefault("agentId", agent_id)
        if isinstance(e, AgentConfigInvalidError):
            refused = plan.disabled | {agent_id}
            rest = [agent_id_of(a) for a in chain[index + 1 :]]
            left = [i for i in rest if i not in refused]
            if left:
                e.details["fallbackAgentId"] = left[0]
                e.fallback_available = True  # type: ignore[attr-defined]
        raise
    finally:
        journal.close()
