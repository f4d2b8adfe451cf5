"""Approvals and signals through the Python API: `RunHandle.approve`/`deny`/`signal`.

Runs park (``waiting-approval``/``waiting-event``), a decision or a signal is recorded
as an event, and the handle resumes the parked run in the client's task group, so
``await handle.result()`` sees it to its end. Real SQLite files; workflow files in
`tmp_path` (their path is recorded, as for the CLI).
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from smithers.engine import (
    AmbiguousApprovalError,
    ApprovalAlreadyDecidedError,
    InvalidInputError,
    NodeNotFoundError,
    NoPendingApprovalsError,
    approve,
    load_workflow,
    read_events,
)
from smithers.eventstore import SQLiteEventStore

import smithers

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.engine import Workflow

HEAD = """
    import msgspec
    from smithers import (
        Approval, Parallel, Sequence, Task, WaitForEvent, workflow,
    )

    class N(msgspec.Struct):
        n: int
"""


def flow(tmp_path: Path, name: str, body: str) -> Workflow:
    """Write a workflow file and load it."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(HEAD) + textwrap.dedent(body), encoding="utf-8")
    wf, _ = load_workflow(str(path))
    return wf


GATE = """
    @workflow("gate")
    def gate(ctx):
        return Sequence(
            Task("build", output=N, value={"n": 1}),
            Approval("ok", request={"title": "Deploy?", "summary": "v2"}, on_deny=ON_DENY),
            Task("deploy", output=N, run=lambda: {"n": 2}),
        )
"""


async def types_of(db: Path, run_id: str) -> list[str]:
    return [type(e).__name__ for _, e in await read_events(run_id, db=db)]


async def test_approve_resumes_a_parked_run_to_its_end(tmp_path: Path, db: Path) -> None:
    wf = flow(tmp_path, "gate", GATE.replace("ON_DENY", '"fail"'))
    async with smithers.connect(db) as client:
        first = await client.run(wf, run_id="r1")
        assert first.status == "waiting-approval"
        assert "deploy" not in first.outputs
        handle = await client.get_run("r1")
        decision = await handle.approve(note="ship it", by="alice")
        assert decision.parked
        assert decision.node_id == "ok"
        assert decision.decision == "granted"
        assert decision.node.approval is not None
        assert decision.node.approval.decided_by == "alice"
        result = await handle.result()
    assert result.status == "finished"
    assert result.outputs["deploy"] == {"n": 2}
    out = result.outputs["ok"]
    assert out["approved"] is True
    assert out["note"] == "ship it"
    assert out["decidedBy"] == "alice"
    types = await types_of(db, "r1")
    assert types.count("ApprovalRequested") == 1
    assert types.count("ApprovalGranted") == 1
    assert types.index("ApprovalGranted") < types.index("RunFinished")


@pytest.mark.parametrize(
    ("on_deny", "status", "ok_state"),
    [
        ("fail", "failed", "failed"),
        ("continue", "finished", "finished"),
        ("skip", "finished", "skipped"),
    ],
)
async def test_deny_follows_on_deny(
    tmp_path: Path, db: Path, on_deny: str, status: str, ok_state: str
) -> None:
    wf = flow(tmp_path, "gate", GATE.replace("ON_DENY", repr(on_deny)))
    async with smithers.connect(db) as client:
        handle = await client.start(wf, run_id="r1")
        assert (await handle.result()).status == "waiting-approval"
        await handle.deny(note="not today", by="bob")
        result = await handle.result()
        state = await handle.state()
    assert result.status == status
    assert state.nodes[("ok", 0)].state == ok_state
    if on_deny == "fail":
        assert result.error is not None
        assert result.error["code"] == "APPROVAL_DENIED"
        assert "not today" in result.error["message"]
    if on_deny == "continue":
        assert result.outputs["ok"]["approved"] is False
        assert result.outputs["deploy"] == {"n": 2}


@pytest.mark.parametrize(("decide", "status"), [("approve", "finished"), ("deny", "failed")])
async def test_needs_approval_gates_a_task(
    tmp_path: Path, db: Path, decide: str, status: str
) -> None:
    side = tmp_path / "ran.txt"
    wf = flow(
        tmp_path,
        "gated",
        f"""
        from pathlib import Path

        def act():
            Path({str(side)!r}).write_text("ran")
            return {{"n": 7}}

        @workflow("gated")
        def gated(ctx):
            return [Task("act", output=N, run=act, needs_approval=True, label="Run act?")]
        """,
    )
    async with smithers.connect(db) as client:
        handle = await client.start(wf, run_id="g1")
        assert (await handle.result()).status == "waiting-approval"
        assert not side.exists()
        pending = await client.pending_approvals()
        assert [(p.run_id, p.node_id, p.title) for p in pending] == [("g1", "act", "Run act?")]
        await getattr(handle, decide)()
        result = await handle.result()
    assert result.status == status
    assert side.exists() == (decide == "approve")


SELECT_RANK = """
    @workflow("choose")
    def choose(ctx):
        return Sequence(
            Approval("pick", mode="select", options=["a", "b", "c"]),
            Approval("order", mode="rank", options=["x", "y", "z"]),
        )
"""


async def test_select_and_rank_record_the_choice(tmp_path: Path, db: Path) -> None:
    wf = flow(tmp_path, "choose", SELECT_RANK)
    async with smithers.connect(db) as client:
        handle = await client.start(wf, run_id="c1")
        await handle.result()
        with pytest.raises(InvalidInputError, match="select one of: a, b, c"):
            await handle.approve("pick", selected="nope")
        with pytest.raises(InvalidInputError, match="select one of"):
            await handle.approve("pick")
        with pytest.raises(InvalidInputError, match="applies only to 'rank'"):
            await handle.approve("pick", ranked=["a", "b", "c"])
        await handle.approve("pick", selected="b")
        assert (await handle.result()).status == "waiting-approval"
        with pytest.raises(InvalidInputError, match="rank all of: x, y, z"):
            await handle.approve("order", ranked=["x", "y"])
        with pytest.raises(InvalidInputError, match="rank all of"):
            await handle.approve("order", ranked=["x", "y", "y"])
        await handle.approve("order", ranked=["z", "x", "y"])
        result = await handle.result()
    assert result.status == "finished"
    assert result.outputs["pick"] == {"selected": "b", "notes": None}
    assert result.outputs["order"] == {"ranked": ["z", "x", "y"], "notes": None}
    types = await types_of(db, "c1")
    assert types.count("ApprovalGranted") == 2  # the refused ones recorded nothing


TWO = """
    @workflow("two")
    def two(ctx):
        return Parallel(
            Approval("a", request={"title": "First"}),
            Approval("b", request={"title": "Second"}),
        )
"""


async def test_errors_ambiguous_none_twice_and_unknown_node(tmp_path: Path, db: Path) -> None:
    wf = flow(tmp_path, "two", TWO)
    async with smithers.connect(db) as client:
        handle = await client.start(wf, run_id="t1")
        await handle.result()
        with pytest.raises(AmbiguousApprovalError, match="2 approvals wait") as info:
            await handle.approve()
        assert info.value.code == "AMBIGUOUS_APPROVAL"
        assert [p["nodeId"] for p in info.value.details["pending"]] == ["a", "b"]
        assert "'First'" in str(info.value.summary)
        assert "'Second'" in info.value.summary
        with pytest.raises(NodeNotFoundError):
            await handle.approve("zzz")
        with pytest.raises(InvalidInputError):
            await handle.approve("bad\nid")
        await handle.approve("a", by="carol", resume=False)
        with pytest.raises(ApprovalAlreadyDecidedError, match="already granted by carol") as twice:
            await handle.deny("a")
        assert twice.value.details["decision"] == "granted"
        # One left: no node needed.
        decided = await handle.deny(note="no", resume=False)
        assert decided.node_id == "b"
        with pytest.raises(NoPendingApprovalsError) as none:
            await handle.approve()
        assert none.value.code == "NO_PENDING_APPROVALS"
    types = await types_of(db, "t1")
    assert types.count("ApprovalGranted") == 1
    assert types.count("ApprovalDenied") == 1


async def test_concurrent_approves_record_exactly_one_decision(tmp_path: Path, db: Path) -> None:
    wf = flow(tmp_path, "gate", GATE.replace("ON_DENY", '"fail"'))
    async with smithers.connect(db) as client:
        assert (await client.run(wf, run_id="r1")).status == "waiting-approval"
    outcomes: list[str] = []

    async def one(name: str) -> None:
        store = await SQLiteEventStore.open(db)  # a connection of its own, as a process
        try:
            await approve(store, "r1", "ok", decided_by=name)
            outcomes.append("granted")
        except ApprovalAlreadyDecidedError:
            outcomes.append("refused")
        finally:
            await store.close()

    async with anyio.create_task_group() as tg:
        for name in ("p1", "p2", "p3", "p4"):
            tg.start_soon(one, name)
    assert sorted(outcomes) == ["granted", "refused", "refused", "refused"]
    assert (await types_of(db, "r1")).count("ApprovalGranted") == 1


# ---------------------------------------------------------------------- signals

SIGNALS = """
    @workflow("sig")
    def sig(ctx):
        return Sequence(
            Approval("gate"),
            Parallel(
                WaitForEvent("w1", event="ci.done", output=N),
                WaitForEvent("w2", event="ci.done", output=N),
                WaitForEvent("pay", event="paid", output=dict, correlation_id="order-42"),
            ),
        )
"""


async def test_signals_validated_oldest_waiter_first_and_never_early(
    tmp_path: Path, db: Path
) -> None:
    wf = flow(tmp_path, "sig", SIGNALS)
    async with smithers.connect(db) as client:
        handle = await client.start(wf, run_id="s1")
        assert (await handle.result()).status == "waiting-approval"
        early = await handle.signal("ci.done", {"n": 0})  # nobody waits yet
        assert early.delivered_to is None
        assert not early.parked
        await handle.approve()
        assert (await handle.result()).status == "waiting-event"
        # The early signal resolved nothing: both still wait.
        state = await handle.state()
        assert state.nodes[("w1", 0)].state == "waiting-event"
        assert state.signals[0].delivered_to is None
        last = state.seq
        with pytest.raises(InvalidInputError, match="does not match the output of 'w1'"):
            await handle.signal("ci.done", {"n": "x"})
        assert (await handle.state()).seq == last  # nothing recorded
        first = await handle.signal("ci.done", {"n": 1}, by="ci", resume=False)
        assert first.delivered_to == ("w1", 0)
        wrong = await handle.signal("paid", {"amount": 5}, correlation_id="order-7", resume=False)
        assert wrong.delivered_to is None
        paid = await handle.signal("paid", {"amount": 5}, correlation_id="order-42", resume=False)
        assert paid.delivered_to == ("pay", 0)
        second = await handle.signal("ci.done", {"n": 2})
        assert second.delivered_to == ("w2", 0)
        assert second.parked
        result = await handle.result()
    assert result.status == "finished"
    assert result.outputs["w1"] == {"n": 1}
    assert result.outputs["w2"] == {"n": 2}
    assert result.outputs["pay"] == {"amount": 5}


LIVE = """
    @workflow("live")
    def live(ctx):
        return [WaitForEvent("w", event="go", output=N, timeout_ms=TIMEOUT, on_timeout=ON)]
"""


@pytest.mark.parametrize(
    ("on_timeout", "status", "state"),
    [
        ("fail", "failed", "failed"),
        ("skip", "finished", "skipped"),
        ("continue", "finished", "finished"),
    ],
)
async def test_wait_for_event_times_out_while_live(
    tmp_path: Path, db: Path, on_timeout: str, status: str, state: str
) -> None:
    body = LIVE.replace("TIMEOUT", "300").replace("ON", repr(on_timeout))
    wf = flow(tmp_path, "live", body)
    async with smithers.connect(db) as client:
        with anyio.fail_after(10):
            result = await client.run(wf, run_id="l1")  # held in-process, not parked
        run_state = await (await client.get_run("l1")).state()
    assert result.status == status
    assert run_state.nodes[("w", 0)].state == state
    if on_timeout == "fail":
        assert result.error is not None
        assert result.error["code"] == "WAIT_FOR_EVENT_TIMEOUT"
    if on_timeout == "continue":
        assert result.outputs["w"] is None
    statuses = [e.status for _, e in await read_events("l1", db=db) if hasattr(e, "status")]
    assert not [s for s in statuses if s.startswith("waiting")]  # held, never parked


async def test_a_live_owner_picks_a_signal_up(tmp_path: Path, db: Path) -> None:
    wf = flow(tmp_path, "live", LIVE.replace("TIMEOUT", "20000").replace("ON", '"fail"'))
    async with smithers.connect(db) as client:
        handle = await client.start(wf, run_id="l2")
        with anyio.fail_after(10):
            while (await handle.state()).nodes.get(("w", 0)) is None or (
                await handle.state()
            ).nodes[("w", 0)].state != "waiting-event":
                await anyio.sleep(0.02)
        other = await client.get_run("l2")
        sent: Any = None
        async with smithers.connect(db) as second:  # another client, as another process
            sent = await (await second.get_run("l2")).signal("go", {"n": 9})
        assert sent.delivered_to == ("w", 0)
        assert not sent.parked
        with anyio.fail_after(10):
            result = await other.result()
    assert result.status == "finished"
    assert result.outputs["w"] == {"n": 9}
