"""Placeholder: the Pydantic AI adapter (`PydanticAIAgent`) lands here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._protocol import AgentRequest, AgentResult

__all__ = ("PydanticAIAgent",)


class PydanticAIAgent:
    """Wraps a ``pydantic_ai.Agent`` as a smithers `Agent` (not built yet)."""

    def __init__(self, agent: Any) -> None:
        raise NotImplementedError("the Pydantic AI adapter is not built yet")

    async def generate(self, request: AgentRequest) -> AgentResult:
        """Not built yet."""
        raise NotImplementedError
