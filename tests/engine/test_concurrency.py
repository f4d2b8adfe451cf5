"""Concurrency: run-wide and per-Parallel caps, per-completion scheduling, depends_on.

DESIGN §6: re-decide on every completion (no batch barrier); run-wide `max_concurrency`
(default 4) and per-`Parallel` caps.
"""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

from smithers import Parallel, Sequence, Task, run_workflow, workflow


class Count(msgspec.Struct):
    n: int


class Gauge:
    """Counts tasks executing at once; `peak` is the most seen together."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def task(self, n: int, *, also: Gauge | None = None, hold_s: float = 0.01) -> Any:
        gauges = [self] if also is None else [self, also]

        async def run() -> dict[str, int]:
            for g in gauges:
                g.live += 1
                g.peak = max(g.peak, g.live)
            try:
                await anyio.sleep(hold_s)
            finally:
                for g in gauges:
                    g.live -= 1
            return {"n": n}

        return run


# ---------------------------------------------------------------------------- caps


@pytest.mark.parametrize("cap", [1, 2, 4])
async def test_run_wide_max_concurrency_is_never_exceeded_and_reached(db: Any, cap: int) -> None:
    gauge = Gauge()

    @workflow("wide")
    def wide(ctx: Any) -> Any:
        return Parallel(*(Task(f"t{i}", output=Count, run=gauge.task(i)) for i in range(10)))

    result = await run_workflow(wide, input={}, db=db, max_concurrency=cap)

    assert result.status == "finished"
    assert len(result.outputs) == 10
    assert gauge.peak == cap


async def test_default_max_concurrency_is_four(db: Any) -> None:
    gauge = Gauge()

    @workflow("default-cap")
    def default_cap(ctx: Any) -> Any:
        return Parallel(*(Task(f"t{i}", output=Count, run=gauge.task(i)) for i in range(8)))

    result = await run_workflow(default_cap, input={}, db=db)

    assert result.status == "finished"
    assert gauge.peak == 4


async def test_parallel_cap_limits_its_group_only(db: Any) -> None:
    group = Gauge()
    total = Gauge()

    @workflow("capped")
    def capped(ctx: Any) -> Any:
        return Parallel(
            Parallel(
                *(Task(f"g{i}", output=Count, run=group.task(i, also=total)) for i in range(6)),
                max_concurrency=2,
            ),
            *(Task(f"o{i}", output=Count, run=total.task(i)) for i in range(4)),
        )

    result = await run_workflow(capped, input={}, db=db, max_concurrency=8)

    assert result.status == "finished"
    assert len(result.outputs) == 10
    assert group.peak == 2
    assert total.peak == 6  # the 4 outside tasks are not held back by the group's cap


async def test_a_cap_applies_to_tasks_nested_in_sequences(db: Any) -> None:
    gauge = Gauge()

    @workflow("lanes")
    def lanes(ctx: Any) -> Any:
        return Parallel(
            *(
                Sequence(*(Task(f"l{lane}s{s}", output=Count, run=gauge.task(s)) for s in range(3)))
                for lane in range(4)
            ),
            max_concurrency=2,
        )

    result = await run_workflow(lanes, input={}, db=db, max_concurrency=8)

    assert result.status == "finished"
    assert len(result.outputs) == 12
    assert gauge.peak == 2


async def test_nested_caps_take_the_tightest(db: Any) -> None:
    outer = Gauge()
    inner_a = Gauge()
    inner_b = Gauge()

    @workflow("nested-caps")
    def nested_caps(ctx: Any) -> Any:
        return Parallel(
            Parallel(
                *(Task(f"a{i}", output=Count, run=inner_a.task(i, also=outer)) for i in range(4)),
                max_concurrency=1,
            ),
            Parallel(
                *(Task(f"b{i}", output=Count, run=inner_b.task(i, also=outer)) for i in range(4)),
                max_concurrency=3,
            ),
            max_concurrency=3,
        )

    result = await run_workflow(nested_caps, input={}, db=db, max_concurrency=8)

    assert result.status == "finished"
    assert len(result.outputs) == 8
    assert inner_a.peak == 1
    assert inner_b.peak <= 3
    assert outer.peak == 3


async def test_a_cap_larger_than_the_run_cap_is_bounded_by_the_run(db: Any) -> None:
    gauge = Gauge()

    @workflow("loose")
    def loose(ctx: Any) -> Any:
        return Parallel(
            *(Task(f"t{i}", output=Count, run=gauge.task(i)) for i in range(8)), max_concurrency=6
        )

    result = await run_workflow(loose, input={}, db=db, max_concurrency=3)

    assert result.status == "finished"
    assert gauge.peak == 3


async def test_static_tasks_in_a_capped_parallel_all_finish(db: Any) -> None:
    @workflow("static-capped")
    def static_capped(ctx: Any) -> Any:
        return Parallel(
            *(Task(f"s{i}", output=Count, value={"n": i}) for i in range(20)), max_concurrency=1
        )

    result = await run_workflow(static_capped, input={}, db=db, max_concurrency=1)

    assert result.status == "finished"
    assert result.outputs == {f"s{i}": {"n": i} for i in range(20)}


# ---------------------------------------------------------------------------- per-completion


async def test_a_dependent_of_a_fast_task_does_not_wait_for_a_slow_sibling(
    db: Any, read_log: Any
) -> None:
    b_started = anyio.Event()

    async def fast_a() -> dict[str, int]:
        await anyio.sleep(0)
        return {"n": 1}

    async def dependent_b() -> dict[str, int]:
        b_started.set()
        return {"n": 2}

    async def slow_c() -> dict[str, int]:
        # Held until b started: with a batch barrier b would wait for c, and this
        # times out (the task fails) instead of hanging the test.
        with anyio.fail_after(5):
            await b_started.wait()
        return {"n": 3}

    @workflow("per-completion")
    def per_completion(ctx: Any) -> Any:
        return Parallel(
            Sequence(
                Task("a", output=Count, run=fast_a),
                Task("b", output=Count, run=dependent_b),
            ),
            Task("c", output=Count, run=slow_c),
        )

    result = await run_workflow(per_completion, input={}, db=db)

    assert result.status == "finished", result.error
    log = await read_log(result.run_id)
    assert log.seq_of("NodeStarted", "b") < log.seq_of("NodeFinished", "c")


async def test_a_re_render_does_not_wait_for_running_tasks(db: Any, read_log: Any) -> None:
    d_started = anyio.Event()

    async def slow_c() -> dict[str, int]:
        with anyio.fail_after(5):
            await d_started.wait()
        return {"n": 3}

    async def d_run() -> dict[str, int]:
        d_started.set()
        return {"n": 4}

    @workflow("mount-while-running")
    def mount_while_running(ctx: Any) -> Any:
        a = ctx.output_maybe(Count, "a")
        return Parallel(
            Task("a", output=Count, run=lambda: {"n": 1}),
            Task("c", output=Count, run=slow_c),
            a and Task("d", output=Count, run=d_run),
        )

    result = await run_workflow(mount_while_running, input={}, db=db)

    assert result.status == "finished", result.error
    log = await read_log(result.run_id)
    assert log.seq_of("NodeStarted", "d") < log.seq_of("NodeFinished", "c")
    # "c" kept running through the re-render: one attempt only.
    assert len(log.find("NodeStarted", "c")) == 1


# ---------------------------------------------------------------------------- depends_on


async def test_depends_on_waits_even_when_placed_first(db: Any, read_log: Any) -> None:
    async def x_run() -> dict[str, int]:
        await anyio.sleep(0.01)
        return {"n": 1}

    @workflow("deps")
    def deps(ctx: Any) -> Any:
        return Parallel(
            Task("y", output=Count, run=lambda: {"n": 2}, depends_on=("x",)),
            Task("x", output=Count, run=x_run),
            Task("z", output=Count, run=lambda: {"n": 3}),
        )

    result = await run_workflow(deps, input={}, db=db)

    assert result.status == "finished"
    log = await read_log(result.run_id)
    assert log.seq_of("NodeFinished", "x") < log.seq_of("NodeStarted", "y")


async def test_depends_on_several_ids(db: Any, read_log: Any) -> None:
    @workflow("multi-deps")
    def multi_deps(ctx: Any) -> Any:
        return Parallel(
            Task("join", output=Count, value={"n": 0}, depends_on=("p", "q")),
            Task("p", output=Count, run=lambda: {"n": 1}),
            Task("q", output=Count, run=lambda: {"n": 2}),
        )

    result = await run_workflow(multi_deps, input={}, db=db)

    assert result.status == "finished"
    log = await read_log(result.run_id)
    join = log.seq_of("NodeStarted", "join")
    assert log.seq_of("NodeFinished", "p") < join
    assert log.seq_of("NodeFinished", "q") < join


async def test_depends_on_a_node_mounted_by_a_later_render(db: Any, read_log: Any) -> None:
    @workflow("late-dep")
    def late_dep(ctx: Any) -> Any:
        a = ctx.output_maybe(Count, "a")
        return Parallel(
            Task("y", output=Count, value={"n": 2}, depends_on=("x",)),
            Task("a", output=Count, run=lambda: {"n": 1}),
            a and Task("x", output=Count, run=lambda: {"n": 3}),
        )

    result = await run_workflow(late_dep, input={}, db=db)

    assert result.status == "finished", result.error
    log = await read_log(result.run_id)
    assert log.seq_of("NodeFinished", "x") < log.seq_of("NodeStarted", "y")


async def test_depends_on_a_continue_on_fail_failure_proceeds(db: Any) -> None:
    def explode() -> dict[str, int]:
        raise RuntimeError("optional")

    @workflow("soft-dep")
    def soft_dep(ctx: Any) -> Any:
        return Parallel(
            Task("y", output=Count, value={"n": 2}, depends_on=("x",)),
            Task("x", output=Count, run=explode, continue_on_fail=True),
        )

    result = await run_workflow(soft_dep, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"y": {"n": 2}}


async def test_depends_on_a_never_mounted_id_is_a_scheduler_error(db: Any, read_log: Any) -> None:
    @workflow("ghost-dep")
    def ghost_dep(ctx: Any) -> Any:
        return Parallel(
            Task("y", output=Count, value={"n": 2}, depends_on=("ghost",)),
            Task("z", output=Count, run=lambda: {"n": 1}),
        )

    with anyio.fail_after(5):
        result = await run_workflow(ghost_dep, input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "SCHEDULER_ERROR"
    assert "ghost" in result.error["message"]
    assert result.error["details"] == {"waitingOn": {"ghost": ["y"]}}
    assert result.outputs == {"z": {"n": 1}}
    log = await read_log(result.run_id)
    assert log.find("NodeStarted", "y") == []
    assert log.types[-1] == "RunFailed"


async def test_a_dependency_cycle_is_a_scheduler_error(db: Any) -> None:
    @workflow("cycle")
    def cycle(ctx: Any) -> Any:
        return Sequence(
            Task("y", output=Count, value={"n": 2}, depends_on=("x",)),
            Task("x", output=Count, value={"n": 1}),
        )

    with anyio.fail_after(5):
        result = await run_workflow(cycle, input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "SCHEDULER_ERROR"


# ---------------------------------------------------------------------------- several runs


async def test_two_runs_share_one_database(db: Any, read_log: Any) -> None:
    gauge = Gauge()

    @workflow("shared")
    def shared(ctx: Any) -> Any:
        return Parallel(*(Task(f"t{i}", output=Count, run=gauge.task(i)) for i in range(20)))

    results: dict[str, Any] = {}

    async def one(run_id: str) -> None:
        results[run_id] = await run_workflow(shared, input={}, db=db, run_id=run_id)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "run-1")
            tg.start_soon(one, "run-2")

    for run_id in ("run-1", "run-2"):
        assert results[run_id].status == "finished"
        assert len(results[run_id].outputs) == 20
        log = await read_log(run_id)
        assert log.seqs == list(range(1, len(log) + 1))
        assert {e.run_id for e in log.events} == {run_id}
    assert gauge.peak > 4  # the runs did overlap; each has its own cap of 4
