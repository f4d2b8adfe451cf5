"""Subflows through the CLI: ``up`` of a parent, ``inspect`` children, ``ps --no-children``.

The parked-child cycle runs in real ``smithers`` subprocesses: the parent parks
(exit 3), the child's approval is recorded, ``up --resume CHILD`` finishes the child
and resumes the parent it was parked on.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import anyio
from smithers.eventstore import SQLiteEventStore
from smithers.eventstore.events import ApprovalGranted

if TYPE_CHECKING:
    from pathlib import Path

FLOW = """
import msgspec
from smithers import Approval, Sequence, Subflow, Task, workflow

class N(msgspec.Struct):
    n: int

@workflow("double")
def double(ctx):
    return Task("output", output=N, run=lambda: {"n": ctx.input["x"] * 2})

@workflow("gated")
def gated(ctx):
    return Sequence(
        Approval("ok", request={"title": "Go on?"}),
        Task("output", output=N, value={"n": 7}),
    )

@workflow("parent")
def parent(ctx):
    return Sequence(
        Subflow("twice", workflow=double, input={"x": 4}, output=N),
        Task("output", output=N, run=lambda: {"n": ctx.output(N, "twice").n + 1}),
    )

@workflow("parked")
def parked(ctx):
    child = ctx.output_maybe(N, "ask")
    return Sequence(
        Subflow("ask", workflow=gated, output=N),
        child and Task("output", output=N, value={"n": child.n * 10}),
    )
"""


def _write_flow(flows: Path) -> Path:
    path = flows / "subflows.py"
    path.write_text(textwrap.dedent(FLOW), encoding="utf-8")
    return path


def test_inspect_shows_children_and_ps_can_hide_them(cli: Any, flows: Path) -> None:
    path = _write_flow(flows)
    up = cli("up", f"{path}:parent", "--run-id", "par", "--json")
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout)["status"] == "finished"

    inspect = cli("inspect", "par", "--json")
    assert inspect.exit_code == 0
    out = json.loads(inspect.stdout)
    assert out["children"] == [
        {
            "runId": "par:child:twice:0",
            "nodeId": "twice",
            "iteration": 0,
            "status": "finished",
            "workflowName": "double",
        }
    ]
    assert out["subflowOf"] is None
    child = json.loads(cli("inspect", "par:child:twice:0", "--json").stdout)
    assert child["subflowOf"] == {"runId": "par", "nodeId": "twice", "iteration": 0}
    assert child["children"] == []
    assert child["kind"] == "run"  # a child, not a fork

    text = cli("inspect", "par").stdout
    assert "Children:" in text
    assert "par:child:twice:0" in text
    child_text = cli("inspect", "par:child:twice:0").stdout
    assert "Child of run par (node twice, iteration 0)" in child_text

    runs = json.loads(cli("ps", "--json").stdout)
    assert {r["runId"]: r["parentRunId"] for r in runs} == {
        "par": None,
        "par:child:twice:0": "par",
    }
    top = json.loads(cli("ps", "--json", "--no-children").stdout)
    assert [r["runId"] for r in top] == ["par"]
    table = cli("ps", "--no-children").stdout
    assert "par:child" not in table
    assert "par:child:twice:0" in cli("ps").stdout


def test_output_of_a_subflow_node_is_the_child_output(cli: Any, flows: Path) -> None:
    path = _write_flow(flows)
    assert cli("up", f"{path}:parent", "--run-id", "par").exit_code == 0
    result = cli("output", "par", "twice", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"n": 8}


async def _grant(db: Path, run_id: str, node_id: str) -> None:
    store = await SQLiteEventStore.open(db)
    try:
        seq = await store.last_seq(run_id)
        event = ApprovalGranted(run_id=run_id, timestamp_ms=1, node_id=node_id, decided_by="t")
        await store.append(run_id, [event], expected_seq=seq)
    finally:
        await store.close()


def test_a_parked_child_parks_the_parent_and_its_end_resumes_it(
    flows: Path, db: Path, procs: Any, log: Any
) -> None:
    path = _write_flow(flows)
    up = procs.smithers("up", f"{path}:parked", "--run-id", "pk")
    _, err = up.communicate(timeout=60)
    assert up.returncode == 3, err
    assert log.status("pk") == "waiting-approval"
    child = "pk:child:ask:0"
    assert log.status(child) == "waiting-approval"
    rec = log.state("pk").node("ask")
    assert rec is not None
    assert rec.state == "waiting-approval"

    anyio.run(_grant, db, child, "ok")
    resume = procs.smithers("up", "--resume", child)
    _, err = resume.communicate(timeout=60)
    assert resume.returncode == 0, err

    assert log.status(child) == "finished"
    assert log.status("pk") == "finished"
    state = log.state("pk")
    out = state.node("output")
    assert out is not None
    assert json.loads(bytes(out.output)) == {"n": 70}
    assert log.types(child).count("ApprovalRequested") == 1
    assert [t for t in log.types("pk") if t == "RunStarted"] == ["RunStarted"] * 2


def test_cancelling_a_parked_parent_cancels_its_parked_child(
    flows: Path, procs: Any, log: Any
) -> None:
    path = _write_flow(flows)
    up = procs.smithers("up", f"{path}:parked", "--run-id", "pc")
    _, err = up.communicate(timeout=60)
    assert up.returncode == 3, err

    cancel = procs.smithers("cancel", "pc")
    _, err = cancel.communicate(timeout=60)
    assert cancel.returncode == 0, err

    assert log.status("pc") == "cancelled"
    assert log.status("pc:child:ask:0") == "cancelled"
    (cancelled,) = [e for e in log.events("pc:child:ask:0") if type(e).__name__ == "RunCancelled"]
    assert cancelled.source == "parent"
    assert cancelled.reason == "parent-cancelled"
