"""Agents: the agent protocol, agent attempts, structured output, agent errors (DESIGN §8).

A room of the engine that imports `authoring`, `tools` and the shared `errors`; the
executor (`activation`) builds on it. Nothing here needs an optional dependency except
the Pydantic AI adapter (`PydanticAIAgent`, imported lazily):

- the protocol: `Agent` (``async generate(request) -> AgentResult``), `AgentRequest`,
  `AgentResult`, `AgentUsage`; the journal that records and replays a conversation,
  `AgentJournal`; one attempt of an agent task, `run_agent_task` (fallback chains,
  repair turns) with `AgentPlan`/`plan_agent_attempt`;
- structured output: `output_json_schema`, `output_instructions`, `extract_json`,
  `validate_output`, `repair_prompt`, `SCHEMA_REPAIR_TURNS`, `invalid_output_error`;
- provider errors: `classify_provider_error` and one error class per `AGENT_*` code;
  a CLI's usage-limit reset time, `parse_reset_at_ms`;
- the CLI agents `ClaudeCodeAgent`, `CodexAgent`, `GeminiAgent`, and the command that
  opens one's saved session for a person (`session_info`, `interactive_command`, used
  by ``smithers hijack``).
"""

from __future__ import annotations

import typing

from ._claude import ClaudeCodeAgent as ClaudeCodeAgent
from ._codex import CodexAgent as CodexAgent
from ._gemini import GeminiAgent as GeminiAgent
from ._interactive import INTERACTIVE_RESUME as INTERACTIVE_RESUME
from ._interactive import SessionInfo as SessionInfo
from ._interactive import interactive_command as interactive_command
from ._interactive import session_info as session_info
from ._journal import AgentJournal as AgentJournal
from ._journal import fingerprint as fingerprint
from ._process import ProcessAbortedError as ProcessAbortedError
from ._process import ProcessIdleTimeoutError as ProcessIdleTimeoutError
from ._process import ProcessResult as ProcessResult
from ._process import ProcessSpawnFailedError as ProcessSpawnFailedError
from ._process import ProcessTimeoutError as ProcessTimeoutError
from ._process import run_cli as run_cli
from ._protocol import DEFAULT_AGENT_HEARTBEAT_TIMEOUT_MS as DEFAULT_AGENT_HEARTBEAT_TIMEOUT_MS
from ._protocol import DEFAULT_AGENT_RETRIES as DEFAULT_AGENT_RETRIES
from ._protocol import Agent as Agent
from ._protocol import AgentRequest as AgentRequest
from ._protocol import AgentResult as AgentResult
from ._protocol import AgentUsage as AgentUsage
from ._protocol import agent_id_of as agent_id_of
from ._protocol import engine_of as engine_of
from ._provider_errors import ProviderErrorClass as ProviderErrorClass
from ._provider_errors import classify_provider_error as classify_provider_error
from ._provider_errors import parse_retry_after_ms as parse_retry_after_ms
from ._quota_reset import parse_reset_at_ms as parse_reset_at_ms
from ._run import AgentPlan as AgentPlan
from ._run import as_agent as as_agent
from ._run import plan_agent_attempt as plan_agent_attempt
from ._run import run_agent_task as run_agent_task
from ._structured import SCHEMA_REPAIR_TURNS as SCHEMA_REPAIR_TURNS
from ._structured import JsonCandidate as JsonCandidate
from ._structured import ValidationProblem as ValidationProblem
from ._structured import extract_json as extract_json
from ._structured import invalid_output_error as invalid_output_error
from ._structured import output_instructions as output_instructions
from ._structured import output_json_schema as output_json_schema
from ._structured import repair_prompt as repair_prompt
from ._structured import validate_output as validate_output
from .errors import AGENT_ERROR_CLASSES as AGENT_ERROR_CLASSES
from .errors import AgentBuildCommandError as AgentBuildCommandError
from .errors import AgentCliError as AgentCliError
from .errors import AgentConfigInvalidError as AgentConfigInvalidError
from .errors import AgentDiagnosticTimeoutError as AgentDiagnosticTimeoutError
from .errors import AgentError as AgentError
from .errors import AgentProviderError as AgentProviderError
from .errors import AgentQuotaExceededError as AgentQuotaExceededError
from .errors import AgentRateLimitedError as AgentRateLimitedError
from .errors import AgentRpcFileArgsError as AgentRpcFileArgsError

if typing.TYPE_CHECKING:
    from ._providers import anthropic as anthropic
    from ._providers import openai as openai
    from ._pydantic import PydanticAIAgent as PydanticAIAgent

__all__ = (
    "DEFAULT_AGENT_HEARTBEAT_TIMEOUT_MS",
    "DEFAULT_AGENT_RETRIES",
    "Agent",
    "AgentRequest",
    "AgentResult",
    "AgentUsage",
    "AgentJournal",
    "AgentPlan",
    "ClaudeCodeAgent",
    "CodexAgent",
    "GeminiAgent",
    "INTERACTIVE_RESUME",
    "SessionInfo",
    "interactive_command",
    "session_info",
    "ProcessAbortedError",
    "ProcessIdleTimeoutError",
    "ProcessResult",
    "ProcessSpawnFailedError",
    "ProcessTimeoutError",
    "run_cli",
    "agent_id_of",
    "as_agent",
    "engine_of",
    "fingerprint",
    "plan_agent_attempt",
    "run_agent_task",
    "SCHEMA_REPAIR_TURNS",
    "JsonCandidate",
    "ValidationProblem",
    "output_json_schema",
    "output_instructions",
    "extract_json",
    "validate_output",
    "repair_prompt",
    "invalid_output_error",
    "ProviderErrorClass",
    "classify_provider_error",
    "parse_retry_after_ms",
    "parse_reset_at_ms",
    "AGENT_ERROR_CLASSES",
    "AgentError",
    "AgentCliError",
    "AgentQuotaExceededError",
    "AgentConfigInvalidError",
    "AgentRpcFileArgsError",
    "AgentBuildCommandError",
    "AgentDiagnosticTimeoutError",
    "AgentRateLimitedError",
    "AgentProviderError",
)


_PYDANTIC_AI_NAMES = frozenset({"PydanticAIAgent", "openai", "anthropic"})


def __getattr__(name: str) -> typing.Any:
    """`PydanticAIAgent`, `openai`, `anthropic`: imported on first use (need pydantic_ai).

    Raises:
        ImportError: if Pydantic AI is not installed (``pip install 'smithers-py[ai]'``).
        AttributeError: for any other unknown name.
    """
    if name in _PYDANTIC_AI_NAMES:
        try:
            from . import _providers, _pydantic
        except ModuleNotFoundError as e:
            raise ImportError(
                f"smithers.engine.agents.{name} needs Pydantic AI: pip install 'smithers-py[ai]'"
            ) from e
        return getattr(_pydantic if name == "PydanticAIAgent" else _providers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
