"""Run ids are names, not paths (issue 8, item 4), through the CLI.

``--run-id '../../../../escaped'`` once wrote ``stream.ndjson`` outside the log folder;
now every ``RUN`` argument and ``--run-id`` option is refused with ``INVALID_INPUT``
(exit 4) before anything is opened or written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

ESCAPE = "../../../../escaped"


def _smithers(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "SMITHERS_DEBUG")}
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_up_run_id_escaping_the_log_folder_is_refused(tmp_path: Path, flows: Path) -> None:
    # Deep enough that ../../../../ stays inside tmp_path, where the test can look.
    work = tmp_path / "a" / "b" / "c" / "d"
    work.mkdir(parents=True)
    before = _files(tmp_path)
    result = _smithers(work, "up", str(flows / "count.py"), "--run-id", ESCAPE)
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("Error [INVALID_INPUT]: Invalid --run-id ")
    assert "letters, digits" in result.stderr
    assert "Traceback" not in result.stderr
    assert _files(tmp_path) == before  # no database, no log folder, no escaped/
    assert not any(p.name == "escaped" for p in tmp_path.parent.iterdir())


def _json(cli: Any, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_fork_and_replay_run_id_escaping_is_refused(cli: Any, db: Path, tmp_path: Path) -> None:
    up = cli.up_json("count.py", "--run-id", "parent")
    assert up["status"] == "finished"
    for verb in ("fork", "replay"):
        result = _smithers(
            tmp_path, verb, "parent", "--frame", "0", "--run-id", ESCAPE, "--db", str(db)
        )
        assert result.returncode == 4, result.stderr
        assert result.stderr.startswith("Error [INVALID_INPUT]: Invalid --run-id ")
    assert sorted(os.listdir(db.parent / "executions")) == ["parent"]
    assert [r["runId"] for r in _json(cli, "ps")] == ["parent"]


def test_replay_takes_a_run_id(cli: Any) -> None:
    cli.up_json("count.py", "--run-id", "parent")
    result = cli("replay", "parent", "--frame", "0", "--run-id", "again", "--json")
    assert result.exit_code == 0, result.output
    assert _json(cli, "inspect", "again")["status"] == "finished"


@pytest.mark.parametrize(
    "args",
    [
        ("inspect", "RUN"),
        ("events", "RUN"),
        ("logs", "RUN"),
        ("output", "RUN", "first"),
        ("timeline", "RUN"),
        ("state", "RUN", "--frame", "0"),
        ("cancel", "RUN"),
        ("hijack", "RUN"),
        ("rewind", "RUN", "--frame", "0", "--yes"),
        ("fork", "RUN", "--frame", "0"),
        ("replay", "RUN", "--frame", "0"),
        ("retry-task", "RUN", "--node", "first"),
        ("up", "--resume", "RUN"),
    ],
)
@pytest.mark.parametrize("bad", ["../parent", "a/b", "..", "x" * 129])
def test_every_run_argument_is_checked(
    cli: Any, args: tuple[str, ...], bad: str, finished_run: str
) -> None:
    result = cli(*(bad if a == "RUN" else a for a in args))
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("Error [INVALID_INPUT]: Invalid run id ")
    assert "smithers ps" in result.stderr
