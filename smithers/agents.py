"""Agents for agent tasks: the protocol, the Pydantic AI adapter, and the agent errors.

An agent task (``Task(id, output=..., agent=..., prompt=...)``) asks an agent: anything
with ``async generate(request) -> AgentResult`` (`Agent`), or a ``pydantic_ai.Agent``,
wrapped in `PydanticAIAgent`. Every model request and response, tool call and token
count of the attempt is recorded in the run's log, and an attempt a crash interrupted
replays what was recorded instead of paying for it again::

    from smithers import Task, agents

    Task("triage", output=Triage, agent=agents.openai("gpt-4o-mini"), prompt="...")
    Task("triage", output=Triage, agent=pydantic_ai.Agent(model, tools=[...]), prompt="...")

`PydanticAIAgent`, `openai` and `anthropic` need Pydantic AI
(``pip install 'smithers-py[ai]'``); they are imported on first use, so
``import smithers.agents`` does not import it. `openai`/`anthropic` read their API key
(``OPENAI_API_KEY``/``ANTHROPIC_API_KEY``) only when the task runs, so a workflow using
them can be listed and graphed without keys (a ``pydantic_ai.Agent("openai:...")``
built from a model string asks for its key when it is built). Both set the SDK's own
retries to 0: the engine retries, visibly in the run's log, after the provider's
``retry-after``.

Provider failures surface as the ``AGENT_*`` errors below (`AgentRateLimitedError`,
`AgentProviderError`, `AgentQuotaExceededError`, `AgentConfigInvalidError`, ...), all
`AgentError`s.
"""

from __future__ import annotations

import typing

from smithers.engine import agents as _agents
from smithers.engine.agents import AGENT_ERROR_CLASSES as AGENT_ERROR_CLASSES
from smithers.engine.agents import Agent as Agent
from smithers.engine.agents import AgentBuildCommandError as AgentBuildCommandError
from smithers.engine.agents import AgentCliError as AgentCliError
from smithers.engine.agents import AgentConfigInvalidError as AgentConfigInvalidError
from smithers.engine.agents import AgentDiagnosticTimeoutError as AgentDiagnosticTimeoutError
from smithers.engine.agents import AgentError as AgentError
from smithers.engine.agents import AgentProviderError as AgentProviderError
from smithers.engine.agents import AgentQuotaExceededError as AgentQuotaExceededError
from smithers.engine.agents import AgentRateLimitedError as AgentRateLimitedError
from smithers.engine.agents import AgentRequest as AgentRequest
from smithers.engine.agents import AgentResult as AgentResult
from smithers.engine.agents import AgentRpcFileArgsError as AgentRpcFileArgsError
from smithers.engine.agents import AgentUsage as AgentUsage
from smithers.engine.agents import ClaudeCodeAgent as ClaudeCodeAgent
from smithers.engine.agents import CodexAgent as CodexAgent
from smithers.engine.agents import GeminiAgent as GeminiAgent

if typing.TYPE_CHECKING:
    from smithers.engine.agents import PydanticAIAgent as PydanticAIAgent
    from smithers.engine.agents import anthropic as anthropic
    from smithers.engine.agents import openai as openai

__all__ = (
    "AGENT_ERROR_CLASSES",
    "Agent",
    "AgentBuildCommandError",
    "AgentCliError",
    "AgentConfigInvalidError",
    "AgentDiagnosticTimeoutError",
    "AgentError",
    "AgentProviderError",
    "AgentQuotaExceededError",
    "AgentRateLimitedError",
    "AgentRequest",
    "AgentResult",
    "AgentRpcFileArgsError",
    "AgentUsage",
    "ClaudeCodeAgent",
    "CodexAgent",
    "GeminiAgent",
    "PydanticAIAgent",
    "anthropic",
    "openai",
)

_LAZY = frozenset({"PydanticAIAgent", "anthropic", "openai"})


def __getattr__(name: str) -> typing.Any:
    """`PydanticAIAgent`, `openai`, `anthropic`: imported on first use (need pydantic_ai).

    Raises:
        ImportError: if Pydantic AI is not installed (``pip install 'smithers-py[ai]'``).
        AttributeError: for any other unknown name.
    """
    if name in _LAZY:
        return getattr(_agents, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
