"""``smithers verify`` checks the stored log against its hash chain first (issue 16).

The database is tampered with directly through sqlite3, as someone editing the file
would, and ``smithers verify`` runs in a real process.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path


def smithers(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def flip_one_byte(db: Path, run_id: str, seq: int) -> None:
    """Change one digit of the event's stored ``timestampMs`` (the JSON stays valid)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        (payload,) = conn.execute(
            "SELECT payload FROM _smithers_events WHERE run_id = ? AND seq = ?", (run_id, seq)
        ).fetchone()
        data = bytearray(payload)
        at = data.index(b'"timestampMs":') + len(b'"timestampMs":')
        data[at + 3] = ord("1") if data[at + 3] != ord("1") else ord("2")
        conn.execute(
            "UPDATE _smithers_events SET payload = ? WHERE run_id = ? AND seq = ?",
            (bytes(data), run_id, seq),
        )


def delete_row(db: Path, run_id: str, seq: int) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("DELETE FROM _smithers_events WHERE run_id = ? AND seq = ?", (run_id, seq))


def swap_rows(db: Path, run_id: str, a: int, b: int) -> None:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for old, new in ((a, -1), (b, a), (-1, b)):
            conn.execute(
                "UPDATE _smithers_events SET seq = ? WHERE run_id = ? AND seq = ?",
                (new, run_id, old),
            )


def row_count(db: Path, run_id: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        count: int = conn.execute(
            "SELECT COUNT(*) FROM _smithers_events WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
    return count


def test_verify_checks_an_intact_log_first(cli: Any, finished_run: str) -> None:
    out = json.loads(cli("verify", finished_run, "--json").stdout)
    assert out["ok"] is True
    assert out["chain"]["status"] == "ok"
    assert out["chain"]["ok"] is True
    assert out["chain"]["rowsChecked"] == row_count(cli.db, finished_run)
    assert re.fullmatch(r"[0-9a-f]{64}", out["chain"]["lastHash"])
    assert out["framesChecked"] >= 4

    text = cli("verify", finished_run)
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"Run {finished_run}: log intact, ")
    assert "all match" in lines[1]

    only = cli("verify", finished_run, "--log-only", "--json")
    assert only.exit_code == 0
    log_only = json.loads(only.stdout)
    assert (log_only["logOnly"], log_only["framesChecked"]) == (True, 0)
    assert log_only["chain"] == out["chain"]
    assert "re-rendered" not in cli("verify", finished_run, "--log-only").stdout


@pytest.mark.parametrize(
    ("tamper", "seq", "reason", "says"),
    [
        (lambda db, run: flip_one_byte(db, run, 3), 3, "payload", "seq 3: payload bytes changed"),
        (
            lambda db, run: delete_row(db, run, 4),
            4,
            "gap",
            "seq 4: row missing (gap at seq 4)",
        ),
        (lambda db, run: swap_rows(db, run, 2, 5), 2, "order", "seq 2: out of order"),
    ],
    ids=["one-byte-edit", "deleted-row", "swapped-rows"],
)
def test_verify_names_the_first_tampered_seq(
    cli: Any, finished_run: str, tamper: Any, seq: int, reason: str, says: str
) -> None:
    tamper(cli.db, finished_run)
    cli.tampered = True

    found = smithers(cli.db, "verify", finished_run, "--log-only", "--json")
    assert found.returncode == 1, found.stderr
    chain = json.loads(found.stdout)["chain"]
    assert (chain["status"], chain["seq"], chain["reason"]) == ("broken", seq, reason)
    assert chain["message"].startswith(says)

    text = smithers(cli.db, "verify", finished_run, "--log-only")
    assert text.returncode == 1
    assert f"log BROKEN at {says}" in text.stdout
    assert "restore the database from a backup" in text.stdout

    # Without --log-only the determinism check still runs (or says what stopped it).
    whole = smithers(cli.db, "verify", finished_run, "--json")
    assert whole.returncode == 1, whole.stderr
    assert "Traceback" not in whole.stderr
    result = json.loads(whole.stdout)
    assert result["ok"] is False
    assert result["chain"]["seq"] == seq
    assert result["framesChecked"] > 0 or result["determinismError"] is not None


def test_a_one_byte_edit_leaves_the_determinism_check_running(cli: Any, finished_run: str) -> None:
    flip_one_byte(cli.db, finished_run, 2)
    cli.tampered = True
    out = json.loads(cli("verify", finished_run, "--json").stdout)
    assert out["chain"]["seq"] == 2
    assert out["framesChecked"] >= 4
    assert out["firstMismatch"] is None
    assert out["determinismError"] is None


def test_a_replays_log_chains_from_its_parent(cli: Any, finished_run: str) -> None:
    child = json.loads(cli("replay", finished_run, "--frame", "1", "--json").stdout)["runId"]

    out = smithers(cli.db, "verify", child, "--log-only", "--json")
    assert out.returncode == 0, out.stderr
    chain = json.loads(out.stdout)["chain"]
    assert chain["status"] == "ok"
    assert chain["parentRunId"] == finished_run
    assert chain["parentSeq"] >= 1

    # The fork's first row hangs on the parent's row at the fork point.
    with closing(sqlite3.connect(cli.db, isolation_level=None)) as conn:
        conn.execute(
            "UPDATE _smithers_events SET hash = zeroblob(32) WHERE run_id = ? AND seq = ?",
            (finished_run, chain["parentSeq"]),
        )
    cli.tampered = True
    moved = json.loads(smithers(cli.db, "verify", child, "--log-only", "--json").stdout)
    assert (moved["chain"]["status"], moved["chain"]["seq"]) == ("broken", 1)


def test_a_fork_whose_parent_was_deleted_still_verifies(cli: Any, finished_run: str) -> None:
    child = json.loads(cli("replay", finished_run, "--frame", "1", "--json").stdout)["runId"]
    with closing(sqlite3.connect(cli.db, isolation_level=None)) as conn:
        conn.execute("DELETE FROM _smithers_events WHERE run_id = ?", (finished_run,))

    out = smithers(cli.db, "verify", child, "--log-only", "--json")
    assert out.returncode == 0, out.stdout
    chain = json.loads(out.stdout)["chain"]
    assert (chain["status"], chain["parentMissing"]) == ("ok", True)
    assert "that row is gone" in smithers(cli.db, "verify", child, "--log-only").stdout

    flip_one_byte(cli.db, child, 2)
    cli.tampered = True
    broken = json.loads(smithers(cli.db, "verify", child, "--log-only", "--json").stdout)
    assert (broken["chain"]["status"], broken["chain"]["seq"]) == ("broken", 2)


def downgrade_to_version_2(db: Path) -> None:
    """Make `db` what smithers of schema version 2 wrote: the events without hashes."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "CREATE TABLE old_events (position INTEGER PRIMARY KEY, run_id TEXT NOT NULL, "
            "seq INTEGER NOT NULL, type TEXT NOT NULL, timestamp_ms INTEGER NOT NULL, "
            "payload BLOB NOT NULL, UNIQUE (run_id, seq))"
        )
        conn.execute(
            "INSERT INTO old_events SELECT position, run_id, seq, type, timestamp_ms, payload "
            "FROM _smithers_events"
        )
        conn.execute("DROP TABLE _smithers_events")
        conn.execute("ALTER TABLE old_events RENAME TO _smithers_events")
        conn.execute("PRAGMA user_version = 2")
        conn.execute("COMMIT")


def test_verify_of_a_version_2_database_then_after_its_migration(
    cli: Any, finished_run: str
) -> None:
    downgrade_to_version_2(cli.db)

    absent = smithers(cli.db, "verify", finished_run, "--log-only")
    assert absent.returncode == 0, absent.stderr
    assert "log not checked" in absent.stdout
    assert "without a hash chain" in absent.stdout
    whole = smithers(cli.db, "verify", finished_run, "--json")
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["chain"]["status"] == "absent"

    # A write command opens it writable: the chain is computed, the version bumped.
    assert cli("cancel", finished_run).exit_code == 0  # "already ended", but opened writable
    with closing(sqlite3.connect(cli.db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    migrated = smithers(cli.db, "verify", finished_run, "--log-only", "--json")
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["chain"]["status"] == "ok"
