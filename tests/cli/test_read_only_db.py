"""Read commands audit a read-only database; a write command says it is read-only.

Root ignores permission bits, so the subprocess tests run the CLI as ``nobody`` when
the suite runs as root (``setpriv``, keeping only the capability to read any file, so
the interpreter under /root still loads but nothing can be written), and as the
current user otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from smithers.cli._errors import exit_code_for_error

if TYPE_CHECKING:
    from collections.abc import Iterator

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SETPRIV = shutil.which("setpriv")

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions"),
    pytest.mark.skipif(IS_ROOT and SETPRIV is None, reason="needs setpriv to drop root"),
]

READ_COMMANDS = [
    ("ps",),
    ("ps", "--json"),
    ("inspect", "{run}"),
    ("inspect", "{run}", "--json"),
    ("events", "{run}"),
    ("events", "{run}", "--json"),
    ("output", "{run}", "second"),
    ("node", "{run}", "second"),
    ("timeline", "{run}"),
    ("state", "{run}", "--frame", "1"),
    ("diff", "{run}", "--from", "1", "--to", "2"),
]


@pytest.fixture
def ro_copy(cli: Any, finished_run: str) -> Iterator[Path]:
    """A copy of the test's database in a folder the reader can read but not write."""
    base = Path(tempfile.mkdtemp(prefix="smithers-ro-"))
    base.chmod(0o755)
    folder = base / "ro"
    folder.mkdir()
    copy = folder / "smithers.db"
    shutil.copyfile(cli.db, copy)
    copy.chmod(0o444)
    folder.chmod(0o555)
    try:
        yield copy
    finally:
        folder.chmod(0o755)
        shutil.rmtree(base)


def as_reader(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smithers ARGS --db DB`` as a user who cannot write `db`."""
    cmd = [sys.executable, "-m", "smithers", *args, "--db", str(db)]
    if IS_ROOT:
        assert SETPRIV is not None
        caps = "+dac_read_search"
        drop = ["--reuid=65534", "--regid=65534", "--clear-groups"]
        cmd = [SETPRIV, *drop, f"--inh-caps={caps}", f"--ambient-caps={caps}", *cmd]
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}
    env.update(HOME=str(db.parent), PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    return subprocess.run(
        cmd, cwd=db.parent, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_work_on_a_read_only_copy(
    ro_copy: Path, finished_run: str, command: tuple[str, ...]
) -> None:
    before = ro_copy.read_bytes()
    result = as_reader(ro_copy, *(arg.format(run=finished_run) for arg in command))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert ro_copy.read_bytes() == before
    assert sorted(p.name for p in ro_copy.parent.iterdir()) == ["smithers.db"]


def test_verify_works_on_a_read_only_copy(ro_copy: Path, finished_run: str) -> None:
    result = as_reader(ro_copy, "verify", finished_run, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)


@pytest.mark.parametrize(
    "command",
    [("cancel", "{run}"), ("rewind", "{run}", "--frame", "1", "--yes"), ("down",)],
)
def test_a_write_command_says_the_database_is_read_only(
    ro_copy: Path, finished_run: str, command: tuple[str, ...]
) -> None:
    before = ro_copy.read_bytes()
    result = as_reader(ro_copy, *(arg.format(run=finished_run) for arg in command))
    if result.returncode == 0:  # nothing to write: `down` with no active run
        assert command == ("down",)
        return
    assert "Error [DB_WRITE_FAILED]" in result.stderr, result.stderr
    assert "read-only" in result.stderr
    assert "unable to open" not in result.stderr.split("\n", 1)[0]
    assert result.returncode == exit_code_for_error("DB_WRITE_FAILED")
    assert ro_copy.read_bytes() == before


def test_in_process_reads_of_a_read_only_folder_create_no_sidecars(
    cli: Any, finished_run: str
) -> None:
    folder = cli.db.parent
    for extra in folder.glob("smithers.db-*"):
        extra.unlink()
    cli.db.chmod(0o444)
    folder.chmod(0o555)
    try:
        for command in READ_COMMANDS:
            result = cli(*(arg.format(run=finished_run) for arg in command))
            assert result.exit_code == 0, (command, result.output)
        out = json.loads(cli("inspect", finished_run, "--json").stdout)
        assert out
        names = sorted(p.name for p in folder.iterdir() if p.name.startswith("smithers.db"))
        assert names == ["smithers.db"]
    finally:
        folder.chmod(0o755)
        cli.db.chmod(0o644)
