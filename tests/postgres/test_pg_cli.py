"""End to end: ``smithers up FILE --db postgresql://...``, then reads of the run (subprocesses).

The URL is scoped to a fresh schema (``options=-csearch_path%3D...``, `pg_url`) and
carries a password the server ignores (trust authentication), so the tests can
check no command prints it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

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

SECRET = "pgs3cret"


def _with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    netloc, _, tail = rest.partition("/")
    user, at, host = netloc.rpartition("@")
    if not at:
        user, host = "root", netloc
    user = user.split(":", 1)[0]
    return f"{scheme}://{user}:{SECRET}@{host}/{tail}"


def smithers(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}
    proc = subprocess.run(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert SECRET not in proc.stdout + proc.stderr
    return proc


@pytest.mark.slow
def test_a_run_on_postgresql_runs_to_the_end_and_reads_back(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "count.py").write_text(textwrap.dedent(FLOW))
    db = _with_password(pg_url)

    up = smithers(
        tmp_path, "up", "count.py", "--db", db, "--input", '{"start": 4}', "--run-id", "r1"
    )
    assert up.returncode == 0, up.stderr
    assert "Run r1 finished" in up.stdout
    assert not (tmp_path / ".smithers").exists()  # nothing written beside: the log is there

    ps = smithers(tmp_path, "ps", "--db", db, "--json")
    assert ps.returncode == 0, ps.stderr
    assert [(r["runId"], r["status"]) for r in json.loads(ps.stdout)] == [("r1", "finished")]

    inspect = smithers(tmp_path, "inspect", "r1", "--db", db)
    assert inspect.returncode == 0, inspect.stderr
    assert "finished" in inspect.stdout
    assert "second" in inspect.stdout

    out = smithers(tmp_path, "output", "r1", "second", "--db", db)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"n": 5}

    events = smithers(tmp_path, "events", "r1", "--db", db, "--json")
    assert events.returncode == 0, events.stderr
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert lines[0]["type"] == "RunStarted"
    assert lines[-1]["type"] == "RunFinished"

    verify = smithers(tmp_path, "verify", "r1", "--db", db)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "log intact" in verify.stdout

    # To SQLite and back: the same rows, the same chain head.
    bundle = str(tmp_path / "r1.jsonl.gz")
    assert smithers(tmp_path, "export", "r1", "-o", bundle, "--db", db).returncode == 0
    imported = smithers(tmp_path, "import", bundle, "--db", "copy.db")
    assert imported.returncode == 0, imported.stderr
    there = smithers(tmp_path, "verify", "r1", "--log-only", "--db", "copy.db")
    assert there.returncode == 0, there.stdout + there.stderr
    head = verify.stdout.split("(last ")[1].split(")")[0]
    assert f"(last {head})" in there.stdout


@pytest.mark.slow
def test_a_missing_run_and_an_unreachable_server_exit_cleanly(pg_url: str, tmp_path: Path) -> None:
    missing = smithers(tmp_path, "inspect", "nosuch", "--db", _with_password(pg_url))
    assert missing.returncode != 0
    assert "Error [" in missing.stderr
    assert "Traceback" not in missing.stderr

    down = smithers(
        tmp_path, "ps", "--db", f"postgresql://root:{SECRET}@127.0.0.1:1/x?connect_timeout=2"
    )
    assert down.returncode != 0
    assert "Error [DB_QUERY_FAILED]" in down.stderr
    assert "Traceback" not in down.stderr
