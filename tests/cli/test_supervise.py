"""``smithers supervise``: resume runs whose owner is gone; skip, record and back off."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from smithers.engine import resume_result_file, supervise
from smithers.eventstore import Lease, SQLiteEventStore
from smithers.eventstore.events import (
    Event,
    NodeFinished,
    NodeStarted,
    RunAutoResumed,
    RunAutoResumeSkipped,
    RunStarted,
    RunStatusChanged,
    SupervisorPollCompleted,
    SupervisorStarted,
)

if TYPE_CHECKING:
    from pathlib import Path

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def kill_steps(procs: Any, helpers: Any, flows: Path, run_id: str, flow: str = "steps") -> None:
    """Run flows/<flow>.py (a copy of steps.py) and SIGKILL it once a task has begun."""
    side = flows / f"{flow}.side"
    before = len(helpers.side_lines(side))
    proc = procs.smithers("up", str(flows / f"{flow}.py"), "--run-id", run_id)
    helpers.wait_until(
        lambda: proc.poll() is not None or len(helpers.side_lines(side)) >= before + 2,
        f"two tasks of {run_id}",
    )
    assert proc.poll() is None, proc.communicate()
    procs.kill(proc)


def fabricate(db: Path, run_id: str, *, pid: int, heartbeat_age_ms: int, path: Path) -> None:
    """Record a running run owned by `pid` on this host, whose lease is this old."""
    host = socket.gethostname()
    at = now_ms() - heartbeat_age_ms

    async def write() -> None:
        store = await SQLiteEventStore.open(db)
        try:
            await store.append(
                run_id,
                [
                    RunStarted(
                        run_id=run_id,
                        timestamp_ms=at,
                        workflow_name="steps",
                        workflow_path=str(path),
                        owner_id=f"{host}:{pid}:test",
                        pid=pid,
                        host=host,
                    ),
                    RunStatusChanged(run_id=run_id, timestamp_ms=at, status="running"),
                    NodeStarted(run_id=run_id, timestamp_ms=at, node_id="s0", attempt=1),
                ],
                expected_seq=0,
                status="running",
                workflow_name="steps",
            )
            await store.put_lease(
                Lease(
                    run_id=run_id,
                    owner_id=f"{host}:{pid}:test",
                    pid=pid,
                    host=host,
                    acquired_at_ms=at,
                    heartbeat_at_ms=at,
                )
            )
        finally:
            await store.close()

    anyio.run(write)


def supervisor_events(log: Any) -> list[Event]:
    return log.events("supervisor")


def of_run(events: list[Event], run_id: str, kind: type[Event]) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and e.run_id == run_id]


@pytest.fixture
def sleeper(procs: Any) -> int:
    """Pid of a live process that is not a smithers owner (it sleeps)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    procs.track(proc.pid)
    # Reaped by `procs` at the end: drop the Popen without a ResourceWarning.
    proc.returncode = 0
    return proc.pid


# ---------------------------------------------------------------------- one poll


@posix_only
def test_supervise_once_resumes_a_killed_run_and_skips_the_others(
    cli: Any, procs: Any, helpers: Any, flows: Path, log: Any, sleeper: int
) -> None:
    kill_steps(procs, helpers, flows, "crashed")
    done_before = {e.node_id for e in log.events("crashed") if isinstance(e, NodeFinished)}
    shutil.copy(flows / "steps.py", flows / "doomed.py")
    kill_steps(procs, helpers, flows, "orphan", flow="doomed")
    (flows / "doomed.py").unlink()
    # A live process here with a fresh heartbeat: not stale, left alone. (One whose
    # heartbeat is stale is taken over: tests/cli/test_stopped_owner.py.)
    fabricate(cli.db, "stuck", pid=sleeper, heartbeat_age_ms=0, path=flows / "steps.py")

    result = cli("supervise", "--once")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Supervising: every 10.00s, runs stale after 1m00s."
    assert any(line.startswith("resumed      crashed  (owner silent for ") for line in lines)
    assert not any("stuck" in line for line in lines)
    assert "skipped      orphan  missing-workflow" in lines
    assert lines[-1].startswith("poll: 2 stale, 1 resumed, 1 skipped")

    events = supervisor_events(log)
    assert isinstance(events[0], SupervisorStarted)
    assert (events[0].poll_interval_ms, events[0].stale_threshold_ms) == (10_000, 60_000)
    (resumed,) = [e for e in events if isinstance(e, RunAutoResumed)]
    assert resumed.run_id == "crashed"
    assert resumed.pid is not None
    assert resumed.last_heartbeat_at_ms is not None
    assert resumed.stale_duration_ms >= 0
    skipped = {e.run_id: e.reason for e in events if isinstance(e, RunAutoResumeSkipped)}
    assert skipped == {"orphan": "missing-workflow"}
    poll = events[-1]
    assert isinstance(poll, SupervisorPollCompleted)
    assert (poll.stale_count, poll.resumed_count, poll.skipped_count) == (2, 1, 1)

    # The resumer finishes the run; tasks finished before the kill did not run again.
    helpers.wait_until(lambda: log.status("crashed") == "finished", "the resumed run")
    runs = Counter(line.split()[0] for line in helpers.side_lines(flows / "steps.side"))
    assert all(runs[node] == 1 for node in done_before), runs
    assert set(runs) == {f"s{i}" for i in range(8)}
    supervise_log = cli.db.parent / "executions" / "crashed" / "logs" / "supervise.log"
    assert "--- smithers supervise: resuming crashed at " in supervise_log.read_text()
    # The others were left alone.
    assert log.status("stuck") == "running"
    assert log.status("orphan") == "running"
    # The supervisor's stream is not a run.
    ps = json.loads(cli("ps", "--json").stdout)
    assert "supervisor" not in {r["runId"] for r in ps}
    assert "crashed" in {r["runId"] for r in ps}


@posix_only
def test_a_resume_that_keeps_failing_is_backed_off(
    cli: Any, procs: Any, helpers: Any, flows: Path, log: Any
) -> None:
    kill_steps(procs, helpers, flows, "broken")
    seq = log.last_seq("broken")
    with (flows / "steps.py").open("a", encoding="utf-8") as f:
        f.write("\n# edited after the crash: every resume fails at start-up\n")

    first = cli("supervise", "--once")
    second = cli("supervise", "--once")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    events = supervisor_events(log)
    # One resume was started; it failed at start-up and was recorded with its error.
    assert len(of_run(events, "broken", RunAutoResumed)) == 1
    skips = of_run(events, "broken", RunAutoResumeSkipped)
    assert [s.reason for s in skips] == ["rate-limited", "rate-limited"]
    for skip in skips:
        assert skip.error is not None
        assert skip.error.code == "RESUME_METADATA_MISMATCH"
        assert skip.retry_at_ms is not None
        assert skip.retry_at_ms > skip.timestamp_ms
    assert "rate-limited until" in first.stdout
    assert "[RESUME_METADATA_MISMATCH]" in second.stdout
    assert not [line for line in second.stdout.splitlines() if line.startswith("resumed")]
    polls = [e for e in events if isinstance(e, SupervisorPollCompleted)]
    assert [(p.stale_count, p.resumed_count, p.skipped_count) for p in polls] == [
        (1, 0, 1),
        (1, 0, 1),
    ]
    assert log.last_seq("broken") == seq  # no resumer ever claimed it
    assert log.status("broken") == "running"


@posix_only
def test_dry_run_starts_and_records_nothing(
    cli: Any, procs: Any, helpers: Any, flows: Path, log: Any
) -> None:
    kill_steps(procs, helpers, flows, "idle")
    seq = log.last_seq("idle")
    result = cli("supervise", "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "(dry run: nothing is started or recorded)" in result.stdout
    assert "would resume idle  (owner silent for " in result.stdout
    assert log.last_seq("idle") == seq
    assert cli("events", "supervisor").exit_code == 4  # no supervisor stream: RUN_NOT_FOUND


def test_an_idle_poll_is_recorded_and_json_prints_events(cli: Any, finished_run: str) -> None:
    result = cli("supervise", "--once", "--json", "--interval", "1m", "--stale-threshold", "2m")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["SupervisorStarted", "SupervisorPollCompleted"]
    assert lines[0]["pollIntervalMs"] == 60_000
    assert lines[0]["staleThresholdMs"] == 120_000
    assert lines[1]["staleCount"] == 0
    assert lines[0]["runId"] == "supervisor"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--interval", "0s"), "--interval"),
        (("--stale-threshold", "soon"), "--stale-threshold"),
        (("--max-concurrent", "0"), "--max-concurrent"),
    ],
)
def test_supervise_bad_options_exit_4(cli: Any, args: tuple[str, ...], message: str) -> None:
    result = cli("supervise", "--once", *args)
    assert result.exit_code == 4
    assert message in result.stderr


def test_supervise_without_a_database_exits_4(cli: Any) -> None:
    result = cli("supervise", "--once")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [CLI_DB_NOT_FOUND]:")


@posix_only
def test_sigterm_stops_the_supervisor(
    procs: Any, helpers: Any, finished_run: str, log: Any
) -> None:
    proc = procs.smithers("supervise", "--interval", "100ms")
    helpers.wait_until(
        lambda: proc.poll() is not None or log.status("supervisor") is not None, "a first poll"
    )
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 143
    assert "Supervisor stopped." in err


# ---------------------------------------------------------------------- the API


class FakeResumer:
    """A resumer that never claims its run (still starting, as far as anyone sees)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None


async def test_max_concurrent_caps_starting_resumes_and_a_live_resumer_is_not_doubled(
    db: Path, flows: Path, sleeper: int
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(dead.stdout)
    for i in range(3):
        await anyio.to_thread.run_sync(
            lambda i=i: fabricate(
                db, f"r{i}", pid=dead_pid, heartbeat_age_ms=1_000 * (3 - i), path=flows / "steps.py"
            )
        )
    started: list[str] = []

    def spawn(run_id: str, db_path: Path, force: bool, log_file: Path) -> FakeResumer:
        assert db_path == db.resolve()
        assert not force  # the owner was on this host
        started.append(run_id)
        return FakeResumer(sleeper)

    first = await supervise(db=db, once=True, max_concurrent=2, spawn=spawn, startup_grace_ms=50)
    assert started == ["r0", "r1"]  # the longest-silent first
    skips = [e for e in first if isinstance(e, RunAutoResumeSkipped)]
    assert [(e.run_id, e.reason) for e in skips] == [("r2", "rate-limited")]

    # Another supervisor: the first two have a live resumer (pid from the log), the
    # third is started now.
    second = await supervise(db=db, once=True, max_concurrent=2, spawn=spawn, startup_grace_ms=50)
    assert started == ["r0", "r1", "r2"]
    skips = [e for e in second if isinstance(e, RunAutoResumeSkipped)]
    assert sorted((e.run_id, e.reason) for e in skips) == [
        ("r0", "pid-alive"),
        ("r1", "pid-alive"),
    ]


# ---------------------------------------------------------------------- the resume entry point


class ExitedResumer:
    """A resumer that has already exited with `code`."""

    def __init__(self, pid: int, code: int) -> None:
        self.pid = pid
        self.code = code

    def poll(self) -> int | None:
        return self.code


MISMATCH = {
    "runId": "r",
    "status": None,
    "outputs": {},
    "error": {
        "name": "ResumeMetadataMismatchError",
        "message": "Run 'r' was recorded with different workflow code (changed: steps.py).",
        "code": "RESUME_METADATA_MISMATCH",
        "details": {"runId": "r"},
    },
}


@pytest.mark.parametrize(
    ("code", "result", "expected"),
    [
        # Refused at start-up: exit 4 and the JSON result's error.
        (4, MISMATCH, ("RESUME_METADATA_MISMATCH", "different workflow code")),
        # Crashed without a result: the exit code says so.
        (1, None, (None, "exited with code 1 and no result")),
        (-9, "", (None, "exited with code -9 and no result")),
        # Reached an outcome: not a failed resume, whatever its log says.
        (0, {"runId": "r", "status": "finished", "outputs": {}, "error": None}, None),
        (2, None, None),
        (3, None, None),
        (1, {"runId": "r", "status": "failed", "outputs": {}, "error": {"code": "X"}}, None),
    ],
)
async def test_a_resume_is_classified_by_exit_code_and_json_result_not_by_its_text(
    db: Path,
    flows: Path,
    code: int,
    result: Any,
    expected: tuple[str | None, str] | None,
) -> None:
    await anyio.to_thread.run_sync(
        lambda: fabricate(db, "r", pid=2**22 + 9, heartbeat_age_ms=0, path=flows / "steps.py")
    )

    def spawn(run_id: str, db_path: Path, force: bool, log_file: Path) -> ExitedResumer:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # Text that looks like an error is not read: only the exit code and the JSON.
        log_file.write_text("Error [SOMETHING_ELSE]: not this\n", encoding="utf-8")
        out = resume_result_file(log_file)
        assert out == log_file.with_name("supervise.json")
        if result is not None:
            out.write_text(result if isinstance(result, str) else json.dumps(result))
        return ExitedResumer(2**22 + 10, code)

    events = await supervise(db=db, once=True, spawn=spawn, startup_grace_ms=2_000)

    assert len(of_run(events, "r", RunAutoResumed)) == 1
    skips = of_run(events, "r", RunAutoResumeSkipped)
    (poll,) = [e for e in events if isinstance(e, SupervisorPollCompleted)]
    if expected is None:
        assert skips == []
        assert (poll.resumed_count, poll.skipped_count) == (1, 0)
        return
    (skip,) = skips
    assert skip.reason == "rate-limited"
    assert skip.retry_at_ms is not None
    assert skip.error is not None
    assert skip.error.code == expected[0]
    assert expected[1] in skip.error.message
    assert (poll.resumed_count, poll.skipped_count) == (0, 1)
    if code == 4:
        assert skip.error.name == "ResumeMetadataMismatchError"
        assert json.loads(bytes(skip.error.details)) == {"runId": "r"}

    # The next poll (another supervisor, exit code unknown) backs off with the same error.
    again = await supervise(db=db, once=True, spawn=spawn, startup_grace_ms=50)
    (later,) = of_run(again, "r", RunAutoResumeSkipped)
    assert later.reason == "rate-limited"
    assert later.error is not None
    assert later.error.code == expected[0]
    if code != 4:
        assert "made no progress" in later.error.message


@posix_only
def test_the_resumer_writes_its_json_result_and_its_errors_apart(
    cli: Any, procs: Any, helpers: Any, flows: Path, log: Any
) -> None:
    kill_steps(procs, helpers, flows, "edited")
    with (flows / "steps.py").open("a", encoding="utf-8") as f:
        f.write("\n# edited after the crash\n")

    assert cli("supervise", "--once").exit_code == 0

    logs = cli.db.parent / "executions" / "edited" / "logs"
    result = json.loads((logs / "supervise.json").read_text())
    assert (result["runId"], result["status"], result["outputs"]) == ("edited", None, {})
    assert result["error"]["code"] == "RESUME_METADATA_MISMATCH"
    text = (logs / "supervise.log").read_text()
    assert "Error [RESUME_METADATA_MISMATCH]:" in text
    assert '"runId"' not in text  # the JSON went to its own file
    (skip,) = of_run(supervisor_events(log), "edited", RunAutoResumeSkipped)
    assert skip.error is not None
    assert skip.error.code == "RESUME_METADATA_MISMATCH"
    assert skip.error.name == "ResumeMetadataMismatchError"
