"""``smithers supervise`` wakes parked runs: due timers, WaitForEvent timeouts; no hot loop."""

from __future__ import annotations

import json
import signal
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
            Task("build", output=dict, value={"n": 1}),
            Timer("soak", duration="2s"),
            Task("deploy", output=dict, value={"n": 2}),
        )
"""

WAITS = """
    from smithers import Sequence, Task, WaitForEvent, workflow

    @workflow("ci-{mode}")
    def ci(ctx):
        return Sequence(
            WaitForEvent("ci", event="ci.done", timeout_ms=800, on_timeout="{mode}"),
            Task("after", output=dict, value={{"ran": True}}),
        )
"""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def types(events: list[Any], name: str) -> list[Any]:
    return [e for e in events if type(e).__name__ == name]


def supervisor_events(log: Any) -> list[Any]:
    """The supervisor stream's events (none while it does not exist yet)."""
    return log.events("supervisor") if log.status("supervisor") is not None else []


@posix_only
def test_supervise_wakes_a_parked_timer_on_time_without_waiting_for_the_interval(
    cli: Any, procs: Any, helpers: Any, flows: Path, log: Any
) -> None:
    (flows / "soak.py").write_text(textwrap.dedent(SOAK), encoding="utf-8")
    assert cli.up("soak.py", "--run-id", "w1", "--hold-ms", "0").exit_code == 3
    [created] = types(log.events("w1"), "TimerCreated")
    assert log.leases() == []  # parked: no process holds it

    sup = procs.smithers("supervise", "--interval", "30s")
    helpers.wait_until(lambda: log.status("w1") == "finished", "the woken run to finish")
    finished_at = now_ms()
    helpers.wait_until(
        lambda: len(types(supervisor_events(log), "SupervisorPollCompleted")) == 2,
        "the waking poll to be recorded",
    )
    sup.send_signal(signal.SIGTERM)
    out, err = sup.communicate(timeout=helpers.WAIT_S)
    assert sup.returncode == 128 + signal.SIGTERM, err
    # Woken at its deadline (plus a resumer's start-up), not after the 30 s interval.
    assert finished_at - created.fires_at_ms < 8_000
    [fired] = types(log.events("w1"), "TimerFired")
    assert fired.fires_at_ms == created.fires_at_ms
    assert "woke         w1  (timer due at " in out

    sup_events = log.events("supervisor")
    [woke] = types(sup_events, "RunAutoResumed")
    assert (woke.run_id, woke.wake, woke.due_at_ms) == ("w1", "timer", created.fires_at_ms)
    polls = types(sup_events, "SupervisorPollCompleted")
    assert [p.woken_count for p in polls] == [0, 1]
    assert polls[-1].resumed_count == 1


def test_supervise_once_leaves_a_run_that_is_not_due_parked(
    cli: Any, flows: Path, log: Any
) -> None:
    (flows / "soak.py").write_text(textwrap.dedent(SOAK.replace("2s", "1h")), encoding="utf-8")
    assert cli.up("soak.py", "--run-id", "w2", "--hold-ms", "0").exit_code == 3
    result = cli("supervise", "--once", "--json")
    assert result.exit_code == 0, result.output
    kinds = [json.loads(line)["type"] for line in result.stdout.splitlines()]
    assert kinds == ["SupervisorStarted", "SupervisorPollCompleted"]
    assert log.status("w2") == "waiting-timer"


@posix_only
def test_supervise_wakes_each_timed_out_wait_and_on_timeout_decides(
    cli: Any, helpers: Any, flows: Path, log: Any
) -> None:
    for mode in ("fail", "skip", "continue"):
        (flows / f"ci_{mode}.py").write_text(
            textwrap.dedent(WAITS.format(mode=mode)), encoding="utf-8"
        )
        result = cli.up(f"ci_{mode}.py", "--run-id", f"ci-{mode}", "--hold-ms", "0")
        assert result.exit_code == 3, result.output
        assert "waiting   for signal ci.done on ci, times out at " in result.stdout
        assert log.status(f"ci-{mode}") == "waiting-event"
    ps = json.loads(cli("ps", "--json").stdout)
    assert {(r["waitingFor"][0]["kind"], r["waitingFor"][0]["eventName"]) for r in ps} == {
        ("event", "ci.done")
    }
    deadline = max(r["waitingFor"][0]["timeoutAtMs"] for r in ps)
    time.sleep(max(deadline - now_ms(), 0) / 1000 + 0.05)

    result = cli("supervise", "--once", "--max-concurrent", "3")
    assert result.exit_code == 0, result.output
    assert "(3 woken)" in result.stdout
    for mode in ("fail", "skip", "continue"):
        helpers.wait_until(
            lambda mode=mode: log.status(f"ci-{mode}") in ("finished", "failed"), mode
        )
    failed = log.state("ci-fail")
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.code == "WAIT_FOR_EVENT_TIMEOUT"
    skipped = log.state("ci-skip")
    assert skipped.status == "finished"
    assert skipped.node("ci").state == "skipped"
    assert skipped.node("after").state == "finished"
    continued = log.state("ci-continue")
    assert continued.status == "finished"
    assert continued.node("ci").state == "finished"
    assert bytes(continued.node("ci").output) == b"null"
    woken = types(log.events("supervisor"), "RunAutoResumed")
    assert sorted((e.run_id, e.wake) for e in woken) == [
        ("ci-continue", "timeout"),
        ("ci-fail", "timeout"),
        ("ci-skip", "timeout"),
    ]


@posix_only
def test_a_due_run_whose_file_is_gone_is_skipped_without_a_hot_loop(
    cli: Any, procs: Any, helpers: Any, flows: Path, log: Any
) -> None:
    path = flows / "soak.py"
    path.write_text(textwrap.dedent(SOAK.replace("2s", "200ms")), encoding="utf-8")
    assert cli.up("soak.py", "--run-id", "w3", "--hold-ms", "0").exit_code == 3
    path.unlink()
    time.sleep(0.3)
    sup = procs.smithers("supervise", "--interval", "30s")
    helpers.wait_until(lambda: types(supervisor_events(log), "RunAutoResumeSkipped"), "the skip")
    time.sleep(1.5)  # a hot loop would poll (and record) many times meanwhile
    sup.send_signal(signal.SIGTERM)
    sup.communicate(timeout=helpers.WAIT_S)
    sup_events = log.events("supervisor")
    [skip] = types(sup_events, "RunAutoResumeSkipped")
    assert (skip.run_id, skip.reason) == ("w3", "missing-workflow")
    assert len(types(sup_events, "SupervisorPollCompleted")) == 1
    assert types(sup_events, "RunAutoResumed") == []
    assert log.status("w3") == "waiting-timer"
