"""Decisions and signals sent to a parent reach the `Subflow` child run that waits.

Through the Python client: `RunHandle.approve`/`deny`/`signal` of the parent decide in
the child, resume the parent (which resumes the child), and the whole tree ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine import (
    AmbiguousApprovalError,
    NoPendingApprovalsError,
    RunNotFoundError,
    connect,
)

from smithers import (
    Approval,
    Parallel,
    Sequence,
    Subflow,
    Task,
    WaitForEvent,
    run_workflow,
    workflow,
)

if TYPE_CHECKING:
    from pathlib import Path


class N(msgspec.Struct):
    n: int


class Ci(msgspec.Struct):
    ok: bool


@workflow("gated")
def gated(ctx: Any) -> Any:
    return Sequence(
        Approval("ok", request={"title": "Go on?"}),
        Task("output", output=N, value={"n": 7}),
    )


@workflow("waits-ci")
def waits_ci(ctx: Any) -> Any:
    return Sequence(
        WaitForEvent("ci", event="ci.done", output=Ci),
        Task("output", output=N, value={"n": 1}),
    )


@workflow("parent")
def parent(ctx: Any) -> Any:
    child = ctx.output_maybe(N, "ask")
    return Sequence(
        Subflow("ask", workflow=gated, output=N),
        child and Task("output", output=N, value={"n": child.n * 10}),
    )


@workflow("twins")
def twins(ctx: Any) -> Any:
    return Parallel(
        Subflow("a", workflow=gated, output=N),
        Subflow("b", workflow=gated, output=N),
    )


@workflow("ci-parent")
def ci_parent(ctx: Any) -> Any:
    return Sequence(
        Subflow("kid", workflow=waits_ci, output=N),
        Task("output", output=N, value={"n": 2}),
    )


async def test_approve_of_the_parent_decides_in_the_child_and_finishes_the_tree(
    db: Path,
) -> None:
    first = await run_workflow(parent, db=db, run_id="pa")
    assert first.status == "waiting-approval"

    async with connect(db) as client:
        handle = await client.get_run("pa")
        [pending] = await client.pending_approvals(run_id="pa")
        assert (pending.run_id, pending.root_run_id) == ("pa:child:ask:0", "pa")
        decided = await handle.approve(note="ok", workflow=parent)
        with anyio.fail_after(20):
            result = await handle.result()

    assert (decided.run_id, decided.requested_run_id) == ("pa:child:ask:0", "pa")
    assert (decided.parked, decided.resume_run_id) == (True, "pa")
    assert result.status == "finished"
    assert result.outputs == {"ask": {"n": 7}, "output": {"n": 70}}


async def test_two_children_waiting_is_ambiguous_until_the_node_and_run_are_named(
    db: Path,
) -> None:
    assert (await run_workflow(twins, db=db, run_id="tw")).status == "waiting-approval"

    async with connect(db) as client:
        handle = await client.get_run("tw")
        with pytest.raises(AmbiguousApprovalError) as info:
            await handle.approve(resume=False)
        runs = [p["runId"] for p in info.value.details["pending"]]
        assert runs == ["tw:child:a:0", "tw:child:b:0"]
        child = await client.get_run("tw:child:b:0")
        decided = await child.approve("ok", resume=False)
        assert decided.run_id == "tw:child:b:0"
        # One left: the parent's request now finds it without a node.
        other = await handle.approve(resume=False)
        assert other.run_id == "tw:child:a:0"
        with pytest.raises(NoPendingApprovalsError):
            await handle.approve(resume=False)


async def test_a_signal_to_the_parent_resolves_the_childs_wait(db: Path) -> None:
    assert (await run_workflow(ci_parent, db=db, run_id="cp")).status == "waiting-event"

    async with connect(db) as client:
        handle = await client.get_run("cp")
        sent = await handle.signal("ci.done", {"ok": True}, workflow=ci_parent)
        with anyio.fail_after(20):
            result = await handle.result()

    assert sent.run_id == "cp:child:kid:0"
    assert sent.delivered_to == ("ci", 0)
    assert result.status == "finished"
    assert result.outputs["output"] == {"n": 2}


async def test_a_live_parent_reads_its_childs_end_without_a_resume(db: Path) -> None:
    # The parent is busy (a slow task beside the Subflow) when the child's approval is
    # decided: the child's end reaches the live parent as a `ChildRunEnded` request, and
    # the parent finishes without parking on a child that already ended.
    release = anyio.Event()

    async def slow() -> dict[str, int]:
        await release.wait()
        return {"n": 0}

    @workflow("busy-parent")
    def busy(ctx: Any) -> Any:
        return Parallel(Task("slow", output=N, run=slow), Subflow("ask", workflow=gated, output=N))

    results: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def drive() -> None:
            results.append(await run_workflow(busy, db=db, run_id="lp"))

        tg.start_soon(drive)
        with anyio.fail_after(20):
            while not db.exists():
                await anyio.sleep(0.02)
        async with connect(db) as client:

            async def asked() -> bool:
                # The file exists before the run's first event is appended: not found yet.
                try:
                    return bool(await client.pending_approvals(run_id="lp"))
                except RunNotFoundError:
                    return False

            with anyio.fail_after(20):
                while not await asked():
                    await anyio.sleep(0.05)
            child = await client.get_run("lp:child:ask:0")
            await child.approve("ok", workflow=gated)
            with anyio.fail_after(20):
                assert (await child.result()).status == "finished"
            with anyio.fail_after(20):
                while (await (await client.get_run("lp")).state()).node("ask").state != "finished":
                    await anyio.sleep(0.1)
            release.set()
            parent_log = [row.type for row, _ in await (await client.get_run("lp")).events()]
    (result,) = results
    assert result.status == "finished"
    assert result.outputs["ask"] == {"n": 7}
    assert parent_log.count("ChildRunEnded") == 1
    # The parent never parked: it stayed live and read the child's result itself.
    assert not any(t == "RunStatusChanged" for t in parent_log[2:-2])
