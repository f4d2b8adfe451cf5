"""Agents: structured output and the agent error catalogue (DESIGN §8).

A room of the engine that may import from `authoring` and the shared `errors` only (so
far). Everything here is pure and needs no optional dependency:

- structured output: `output_json_schema`, `output_instructions`, `extract_json`,
  `validate_output`, `repair_prompt`, `SCHEMA_REPAIR_TURNS`, `invalid_output_error`;
- provider errors: `classify_provider_error` and one error class per `AGENT_*` code.
"""

from __future__ import annotations

from ._provider_errors import ProviderErrorClass as ProviderErrorClass
from ._provider_errors import classify_provider_error as classify_provider_error
from ._provider_errors import parse_retry_after_ms as parse_retry_after_ms
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

__all__ = (
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
