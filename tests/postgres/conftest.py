"""Fixtures of the PostgreSQL tests: the server comes from tests/conftest.py `pg_url`.

Without ``SMITHERS_TEST_POSTGRES_URL`` (or with the server down, outside CI) every test
here is skipped with a reason saying how to run it.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # psycopg's async API (and aiosqlite, for the SQLite side of comparisons): asyncio.
    return "asyncio"
