"""The real entry point, ``python -m smithers``, in a subprocess: exit codes and streams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest


@pytest.fixture
def smithers(tmp_path: Any) -> Any:
    """``smithers(*args)``: run ``python -m smithers ARGS`` in `tmp_path`, SMITHERS_DB unset."""
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "SMITHERS_DEBUG")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    return run


def test_up_then_read_it_back(smithers: Any, flows: Any, db: Any) -> None:
    up = smithers("up", str(flows / "count.py"), "--input", '{"start": 5}', "--db", str(db))
    assert up.returncode == 0, up.stderr
    assert up.stderr == ""
    assert "finished  third" in up.stdout
    run_id = up.stdout.split("Run ", 1)[1].split()[0]
    out = smithers("output", run_id, "second", "--db", str(db))
    assert out.returncode == 0
    assert json.loads(out.stdout) == {"n": 6}


def test_failed_run_exits_1_without_traceback(smithers: Any, flows: Any, db: Any) -> None:
    up = smithers("up", str(flows / "bad.py"), "--db", str(db))
    assert up.returncode == 1
    assert "Error [WORKFLOW_EXECUTION_FAILED]: ValueError: boom" in up.stderr
    assert "Traceback" not in up.stderr + up.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("up", "flows/missing.py"), "INVALID_INPUT"),
        (("up", "flows/empty.py"), "WORKFLOW_MISSING_DEFAULT"),
        (("up", "flows/count.py", "--input", "{oops"), "INVALID_INPUT"),
        (("inspect", "run-nope"), "CLI_DB_NOT_FOUND"),
    ],
)
def test_bad_input_exits_4_without_traceback(
    smithers: Any, flows: Any, db: Any, args: tuple[str, ...], code: str
) -> None:
    result = smithers(*args, "--db", str(db))
    assert result.returncode == 4
    assert result.stderr.startswith(f"Error [{code}]: ")
    assert "Traceback" not in result.stderr


def test_version_and_usage_error(smithers: Any) -> None:
    version = smithers("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("smithers ")
    usage = smithers("frobnicate")
    assert usage.returncode == 4
    assert "Usage: smithers" in usage.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_during_up_exits_130_and_records_the_cancellation(
    smithers: Any, tmp_path: Any, db: Any
) -> None:
    (tmp_path / "long.py").write_text(
        "import anyio\n"
        "from smithers import Task, workflow\n"
        "async def nap():\n"
        "    await anyio.sleep(30)\n"
        "    return {}\n"
        "@workflow('long')\n"
        "def long(ctx):\n"
        "    return [Task('nap', output=dict, run=nap)]\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}
    args = [sys.executable, "-m", "smithers", "up", "long.py", "--run-id", "sig", "--db", str(db)]
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stream = db.parent / "executions" / "sig" / "logs" / "stream.ndjson"
    deadline = time.monotonic() + 20
    try:
        # A subprocess cannot be driven by a fake clock: poll its log until the task runs.
        while not (stream.is_file() and "NodeStarted" in stream.read_text()):
            assert time.monotonic() < deadline, "the run never started"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test failed
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert "Interrupted: run sig stopped and was recorded as cancelled." in err
    assert "run       cancelled" in out
    inspect = smithers("inspect", "sig", "--json", "--db", str(db))
    assert json.loads(inspect.stdout)["status"] == "cancelled"
