"""A parent run parked on its `Subflow` child: deciding, signalling, waking, cancelling.

Everything runs in real ``smithers`` subprocesses against one database: ``up`` of a
parent whose child (or grandchild) waits exits 3 and prints a command naming the
parent; that command, run as printed, decides in the child and the whole tree goes on
to its end. ``inspect``/``ps`` of the parent say what the child waits for; the
supervisor wakes a parent parked on its child's timer; ``cancel PARENT`` ends both.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")

FLOW = """
import msgspec
from smithers import Approval, Parallel, Sequence, Subflow, Task, Timer, WaitForEvent, workflow

class N(msgspec.Struct):
    n: int

class Ci(msgspec.Struct):
    ok: bool

@workflow("gated")
def gated(ctx):
    return Sequence(
        Approval("ok", request={"title": "Ship it?"}),
        Task("output", output=N, value={"n": 7}),
    )

@workflow("middle")
def middle(ctx):
    inner = ctx.output_maybe(N, "inner")
    return Sequence(
        Subflow("inner", workflow=gated, output=N),
        inner and Task("output", output=N, value={"n": inner.n + 1}),
    )

@workflow("parent")
def parent(ctx):
    child = ctx.output_maybe(N, "ask")
    return Sequence(
        Subflow("ask", workflow=gated, output=N),
        child and Task("output", output=N, value={"n": child.n * 10}),
    )

@workflow("grandparent")
def grandparent(ctx):
    mid = ctx.output_maybe(N, "mid")
    return Sequence(
        Subflow("mid", workflow=middle, output=N),
        mid and Task("output", output=N, value={"n": mid.n * 100}),
    )

@workflow("waits-ci")
def waits_ci(ctx):
    return Sequence(
        WaitForEvent("ci", event="ci.done", output=Ci),
        Task("output", output=N, value={"n": 1}),
    )

@workflow("signalled")
def signalled(ctx):
    return Sequence(
        Parallel(
            WaitForEvent("own", event="ci.done", output=Ci),
            Subflow("kid", workflow=waits_ci, output=N),
        ),
        Task("output", output=N, value={"n": 2}),
    )

@workflow("ci-times-out")
def ci_times_out(ctx):
    return Sequence(
        WaitForEvent("ci", event="ci.done", output=Ci, timeout_ms=800, on_timeout="skip"),
        Task("output", output=N, value={"n": 5}),
    )

@workflow("timeout-parent")
def timeout_parent(ctx):
    return Sequence(
        Subflow("ci", workflow=ci_times_out, output=N),
        Task("output", output=N, value={"n": 6}),
    )

@workflow("soaks")
def soaks(ctx):
    return Sequence(
        Timer("soak", duration=ctx.input.get("soak", "1s")),
        Task("output", output=N, value={"n": 3}),
    )

@workflow("timed")
def timed(ctx):
    return Sequence(
        Subflow("wait", workflow=soaks, input=ctx.input, output=N),
        Task("output", output=N, value={"n": 4}),
    )
"""


@pytest.fixture
def flow(flows: Path) -> Path:
    path = flows / "tree.py"
    path.write_text(textwrap.dedent(FLOW), encoding="utf-8")
    return path


def _up(procs: Any, flow: Path, name: str, run_id: str, *args: str) -> str:
    """``up FLOW:NAME``: it must park (exit 3); its stdout."""
    up = procs.smithers("up", f"{flow}:{name}", "--run-id", run_id, *args)
    out, err = up.communicate(timeout=60)
    assert up.returncode == 3, out + err
    return out


def _printed(out: str, verb: str) -> list[str]:
    """The arguments of the ``smithers VERB ...`` command `up` printed, without the db."""
    [line] = [ln for ln in out.splitlines() if ln.strip().startswith(f"{verb}:")]
    cmd = shlex.split(line.split(":", 1)[1])
    assert cmd[:2] == ["smithers", verb], line
    assert cmd[-2] == "--db"
    return cmd[1:-2]  # procs.smithers adds --db


def _run(procs: Any, *args: str) -> tuple[int, str, str]:
    proc = procs.smithers(*args)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def _output(log: Any, run_id: str) -> Any:
    rec = log.state(run_id).node("output")
    assert rec is not None
    return json.loads(bytes(rec.output))


def _count(log: Any, run_id: str, name: str) -> int:
    return log.types(run_id).count(name)


def test_up_prints_an_approve_of_the_parent_that_finishes_the_whole_tree(
    flow: Path, procs: Any, log: Any, helpers: Any
) -> None:
    out = _up(procs, flow, "grandparent", "gp")
    leaf = "gp:child:mid:0:child:inner:0"
    assert f"waits in child run gp:child:mid:0: inner waits in child run {leaf}: ok" in out
    args = _printed(out, "approve")
    assert args == ["approve", "gp", "--node", "ok"]

    code, said, err = _run(procs, *args)

    assert code == 0, err
    assert f"Approved ok in child run {leaf} of run gp" in said
    assert "Resumed run gp in the background" in said
    helpers.wait_until(lambda: log.status("gp") == "finished", "the whole tree to finish")
    assert log.status("gp:child:mid:0") == "finished"
    assert log.status(leaf) == "finished"
    assert _output(log, "gp") == {"n": 800}
    assert _count(log, leaf, "ApprovalGranted") == 1
    assert _count(log, leaf, "ApprovalRequested") == 1
    assert _count(log, "gp", "ApprovalGranted") == 0  # decided where it waited


def test_approvals_of_the_parent_list_the_childs_and_deny_reaches_it(
    flow: Path, procs: Any, log: Any, helpers: Any
) -> None:
    _up(procs, flow, "parent", "pd")
    code, out, err = _run(procs, "approvals", "pd", "--json")
    assert code == 0, err
    [item] = json.loads(out)
    assert item["runId"] == "pd:child:ask:0"
    assert item["rootRunId"] == "pd"
    assert item["nodeId"] == "ok"
    code, text, _ = _run(procs, "approvals")
    assert "in run:  pd (a Subflow's child run)" in text

    code, out, err = _run(procs, "deny", "pd", "--note", "not now", "--json")

    assert code == 0, err
    result = json.loads(out)
    assert result["runId"] == "pd:child:ask:0"
    assert result["requestedRunId"] == "pd"
    assert result["resumeRunId"] == "pd"
    assert result["decision"] == "denied"
    helpers.wait_until(lambda: log.status("pd") == "failed", "the denial to fail the tree")
    assert log.status("pd:child:ask:0") == "failed"
    code, _, err = _run(procs, "approve", "pd")
    assert code == 4
    assert "NO_PENDING_APPROVALS" in err


def test_a_signal_goes_to_the_parents_own_waiter_first_then_to_the_child(
    flow: Path, procs: Any, log: Any, helpers: Any
) -> None:
    _up(procs, flow, "signalled", "sg")
    kid = "sg:child:kid:0"
    assert log.status(kid) == "waiting-event"

    code, out, err = _run(procs, "signal", "sg", "ci.done", "--data", '{"ok": 1}')
    assert code == 4  # checked against the parent's own waiter: nothing recorded
    assert "INVALID_INPUT" in err
    assert _count(log, "sg", "SignalReceived") == 0

    code, out, err = _run(
        procs, "signal", "sg", "ci.done", "--data", '{"ok": true}', "--no-resume", "--json"
    )
    assert code == 0, err
    first = json.loads(out)
    assert first["runId"] == "sg"
    assert first["deliveredTo"] == {"nodeId": "own", "iteration": 0}

    code, out, err = _run(procs, "signal", "sg", "ci.done", "--data", '{"ok": true}')
    assert code == 0, err
    assert f"delivered to ci in child run {kid} of run sg" in out
    helpers.wait_until(lambda: log.status("sg") == "finished", "the tree to finish")
    assert log.status(kid) == "finished"
    assert _count(log, "sg", "SignalReceived") == 1
    assert _count(log, kid, "SignalReceived") == 1


def test_inspect_and_ps_of_the_parent_say_what_the_child_waits_for(flow: Path, procs: Any) -> None:
    _up(procs, flow, "parent", "pi")
    child = "pi:child:ask:0"

    code, out, err = _run(procs, "inspect", "pi")
    assert code == 0, err
    assert f"ask waits in child run {child}: ok, approval (approve): Ship it?" in out
    assert "approve: smithers approve pi --node ok" in out

    code, out, err = _run(procs, "ps", "--json", "--no-children")
    assert code == 0, err
    [run] = json.loads(out)
    [wait] = run["waitingFor"]
    assert wait["kind"] == "subflow"
    assert wait["nodeId"] == "ask"
    assert wait["childRunId"] == child
    assert wait["childStatus"] == "waiting-approval"
    assert [(w["kind"], w["nodeId"], w["title"]) for w in wait["waitingFor"]] == [
        ("approval", "ok", "Ship it?")
    ]
    code, out, _ = _run(procs, "ps")
    assert f"ask waits in child run {child}: approval ok (Ship it?)" in out
    code, out, _ = _run(procs, "inspect", "pi", "--json")
    assert json.loads(out)["waitingFor"][0]["childRunId"] == child


@posix_only
def test_supervise_wakes_a_parent_parked_on_its_childs_timer(
    flow: Path, procs: Any, log: Any, helpers: Any
) -> None:
    out = _up(procs, flow, "timed", "tw", "--hold-ms", "0")
    child = "tw:child:wait:0"
    assert log.status("tw") == "waiting-timer"
    assert log.status(child) == "waiting-timer"
    assert f"wait waits in child run {child}: soak, timer fires at" in out

    sup = procs.smithers("supervise", "--interval", "30s")
    helpers.wait_until(lambda: log.status("tw") == "finished", "the tree to finish")
    sup.send_signal(signal.SIGTERM)
    sup.communicate(timeout=helpers.WAIT_S)

    assert log.status(child) == "finished"
    assert _count(log, child, "TimerFired") == 1
    assert _output(log, "tw") == {"n": 4}
    woken = [e.run_id for e in log.events("supervisor") if type(e).__name__ == "RunAutoResumed"]
    assert woken == [child]  # the run holding the timer; its end resumed the parent
    started = [e.node_id for e in log.events(child) if type(e).__name__ == "NodeStarted"]
    assert started.count("output") == 1


@posix_only
def test_supervise_wakes_only_the_child_when_its_wait_times_out(
    flow: Path, procs: Any, log: Any, helpers: Any
) -> None:
    _up(procs, flow, "timeout-parent", "to", "--hold-ms", "0")
    child = "to:child:ci:0"
    assert log.status("to") == "waiting-event"

    sup = procs.smithers("supervise", "--interval", "30s")
    helpers.wait_until(lambda: log.status("to") == "finished", "the tree to finish")
    sup.send_signal(signal.SIGTERM)
    sup.communicate(timeout=helpers.WAIT_S)

    assert log.status(child) == "finished"
    assert _output(log, "to") == {"n": 6}
    decided = [
        (type(e).__name__, e.run_id)
        for e in log.events("supervisor")
        if type(e).__name__ in ("RunAutoResumed", "RunAutoResumeSkipped")
    ]
    # The child holds the deadline; the parent's wait on it is no deadline of its own.
    assert decided == [("RunAutoResumed", child)]


def test_cancel_a_parked_parent_cancels_the_child_and_its_timer(
    flow: Path, procs: Any, log: Any
) -> None:
    _up(procs, flow, "timed", "tc", "--hold-ms", "0", "--input", '{"soak": "1h"}')
    child = "tc:child:wait:0"

    code, _, err = _run(procs, "cancel", "tc")

    assert code == 0, err
    assert log.status("tc") == "cancelled"
    assert log.status(child) == "cancelled"
    assert _count(log, child, "TimerCancelled") == 1


@posix_only
def test_cancel_a_live_parent_cancels_its_live_child_and_its_timer(
    flow: Path, procs: Any, log: Any, helpers: Any
) -> None:
    child = "tl:child:wait:0"
    up = procs.smithers(
        "up", f"{flow}:timed", "--run-id", "tl", "--input", '{"soak": "20s"}', "--hold-ms", "60000"
    )
    helpers.wait_until(
        lambda: log.status(child) is not None and _count(log, child, "TimerCreated") == 1,
        "the child to hold its timer in-process",
    )
    assert log.status("tl") == "running"

    code, _, err = _run(procs, "cancel", "tl")
    assert code == 0, err
    up.communicate(timeout=60)

    assert up.returncode == 2
    assert log.status("tl") == "cancelled"
    assert log.status(child) == "cancelled"
    assert _count(log, child, "TimerCancelled") == 1
