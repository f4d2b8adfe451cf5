"""Fixtures of the audit-trail tests: a workflow file, a real database, ``smithers`` as a process.

Every test runs in its own `tmp_path` (the cwd) with ``SMITHERS_DB`` and
``SMITHERS_ACTOR`` unset, so the actor recorded is the one the test gives. Commands
run as real subprocesses (``python -m smithers``), so the pid recorded is theirs.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from smithers.engine import read_events

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.eventstore.events import Event

FLOW = """
    import msgspec
    from smithers import Approval, Sequence, Task, WaitForEvent, workflow

    class N(msgspec.Struct):
        n: int

    class Ci(msgspec.Struct):
        ok: bool

    @workflow("gate")
    def gate(ctx):
        return Sequence(
            Task("build", output=N, value={"n": 1}),
            Approval("deploy-approval", request={"title": "Deploy?"}),
            WaitForEvent("ci", event="ci.done", output=Ci),
            Task("deploy", output=N, run=lambda: {"n": ctx.input.get("start", 0) + 2}),
        )
"""


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite runs its connection thread against asyncio only.
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SMITHERS_DB", "SMITHERS_DEBUG", "SMITHERS_ACTOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The test's database file (created by the first ``up``)."""
    return tmp_path / "runs" / "smithers.db"


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    """``gate.py``: build, an approval, a wait for signal ``ci.done``, deploy."""
    path = tmp_path / "gate.py"
    path.write_text(textwrap.dedent(FLOW), encoding="utf-8")
    return path


class Smithers:
    """Runs ``python -m smithers ARGS --db DB`` as a subprocess; reads the log back."""

    def __init__(self, root: Path, db: Path) -> None:
        self.root = root
        self.db = db
        self.pids: list[int] = []

    def __call__(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the command to its end; its pid is appended to `pids`."""
        environ = {k: v for k, v in os.environ.items() if k != "SMITHERS_ACTOR"}
        environ.update(env or {})
        proc = subprocess.Popen(
            [sys.executable, "-m", "smithers", *args, "--db", str(self.db)],
            cwd=self.root,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pids.append(proc.pid)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """Run a command with ``--json`` and decode its output."""
        done = self(*args, "--json", env=env)
        assert done.stdout.strip(), (done.returncode, done.stderr)
        return json.loads(done.stdout)

    def events(self, run_id: str) -> list[Event]:
        """The run's decoded events, in order (read through the public API)."""
        rows = anyio.run(functools.partial(read_events, run_id, db=self.db))
        return [event for _, event in rows]

    def last(self, run_id: str, kind: type[Event]) -> Any:
        """The run's last event of type `kind`."""
        found = [e for e in self.events(run_id) if isinstance(e, kind)]
        assert found, f"no {kind.__name__} in {run_id}"
        return found[-1]


@pytest.fixture
def smithers(tmp_path: Path, db: Path) -> Smithers:
    """``smithers`` as a subprocess, bound to the test's database."""
    return Smithers(tmp_path, db)
