"""Foreign databases are left alone (issue 15, item 7).

Read commands never create or change a database file: an empty (0-byte) file reads as
a database with no runs and stays 0 bytes. A SQLite file of another application (tables,
but no smithers schema) is refused by every command with ``DB_NOT_SMITHERS``, naming the
file, and is not changed: no table added, its journal mode kept. A 0-byte or missing file
is fine for ``up``, which creates the schema.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result


def _foreign(path: Path) -> None:
    """Another application's SQLite file: one table, one row, rollback journal."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.commit()
    conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sidecars(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name + "-"))


READS = [
    ("ps",),
    ("ps", "--json"),
    ("inspect", "r1"),
    ("events", "r1"),
    ("logs", "r1"),
    ("output", "r1", "x"),
    ("approvals",),
]


@pytest.mark.parametrize("args", [*READS, ("down",), ("cancel", "r1")], ids=" ".join)
def test_a_command_on_existing_runs_leaves_an_empty_file_empty(
    cli: object, tmp_path: Path, args: tuple[str, ...]
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result: Result = cli.raw(*args, "--db", str(empty))  # type: ignore[attr-defined]
    assert empty.stat().st_size == 0
    assert _sidecars(empty) == []
    # An empty file is an empty database: no runs, not a crash on a missing table.
    assert "no such table" not in result.output


def test_ps_on_an_empty_file_lists_no_runs(cli: object, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result: Result = cli.raw("ps", "--json", "--db", str(empty))  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert empty.stat().st_size == 0


@pytest.mark.parametrize(
    "args", [*READS, ("down",), ("cancel", "r1"), ("supervise", "--once")], ids=" ".join
)
def test_every_command_refuses_a_foreign_database_unchanged(
    cli: object, tmp_path: Path, args: tuple[str, ...]
) -> None:
    other = tmp_path / "other_app.sqlite"
    _foreign(other)
    before = _digest(other)
    result: Result = cli.raw(*args, "--db", str(other))  # type: ignore[attr-defined]
    assert result.exit_code == 1, result.output
    assert "Error [DB_NOT_SMITHERS]" in result.stderr
    assert str(other) in result.stderr
    assert "not a smithers database" in result.stderr
    assert _digest(other) == before
    assert _sidecars(other) == []


def test_up_refuses_a_foreign_database_and_leaves_it_unchanged(cli: object, tmp_path: Path) -> None:
    other = tmp_path / "other_app.sqlite"
    _foreign(other)
    before = _digest(other)
    result: Result = cli.raw("up", str(cli.flows / "count.py"), "--db", str(other))  # type: ignore[attr-defined]
    assert result.exit_code == 1, result.output
    assert "Error [DB_NOT_SMITHERS]" in result.stderr
    assert str(other) in result.stderr
    assert _digest(other) == before
    assert _sidecars(other) == []
    conn = sqlite3.connect(other)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    assert tables == ["customers"]
    assert mode == "delete"


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_up_creates_the_schema_in_a_missing_or_empty_file(
    cli: object, tmp_path: Path, make: str
) -> None:
    target = tmp_path / "fresh.db"
    if make == "empty":
        target.touch()
    result: Result = cli.raw("up", str(cli.flows / "count.py"), "--json", "--db", str(target))  # type: ignore[attr-defined]
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "finished"
    listed: Result = cli.raw("ps", "--json", "--db", str(target))  # type: ignore[attr-defined]
    assert [r["status"] for r in json.loads(listed.stdout)] == ["finished"]


async def test_the_first_write_creates_the_schema_in_an_empty_file(tmp_path: Path) -> None:
    from smithers.eventstore import SQLiteEventStore
    from smithers.eventstore.events import RunStatusChanged

    empty = tmp_path / "empty.db"
    empty.touch()
    store = await SQLiteEventStore.open(empty, create=False)
    try:
        assert await store.list_runs() == []
        assert empty.stat().st_size == 0
        event = RunStatusChanged(run_id="r1", timestamp_ms=1, status="running")
        assert await store.append("r1", [event], expected_seq=0) == 1
        assert [r.run_id for r in await store.list_runs()] == ["r1"]
    finally:
        await store.close()


@pytest.mark.parametrize("read_only", [False, True])
async def test_a_reader_of_an_empty_file_sees_the_schema_another_store_writes(
    tmp_path: Path, read_only: bool
) -> None:
    from smithers.eventstore import SQLiteEventStore
    from smithers.eventstore.events import RunStatusChanged

    empty = tmp_path / "empty.db"
    empty.touch()
    reader = await SQLiteEventStore.open(empty, create=False, read_only=read_only)
    try:
        assert await reader.list_runs() == []
        async with await SQLiteEventStore.open(empty) as writer:
            event = RunStatusChanged(run_id="r1", timestamp_ms=1, status="running")
            await writer.append("r1", [event], expected_seq=0)
        assert [r.run_id for r in await reader.list_runs()] == ["r1"]
        assert await reader.last_seq("r1") == 1
    finally:
        await reader.close()
