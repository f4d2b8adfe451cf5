"""One-line model agents: `openai("gpt-…")` and `anthropic("claude-…")`.

Each builds a ``pydantic_ai.Agent`` on Pydantic AI's provider for the official SDK
(``OpenAIChatModel``/``AnthropicModel``) and wraps it in `PydanticAIAgent`, deferred to
the first `PydanticAIAgent.generate`, so a workflow using one can be defined, listed and
graphed without an API key. The SDK's own retries are off by default (``max_retries=0``):
the engine retries, visibly in the log, honouring ``retry-after``.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic_ai import Agent as PydanticAgent

from ._pydantic import PydanticAIAgent
from .errors import AgentConfigInvalidError

__all__ = ("anthropic", "openai")


def _api_key(api_key: str | None, env: str, *, who: str, model: str) -> str:
    key = api_key or os.environ.get(env)
    if not key:
        raise AgentConfigInvalidError(
            f"No API key for {who} model {model!r}: pass api_key= or set {env}",
            details={"agentEngine": who, "agentModel": model},
            hint=f"export {env}=... (or pass api_key=) before running the workflow.",
        )
    return key


def openai(
    model: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    instructions: str | None = None,
    name: str | None = None,
    max_retries: int = 0,
    **agent_kwargs: Any,
) -> PydanticAIAgent:
    """An OpenAI chat model as a durable smithers agent (Pydantic AI's ``OpenAIChatModel``).

    Nothing is checked or connected here: the client is built at the first
    `PydanticAIAgent.generate`, so a workflow using it can be defined, listed and
    graphed without a key.

    Example:
        ```python
        from smithers import agents

        Task("triage", output=Triage, agent=agents.openai("gpt-4o-mini"), prompt="...")
        ```

    Args:
        model: The model name, e.g. ``"gpt-4o-mini"``.
        api_key: The API key; default: ``OPENAI_API_KEY``.
        base_url: The API's base URL (e.g. a local server's ``http://127.0.0.1:8000/v1``);
            default: the SDK's (``OPENAI_BASE_URL`` or OpenAI's).
        instructions: The agent's instructions (a system prompt).
        name: The agent's name, also its smithers id (default ``"openai:<model>"``).
        max_retries: Retries of the SDK itself; 0 by default, so failures reach the
            engine, which retries them visibly in the log (honouring ``retry-after``).
        **agent_kwargs: More ``pydantic_ai.Agent`` arguments (``tools=``, ``retries=``,
            ``model_settings=``, ...).

    Returns:
        The `PydanticAIAgent`.

    Raises:
        AgentConfigInvalidError: at the first `generate` when no API key is given or set.
    """

    def build() -> PydanticAgent[Any, Any]:
        key = _api_key(api_key, "OPENAI_API_KEY", who="openai", model=model)
        import openai as sdk
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        client = sdk.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=max_retries)
        chat = OpenAIChatModel(model, provider=OpenAIProvider(openai_client=client))
        return PydanticAgent(chat, instructions=instructions, name=name, **agent_kwargs)

    return PydanticAIAgent._deferred(
        build, id=name or f"openai:{model}", model=model, provider="openai"
    )


def anthropic(
    model: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    instructions: str | None = None,
    name: str | None = None,
    max_retries: int = 0,
    **agent_kwargs: Any,
) -> PydanticAIAgent:
    """An Anthropic model as a durable smithers agent (Pydantic AI's ``AnthropicModel``).

    As `openai`: built at the first `generate`, so no key is needed to define a workflow.

    Args:
        model: The model name, e.g. ``"claude-sonnet-4-5"``.
        api_key: The API key; default: ``ANTHROPIC_API_KEY``.
        base_url: The API's base URL (e.g. ``http://127.0.0.1:8000``); default: the SDK's.
        instructions: The agent's instructions (a system prompt).
        name: The agent's name, also its smithers id (default ``"anthropic:<model>"``).
        max_retries: Retries of the SDK itself; 0 by default (the engine retries).
        **agent_kwargs: More ``pydantic_ai.Agent`` arguments.

    Returns:
        The `PydanticAIAgent`.

    Raises:
        AgentConfigInvalidError: at the first `generate` when no API key is given or set.
    """

    def build() -> PydanticAgent[Any, Any]:
        key = _api_key(api_key, "ANTHROPIC_API_KEY", who="anthropic", model=model)
        import anthropic as sdk
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        client = sdk.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=max_retries)
        claude = AnthropicModel(model, provider=AnthropicProvider(anthropic_client=client))
        return PydanticAgent(claude, instructions=instructions, name=name, **agent_kwargs)

    return PydanticAIAgent._deferred(
        build, id=name or f"anthropic:{model}", model=model, provider="anthropic"
    )
