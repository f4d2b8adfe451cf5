"""The store's read-only mode: ``mode=ro``, ``immutable=1`` when nothing may be written."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from smithers.eventstore import SQLiteEventStore
from smithers.eventstore.errors import DatabaseQueryError, DatabaseWriteError
from smithers.eventstore.events import Event, RunStatusChanged

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def status_events(run_id: str, n: int) -> list[Event]:
    return [
        RunStatusChanged(run_id=run_id, timestamp_ms=1_000 + i, status="running") for i in range(n)
    ]


async def make_db(path: Path) -> None:
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 2), expected_seq=0, workflow_name="wf")
        await store.put_checkpoint("r1", 2, b"state")


def sidecars(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


async def test_a_read_only_store_reads_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await make_db(path)
    before = path.read_bytes()

    async with await SQLiteEventStore.open(path, read_only=True) as store:
        assert store.read_only
        assert store.uri is not None
        assert store.uri.endswith("?mode=ro")  # writable here: no immutable
        assert [e.seq for e in await store.read("r1")] == [1, 2]
        assert (await store.get_run("r1")) is not None
        assert await store.get_checkpoint("r1", at_or_before_seq=9) == (2, b"state")
        assert await store._call(lambda c: c.execute("PRAGMA query_only").fetchone()[0]) == 1
        for write in (
            lambda: store.append("r1", status_events("r1", 1), expected_seq=2),
            lambda: store.put_checkpoint("r1", 3, b"x"),
            lambda: store.delete_checkpoints(),
        ):
            with pytest.raises(DatabaseWriteError, match="read-only") as info:
                await write()
            assert info.value.code == "DB_WRITE_FAILED"
            assert info.value.details["readOnly"] is True
            assert info.value.hint is not None
            assert "--db" in info.value.hint

    assert path.read_bytes() == before


async def test_a_read_only_folder_is_opened_immutable_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ro"
    path = folder / "s.db"
    await make_db(path)
    before = path.read_bytes()
    assert sidecars(path) == []
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        async with await SQLiteEventStore.open(path, read_only=True) as store:
            assert store.uri is not None
            assert "mode=ro" in store.uri
            assert store.uri.endswith("&immutable=1")
            assert [e.seq for e in await store.read("r1")] == [1, 2]
            assert [r.run_id for r in await store.list_runs()] == ["r1"]
            assert await store.list_leases() == []
            with pytest.raises(DatabaseWriteError, match="read-only"):
                await store.append("r1", status_events("r1", 1), expected_seq=2)
            assert sidecars(path) == []
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    assert path.read_bytes() == before


async def test_a_read_only_open_of_a_missing_or_foreign_file_is_a_query_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(DatabaseQueryError):
        await SQLiteEventStore.open(tmp_path / "nope.db", read_only=True)
    assert not (tmp_path / "nope.db").exists()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseQueryError):
        await SQLiteEventStore.open(junk, read_only=True)
