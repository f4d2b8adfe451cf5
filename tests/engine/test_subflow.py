"""`Subflow`: a child workflow run as a node (issue 9, item 6).

The child is a real run in the same database, with the id
``<parentRunId>:child:<nodeId>:<iteration>`` and its parent on its ``RunStarted``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine import (
    WorkflowExecutionFailedError,
    child_run_id,
    connect,
    parse_child_run_id,
)
from smithers.engine.errors import UnsupportedFeatureError
from smithers.eventstore import SQLiteEventStore
from smithers.eventstore.events import ApprovalGranted

from smithers import (
    Approval,
    Backoff,
    Parallel,
    Sequence,
    Subflow,
    Task,
    run_workflow,
    workflow,
)

if TYPE_CHECKING:
    from pathlib import Path


class N(msgspec.Struct):
    n: int


@workflow("double")
def double(ctx: Any) -> Any:
    a = ctx.output_maybe(N, "a")
    return Sequence(
        Task("a", output=N, run=lambda: {"n": ctx.input["x"] * 2}),
        a and Task("output", output=N, value={"n": a.n + 1}),
    )


@workflow("boom")
def boom(ctx: Any) -> Any:
    def fail() -> None:
        raise ValueError("the child broke")

    return Task("output", output=N, run=fail)


@workflow("gated")
def gated(ctx: Any) -> Any:
    return Sequence(
        Approval("ok", request={"title": "Go on?"}),
        Task("output", output=N, value={"n": 7}),
    )


async def _runs(db: Path) -> list[str]:
    async with connect(db) as client:
        return sorted(r.run_id for r in await client.runs())


# ---------------------------------------------------------------------------- ids


def test_child_run_id_round_trips() -> None:
    assert child_run_id("run-1", "review", 0) == "run-1:child:review:0"
    assert child_run_id("run-1", "review", 2, round_no=3) == "run-1:child:review:2:3"
    assert parse_child_run_id("run-1:child:review:0") == ("run-1", "review", 0)
    assert parse_child_run_id("run-1:child:review:2:3") == ("run-1", "review", 2)
    nested = child_run_id(child_run_id("p", "a", 0), "b", 1)
    assert parse_child_run_id(nested) == ("p:child:a:0", "b", 1)
    for not_a_child in ("run-1", "run-1:child:", "run-1:child:x:y", ":child:x:0"):
        assert parse_child_run_id(not_a_child) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"id": "a:b", "workflow": double}, "only have letters"),
        ({"id": "a b", "workflow": double}, "only have letters"),
        ({"id": "s", "workflow": lambda ctx: None}, "@workflow"),
        ({"id": "s", "workflow": double, "input": [1, 2]}, "JSON object"),
        ({"id": "s", "workflow": double, "retries": -1}, "retries"),
        ({"id": "s", "workflow": double, "timeout_ms": 0}, "timeout_ms"),
    ],
)
def test_subflow_refuses_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    node_id = kwargs.pop("id")
    with pytest.raises(UnsupportedFeatureError, match=match):
        Subflow(node_id, **kwargs)


# ---------------------------------------------------------------------------- runs


async def test_child_output_becomes_the_node_output(db: Path, read_log: Any) -> None:
    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Sequence(
            Subflow("child", workflow=double, input={"x": 5}, output=N),
            Task("output", output=N, run=lambda: {"n": ctx.output(N, "child").n * 10}),
        )

    result = await run_workflow(parent, db=db, run_id="p1")

    assert result.status == "finished"
    assert result.outputs == {"child": {"n": 11}, "output": {"n": 110}}
    assert await _runs(db) == ["p1", "p1:child:child:0"]
    child_log = await read_log("p1:child:child:0")
    (started,) = child_log.find("RunStarted")
    assert started.parent_run_id == "p1"
    assert started.parent_node_id == "child"
    assert started.parent_iteration == 0
    assert started.workflow_name == "double"
    assert child_log.types[-1] == "RunFinished"
    async with connect(db) as client:
        child_state = await (await client.get_run("p1:child:child:0")).state()
        parent_state = await (await client.get_run("p1")).state()
        children = await (await client.get_run("p1")).children()
        top = await client.runs(children=False)
    assert child_state.subflow_of is not None
    assert (child_state.subflow_of.run_id, child_state.subflow_of.node_id) == ("p1", "child")
    assert child_state.parent_run_id is None  # not a fork
    assert parent_state.subflow_of is None
    assert [(c.run_id, c.node_id, c.iteration, c.status) for c in children] == [
        ("p1:child:child:0", "child", 0, "finished")
    ]
    assert [r.run_id for r in top] == ["p1"]


async def test_child_output_is_validated_against_the_node_output(db: Path) -> None:
    class Wrong(msgspec.Struct):
        name: str

    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Subflow("child", workflow=double, input={"x": 1}, output=Wrong)

    result = await run_workflow(parent, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_OUTPUT"


async def test_failed_child_fails_the_node_with_its_error_as_cause(db: Path, read_log: Any) -> None:
    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Subflow("child", workflow=boom)

    result = await run_workflow(parent, db=db, run_id="p2")

    assert result.status == "failed"
    error = result.error
    assert error is not None
    assert error["code"] == WorkflowExecutionFailedError.default_code
    assert error["details"] == {
        "status": "failed",
        "childRunId": "p2:child:child:0",
        "nodeId": "child",
    }
    assert error["cause"]["message"] == "the child broke"
    assert error["cause"]["name"] == "ValueError"
    (failed,) = (await read_log("p2")).find("NodeFailed", "child")
    assert failed.error.code == "WORKFLOW_EXECUTION_FAILED"
    assert (await read_log("p2:child:child:0")).types[-1] == "RunFailed"


async def test_a_retry_after_a_failed_child_is_a_new_child_run(db: Path) -> None:
    calls: list[int] = []

    @workflow("flaky")
    def flaky(ctx: Any) -> Any:
        def once_then_ok() -> dict[str, int]:
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("first time")
            return {"n": len(calls)}

        return Task("output", output=N, run=once_then_ok)

    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Subflow("child", workflow=flaky, output=N, retries=1, backoff=Backoff(initial_ms=1))

    result = await run_workflow(parent, db=db, run_id="p3")

    assert result.status == "finished"
    assert result.outputs == {"child": {"n": 2}}
    async with connect(db) as client:
        runs = {r.run_id: r.status for r in await client.runs()}
    assert runs == {
        "p3": "finished",
        "p3:child:child:0": "failed",
        "p3:child:child:0:2": "finished",
    }


async def test_subflows_in_a_parallel_run_side_by_side(db: Path) -> None:
    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Parallel(
            *(Subflow(f"c{i}", workflow=double, input={"x": i}, output=N) for i in range(3))
        )

    result = await run_workflow(parent, db=db, run_id="p4")

    assert result.status == "finished"
    assert result.outputs == {"c0": {"n": 1}, "c1": {"n": 3}, "c2": {"n": 5}}
    assert await _runs(db) == ["p4", "p4:child:c0:0", "p4:child:c1:0", "p4:child:c2:0"]


async def test_cancelling_the_parent_cancels_the_child(db: Path, read_log: Any) -> None:
    started = anyio.Event()
    cancel = anyio.Event()

    @workflow("slow")
    def slow(ctx: Any) -> Any:
        async def run() -> dict[str, int]:
            started.set()
            await anyio.sleep(30)
            return {"n": 1}

        return Task("output", output=N, run=run)

    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Sequence(Subflow("child", workflow=slow), Task("after", output=N, value={"n": 0}))

    async def cancel_once_started() -> None:
        await started.wait()
        cancel.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_once_started)
            result = await run_workflow(parent, db=db, run_id="p5", cancel=cancel)

    assert result.status == "cancelled"
    child = await read_log("p5:child:child:0")
    (cancelled,) = child.find("RunCancelled")
    assert cancelled.reason == "parent-cancelled"
    assert cancelled.source == "parent"
    assert child.find("NodeCancelled", "output")
    parent_log = await read_log("p5")
    (node_cancelled,) = parent_log.find("NodeCancelled", "child")
    assert node_cancelled.reason == "cancelled"
    assert parent_log.find("NodeStarted", "after") == []
    assert parent_log.types[-1] == "RunCancelled"


async def test_subflow_timeout_cancels_the_child(db: Path, read_log: Any) -> None:
    @workflow("slow")
    def slow(ctx: Any) -> Any:
        async def run() -> dict[str, int]:
            await anyio.sleep(30)
            return {"n": 1}

        return Task("output", output=N, run=run)

    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Subflow("child", workflow=slow, timeout_ms=200)

    with anyio.fail_after(10):
        result = await run_workflow(parent, db=db, run_id="p6")

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "TASK_TIMEOUT"
    (cancelled,) = (await read_log("p6:child:child:0")).find("RunCancelled")
    assert cancelled.reason == "parent-timeout"


async def test_a_parked_child_parks_the_parent_and_resume_reads_it(db: Path, read_log: Any) -> None:
    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Sequence(
            Subflow("child", workflow=gated, output=N),
            Task("output", output=N, run=lambda: {"n": ctx.output(N, "child").n + 1}),
        )

    first = await run_workflow(parent, db=db, run_id="p7")

    assert first.status == "waiting-approval"
    child_id = "p7:child:child:0"
    parent_log = await read_log("p7")
    assert parent_log.node_types("child")[-2:] == ["NodeCancelled", "NodeWaitingApproval"]
    assert parent_log.find("NodeCancelled", "child")[0].reason == "subflow-waiting"
    async with connect(db) as client:
        assert (await (await client.get_run(child_id)).state()).status == "waiting-approval"
        parent_state = await (await client.get_run("p7")).state()
    rec = parent_state.node("child")
    assert rec is not None
    assert rec.state == "waiting-approval"
    assert parent_state.pending_approvals() == []  # the approval to decide is the child's

    # Resuming the parent before the decision: the child is looked at, not restarted.
    again = await run_workflow(parent, db=db, run_id="p7", resume=True)
    assert again.status == "waiting-approval"

    store = await SQLiteEventStore.open(db)
    try:
        seq = await store.last_seq(child_id)
        grant = ApprovalGranted(run_id=child_id, timestamp_ms=1, node_id="ok", decided_by="t")
        await store.append(child_id, [grant], expected_seq=seq)
    finally:
        await store.close()
    done = await run_workflow(parent, db=db, run_id="p7", resume=True)

    assert done.status == "finished"
    assert done.outputs == {"child": {"n": 7}, "output": {"n": 8}}
    child_log = await read_log(child_id)
    assert [e.activation for e in child_log.find("RunStarted")] == [1, 2, 3]
    assert len(child_log.find("ApprovalRequested")) == 1
    assert len(child_log.find("NodeStarted", "output")) == 1
    assert await _runs(db) == ["p7", child_id]


async def test_a_finished_child_is_reused_not_run_again(db: Path, read_log: Any) -> None:
    # The parent stopped after the child finished but before it recorded the node's
    # end: what a crash at that moment leaves. Resuming reads the child's result.
    calls: list[int] = []

    @workflow("counted")
    def counted(ctx: Any) -> Any:
        def run() -> dict[str, int]:
            calls.append(1)
            return {"n": 3}

        return Task("output", output=N, run=run)

    @workflow("parent")
    def parent(ctx: Any) -> Any:
        return Subflow("child", workflow=counted, output=N)

    child = await run_workflow(counted, db=db, run_id=child_run_id("p8", "child", 0), log_dir=None)
    assert child.status == "finished"
    result = await run_workflow(parent, db=db, run_id="p8")

    assert result.status == "finished"
    assert result.outputs == {"child": {"n": 3}}
    assert calls == [1]
    assert len((await read_log("p8:child:child:0")).find("RunStarted")) == 1


# ---------------------------------------------------------------------------- crash

CRASH_FLOW = textwrap.dedent(
    """
    import os, time
    import msgspec
    from smithers import Sequence, Subflow, Task, workflow

    class N(msgspec.Struct):
        n: int

    HERE = os.path.dirname(os.path.abspath(__file__))

    def mark(name):
        with open(os.path.join(HERE, "calls.txt"), "a") as f:
            f.write(name + "\\n")

    def fast():
        mark("fast")
        return {"n": 1}

    def slow():
        mark("slow")
        while not os.path.exists(os.path.join(HERE, "go")):
            time.sleep(0.02)
        return {"n": 2}

    @workflow("child")
    def child(ctx):
        return Sequence(
            Task("fast", output=N, run=fast),
            Task("output", output=N, run=slow),
        )

    @workflow("parent")
    def parent(ctx):
        return Sequence(
            Task("before", output=N, run=lambda: (mark("before"), {"n": 0})[1]),
            Subflow("sub", workflow=child, output=N),
        )
    """
)

DRIVER = textwrap.dedent(
    """
    import sys, anyio
    from smithers.engine import load_workflow, run_workflow

    async def main(mode, db, path):
        wf, _ = load_workflow(path + ":parent")
        result = await run_workflow(wf, run_id="crash", resume=mode == "resume", db=db)
        print(result.status, result.outputs)

    anyio.run(main, *sys.argv[1:])
    """
)


def _driver_args(tmp_path: Path, mode: str) -> list[str]:
    return [
        sys.executable,
        str(tmp_path / "driver.py"),
        mode,
        str(tmp_path / "s.db"),
        str(tmp_path / "flow.py"),
    ]


async def test_sigkill_mid_child_then_resume_resumes_the_same_child(
    tmp_path: Path, read_log: Any
) -> None:
    (tmp_path / "flow.py").write_text(CRASH_FLOW)
    (tmp_path / "driver.py").write_text(DRIVER)
    calls = tmp_path / "calls.txt"
    err_file = tmp_path / "start.err"
    with err_file.open("wb") as err_out:
        proc = subprocess.Popen(
            _driver_args(tmp_path, "start"), stdout=subprocess.DEVNULL, stderr=err_out
        )
    try:
        deadline = time.monotonic() + 20
        while "slow" not in (calls.read_text() if calls.exists() else ""):
            assert proc.poll() is None, err_file.read_text()
            assert time.monotonic() < deadline, "the child's slow task never started"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (tmp_path / "go").write_text("")

    resumed = subprocess.run(
        _driver_args(tmp_path, "resume"), capture_output=True, text=True, timeout=30, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("finished")

    db = tmp_path / "s.db"
    assert await _runs(db) == ["crash", "crash:child:sub:0"]
    assert calls.read_text().split() == ["before", "fast", "slow", "slow"]
    child = await read_log("crash:child:sub:0", path=db)
    assert [e.activation for e in child.find("RunStarted")] == [1, 2]
    assert len(child.find("NodeStarted", "fast")) == 1
    assert [e.reason for e in child.find("NodeCancelled", "output")] == ["abandoned"]
    parent = await read_log("crash", path=db)
    assert len(parent.find("NodeStarted", "before")) == 1
    assert [e.reason for e in parent.find("NodeCancelled", "sub")] == ["abandoned"]
    (finished,) = parent.find("NodeFinished", "sub")
    assert msgspec.json.decode(finished.output) == {"n": 2}
