"""Errors raised by agents, one class per `AGENT_*` code of the catalogue.

Codes, categories and retryability live in `smithers.eventstore.errors` (the catalogue);
these classes only name them. Which provider failure becomes which class is decided by
`classify_provider_error` (`smithers.engine.agents`).
"""

from __future__ import annotations

from smithers.engine.errors import EngineError

__all__ = (
    "AgentError",
    "AgentCliError",
    "AgentQuotaExceededError",
    "AgentConfigInvalidError",
    "AgentRpcFileArgsError",
    "AgentBuildCommandError",
    "AgentDiagnosticTimeoutError",
    "AgentRateLimitedError",
    "AgentProviderError",
    "AGENT_ERROR_CLASSES",
)


class AgentError(EngineError):
    """Base class of the errors an agent call fails with.

    Built like every `SmithersError` (``summary``, ``details=``, ``hint=``). Details
    common to the subclasses (each optional): `agentId`, `agentEngine` (e.g.
    ``"openai"``), `agentModel`, `status` (the provider's HTTP status), `providerCode`
    (the provider's own error type/code), `retryAfterMs`.
    """

    @property
    def retry_after_ms(self) -> int | None:
        """The delay the provider asked for before the next try, in ms, or None."""
        value = self.details.get("retryAfterMs")
        return value if isinstance(value, int) else None


class AgentCliError(AgentError):
    """A CLI-backed agent failed: a non-zero exit, a streamed error, a broken RPC transport.

    Retryable. Details: `agentId`, `exitCode`, `stderr`.
    """

    default_code = "AGENT_CLI_ERROR"


class AgentQuotaExceededError(AgentError):
    """The provider returned a usage-limit, quota or billing error.

    Retryable: the task's retries are kept and the run waits until the reset time.
    Details: `agentId`, `agentEngine`, `agentModel`, `quotaResetAtMs` (epoch ms, when
    known), `resetHint`, `retryAfterMs`.
    """

    default_code = "AGENT_QUOTA_EXCEEDED"


class AgentConfigInvalidError(AgentError, ValueError):
    """The agent's configuration is wrong; the provider refuses it.

    Bad or missing credentials, no permission, an unknown or unsupported model, a
    request the provider rejects as invalid.

    Not retryable: re-running cannot fix it; with a fallback chain the agent is skipped
    for the rest of the run. Details: `agentId`, `agentModel`, `status`, `providerCode`.
    """

    default_code = "AGENT_CONFIG_INVALID"


class AgentRpcFileArgsError(AgentError, ValueError):
    """An RPC-mode agent was given file arguments its transport does not support."""

    default_code = "AGENT_RPC_FILE_ARGS"


class AgentBuildCommandError(AgentError, NotImplementedError):
    """A command was asked of an agent that uses its own `generate()` transport."""

    default_code = "AGENT_BUILD_COMMAND"


class AgentDiagnosticTimeoutError(AgentError, TimeoutError):
    """An agent diagnostic check exceeded its per-check time budget.

    Details: `check`, `timeoutMs`.
    """

    default_code = "AGENT_DIAGNOSTIC_TIMEOUT"


class AgentRateLimitedError(AgentError):
    """The provider rate-limited the request (HTTP 429 without a quota/billing cause).

    Retryable; the next try waits at least `retryAfterMs` when the provider sent
    ``retry-after``. Not in Smithers' catalogue (its API agents surface the SDK's
    error); our model agents need a code for it. Details: `status`, `retryAfterMs`,
    `agentId`, `agentModel`.
    """

    default_code = "AGENT_RATE_LIMITED"


class AgentProviderError(AgentError):
    """A transient provider failure.

    A 5xx, an overloaded service (529), a request timeout (408), a dropped connection
    (no status).

    Retryable, honouring `retryAfterMs` when sent. Not in Smithers' catalogue (see
    `AgentRateLimitedError`). Details: `status`, `providerCode`, `retryAfterMs`.
    """

    default_code = "AGENT_PROVIDER_ERROR"


AGENT_ERROR_CLASSES: dict[str, type[AgentError]] = {
    cls.default_code: cls
    for cls in (
        AgentCliError,
        AgentQuotaExceededError,
        AgentConfigInvalidError,
        AgentRpcFileArgsError,
        AgentBuildCommandError,
        AgentDiagnosticTimeoutError,
        AgentRateLimitedError,
        AgentProviderError,
    )
}
"""Each `AGENT_*` code mapped to its class."""
