"""Fixtures of the tool tests: a sandbox folder in `tmp_path` and a journaling context."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from smithers.engine.tools import ToolContext

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.eventstore.events import Event


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "sandbox"
    folder.mkdir()
    return folder


@pytest.fixture
def journal() -> list[Event]:
    return []


@pytest.fixture
def ctx(root: Path, journal: list[Event]) -> ToolContext:
    return ToolContext(
        root,
        journal=journal.append,
        run_id="run-1",
        node_id="fix",
        iteration=0,
        attempt=1,
        tool_timeout_ms=10_000,
    )
