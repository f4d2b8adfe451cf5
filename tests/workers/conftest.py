"""Fixtures of the queue/worker/migrate tests; PostgreSQL comes from tests/conftest.py `pg_url`."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # psycopg's async API (and aiosqlite for the SQLite side): asyncio.
    return "asyncio"
