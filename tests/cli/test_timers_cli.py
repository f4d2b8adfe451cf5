"""Timers through the CLI in real processes: park, SIGKILL while holding, ps, timeline, cancel."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

SOAK = """
    from smithers import Sequence, Task, Timer, workflow

    @workflow("soak")
    def soak(ctx):
        return Sequence(
            Task("build", output=dict, value={{"n": 1}}),
            Timer("soak", duration="{duration}"),
            Task("deploy", output=dict, value={{"n": 2}}),
        )
"""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def write_soak(flows: Path, duration: str, name: str = "soak.py") -> Path:
    path = flows / name
    path.write_text(textwrap.dedent(SOAK.format(duration=duration)), encoding="utf-8")
    return path


def test_up_hold_ms_0_parks_and_ps_shows_the_timer(cli: Any, flows: Path, log: Any) -> None:
    write_soak(flows, "1h")
    result = cli.up("soak.py", "--run-id", "p1", "--hold-ms", "0")
    assert result.exit_code == 3, result.output
    assert "timer     soak fires at " in result.stdout
    assert "(in 59m" in result.stdout or "(in 1h00m)" in result.stdout
    assert "run       parked (waiting-timer)" in result.stdout
    # Parked: no owner (the lease is released), so it costs no process.
    assert log.leases() == []
    assert log.state("p1").owner_id == ""

    ps = cli("ps", "--json")
    assert ps.exit_code == 0
    [run] = json.loads(ps.stdout)
    [created] = [e for e in log.events("p1") if type(e).__name__ == "TimerCreated"]
    assert run["status"] == "waiting-timer"
    assert run["waitingFor"] == [
        {
            "nodeId": "soak",
            "iteration": 0,
            "kind": "timer",
            "since": created.timestamp_ms,
            "firesAtMs": created.fires_at_ms,
        }
    ]
    text = cli("ps").stdout
    assert "WAITING FOR" in text
    assert "timer soak at " in text
    assert "(in 59m" in text or "(in 1h00m)" in text


def test_hold_ms_must_be_a_non_negative_number(cli: Any, flows: Path) -> None:
    write_soak(flows, "1s")
    result = cli.up("soak.py", "--hold-ms", "-1")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [INVALID_INPUT]: ")
    assert "--hold-ms" in cli("up", "--help").stdout


def test_timeline_marks_the_frames_where_the_timer_starts_and_fires(cli: Any, flows: Path) -> None:
    write_soak(flows, "300ms")
    assert cli.up("soak.py", "--run-id", "tl", "--hold-ms", "0").exit_code == 3
    time.sleep(0.4)
    assert cli("up", "--resume", "tl").exit_code == 0
    tl = json.loads(cli("timeline", "tl", "--json").stdout)
    waits = [w for f in tl["frames"] for w in f.get("waits", [])]
    assert [(w["nodeId"], w["kind"], w["change"], w["how"]) for w in waits] == [
        ("soak", "timer", "started", None),
        ("soak", "timer", "ended", "fired"),
    ]
    started = next(f for f in tl["frames"] if f.get("waits"))
    assert set(started) == {
        "frameNo",
        "seq",
        "timestampMs",
        "xmlHash",
        "finishedCount",
        "discarded",
        "waits",
        "iterations",
    }
    text = cli("timeline", "tl").stdout
    assert "timer soak waiting" in text
    assert "timer soak fired" in text


@posix_only
def test_sigkill_while_holding_a_timer_then_resume_fires_at_the_original_time(
    procs: Any, helpers: Any, flows: Path, log: Any
) -> None:
    write_soak(flows, "2s")
    proc = procs.smithers("up", str(flows / "soak.py"), "--run-id", "k1", "--hold-ms", "60000")

    def waiting() -> bool:
        return proc.poll() is not None or (
            log.status("k1") is not None and "NodeWaitingTimer" in log.types("k1")
        )

    helpers.wait_until(waiting, "the timer")
    assert proc.poll() is None, proc.communicate()
    assert log.status("k1") == "running"  # held in-process, not parked
    procs.kill(proc)
    [created] = [e for e in log.events("k1") if type(e).__name__ == "TimerCreated"]

    resume = procs.smithers("up", "--resume", "k1", "--json")
    out, err = resume.communicate(timeout=helpers.WAIT_S)
    assert resume.returncode == 0, err
    assert json.loads(out)["status"] == "finished"
    events = log.events("k1")
    assert [type(e).__name__ for e in events].count("TimerCreated") == 1
    [fired] = [e for e in events if type(e).__name__ == "TimerFired"]
    assert fired.fires_at_ms == created.fires_at_ms  # never reset by the restart
    assert 0 <= fired.fired_at_ms - created.fires_at_ms < 1_500
    assert [type(e).__name__ for e in events].count("NodeStarted") == 3  # nothing twice


@pytest.mark.parametrize("command", ["cancel", "down"])
def test_cancelling_a_parked_run_cancels_its_pending_timer(
    cli: Any, flows: Path, log: Any, command: str
) -> None:
    write_soak(flows, "1h")
    assert cli.up("soak.py", "--run-id", "c1", "--hold-ms", "0").exit_code == 3
    args = ["cancel", "c1"] if command == "cancel" else ["down"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert log.status("c1") == "cancelled"
    types = log.types("c1")
    assert types[-4:] == ["TimerCancelled", "NodeCancelled", "RunStatusChanged", "RunCancelled"]
    timeline = json.loads(cli("timeline", "c1", "--json").stdout)
    waits = [w for f in timeline["frames"] for w in f.get("waits", [])]
    assert waits[-1]["how"] == "cancelled"
    ps = json.loads(cli("ps", "--json").stdout)
    assert "waitingFor" not in ps[0]  # an ended run waits for nothing
