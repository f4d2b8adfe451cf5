"""Size: thousands of tasks and deep nesting finish, without recursion errors (DESIGN §11)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import msgspec
import pytest

from smithers import Parallel, Sequence, Task, run_workflow, workflow

N = 2_000


class Count(msgspec.Struct):
    n: int


async def _compute(n: int) -> dict[str, int]:
    await anyio.sleep(0)
    return {"n": n}


def make_task(i: int, kind: str) -> Task:
    if kind == "static":
        return Task(f"t{i}", output=Count, value={"n": i})

    async def run() -> dict[str, int]:
        return await _compute(i)

    return Task(f"t{i}", output=Count, run=run)


def wide_workflow(shape: str, kind: str) -> Any:
    @workflow(f"{shape}-{kind}")
    def wf(ctx: Any) -> Any:
        tasks = [make_task(i, kind) for i in range(N)]
        return Sequence(*tasks) if shape == "sequence" else Parallel(*tasks)

    return wf


@pytest.mark.parametrize("kind", ["static", "compute"])
@pytest.mark.parametrize("shape", ["sequence", "parallel"])
async def test_two_thousand_tasks_finish_once_each(
    db: Any, read_log: Any, shape: str, kind: str
) -> None:
    with anyio.fail_after(25):
        result = await run_workflow(wide_workflow(shape, kind), input={}, db=db, log_dir=None)

    assert result.status == "finished", result.error
    assert len(result.outputs) == N
    assert result.outputs[f"t{N - 1}"] == {"n": N - 1}
    log = await read_log(result.run_id)
    started = Counter(e.node_id for e in log.find("NodeStarted"))
    assert len(started) == N
    assert set(started.values()) == {1}
    assert len(log.find("NodeFinished")) == N
    assert log.types[-1] == "RunFinished"
    assert log.seqs == list(range(1, len(log) + 1))
    if shape == "sequence":
        finished = [e.node_id for e in log.find("NodeFinished")]
        assert finished == [f"t{i}" for i in range(N)]


async def test_a_long_list_root_is_a_sequence(db: Any) -> None:
    @workflow("long-list")
    def long_list(ctx: Any) -> Any:
        return [Task(f"t{i}", output=Count, value={"n": i}) for i in range(N)]

    result = await run_workflow(long_list, input={}, db=db, log_dir=None)

    assert result.status == "finished"
    assert len(result.outputs) == N


@pytest.mark.parametrize("depth", [300])
async def test_deeply_nested_sequences_work(db: Any, read_log: Any, depth: int) -> None:
    @workflow("deep")
    def deep(ctx: Any) -> Any:
        tree: Any = Sequence(Task("leaf", output=Count, run=lambda: {"n": depth}))
        for level in range(depth):
            group = Parallel if level % 2 else Sequence
            tree = group(Task(f"n{level}", output=Count, value={"n": level}), tree)
        return tree

    result = await run_workflow(deep, input={}, db=db)

    assert result.status == "finished", result.error
    assert result.outputs["leaf"] == {"n": depth}
    assert len(result.outputs) == depth + 1
    log = await read_log(result.run_id)
    assert len(log.find("NodeStarted")) == depth + 1


async def test_deeply_nested_pure_sequences_work(db: Any) -> None:
    @workflow("deep-pure")
    def deep_pure(ctx: Any) -> Any:
        tree: Any = Task("leaf", output=Count, value={"n": 1})
        for _ in range(300):
            tree = Sequence(tree)
        return tree

    result = await run_workflow(deep_pure, input={}, db=db)

    assert result.status == "finished", result.error
    assert result.outputs == {"leaf": {"n": 1}}
