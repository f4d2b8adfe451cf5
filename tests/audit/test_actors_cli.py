"""Every operation taken through the CLI records who took it: ``--by``/``--reason``,
else ``SMITHERS_ACTOR``, else the OS user; with the host, the pid of the command's
process and the interface ``cli``. Bad ``--by``/``--reason`` values are refused (exit 4)
before anything is recorded.
"""

from __future__ import annotations

import getpass
import socket
import textwrap
import time
from typing import TYPE_CHECKING, Any

from click.testing import CliRunner
from smithers.cli import main
from smithers.eventstore.events import (
    ApprovalDenied,
    ApprovalGranted,
    ReplayStarted,
    RetryTaskStarted,
    RunAutoResumed,
    RunCancelRequested,
    RunForked,
    RunRewound,
    RunStarted,
    SignalReceived,
    SupervisorStarted,
)

if TYPE_CHECKING:
    from pathlib import Path

HOST = socket.gethostname()


def check(actor: Any, name: str, reason: str | None, pid: int, interface: str = "cli") -> None:
    assert actor is not None
    assert (actor.name, actor.reason, actor.pid, actor.host, actor.interface) == (
        name,
        reason,
        pid,
        HOST,
        interface,
    )


def test_start_approve_resume_signal_record_their_actor_from_each_source(
    smithers: Any, flow: Path
) -> None:
    # --by and --reason.
    up = smithers("up", str(flow), "--run-id", "r1", "--by", "alice", "--reason", "first try")
    assert up.returncode == 3, up.stderr  # parked on the approval
    start = smithers.last("r1", RunStarted)
    check(start.actor, "alice", "first try", smithers.pids[-1])

    # SMITHERS_ACTOR without --by: the actor; decidedBy stays the OS user, as before.
    ok = smithers("approve", "r1", "--no-resume", env={"SMITHERS_ACTOR": "carol"})
    assert ok.returncode == 0, ok.stderr
    granted = smithers.last("r1", ApprovalGranted)
    check(granted.actor, "carol", None, smithers.pids[-1])
    assert granted.decided_by == getpass.getuser()

    # Neither: the OS user.
    resumed = smithers("up", "--resume", "r1")
    assert resumed.returncode == 3, resumed.stderr  # now waits for the signal
    again = smithers.last("r1", RunStarted)
    assert again.activation == 2
    check(again.actor, getpass.getuser(), None, smithers.pids[-1])

    sent = smithers(
        "signal", "r1", "ci.done", "--data", '{"ok": true}', "--by", "dave", "--reason",
        "ci is green", "--no-resume",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    signal = smithers.last("r1", SignalReceived)
    check(signal.actor, "dave", "ci is green", smithers.pids[-1])
    assert signal.sent_by == "dave"


def test_time_travel_decisions_and_cancels_record_their_actor(smithers: Any, flow: Path) -> None:
    assert smithers("up", str(flow), "--run-id", "r1").returncode == 3

    rewound = smithers(
        "rewind", "r1", "--frame", "1", "--yes", "--by", "erin", "--reason", "bad deploy"
    )
    assert rewound.returncode == 0, rewound.stderr
    check(smithers.last("r1", RunRewound).actor, "erin", "bad deploy", smithers.pids[-1])

    forked = smithers("fork", "r1", "--frame", "1", "--run-id", "f1", "--by", "frank")
    assert forked.returncode == 0, forked.stderr
    fork = smithers.last("f1", RunForked)
    check(fork.actor, "frank", None, smithers.pids[-1])

    replay = smithers(
        "replay", "r1", "--frame", "0", "--run-id", "p1", "--by", "gina", "--reason", "again"
    )
    assert replay.returncode == 3, replay.stderr  # the replay parks on the approval
    pid = smithers.pids[-1]
    for kind in (RunForked, ReplayStarted, RunStarted):
        check(smithers.last("p1", kind).actor, "gina", "again", pid)

    retried = smithers("retry-task", "r1", "--node", "build", "--by", "hank")
    assert retried.returncode == 3, retried.stderr
    retry = smithers.last("r1", RetryTaskStarted)
    check(retry.actor, "hank", None, smithers.pids[-1])
    assert retry.reset_nodes[0] == "build"

    denied = smithers("deny", "r1", "--by", "judy", "--reason", "not today", "--no-resume")
    assert denied.returncode == 0, denied.stderr
    deny = smithers.last("r1", ApprovalDenied)
    check(deny.actor, "judy", "not today", smithers.pids[-1])
    assert deny.decided_by == "judy"

    cancelled = smithers("cancel", "r1", "--by", "ivan", "--reason", "abandon")
    assert cancelled.returncode == 0, cancelled.stderr
    request = smithers.last("r1", RunCancelRequested)
    check(request.actor, "ivan", "abandon", smithers.pids[-1])
    assert (request.source, request.reason) == ("cli", "abandon")

    down = smithers("down", "--force", "--by", "kate", "--reason", "end of day")
    assert down.returncode == 0, down.stderr
    check(smithers.last("p1", RunCancelRequested).actor, "kate", "end of day", smithers.pids[-1])


def test_supervise_records_its_actor_with_interface_supervisor(smithers: Any, flow: Path) -> None:
    assert smithers("up", str(flow), "--run-id", "r1").returncode == 3
    done = smithers("supervise", "--once", "--by", "ops-bot", "--reason", "nightly")
    assert done.returncode == 0, done.stderr
    started = smithers.last("supervisor", SupervisorStarted)
    check(started.actor, "ops-bot", "nightly", smithers.pids[-1], interface="supervisor")


def test_bad_by_or_reason_is_refused_with_exit_4_and_nothing_recorded(
    smithers: Any, flow: Path
) -> None:
    assert smithers("up", str(flow), "--run-id", "r1").returncode == 3
    before = len(smithers.events("r1"))
    for args in (
        ("rewind", "r1", "--frame", "0", "--yes", "--by", "  "),
        ("approve", "r1", "--reason", "bell\x07"),
        ("cancel", "r1", "--by", "x" * 201),
        ("up", "--resume", "r1", "--by", ""),
    ):
        done = smithers(*args)
        assert done.returncode == 4, (args, done.stderr)
        assert "Error [INVALID_INPUT]" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert len(smithers.events("r1")) == before


TIMER_FLOW = """
    from smithers import Sequence, Task, Timer, workflow

    @workflow("soak")
    def soak(ctx):
        return Sequence(Timer("soak", duration="300ms"), Task("after", output=dict, value={}))
"""


def test_a_run_the_supervisor_resumes_records_the_supervisors_actor(
    smithers: Any, tmp_path: Path
) -> None:
    flow = tmp_path / "soak.py"
    flow.write_text(textwrap.dedent(TIMER_FLOW), encoding="utf-8")
    parked = smithers("up", str(flow), "--run-id", "t1", "--hold-ms", "0")
    assert parked.returncode == 3, parked.stderr  # waiting-timer, no process
    time.sleep(0.4)
    done = smithers("supervise", "--once", "--by", "ops-bot", "--reason", "nightly")
    assert done.returncode == 0, done.stderr
    woke = smithers.last("supervisor", RunAutoResumed)
    assert woke.run_id == "t1"
    check(woke.actor, "ops-bot", "nightly", smithers.pids[-1], interface="supervisor")
    # The resumer it started is a process of its own, recording the same name.
    deadline = time.monotonic() + 20
    while sum(isinstance(e, RunStarted) for e in smithers.events("t1")) < 2:
        assert time.monotonic() < deadline, "the supervisor's resume did not start"
        time.sleep(0.05)
    resumed = smithers.last("t1", RunStarted)
    assert resumed.actor is not None
    assert (resumed.actor.name, resumed.actor.reason) == ("ops-bot", "supervisor auto-resume")
    assert resumed.actor.pid == woke.pid


OPERATION_COMMANDS = (
    "up", "cancel", "down", "rewind", "fork", "replay", "retry-task",
    "approve", "deny", "signal", "supervise",
)  # fmt: skip


def test_every_operation_command_takes_by_and_reason() -> None:
    runner = CliRunner()
    for command in OPERATION_COMMANDS:
        result = runner.invoke(main, [command, "--help"], catch_exceptions=False)
        assert result.exit_code == 0, command
        assert "--by NAME" in result.output, command
        assert "--reason TEXT" in result.output, command
