"""``smithers cancel``, ``down``, ``up --detach`` and signals on ``up``: runs always end."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import pytest
from smithers.eventstore.events import (
    NodeCancelled,
    RunCancelled,
    RunCancelRequested,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sessions")


def detach_gated(cli: Any, procs: Any, helpers: Any, flows: Any, run_id: str) -> int:
    """Start gated.py with ``up --detach``; return its pid once its task is running."""
    before = len(helpers.side_lines(flows / "gated.side"))
    result = cli.up("gated.py", "--detach", "--json", "--run-id", run_id)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    procs.track(out["pid"])
    helpers.wait_until(
        lambda: len(helpers.side_lines(flows / "gated.side")) > before, f"{run_id}'s task"
    )
    pid: int = out["pid"]
    return pid


def kill_gated(procs: Any, helpers: Any, flows: Any, run_id: str) -> None:
    """Run gated.py in a subprocess and SIGKILL it while its task is running."""
    before = len(helpers.side_lines(flows / "gated.side"))
    proc = procs.smithers("up", str(flows / "gated.py"), "--run-id", run_id)
    helpers.wait_until(
        lambda: proc.poll() is not None or len(helpers.side_lines(flows / "gated.side")) > before,
        f"{run_id}'s task",
    )
    assert proc.poll() is None, proc.communicate()
    procs.kill(proc)


# ---------------------------------------------------------------------- up --detach


@posix_only
def test_detach_prints_run_id_pid_and_log_file(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    result = cli.up("gated.py", "--detach", "--run-id", "bg")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Started run bg in the background (pid ")
    pid = int(lines[0].split("(pid ")[1].rstrip(")."))
    procs.track(pid)
    log_file = cli.db.parent / "executions" / "bg" / "logs" / "up.log"
    assert f"  log:     {log_file}" in lines
    assert log.status("bg") == "running"  # it returned once the run had started
    (flows / "gate").touch()
    assert procs.wait_exit(pid) == 0
    assert log.status("bg") == "finished"
    assert "Run bg finished" in log_file.read_text()


def test_detach_checks_input_before_starting(cli: Any) -> None:
    result = cli.up("gated.py", "--detach", "--input", "[1]")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [INVALID_INPUT]:")
    assert not (cli.db.parent / "executions").exists()


def test_detach_with_a_used_run_id_exits_4(cli: Any, finished_run: str) -> None:
    result = cli.up("count.py", "--detach", "--run-id", finished_run)
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RUN_ALREADY_EXISTS]:")


@posix_only
def test_detach_resume_continues_a_killed_run_in_the_background(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    kill_gated(procs, helpers, flows, "again")
    result = cli("up", "--resume", "again", "--detach", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    procs.track(out["pid"])
    assert out["runId"] == "again"
    assert out["logFile"].endswith("/executions/again/logs/up.log")
    assert log.state("again").activation == 2  # claimed before the command returned
    (flows / "gate").touch()
    assert procs.wait_exit(out["pid"]) == 0
    assert log.status("again") == "finished"


@posix_only
def test_detach_resume_refused_at_start_up_reports_why_and_its_exit_code(
    cli: Any, procs: Any, helpers: Any, flows: Any
) -> None:
    detach_gated(cli, procs, helpers, flows, "owned")
    result = cli("up", "--resume", "owned", "--detach")
    assert result.exit_code == 4
    assert "Error [RUN_OWNER_ALIVE]:" in result.stderr
    assert cli("cancel", "owned").exit_code == 0


# ---------------------------------------------------------------------- cancel


@posix_only
def test_cancel_of_a_live_run_is_recorded_by_its_owner_which_exits_2(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    pid = detach_gated(cli, procs, helpers, flows, "live")

    result = cli("cancel", "live")

    assert result.exit_code == 0, result.output
    assert "Cancel requested; waiting for the owner of run live to stop" in result.stdout
    assert f"Run live cancelled: its owner (pid {pid}) stopped its tasks" in result.stdout
    events = log.events("live")
    request = [e for e in events if isinstance(e, RunCancelRequested)]
    assert [(r.source, r.reason) for r in request] == [("cli", None)]
    (node,) = [e for e in events if isinstance(e, NodeCancelled)]
    assert (node.node_id, node.attempt, node.reason) == ("wait", 1, "cancelled")
    last = events[-1]
    assert isinstance(last, RunCancelled)
    assert last.source == "cli"
    # The owner wrote the end: its own status change came after the request.
    assert events.index(request[0]) < events.index(node)
    # Its process exits 2 (cancelled) and promptly, although the cancelled task's
    # thread still polls for its gate.
    assert procs.wait_exit(pid, timeout_s=10) == 2
    assert not procs.alive(pid)
    assert log.leases() == []


@posix_only
def test_cancel_of_a_killed_run_is_finalized_by_the_command(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    kill_gated(procs, helpers, flows, "dead")
    assert log.status("dead") == "running"
    assert [lease.run_id for lease in log.leases()] == ["dead"]

    result = cli("cancel", "dead", "--reason", "owner crashed")

    assert result.exit_code == 0, result.output
    assert "Run dead cancelled: its owner was gone" in result.stdout
    assert "Cancel requested" not in result.stdout  # nobody to ask
    events = log.events("dead")
    tail = [type(e).__name__ for e in events[-4:]]
    assert tail == ["RunCancelRequested", "NodeCancelled", "RunStatusChanged", "RunCancelled"]
    node = events[-3]
    assert isinstance(node, NodeCancelled)
    assert (node.node_id, node.attempt, node.reason) == ("wait", 1, "cancelled")
    last = events[-1]
    assert isinstance(last, RunCancelled)
    assert (last.reason, last.source) == ("owner crashed", "cli")
    state = log.state("dead")
    assert state.status == "cancelled"
    assert [rec.node_id for rec in state.nodes.values() if rec.state == "running"] == []
    assert log.leases() == []


def test_cancel_of_a_finished_run_changes_nothing(cli: Any, finished_run: str, log: Any) -> None:
    seq = log.last_seq(finished_run)
    result = cli("cancel", finished_run)
    assert result.exit_code == 0
    assert f"Run {finished_run} has already ended (finished); nothing to cancel." in result.stdout
    assert log.last_seq(finished_run) == seq
    out = json.loads(cli("cancel", finished_run, "--json").stdout)
    assert out == {"runId": finished_run, "status": "finished", "action": "none"}


def test_cancel_of_an_unknown_run_is_run_not_found(cli: Any, finished_run: str) -> None:
    result = cli("cancel", "nope")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RUN_NOT_FOUND]:")


@pytest.mark.parametrize("wait", ["soon", "0s", "-1s"])
def test_cancel_wait_must_be_a_positive_duration(cli: Any, wait: str) -> None:
    result = cli("cancel", "r", "--wait", wait)
    assert result.exit_code == 4
    assert "--wait" in result.stderr


# ---------------------------------------------------------------------- down


@posix_only
def test_down_cancels_every_active_run(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any, finished_run: str
) -> None:
    pid = detach_gated(cli, procs, helpers, flows, "alive")
    kill_gated(procs, helpers, flows, "killed")

    result = cli("down", "--json")

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert sorted((r["runId"], r["status"]) for r in out) == [
        ("alive", "cancelled"),
        ("killed", "cancelled"),
    ]
    for run_id in ("alive", "killed"):
        assert log.types(run_id)[-1] == "RunCancelled"
    assert log.status(finished_run) == "finished"
    assert procs.wait_exit(pid, timeout_s=10) in (2, None)
    again = cli("down")
    assert again.exit_code == 0
    assert again.stdout == "No active runs.\n"


# ---------------------------------------------------------------------- signals


@posix_only
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_cancels_up_gracefully(
    procs: Any, helpers: Any, flows: Any, log: Any, signum: int, code: int
) -> None:
    proc = procs.smithers("up", str(flows / "gated.py"), "--run-id", "sig")
    helpers.wait_until(
        lambda: proc.poll() is not None or helpers.side_lines(flows / "gated.side"), "the task"
    )
    proc.send_signal(signum)
    # The task is a sync function still polling in its thread: the process must not
    # wait for it once the cancellation is recorded.
    _, err = proc.communicate(timeout=10)

    assert proc.returncode == code, err
    what = "Terminated" if signum == signal.SIGTERM else "Interrupted"
    assert f"Error [RUN_CANCELLED]: {what}: run sig stopped and was recorded as cancelled." in err
    assert "Traceback" not in err
    events = log.events("sig")
    last = events[-1]
    assert isinstance(last, RunCancelled)
    assert (last.source, last.reason) == ("signal", signal.Signals(signum).name)
    (node,) = [e for e in events if isinstance(e, NodeCancelled)]
    assert (node.node_id, node.reason) == ("wait", "cancelled")
    assert log.leases() == []


@posix_only
def test_a_second_signal_stops_waiting_for_a_task_that_ignores_cancellation(
    procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    (flows / "stubborn.py").write_text(
        "import anyio\n"
        "from pathlib import Path\n"
        "from smithers import Task, workflow\n"
        "async def stubborn():\n"
        "    Path(__file__).with_name('stubborn.side').write_text('started')\n"
        "    with anyio.CancelScope(shield=True):\n"
        "        await anyio.sleep(1.5)\n"
        "    return {}\n"
        "@workflow('stubborn')\n"
        "def stubborn_wf(ctx):\n"
        "    return [Task('stubborn', output=dict, run=stubborn)]\n"
    )
    proc = procs.smithers("up", str(flows / "stubborn.py"), "--run-id", "stubborn")
    helpers.wait_until(
        lambda: proc.poll() is not None or (flows / "stubborn.side").exists(), "the task"
    )
    proc.send_signal(signal.SIGTERM)  # asks the run to cancel: the task ignores it
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first == "SIGTERM: cancelling the run (a second signal stops waiting).\n"
    proc.send_signal(signal.SIGTERM)  # stop waiting
    _, err = proc.communicate(timeout=10)

    assert proc.returncode == 143, err
    assert "Stopping without waiting for the run's tasks." in err
    assert "(without waiting for its tasks) and was recorded as cancelled" in err
    assert log.status("stubborn") == "cancelled"
