"""Fixtures of the autopsy tests: the five failing flows, ``smithers`` as a real process.

Every test runs in its own `tmp_path` (the cwd) holding a copy of ``flows/`` (a test may
edit a flow) and its database ``runs/smithers.db``. Commands run as real subprocesses
(``python -m smithers``) with the post-failure autopsy turned back on (the suite turns
it off), so a failed ``up`` starts a real detached autopsy process.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine import list_runs, load_run

if TYPE_CHECKING:
    from collections.abc import Callable

FLOWS = Path(__file__).parent / "flows"
WAIT_S = 30.0
LAUNCHED = re.compile(r"^\[smithers\] Run failed\. Post-failure autopsy launched: (\S+)\.")


class Smithers:
    """Runs ``python -m smithers`` in `cwd` against `db`, and reads the database."""

    def __init__(self, cwd: Path, db: Path) -> None:
        self.cwd = cwd
        self.db = db
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "SMITHERS_DEBUG")
        }
        self.env.pop("SMITHERS_POST_FAILURE", None)

    def raw(
        self, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m smithers ARGV`` exactly as given."""
        return subprocess.run(
            [sys.executable, "-m", "smithers", *argv],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def __call__(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``smithers ARGS --db DB``."""
        return self.raw([*args, "--db", str(self.db)], env)

    def command(
        self, line: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a suggested command line (``smithers ...``) as printed."""
        words = shlex.split(line)
        assert words[0] == "smithers", line
        return self.raw(words[1:], env)

    def status(self, run_id: str) -> str:
        """The run's status, read from the database."""
        state = anyio.run(lambda: load_run(run_id, db=self.db))
        return state.status

    def autopsies(self) -> list[str]:
        """Ids of the database's post-failure runs."""
        if not self.db.exists():
            return []
        runs = anyio.run(lambda: list_runs(self.db))
        return [r.run_id for r in runs if r.workflow_name == "post-failure"]

    def wait_for(self, cond: Callable[[], Any], what: str) -> Any:
        """Poll `cond` every 100 ms until it returns something truthy; fail after `WAIT_S`."""
        deadline = time.monotonic() + WAIT_S
        while not (value := cond()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)
        return value

    def wait_status(self, run_id: str, statuses: tuple[str, ...]) -> str:
        """Poll until `run_id` has one of `statuses`; fail after `WAIT_S`."""
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                status = self.status(run_id)
            except Exception:
                status = ""
            if status in statuses:
                return status
            assert time.monotonic() < deadline, f"{run_id} still {status!r}"
            time.sleep(0.1)

    def output(self, run_id: str, node: str) -> Any:
        """``smithers output RUN NODE``, decoded."""
        done = self(*["output", run_id, node])
        assert done.returncode == 0, done.stderr
        return msgspec.json.decode(done.stdout)

    def fail_with_autopsy(self, flow: str, run_id: str) -> tuple[str, dict[str, Any]]:
        """``up`` a failing flow; return the autopsy's run id and its verdict (JSON).

        Asserts the run failed (exit 1), stderr names the autopsy in one line, the
        autopsy ends (finished, or parked on its bug-report approval), and ``why``
        shows the same verdict.
        """
        done = self("up", str(self.cwd / "flows" / flow), "--run-id", run_id)
        assert done.returncode == 1, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.startswith("[smithers]")]
        assert len(lines) == 1, done.stderr
        m = LAUNCHED.match(lines[0])
        assert m, lines[0]
        autopsy = m.group(1)
        assert re.fullmatch(r"post-failure-[0-9a-z]+-[0-9a-f]{6}", autopsy)
        status = self.wait_status(autopsy, ("finished", "waiting-approval", "failed"))
        assert status != "failed", self("inspect", autopsy).stdout
        node = "output" if status == "finished" else "investigate"
        verdict: dict[str, Any] = self.output(autopsy, node)
        why = self("why", run_id, "--json")
        assert why.returncode == 0, why.stderr
        shown = msgspec.json.decode(why.stdout)
        assert shown["autopsyRunId"] == autopsy
        assert shown["autopsy"] == verdict
        return autopsy, verdict


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMITHERS_DB", raising=False)
    monkeypatch.delenv("SMITHERS_POST_FAILURE", raising=False)


@pytest.fixture
def smithers(tmp_path: Path) -> Smithers:
    """``smithers`` as a process in `tmp_path`, with a copy of the flows and a database."""
    shutil.copytree(FLOWS, tmp_path / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    return Smithers(tmp_path, tmp_path / "runs" / "smithers.db")


@pytest.fixture
def edit(tmp_path: Path) -> Callable[[str, str, str], None]:
    """Replace text in a flow of the test's copy: ``edit(flow, old, new)``."""

    def apply(flow: str, old: str, new: str) -> None:
        path = tmp_path / "flows" / flow
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    return apply
