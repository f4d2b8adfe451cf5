"""`Subflow` meets `Loop` and continue-as-new (issue 9).

A Subflow inside a Loop starts one child per pass, its id carrying the pass
(``<parent>:child:<node>:<iteration>``). A child that continues as new is followed to
the last run of its chain: that run's output is the node's, and when it parks the
parent parks on it; deciding it finishes the child and wakes the parent. Real SQLite
files; the workflows live in a file in `tmp_path` (resumes load it from the log).
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from smithers.engine import child_run_id, load_run, load_workflow
from smithers.eventstore import decode_json

import smithers

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.engine import Workflow

FLOWS = """
    import msgspec
    from smithers import (
        Approval, ContinueAsNew, Loop, Sequence, Subflow, Task, workflow,
    )

    class N(msgspec.Struct):
        n: int

    @workflow("double")
    def double(ctx):
        return Task("output", output=N, run=lambda: {"n": ctx.input["x"] * 2})

    @workflow("counter")
    def counter(ctx):
        # Five passes, two per run: the child continues as new twice.
        count = ctx.iteration_count(dict, "step")
        return Sequence(
            Loop(
                "count",
                Task("step", output=dict, run=lambda: {"it": ctx.iteration}),
                until=count >= 5,
                max_iterations=10,
                continue_as_new_every=2,
            ),
            Task("output", output=N, value={"n": count}),
        )

    @workflow("restart-then-ask")
    def restart_then_ask(ctx):
        if ctx.continuation is None:
            return Sequence(
                Task("first", output=dict, value={}), ContinueAsNew(state={"round": 2})
            )
        return Sequence(
            Approval("ok", request={"title": "Child ok?"}),
            Task("output", output=N, value={"n": ctx.continuation["round"]}),
        )

    @workflow("per-pass")
    def per_pass(ctx):
        it = ctx.loop_iteration("l")
        return Loop(
            "l",
            Subflow("sub", workflow=double, input={"x": it + 1}, output=N),
            until=ctx.iteration_count(N, "sub") >= 3,
            max_iterations=5,
        )

    @workflow("outer-chain")
    def outer_chain(ctx):
        return Sequence(
            Subflow("sub", workflow=counter, output=N),
            Task("after", output=N, value={"n": 1}),
        )

    @workflow("outer-ask")
    def outer_ask(ctx):
        return Sequence(
            Subflow("sub", workflow=restart_then_ask, output=N),
            Task("after", output=N, value={"n": 1}),
        )
"""


def flow(tmp_path: Path, name: str) -> Workflow:
    path = tmp_path / "flows.py"
    if not path.exists():
        path.write_text(textwrap.dedent(FLOWS), encoding="utf-8")
    wf, _ = load_workflow(f"{path}:{name}")
    return wf


async def chain_of(db: Path, run_id: str) -> list[Any]:
    """The states of the continue-as-new chain starting at `run_id`."""
    states = [await load_run(run_id, db=db)]
    while states[-1].continued_as_run_id:
        states.append(await load_run(states[-1].continued_as_run_id, db=db))
    return states


async def test_a_subflow_in_a_loop_starts_one_child_per_pass(tmp_path: Path, db: Path) -> None:
    wf = flow(tmp_path, "per_pass")
    async with smithers.connect(db) as client:
        result = await client.run(wf, run_id="p")
        assert result.status == "finished"
        runs = sorted(r.run_id for r in await client.runs())
    children = [child_run_id("p", "sub", i) for i in range(3)]
    assert children == ["p:child:sub:0", "p:child:sub:1", "p:child:sub:2"]
    assert runs == sorted(["p", *children])
    state = await load_run("p", db=db)
    assert [decode_json(state.nodes[("sub", i)].output) for i in range(3)] == [
        {"n": 2},
        {"n": 4},
        {"n": 6},
    ]
    for i, child in enumerate(children):
        cs = await load_run(child, db=db)
        assert cs.subflow_of is not None
        assert (cs.subflow_of.run_id, cs.subflow_of.node_id, cs.subflow_of.iteration) == (
            "p",
            "sub",
            i,
        )


async def test_a_child_that_continues_as_new_gives_its_last_run_output(
    tmp_path: Path, db: Path
) -> None:
    wf = flow(tmp_path, "outer_chain")
    async with smithers.connect(db) as client:
        result = await client.run(wf, run_id="o")
    assert result.status == "finished", result.error
    assert result.outputs["sub"] == {"n": 5}
    assert result.outputs["after"] == {"n": 1}
    chain = await chain_of(db, "o:child:sub:0")
    assert [s.status for s in chain] == ["continued", "continued", "finished"]
    # Every run of the chain knows the parent, and is a child run in listings.
    assert all(s.subflow_of is not None and s.subflow_of.run_id == "o" for s in chain)
    async with smithers.connect(db) as client:
        assert [r.run_id for r in await client.runs(children=False)] == ["o"]
        assert len(await client.runs()) == 4
    # Resuming the finished parent runs nothing again.
    async with smithers.connect(db) as client:
        again = await client.run(wf, run_id="o", resume=True)
    assert again.status == "finished"
    assert [s.seq for s in await chain_of(db, "o:child:sub:0")] == [s.seq for s in chain]


async def test_a_parked_continued_child_parks_its_parent_and_a_decision_wakes_both(
    tmp_path: Path, db: Path
) -> None:
    wf = flow(tmp_path, "outer_ask")
    async with smithers.connect(db) as client:
        first = await client.run(wf, run_id="a")
        assert first.status == "waiting-approval"
        chain = await chain_of(db, "a:child:sub:0")
        assert [s.status for s in chain] == ["continued", "waiting-approval"]
        last = chain[-1].run_id
        parent = await load_run("a", db=db)
        assert parent.nodes[("sub", 0)].state == "waiting-approval"
        # Resuming the parent resumes the chain's last run (no second child, no failure).
        again = await client.run(wf, run_id="a", resume=True)
        assert again.status == "waiting-approval"
        assert [s.run_id for s in await chain_of(db, "a:child:sub:0")] == [s.run_id for s in chain]
        child = await client.get_run(last)
        await child.approve()
        assert (await child.result()).status == "finished"
    parent = await load_run("a", db=db)
    assert parent.status == "finished", parent.error
    assert decode_json(parent.nodes[("sub", 0)].output) == {"n": 2}
