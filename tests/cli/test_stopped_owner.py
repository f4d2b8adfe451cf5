"""A stopped owner does not block forever (issue 15, item 8).

A run's owner is SIGSTOPped mid-task: its pid lives, but its lease heartbeat ages. Once
the heartbeat is older than the stale threshold, ``up --resume --force`` takes the run
over, and so does the supervisor; without ``--force`` resume still refuses. When the
old owner wakes (SIGCONT), it finds its claim lost and exits without appending.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP"), pytest.mark.slow]

STALE = "1s"
"""The stale threshold of these tests (the default is 60 s)."""


def _stop_owner(procs: Any, flows: Path, helpers: Any, log: Any) -> tuple[Any, str]:
    """Start gated.py, wait for its task and its lease, SIGSTOP it; return it and its run."""
    proc = procs.smithers("up", str(flows / "gated.py"), "--json")
    helpers.wait_until(lambda: helpers.side_lines(flows / "gated.side"), "the task to start")
    (lease,) = helpers.wait_until(log.leases, "the owner's lease")
    assert lease.pid == proc.pid
    proc.send_signal(signal.SIGSTOP)
    time.sleep(1.5)  # the heartbeat ages past the 1 s threshold
    (flows / "gate").touch()  # the task lets the next activation through at once
    return proc, lease.run_id


def _check_log(log: Any, run_id: str, new_pid: int) -> None:
    seqs = [row.seq for row in _rows(log, run_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    state = log.state(run_id)
    assert state.status == "finished"
    assert state.pid == new_pid


def _rows(log: Any, run_id: str) -> list[Any]:
    import anyio
    from smithers.eventstore import SQLiteEventStore

    async def read() -> list[Any]:
        store = await SQLiteEventStore.open(log.db, create=False)
        try:
            return await store.read(run_id)
        finally:
            await store.close()

    return anyio.run(read)


def _wake_and_check_silent(proc: Any, log: Any, run_id: str) -> None:
    before = [(r.seq, r.type, r.data) for r in _rows(log, run_id)]
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode not in (0, None), stderr
    assert "RUN_RESUME_CLAIM_LOST" in stderr or "OWNERSHIP_LOST" in stderr, stderr
    assert [(r.seq, r.type, r.data) for r in _rows(log, run_id)] == before


def test_resume_with_force_takes_over_a_stopped_owner_which_then_stops_silently(
    cli: Any, procs: Any, flows: Path, helpers: Any, log: Any
) -> None:
    old, run_id = _stop_owner(procs, flows, helpers, log)
    refused = cli("up", "--resume", run_id, "--stale-threshold", STALE)
    assert refused.exit_code == 4, refused.output
    assert "Error [RUN_OWNER_ALIVE]" in refused.stderr
    assert "--force" in refused.stderr  # says how to take it over
    new = procs.smithers("up", "--resume", run_id, "--force", "--stale-threshold", STALE, "--json")
    stdout, stderr = new.communicate(timeout=60)
    assert new.returncode == 0, stderr
    assert json.loads(stdout)["status"] == "finished"
    _check_log(log, run_id, new.pid)
    _wake_and_check_silent(old, log, run_id)


def test_a_fresh_local_owner_is_never_taken_over_even_with_force(
    cli: Any, procs: Any, flows: Path, helpers: Any, log: Any
) -> None:
    proc = procs.smithers("up", str(flows / "gated.py"), "--json")
    helpers.wait_until(lambda: helpers.side_lines(flows / "gated.side"), "the task to start")
    (lease,) = helpers.wait_until(log.leases, "the owner's lease")
    refused = cli("up", "--resume", lease.run_id, "--force")
    assert refused.exit_code == 4, refused.output
    assert "Error [RUN_OWNER_ALIVE]" in refused.stderr
    (flows / "gate").touch()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr


def test_the_supervisor_resumes_a_stopped_owner(
    cli: Any, procs: Any, flows: Path, helpers: Any, log: Any
) -> None:
    old, run_id = _stop_owner(procs, flows, helpers, log)
    result = cli("supervise", "--once", "--stale-threshold", STALE, "--json")
    assert result.exit_code == 0, result.output
    decided = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    (resumed,) = [e for e in decided if e.get("type") == "RunAutoResumed"]
    assert resumed["runId"] == run_id
    procs.track(resumed["pid"])
    helpers.wait_until(lambda: log.status(run_id) == "finished", "the resumed run to finish")
    _check_log(log, run_id, resumed["pid"])
    _wake_and_check_silent(old, log, run_id)
