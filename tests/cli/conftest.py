"""Fixtures of the CLI tests: workflow files in `tmp_path`, a CliRunner bound to a test DB.

Every test runs in its own `tmp_path` (the cwd) with ``SMITHERS_DB`` unset, so no test
can find a database outside its directory. Test modules run with
``--import-mode=importlib``: helpers are fixtures, not imports.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import types
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from click.testing import CliRunner, Result
from smithers.cli import main
from smithers.engine import load_run, read_events
from smithers.eventstore import (
    ZERO_HASH,
    Lease,
    SmithersError,
    SQLiteEventStore,
    StoredEvent,
    chain_origin,
    verify_chain,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from smithers.eventstore.events import Event
    from smithers.projections import RunState

FLOWS: dict[str, str] = {
    "count.py": """
        from __future__ import annotations

        import msgspec
        from smithers import Sequence, Task, workflow

        class Count(msgspec.Struct):
            n: int

        @workflow("count")
        def count(ctx):
            first = ctx.output_maybe(Count, "first")
            return Sequence(
                Task("first", output=Count, value={"n": 1}),
                Task("second", output=Count, run=lambda: {"n": ctx.input.get("start", 0) + 1}),
                first and Task("third", output=Count, value={"n": first.n + 10}),
            )
    """,
    "bad.py": """
        from smithers import Sequence, Task, workflow

        def boom():
            raise ValueError("boom")

        @workflow("bad")
        def bad(ctx):
            return Sequence(
                Task("first", output=dict, value={"n": 1}),
                Task("second", output=dict, run=boom),
            )
    """,
    "wrong_shape.py": """
        import msgspec
        from smithers import Task, workflow

        class Count(msgspec.Struct):
            n: int

        @workflow("wrong-shape")
        def wrong_shape(ctx):
            return [Task("only", output=Count, run=lambda: {"n": "not a number"})]
    """,
    "several.py": """
        from smithers import Task, workflow

        @workflow("first-flow")
        def alpha(ctx):
            return [Task("a", output=dict, value={"from": "alpha"})]

        @workflow("second-flow")
        def beta(ctx):
            return [Task("b", output=dict, value={"from": "beta"})]
    """,
    "empty.py": """
        VALUE = 1
    """,
    "broken.py": """
        import smithers_no_such_module_for_tests
    """,
    "helper.py": """
        GREETING = {"msg": "hello from a sibling"}
    """,
    "uses_helper.py": """
        from helper import GREETING
        from smithers import Task, workflow

        @workflow("greet")
        def greet(ctx):
            return [Task("greeting", output=dict, value=GREETING)]
    """,
    # Eight tasks in a row; each appends "<node> <pid>" to steps.side, then sleeps 50 ms.
    "steps.py": """
        import os
        import time
        from pathlib import Path

        from smithers import Sequence, Task, workflow

        SIDE = Path(__file__).resolve().with_name(Path(__file__).stem + ".side")

        def step(node_id):
            def run():
                with open(SIDE, "a", encoding="utf-8") as f:
                    f.write(f"{node_id} {os.getpid()}\\n")
                time.sleep(0.05)
                return {"node": node_id}
            return run

        @workflow("steps")
        def steps(ctx):
            return Sequence(*(Task(f"s{i}", output=dict, run=step(f"s{i}")) for i in range(8)))
    """,
    # Task "wait" (a sync function, so it runs in a worker thread) appends
    # "wait <pid>" to gated.side, then polls for the file "gate" for up to 30 s.
    "gated.py": """
        import os
        import time
        from pathlib import Path

        from smithers import Sequence, Task, workflow

        HERE = Path(__file__).resolve().parent

        def wait_for_gate():
            with open(HERE / "gated.side", "a", encoding="utf-8") as f:
                f.write(f"wait {os.getpid()}\\n")
            deadline = time.monotonic() + 30
            while not (HERE / "gate").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            return {"opened": True}

        @workflow("gated")
        def gated(ctx):
            return Sequence(
                Task("first", output=dict, value={"n": 1}),
                Task("wait", output=dict, run=wait_for_gate),
                Task("after", output=dict, value={"n": 2}),
            )
    """,
}


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite runs its connection thread against asyncio only.
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMITHERS_DB", raising=False)
    monkeypatch.delenv("SMITHERS_DEBUG", raising=False)
    monkeypatch.setenv("SMITHERS_POST_FAILURE", "0")  # no background autopsy per failed up


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The test's database file (created by the first ``up``)."""
    return tmp_path / "runs" / "smithers.db"


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """Directory holding every workflow file of `FLOWS`."""
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, body in FLOWS.items():
        (folder / name).write_text(textwrap.dedent(body), encoding="utf-8")
    return folder


class Cli:
    """Invoke ``smithers`` in-process; ``--db`` is added to every command but ``--help``."""

    def __init__(self, db: Path, flows: Path) -> None:
        self.db = db
        self.flows = flows
        self.runner = CliRunner()
        self.tampered = False
        """Set by a test that edits the database behind smithers's back: no chain check."""

    def raw(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run ``smithers ARGS`` exactly as given."""
        return self.runner.invoke(main, list(args), env=env, catch_exceptions=False)

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run ``smithers ARGS --db DB``."""
        return self.raw(*args, "--db", str(self.db), env=env)

    def up(self, flow: str, *args: str) -> Result:
        """Run ``smithers up flows/FLOW ARGS --db DB``."""
        name, sep, pick = flow.partition(":")
        return self("up", str(self.flows / name) + sep + pick, *args)

    def up_json(self, flow: str, *args: str) -> dict[str, Any]:
        """Run ``up --json`` and return the decoded result object."""
        result = self.up(flow, "--json", *args)
        assert result.stdout.count("\n") == 1, result.stdout
        value: dict[str, Any] = json.loads(result.stdout)
        return value


@pytest.fixture
def cli(db: Path, flows: Path) -> Iterator[Cli]:
    """The in-process CLI bound to the test's database and workflow files.

    After the test, every run in the database must verify against its hash chain
    (issue 16) unless the test set ``cli.tampered``.
    """
    c = Cli(db, flows)
    yield c
    if not c.tampered:
        check_chains(db)


def check_chains(db: Path) -> None:
    """Assert every run's rows in `db` verify against their hash chain (forks included).

    A database that cannot be read as a smithers database of this version (none, a
    foreign file, a locked or read-only copy) is not checked. A few ms per test.
    """
    if not db.is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT position, run_id, seq, type, timestamp_ms, payload, hash "
                "FROM _smithers_events ORDER BY run_id, seq"
            ).fetchall()
    except sqlite3.Error:
        return
    runs: dict[str, list[StoredEvent]] = {}
    for position, run_id, seq, type_, ts, payload, row_hash in rows:
        runs.setdefault(run_id, []).append(
            StoredEvent(
                position=position,
                run_id=run_id,
                seq=seq,
                type=type_,
                timestamp_ms=ts,
                data=bytes(payload),
                hash=bytes(row_hash),
            )
        )
    hashes = {(r.run_id, r.seq): r.hash for rs in runs.values() for r in rs}
    for run_id, stored in runs.items():
        origin = chain_origin(stored[0].type, stored[0].data)
        if origin is not None and origin not in hashes:
            # A fork of a deleted parent: checked from its first row on.
            found = verify_chain(stored[1:], prev=stored[0].hash, after_seq=1)
        else:
            prev = hashes.get(origin, ZERO_HASH) if origin is not None else ZERO_HASH
            found = verify_chain(stored, prev=prev)
        assert found is None, f"run {run_id} in {db}: chain broken: {found.message}"


@pytest.fixture
def finished_run(cli: Cli) -> str:
    """Id of a finished run of ``count.py`` with input ``{"start": 5}``."""
    out = cli.up_json("count.py", "--input", '{"start": 5}')
    assert out["status"] == "finished"
    run_id: str = out["runId"]
    return run_id


@pytest.fixture
def failed_run(cli: Cli) -> str:
    """Id of a failed run of ``bad.py`` (node ``second`` raises ValueError)."""
    out = cli.up_json("bad.py")
    assert out["status"] == "failed"
    run_id: str = out["runId"]
    return run_id


# ---------------------------------------------------------------------- processes

WAIT_S = 20.0
"""Bound of every wait on another process in these tests."""


def wait_until(cond: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll `cond` every 20 ms until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


class Procs:
    """Processes of one test: ``smithers`` subprocesses and detached runs, all reaped.

    Every process still alive at the end of the test is killed (SIGCONT first, in case
    it was stopped) and reaped, so no test leaves a process behind.
    """

    def __init__(self, root: Path, db: Path) -> None:
        self.root = root
        self.db = db
        self.popens: list[subprocess.Popen[str]] = []
        self.pids: set[int] = set()
        self.env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB",)}

    def smithers(self, *args: str) -> subprocess.Popen[str]:
        """Start ``python -m smithers ARGS --db DB`` (output captured)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "smithers", *args, "--db", str(self.db)],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.popens.append(proc)
        return proc

    def track(self, pid: int) -> None:
        """Kill and reap `pid` at the end of the test if it still runs."""
        self.pids.add(pid)

    @staticmethod
    def alive(pid: int) -> bool:
        """True if `pid` is a live process (a zombie is not)."""
        return _pid_alive(pid)

    @staticmethod
    def kill(proc: subprocess.Popen[str]) -> None:
        """SIGKILL `proc` and reap it."""
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT_S)

    @staticmethod
    def wait_exit(pid: int, timeout_s: float = WAIT_S) -> int | None:
        """Wait for `pid` to exit; its exit code if it is our child, else None."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child, or reaped already
                if not _pid_alive(pid):
                    return None
            else:
                if done == pid:
                    return os.waitstatus_to_exitcode(status)
            assert time.monotonic() < deadline, f"process {pid} did not exit"
            time.sleep(0.02)

    def close(self) -> None:
        for pid in self.pids:
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for proc in self.popens:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                proc.kill()
            proc.communicate()


@pytest.fixture
def procs(tmp_path: Path, db: Path) -> Iterator[Procs]:
    """Start, track and finally reap the test's processes (see `Procs`)."""
    p = Procs(tmp_path, db)
    try:
        yield p
    finally:
        p.close()


class Log:
    """Reads of the test's database through the public API, as another process would."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def events(self, run_id: str) -> list[Event]:
        """The run's decoded events, in order."""
        rows = anyio.run(functools.partial(read_events, run_id, db=self.db))
        return [event for _, event in rows]

    def types(self, run_id: str) -> list[str]:
        return [type(e).__name__ for e in self.events(run_id)]

    def state(self, run_id: str) -> RunState:
        return anyio.run(functools.partial(load_run, run_id, db=self.db))

    def status(self, run_id: str) -> str | None:
        """The run's status, or None while it (or the database) does not exist."""
        try:
            return self.state(run_id).status
        except SmithersError:
            return None

    def last_seq(self, run_id: str) -> int:
        return self.state(run_id).seq

    def leases(self) -> list[Lease]:
        async def read() -> list[Lease]:
            store = await SQLiteEventStore.open(self.db, create=False)
            try:
                return await store.list_leases()
            finally:
                await store.close()

        return anyio.run(read)


@pytest.fixture
def log(db: Path) -> Log:
    """Reads of the test's database (see `Log`)."""
    return Log(db)


def side_lines(path: Path) -> list[str]:
    """Lines of a workflow's side file (empty while it does not exist)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


@pytest.fixture
def helpers() -> Any:
    """``helpers.wait_until`` and ``helpers.side_lines`` for test modules."""
    return types.SimpleNamespace(wait_until=wait_until, side_lines=side_lines, WAIT_S=WAIT_S)
