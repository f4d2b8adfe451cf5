"""``smithers approve``, ``deny`` and ``approvals``; ``up``, ``ps`` and ``inspect`` of parked runs.

The main cycle runs in real subprocesses: ``up`` parks (exit 3) and prints the exact
command, that command records the decision and resumes the run in the background,
and the run finishes without any other step.
"""

from __future__ import annotations

import getpass
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

HEAD = """
    import msgspec
    from smithers import Approval, Parallel, Sequence, Task, workflow

    class N(msgspec.Struct):
        n: int
"""

FLOWS = {
    "deploy.py": """
        @workflow("deploy")
        def deploy(ctx):
            return Sequence(
                Task("build", output=N, value={"n": 1}),
                Approval(
                    "deploy-approval",
                    request={"title": "Deploy to prod?", "summary": "build 1"},
                    on_deny=ctx.input.get("on_deny", "fail"),
                ),
                Task("deploy", output=N, run=lambda: {"n": 2}),
            )
    """,
    "two.py": """
        @workflow("two")
        def two(ctx):
            return Parallel(
                Approval("a", request={"title": "First"}),
                Approval("b", request={"title": "Second"}),
            )
    """,
    "choose.py": """
        @workflow("choose")
        def choose(ctx):
            return Sequence(
                Approval("pick", mode="select", options=["blue", "green"]),
                Approval("order", mode="rank", options=["x", "y", "z"]),
            )
    """,
}


@pytest.fixture
def wflows(flows: Path) -> Path:
    for name, body in FLOWS.items():
        (flows / name).write_text(textwrap.dedent(HEAD) + textwrap.dedent(body), encoding="utf-8")
    return flows


def run_cmd(procs: Any, line: str) -> subprocess.CompletedProcess[str]:
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


def track_resume(procs: Any, out: str) -> None:
    """Reap the background resume a deciding command started (its pid is printed)."""
    m = re.search(r"\(pid (\d+)\)", out)
    if m:
        procs.track(int(m.group(1)))


def test_up_parks_and_the_printed_command_finishes_the_run(
    wflows: Path, procs: Any, log: Any, helpers: Any
) -> None:
    up = procs.smithers("up", str(wflows / "deploy.py"), "--run-id", "d1")
    out, err = up.communicate(timeout=60)
    assert up.returncode == 3, err
    assert "waiting-approval" in out
    approve_line = next(line for line in out.splitlines() if line.strip().startswith("approve:"))
    command = approve_line.split("approve:", 1)[1].strip()
    assert command == f"smithers approve d1 --node deploy-approval --db {procs.db}"
    assert f"smithers deny d1 --node deploy-approval --db {procs.db}" in out
    assert log.status("d1") == "waiting-approval"

    done = run_cmd(procs, command)
    track_resume(procs, done.stdout)
    assert done.returncode == 0, done.stderr
    assert "Approved deploy-approval in run d1" in done.stdout
    assert "Resumed run d1 in the background" in done.stdout
    helpers.wait_until(lambda: log.status("d1") == "finished", "the resumed run to finish")
    state = log.state("d1")
    assert state.nodes[("deploy", 0)].state == "finished"
    assert log.types("d1").count("ApprovalGranted") == 1


@pytest.mark.parametrize(("on_deny", "status"), [("fail", "failed"), ("skip", "finished")])
def test_deny_resumes_and_on_deny_decides(
    wflows: Path, cli: Any, procs: Any, log: Any, helpers: Any, on_deny: str, status: str
) -> None:
    up = cli.up("deploy.py", "--run-id", "d2", "--input", json.dumps({"on_deny": on_deny}))
    assert up.exit_code == 3
    res = cli("deny", "d2", "--note", "not now", "--by", "bob", "--json")
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    procs.track(body["resumed"]["pid"])
    assert body["decision"] == "denied"
    assert body["decidedBy"] == "bob"
    assert body["nodeId"] == "deploy-approval"
    assert body["parked"] is True
    helpers.wait_until(lambda: log.status("d2") == status, f"the run to be {status}")
    state = log.state("d2")
    if on_deny == "fail":
        assert state.error is not None
        assert state.error.code == "APPROVAL_DENIED"
    else:
        assert state.nodes[("deploy-approval", 0)].state == "skipped"


def test_no_resume_records_only_and_default_by_is_the_os_user(
    wflows: Path, cli: Any, log: Any
) -> None:
    assert cli.up("deploy.py", "--run-id", "d3").exit_code == 3
    res = cli("approve", "d3", "--no-resume")
    assert res.exit_code == 0, res.output
    assert "stays parked (--no-resume)" in res.stdout
    assert log.status("d3") == "waiting-approval"
    granted = [e for e in log.events("d3") if type(e).__name__ == "ApprovalGranted"]
    assert len(granted) == 1
    assert granted[0].decided_by == getpass.getuser()
    resumed = cli("up", "--resume", "d3")
    assert resumed.exit_code == 0, resumed.output
    assert log.status("d3") == "finished"


def test_errors_exit_4_and_record_nothing(wflows: Path, cli: Any, log: Any) -> None:
    assert cli.up("two.py", "--run-id", "t1").exit_code == 3
    before = log.last_seq("t1")
    ambiguous = cli("approve", "t1")
    assert ambiguous.exit_code == 4
    assert ambiguous.stderr.startswith("Error [AMBIGUOUS_APPROVAL]: 2 approvals wait")
    assert "a: 'First'" in ambiguous.stderr
    assert "--node a" in ambiguous.stderr
    unknown = cli("approve", "t1", "--node", "nope")
    assert unknown.exit_code == 4
    assert unknown.stderr.startswith("Error [NODE_NOT_FOUND]")
    bad_run = cli("approve", "../x")
    assert bad_run.exit_code == 4
    assert bad_run.stderr.startswith("Error [INVALID_INPUT]")
    missing = cli("approve", "no-such-run")
    assert missing.exit_code == 4
    assert missing.stderr.startswith("Error [RUN_NOT_FOUND]")
    assert log.last_seq("t1") == before

    assert cli("approve", "t1", "--node", "a", "--by", "carol", "--no-resume").exit_code == 0
    twice = cli("deny", "t1", "--node", "a", "--no-resume")
    assert twice.exit_code == 4
    assert twice.stderr.startswith("Error [APPROVAL_ALREADY_DECIDED]: The approval of 'a'")
    assert "already granted by carol" in twice.stderr
    assert cli("deny", "t1", "--no-resume").exit_code == 0  # only b is left
    none = cli("approve", "t1", "--no-resume")
    assert none.exit_code == 4
    assert none.stderr.startswith("Error [NO_PENDING_APPROVALS]")


def test_select_and_rank(wflows: Path, cli: Any, log: Any) -> None:
    assert cli.up("choose.py", "--run-id", "c1").exit_code == 3
    bad = cli("approve", "c1", "--select", "red", "--no-resume")
    assert bad.exit_code == 4
    assert bad.stderr.startswith("Error [INVALID_INPUT]")
    assert "blue, green" in bad.stderr
    assert cli("approve", "c1", "--select", "green", "--no-resume").exit_code == 0
    assert cli("up", "--resume", "c1").exit_code == 3
    partial = cli("approve", "c1", "--rank", "x,y", "--no-resume")
    assert partial.exit_code == 4
    assert cli("approve", "c1", "--rank", "z,x,y", "--no-resume").exit_code == 0
    assert cli("up", "--resume", "c1").exit_code == 0
    outputs = log.state("c1").outputs()
    assert json.loads(bytes(outputs["pick"]))["selected"] == "green"
    assert json.loads(bytes(outputs["order"]))["ranked"] == ["z", "x", "y"]


def test_concurrent_approves_from_processes_record_one_decision(
    wflows: Path, cli: Any, procs: Any, log: Any
) -> None:
    assert cli.up("deploy.py", "--run-id", "cc").exit_code == 3
    started = [
        procs.smithers("approve", "cc", "--by", f"p{i}", "--no-resume", "--json") for i in range(4)
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in started]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 4, 4, 4], results
    for code, _, err in results:
        if code == 4:
            assert err.startswith("Error [APPROVAL_ALREADY_DECIDED]")
    assert log.types("cc").count("ApprovalGranted") == 1


def test_approvals_ps_and_inspect_show_what_waits(wflows: Path, cli: Any) -> None:
    assert cli.up("deploy.py", "--run-id", "w1").exit_code == 3
    assert cli.up("two.py", "--run-id", "w2").exit_code == 3
    listing = cli("approvals", "--json")
    assert listing.exit_code == 0, listing.output
    items = json.loads(listing.stdout)
    assert {(i["runId"], i["nodeId"]) for i in items} == {
        ("w1", "deploy-approval"),
        ("w2", "a"),
        ("w2", "b"),
    }
    first = next(i for i in items if i["runId"] == "w1")
    assert first["title"] == "Deploy to prod?"
    assert first["summary"] == "build 1"
    assert first["waitingMs"] >= 0
    assert first["approveCommand"].startswith("smithers approve w1 --node deploy-approval --db ")
    text = cli("approvals", "w1")
    assert text.exit_code == 0
    assert "Deploy to prod?" in text.stdout
    assert "approve: smithers approve w1 --node deploy-approval" in text.stdout
    assert "summary: build 1" in text.stdout

    ps = cli("ps", "--status", "waiting-approval", "--json")
    assert ps.exit_code == 0, ps.output
    assert {r["runId"] for r in json.loads(ps.stdout)} == {"w1", "w2"}

    inspected = cli("inspect", "w1", "--json")
    nodes = json.loads(inspected.stdout)["nodes"]
    node = next(n for n in nodes if n["nodeId"] == "deploy-approval")
    assert node["state"] == "waiting-approval"
    assert node["approval"]["title"] == "Deploy to prod?"
    assert node["approval"]["mode"] == "approve"
    assert node["approval"]["decision"] is None
    assert node["wait"] is None
    assert node["timer"] is None
    inspect_text = cli("inspect", "w1")
    assert "Waiting:" in inspect_text.stdout
    assert "deploy-approval, approval" in inspect_text.stdout
    assert "approve: smithers approve w1 --node deploy-approval" in inspect_text.stdout


def test_help_teaches(cli: Any) -> None:
    for verb in ("approve", "deny", "signal", "approvals"):
        res = cli.raw(verb, "--help")
        assert res.exit_code == 0
        assert "Examples:" in res.stdout


def test_up_json_of_a_parked_run_says_what_it_waits_for(wflows: Path, cli: Any) -> None:
    result = cli.up("deploy.py", "--run-id", "j1", "--json")
    assert result.exit_code == 3
    body = json.loads(result.stdout)
    assert (body["runId"], body["status"]) == ("j1", "waiting-approval")
    [wait] = body["waitingFor"]
    assert (wait["nodeId"], wait["kind"], wait["title"]) == (
        "deploy-approval",
        "approval",
        "Deploy to prod?",
    )
