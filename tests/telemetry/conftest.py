"""Fixtures of the telemetry tests: a SQLite file per test, asyncio for aiosqlite."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite runs its connection thread against asyncio only.
    return "asyncio"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of the test's SQLite database (created by the first run)."""
    return tmp_path / "smithers.db"
