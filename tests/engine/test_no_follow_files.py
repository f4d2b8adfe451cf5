"""Issue 15, item 4: the NDJSON mirror and detached processes' logs never follow a symlink.

A symlink planted at the path of a file the engine writes is refused with one warning
(the run, or the process, goes on); new files get the database file's permissions.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from typing import TYPE_CHECKING, Any

import pytest
from smithers.engine import spawn_detached
from smithers.engine.activation import STREAM_FILE, NdjsonMirror

from smithers import Task, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path


@workflow("two")
def two(ctx: Any) -> Any:
    return [
        Task("a", output=dict[str, Any], value={"n": 1}),
        Task("b", output=dict[str, Any], run=lambda: {"n": 2}),
    ]


def _plant(link: Path, target: Path) -> bytes:
    """A symlink at `link` to `target`, a file outside holding a secret; its bytes."""
    target.write_bytes(b"do not touch\n")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return target.read_bytes()


def _mirror_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "symbolic link" in r.getMessage()]


async def test_a_symlink_at_the_mirror_path_is_not_followed_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = tmp_path / "logs"
    outside = tmp_path / "outside.txt"
    before = _plant(logs / STREAM_FILE, outside)
    with caplog.at_level(logging.WARNING, logger="smithers.engine"):
        result = await run_workflow(two, db=tmp_path / "s.db", log_dir=logs)
    assert result.status == "finished"
    assert outside.read_bytes() == before
    assert (logs / STREAM_FILE).is_symlink()
    assert len(_mirror_warnings(caplog)) == 1  # warned once, not per event


async def test_a_dangling_symlink_at_the_mirror_path_creates_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    outside = tmp_path / "would-be-created.txt"
    (logs / STREAM_FILE).symlink_to(outside)
    with caplog.at_level(logging.WARNING, logger="smithers.engine"):
        result = await run_workflow(two, db=tmp_path / "s.db", log_dir=logs)
    assert result.status == "finished"
    assert not outside.exists()
    assert len(_mirror_warnings(caplog)) == 1


async def test_the_mirror_is_created_with_the_database_file_permissions(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await run_workflow(two, db=db, run_id="r1")  # creates the database
    os.chmod(db, 0o640)
    old = os.umask(0o000)  # the file gets the database's bits, not 0o666 & ~umask
    try:
        await run_workflow(two, db=db, run_id="r2")
    finally:
        os.umask(old)
    mirror = tmp_path / "executions" / "r2" / "logs" / STREAM_FILE
    assert mirror.read_bytes().count(b"\n") > 3
    assert stat.S_IMODE(mirror.stat().st_mode) == 0o640


def test_a_mirror_file_that_exists_keeps_working(tmp_path: Path) -> None:
    mirror = NdjsonMirror(tmp_path)
    assert mirror.extend("r", 1, [b'{"type":"X","runId":"r"}']) == 0
    mirror.close()
    assert NdjsonMirror(tmp_path).extend("r", 2, [b'{"type":"Y","runId":"r"}']) == 1
    assert (tmp_path / STREAM_FILE).read_bytes().count(b"\n") == 2


@pytest.mark.parametrize("which", ["log", "stdout"])
def test_a_symlink_at_a_detached_process_log_is_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    log_file = tmp_path / "logs" / "up.log"
    stdout_file = tmp_path / "logs" / "up.json"
    outside = tmp_path / "outside.txt"
    before = _plant(log_file if which == "log" else stdout_file, outside)
    argv = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    with caplog.at_level(logging.WARNING, logger="smithers.engine"):
        proc = spawn_detached(argv, log_file, header="--- start", stdout_file=stdout_file)
    assert proc.wait(timeout=20) == 0  # type: ignore[attr-defined]
    assert outside.read_bytes() == before
    assert len(_mirror_warnings(caplog)) == 1
    if which == "stdout":
        assert log_file.read_bytes() == b"--- start\nerr\n"  # the other file is written
    else:
        assert stdout_file.read_bytes() == b"out\n"


def test_detached_logs_get_the_database_file_permissions(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    db.write_bytes(b"")
    os.chmod(db, 0o640)
    log_file = tmp_path / "logs" / "up.log"
    proc = spawn_detached([sys.executable, "-c", "pass"], log_file, db_path=db)
    assert proc.wait(timeout=20) == 0  # type: ignore[attr-defined]
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o640
