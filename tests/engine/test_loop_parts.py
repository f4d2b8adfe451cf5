"""The run loop by parts: typed messages, an immutable plan, node keys with iterations."""

from __future__ import annotations

import inspect
import typing
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine.activation import (
    BASE_ITERATION,
    Group,
    Leaf,
    Message,
    Plan,
    Scheduler,
    _loop,
    _messages,
    compile_tree,
)
from smithers.eventstore.events import TaskHeartbeatTimeout

from smithers import Backoff, Parallel, Sequence, Task, TaskContext, run_workflow, workflow

if TYPE_CHECKING:
    from smithers.projections import NodeKey


class N(msgspec.Struct):
    n: int


def _task(node_id: str, **kw: Any) -> Task:
    return Task(node_id, output=N, value={"n": 1}, **kw)


def _tree() -> Any:
    return Sequence(
        _task("a"),
        Parallel(_task("b"), _task("c"), _task("d"), max_concurrency=2),
        _task("e", depends_on=("c",)),
        [_task("f"), Parallel(_task("g"), _task("h"))],
    )


def _run_to_end(plan: Plan, slots: int) -> list[str]:
    """Drive a scheduler over `plan` as the engine would; return the start order."""
    done: set[NodeKey] = set()
    busy: set[NodeKey] = set()
    sched = Scheduler(plan, is_done=done.__contains__, is_busy=busy.__contains__)
    order: list[str] = []
    while not sched.finished:
        leaves = sched.take(slots - len(busy))
        assert leaves or busy, "stuck"
        busy.update(leaf.key for leaf in leaves)
        order.extend(leaf.node_id for leaf in leaves)
        key = min(busy)
        busy.discard(key)
        done.add(key)
        sched.released(key)
        sched.complete(key)
    return order


def _shape(plan: Plan) -> list[tuple[Any, ...]]:
    """Every node of `plan` with its fields, in tree order (identity of children kept)."""
    out: list[tuple[Any, ...]] = []
    stack: list[Group | Leaf] = [plan.root]
    while stack:
        node = stack.pop()
        fields = tuple(getattr(node, f) for f in node.__struct_fields__)
        out.append((type(node).__name__, id(node), fields))
        if isinstance(node, Group):
            stack.extend(reversed(node.children))
    return out


# ---------------------------------------------------------------------------- the plan


def test_a_plan_is_frozen() -> None:
    plan = compile_tree(_tree())
    leaf = plan.leaves["b"]
    with pytest.raises(AttributeError):
        leaf.index = 7  # type: ignore[misc]
    with pytest.raises(AttributeError):
        plan.root.children = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        plan.xml_hash = ""  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.leaves["z"] = leaf  # type: ignore[index]
    assert isinstance(plan.root.children, tuple)


def test_plan_nodes_are_numbered_densely() -> None:
    plan = compile_tree(_tree())
    nodes = _shape(plan)
    positions = sorted(fields[0] for _, _, fields in nodes)
    assert positions == list(range(plan.size))
    assert plan.root.pos == 0


def test_scheduling_does_not_change_the_plan_and_each_scheduler_counts_for_itself() -> None:
    plan = compile_tree(_tree())
    before = _shape(plan)
    first = _run_to_end(plan, slots=3)
    assert _shape(plan) == before
    # A second scheduler over the same plan starts from nothing, as the first did.
    assert _run_to_end(plan, slots=3) == first
    assert sorted(first) == sorted(plan.leaves)
    assert first.index("e") > first.index("c")
    assert first[0] == "a"


def test_parallel_caps_are_counted_by_the_scheduler() -> None:
    plan = compile_tree(Parallel(_task("a"), _task("b"), _task("c"), max_concurrency=2))
    sched = Scheduler(plan, is_done=lambda key: False, is_busy=lambda key: False)
    assert [leaf.node_id for leaf in sched.take(10)] == ["a", "b"]
    assert sched.take(10) == []  # c is parked on the full Parallel
    sched.released(("a", BASE_ITERATION))
    assert [leaf.node_id for leaf in sched.take(10)] == ["c"]


def test_every_leaf_is_keyed_by_node_id_and_iteration() -> None:
    plan = compile_tree(_tree())
    for node_id, leaf in plan.leaves.items():
        assert leaf.key == (node_id, BASE_ITERATION)
        assert (leaf.node_id, leaf.iteration) == leaf.key


def test_the_scheduler_ignores_a_key_of_another_iteration() -> None:
    plan = compile_tree(Sequence(_task("a"), _task("b")))
    sched = Scheduler(plan, is_done=lambda key: False, is_busy=lambda key: False)
    assert [leaf.node_id for leaf in sched.take(1)] == ["a"]
    sched.complete(("a", BASE_ITERATION + 1))
    assert sched.take(1) == []
    sched.complete(("a", BASE_ITERATION))
    assert [leaf.node_id for leaf in sched.take(1)] == ["b"]


# ---------------------------------------------------------------------------- messages


def _message_classes() -> list[type[msgspec.Struct]]:
    return [
        cls
        for _, cls in inspect.getmembers(_messages, inspect.isclass)
        if issubclass(cls, msgspec.Struct) and cls.__module__ == _messages.__name__
    ]


def test_every_message_kind_is_a_frozen_struct_in_the_union() -> None:
    classes = _message_classes()
    assert set(typing.get_args(Message)) == set(classes)
    for cls in classes:
        assert cls.__struct_config__.frozen
        assert cls.__match_args__ == ()  # keyword-only


async def test_workers_send_only_typed_messages(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = typing.get_args(Message)
    seen: list[Any] = []
    original = _loop.RunLoop.tick

    async def tick(self: _loop.RunLoop, msgs: list[Any]) -> None:
        seen.extend(msgs)
        await original(self, msgs)

    monkeypatch.setattr(_loop.RunLoop, "tick", tick)
    release = anyio.Event()

    async def flaky(ctx: TaskContext) -> dict[str, int]:
        ctx.heartbeat({"attempt": ctx.attempt})
        if ctx.attempt == 1:
            await release.wait()  # silent: the watchdog stops it
        return {"n": ctx.attempt}

    @workflow("typed")
    def wf(ctx: Any) -> Any:
        return Task(
            "t",
            output=N,
            run=flaky,
            heartbeat_timeout_ms=100,
            retries=1,
            backoff=Backoff(kind="fixed", initial_ms=5),
        )

    events: list[Any] = []
    with anyio.fail_after(10):
        result = await run_workflow(wf, db=db, on_progress=events.append)
    assert result.status == "finished"
    assert any(isinstance(e, TaskHeartbeatTimeout) for e in events)
    assert seen
    assert all(isinstance(m, kinds) for m in seen)
    names = {type(m).__name__ for m in seen}
    assert {"TaskBeat", "BeatTimedOut", "AttemptEnded", "BackoffElapsed"} <= names
