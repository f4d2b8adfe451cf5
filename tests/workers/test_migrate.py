"""``smithers migrate --from FILE --to postgresql://...``: real SQLite file, live server.

The runs are made by real ``smithers up`` subprocesses on SQLite; the copy is compared
row by row (seq, type, timestamp, payload bytes, chain hash) with the source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

from smithers.eventstore import open_store

if TYPE_CHECKING:
    from pathlib import Path

FLOW = """
    from __future__ import annotations

    import msgspec
    from smithers import Sequence, Task, workflow

    class Count(msgspec.Struct):
        n: int

    @workflow("count")
    def count(ctx):
        return Sequence(
            Task("first", output=Count, value={"n": 1}),
            Task("second", output=Count, run=lambda: {"n": ctx.input.get("start", 0) + 1}),
        )
"""


def smithers(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _rows(db: str) -> dict[str, list[tuple[int, str, int, bytes, bytes]]]:
    store = await open_store(db, create=False)
    try:
        out = {}
        for record in await store.list_runs():
            out[record.run_id] = [
                (r.seq, r.type, r.timestamp_ms, r.data, r.hash)
                for r in await store.read_chained(record.run_id)
            ]
        return out
    finally:
        await store.close()


async def _statuses(db: str) -> dict[str, tuple[str, str, int]]:
    store = await open_store(db, create=False)
    try:
        return {r.run_id: (r.status, r.workflow_name, r.last_seq) for r in await store.list_runs()}
    finally:
        await store.close()


async def test_migrate_copies_every_row_byte_for_byte_and_twice_is_a_no_op(
    pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "count.py").write_text(textwrap.dedent(FLOW))
    db = str(tmp_path / "runs" / "smithers.db")
    for n in (1, 2, 3):
        up = smithers(
            tmp_path,
            "up",
            "count.py",
            "--db",
            db,
            "--run-id",
            f"r{n}",
            "--input",
            json.dumps({"start": n}),
        )
        assert up.returncode == 0, up.stderr
    fork = smithers(tmp_path, "fork", "r2", "--frame", "1", "--db", db, "--run-id", "f1")
    assert fork.returncode == 0, fork.stderr

    first = smithers(tmp_path, "migrate", "--from", db, "--to", pg_url, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert sorted(r["runId"] for r in report["runs"]) == ["f1", "r1", "r2", "r3"]
    assert {r["outcome"] for r in report["runs"]} == {"imported"}
    assert report["written"] == 4
    assert "migrate: 4/4 runs" in first.stderr  # progress on stderr

    source = await _rows(db)
    copied = await _rows(pg_url)
    assert copied == source  # same seqs, types, timestamps, payload bytes and chain hashes
    assert all(rows and rows[-1][4] for rows in copied.values())  # chain heads present
    assert await _statuses(pg_url) == await _statuses(db)

    again = smithers(tmp_path, "migrate", "--from", db, "--to", pg_url, "--json")
    assert again.returncode == 0, again.stderr
    assert {r["outcome"] for r in json.loads(again.stdout)["runs"]} == {"identical"}
    assert json.loads(again.stdout)["written"] == 0
    assert await _rows(pg_url) == source

    # The copy is a working database: the CLI reads it like the source.
    ps = smithers(tmp_path, "ps", "--db", pg_url, "--json")
    assert ps.returncode == 0, ps.stderr
    assert {r["runId"] for r in json.loads(ps.stdout)} == {"f1", "r1", "r2", "r3"}
    verify = smithers(tmp_path, "verify", "r2", "--db", pg_url)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_migrate_refuses_a_target_that_is_not_postgresql(tmp_path: Path) -> None:
    db = tmp_path / "smithers.db"
    db.write_bytes(b"")
    other = smithers(tmp_path, "migrate", "--from", str(db), "--to", str(tmp_path / "b.db"))
    assert other.returncode == 4
    assert "Error [INVALID_INPUT]" in other.stderr
    assert "postgresql://" in other.stderr
    assert "Traceback" not in other.stderr


def test_migrate_refuses_a_missing_source(tmp_path: Path) -> None:
    gone = smithers(
        tmp_path,
        "migrate",
        "--from",
        str(tmp_path / "nope.db"),
        "--to",
        "postgresql://root@127.0.0.1:5432/test",
    )
    assert gone.returncode == 4
    assert "Error [INVALID_INPUT]" in gone.stderr
    assert "nope.db" in gone.stderr
    assert "Traceback" not in gone.stderr
