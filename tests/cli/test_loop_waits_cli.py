"""Loops meet waits through the CLI (issue 9): a review loop with a human in it.

In real subprocesses: ``up`` parks on pass 0's approval (exit 3) and prints the command
to continue; that command approves and resumes the run, which parks again on pass 1;
the command ``approvals`` prints for pass 1 (``--iteration 1``) finishes it. In
process: deny makes the next pass, ``--iteration`` without ``--node``, a signal per
pass, the progress lines of loop passes and of a continue-as-new chain.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

FLOWS = {
    "review.py": """
        from smithers import Approval, Loop, Sequence, Task, workflow

        @workflow("review")
        def review(ctx):
            ok = ctx.latest(dict, "ok")
            approved = sum(
                1
                for i in range(ctx.loop_iteration("review") + 1)
                if (ctx.output_maybe(dict, "ok", iteration=i) or {}).get("approved")
            )
            it = ctx.loop_iteration("review")
            return Sequence(
                Loop(
                    "review",
                    Task("draft", output=dict, run=lambda: {"v": it}),
                    Approval("ok", request={"title": f"Draft {it} good?"}, on_deny="continue"),
                    until=bool(ok) and approved >= ctx.input.get("approvals", 1),
                    max_iterations=4,
                ),
                Task("publish", output=dict, run=lambda: {"v": it}),
            )
    """,
    "poll.py": """
        from smithers import Loop, Sequence, Task, WaitForEvent, workflow

        @workflow("poll")
        def poll(ctx):
            return Sequence(
                Loop(
                    "poll",
                    WaitForEvent("tick", event="tick", output=dict),
                    until=ctx.iteration_count(dict, "tick") >= 2,
                    max_iterations=3,
                ),
                Task("done", output=dict, value={"ok": True}),
            )
    """,
    "chain.py": """
        from smithers import Loop, Task, workflow

        @workflow("chain")
        def chain(ctx):
            return Loop(
                "count",
                Task("step", output=dict, run=lambda: {"it": ctx.iteration}),
                until=ctx.iteration_count(dict, "step") >= 5,
                max_iterations=10,
                continue_as_new_every=2,
            )
    """,
}


@pytest.fixture
def wflows(flows: Path) -> Path:
    for name, body in FLOWS.items():
        (flows / name).write_text(textwrap.dedent(body), encoding="utf-8")
    return flows


def run_line(procs: Any, line: str) -> subprocess.CompletedProcess[str]:
    """Run a printed ``smithers ...`` command line as a subprocess (``python -m smithers``)."""
    argv = shlex.split(line)
    assert argv[0] == "smithers"
    return subprocess.run(
        [sys.executable, "-m", "smithers", *argv[1:]],
        cwd=procs.root,
        env=procs.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def printed(out: str, label: str) -> str:
    """The command printed after ``label:`` (e.g. ``approve:``)."""
    line = next(x for x in out.splitlines() if x.strip().startswith(f"{label}:"))
    return line.split(f"{label}:", 1)[1].strip()


def track_resume(procs: Any, out: str) -> None:
    m = re.search(r"\(pid (\d+)\)", out)
    if m:
        procs.track(int(m.group(1)))


def waiting(log: Any, run_id: str) -> list[tuple[str, int, str]]:
    return [(r.node_id, r.iteration, r.state) for r in log.state(run_id).waiting()]


def test_each_pass_parks_and_the_printed_commands_finish_the_loop(
    wflows: Path, procs: Any, log: Any, helpers: Any
) -> None:
    up = procs.smithers(
        "up", str(wflows / "review.py"), "--run-id", "L1", "--input", '{"approvals": 2}'
    )
    out, err = up.communicate(timeout=60)
    assert up.returncode == 3, err
    assert re.search(r"loop\s+review pass 0", out), out
    assert re.search(r"waiting\s+for approval: ok \(Draft 0 good\?\)", out), out
    command = printed(out, "approve")
    assert command == f"smithers approve L1 --node ok --db {procs.db}"

    first = run_line(procs, command)
    track_resume(procs, first.stdout)
    assert first.returncode == 0, first.stderr
    assert "Resumed run L1 in the background" in first.stdout
    helpers.wait_until(
        lambda: (
            waiting(log, "L1") == [("ok", 1, "waiting-approval")]
            and log.status("L1") == "waiting-approval"
        ),
        "the run to park on pass 1's approval",
    )

    listing = run_line(procs, f"smithers approvals --db {procs.db}")
    assert listing.returncode == 0, listing.stderr
    command = printed(listing.stdout, "approve")
    assert command == f"smithers approve L1 --node ok --iteration 1 --db {procs.db}"
    second = run_line(procs, command)
    track_resume(procs, second.stdout)
    assert second.returncode == 0, second.stderr
    assert "Approved ok (iteration 1) in run L1" in second.stdout
    helpers.wait_until(lambda: log.status("L1") == "finished", "the run to finish")

    state = log.state("L1")
    assert state.loops["review"].iteration == 1
    assert state.loops["review"].reason == "until"
    assert json.loads(bytes(state.nodes[("publish", 0)].output)) == {"v": 1}
    types = log.types("L1")
    assert types.count("ApprovalRequested") == 2
    assert types.count("ApprovalGranted") == 2
    assert types.count("RunStarted") == 3  # up, then one resume per approval


def test_deny_makes_the_next_pass_and_iteration_alone_picks_the_pass(
    wflows: Path, cli: Any, log: Any
) -> None:
    assert cli.up("review.py", "--run-id", "L2").exit_code == 3
    assert cli("deny", "L2", "--note", "too long", "--no-resume").exit_code == 0
    again = cli("up", "--resume", "L2")
    assert again.exit_code == 3, again.output
    assert re.search(r"finished\s+ok\n", again.stdout), again.stdout  # on_deny="continue"
    assert re.search(r"loop\s+review pass 1", again.stdout), again.stdout
    assert re.search(r"waiting\s+for approval: ok#1 \(Draft 1 good\?\)", again.stdout)
    assert f"approve: smithers approve L2 --node ok --iteration 1 --db {cli.db}" in again.stdout

    # Pass 0 was decided already; pass 3 never asked.
    twice = cli("approve", "L2", "--iteration", "0", "--no-resume")
    assert twice.exit_code == 4
    assert twice.stderr.startswith("Error [APPROVAL_ALREADY_DECIDED]")
    never = cli("approve", "L2", "--iteration", "3", "--no-resume")
    assert never.exit_code == 4
    assert never.stderr.startswith("Error [NO_PENDING_APPROVALS]")

    res = cli("approve", "L2", "--iteration", "1", "--no-resume", "--json")
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert (body["nodeId"], body["iteration"], body["decision"]) == ("ok", 1, "granted")
    done = cli("up", "--resume", "L2")
    assert done.exit_code == 0, done.output
    assert re.search(r"finished\s+ok#1", done.stdout), done.stdout
    assert re.search(r"loop\s+review done after 2 passes \(until\)", done.stdout), done.stdout
    assert log.status("L2") == "finished"


def test_a_signal_per_pass_resolves_that_pass_only(wflows: Path, cli: Any, log: Any) -> None:
    assert cli.up("poll.py", "--run-id", "P1").exit_code == 3
    assert waiting(log, "P1") == [("tick", 0, "waiting-event")]
    res = cli("signal", "P1", "tick", "--data", '{"n": 0}', "--no-resume", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["deliveredTo"] == {"nodeId": "tick", "iteration": 0}
    again = cli("up", "--resume", "P1")
    assert again.exit_code == 3, again.output
    assert waiting(log, "P1") == [("tick", 1, "waiting-event")]
    # A payload the pass's node rejects is refused and records nothing.
    before = log.last_seq("P1")
    bad = cli("signal", "P1", "tick", "--data", "[1]", "--no-resume")
    assert bad.exit_code == 4
    assert bad.stderr.startswith("Error [INVALID_INPUT]")
    assert log.last_seq("P1") == before
    res = cli("signal", "P1", "tick", "--data", '{"n": 1}', "--no-resume", "--json")
    assert json.loads(res.stdout)["deliveredTo"] == {"nodeId": "tick", "iteration": 1}
    assert cli("up", "--resume", "P1").exit_code == 0
    state = log.state("P1")
    assert json.loads(bytes(state.nodes[("tick", 1)].output)) == {"n": 1}
    assert [s.delivered_to for s in state.signals] == [("tick", 0), ("tick", 1)]


def test_up_of_a_chain_shows_continuations_and_ends_with_the_last_run(
    wflows: Path, cli: Any, log: Any
) -> None:
    res = cli.up("chain.py", "--run-id", "C1")
    assert res.exit_code == 0, res.output
    out = res.stdout
    continued = re.findall(r"run\s+continued as (C1:cont:\d+:[0-9a-f]{6})", out)
    assert len(continued) == 2, out
    last = continued[-1]
    assert f"Run {last} finished" in out
    assert f"chain:   C1 continued as new 2 times; the last run is {last}" in out
    assert f"history: smithers timeline {last} --follow-ancestry --db {cli.db}" in out
    assert re.search(r"loop\s+count done after 5 passes \(until\)", out), out
    assert log.status("C1") == "continued"
    assert log.status(last) == "finished"
    # The printed command works and follows the chain back to C1.
    timeline = cli("timeline", last, "--follow-ancestry")
    assert timeline.exit_code == 0, timeline.output
    assert "C1" in timeline.stdout
    as_json = cli.up_json("chain.py", "--run-id", "C2")
    assert as_json["runId"].startswith("C2:cont:2:")
