"""Done when: a run exported on one machine is inspected and forked on another.

Each step is a real ``python -m smithers`` process; machine B has its own folder and
database and no copy of machine A's workflow files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def _smithers(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "TRAVEL_MARKER")}
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ok(cwd: Path, *args: str) -> str:
    done = _smithers(cwd, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_run_exported_on_one_machine_is_inspected_and_forked_on_another(
    tmp_path: Path, flows: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    db_a, db_b = str(a / "smithers.db"), str(b / "smithers.db")
    up = _ok(a, "up", str(flows / "count.py"), "--input", '{"start": 5}', "--json", "--db", db_a)
    run_id = json.loads(up)["runId"]
    _ok(a, "export", run_id, "-o", str(tmp_path / "run.smithers.jsonl.gz"), "--db", db_a)
    shutil.move(tmp_path / "run.smithers.jsonl.gz", b / "run.smithers.jsonl.gz")
    shutil.rmtree(flows)

    first = json.loads(_ok(b, "import", "run.smithers.jsonl.gz", "--json", "--db", db_b))
    again = json.loads(_ok(b, "import", "run.smithers.jsonl.gz", "--json", "--db", db_b))

    assert [r["outcome"] for r in first["runs"]] == ["imported"]
    assert [r["outcome"] for r in again["runs"]] == ["identical"]
    inspected = json.loads(_ok(b, "inspect", run_id, "--json", "--db", db_b))
    assert inspected["status"] == "finished"
    assert {n["nodeId"]: n["state"] for n in inspected["nodes"]} == {
        "first": "finished",
        "second": "finished",
        "third": "finished",
    }
    (entry,) = first["workflows"]
    forked = _ok(
        b, "fork", run_id, "--frame", "1", "--run", "--workflow", entry, "--json", "--db", db_b
    )
    child = json.loads(forked.splitlines()[-1])["runId"]
    assert json.loads(_ok(b, "output", child, "third", "--json", "--db", db_b)) == {"n": 11}
    timeline = json.loads(_ok(b, "timeline", run_id, "--json", "--db", db_b))
    assert [c["runId"] for c in timeline["children"]] == [child]
