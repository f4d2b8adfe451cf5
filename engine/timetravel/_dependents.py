"""Which tasks depend on a task: from the rendered graph, never from timestamps (DESIGN §7)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from smithers.eventstore import (
    decode_json,
)
from smithers.eventstore.events import (
    RetryTaskStarted,
)
from smithers.projections import RunState, apply_event

from ..activation import (
    BASE_ITERATION,
    Leaf,
    render_state,
)
from ..authoring import check_input

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..activation import Group, Plan
    from ..authoring import Workflow

__all__ = ("enclosing_loop", "task_dependents")

log = logging.getLogger("smithers.engine")


def _leaves_under(node: Group | Leaf) -> list[str]:
    """Node ids of the tasks in `node`'s subtree, in tree order."""
    out: list[str] = []
    stack: list[Group | Leaf] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Leaf):
            out.append(item.node_id)
        else:
            stack.extend(reversed(item.children))
    return out


def _graph_dependents(plan: Plan, roots: Iterable[str]) -> set[str]:
    """Mounted tasks that come after `roots` in the rendered graph, transitively.

    After a task come: the later children of every Sequence (or Branch) it is in, at
    every level (so the task's Parallel joins before what follows it), and tasks whose
    `depends_on` names it. Linear in the plan's size: each sequence is expanded once
    from its earliest reached child.
    """
    depended: dict[str, list[str]] = {}
    for node_id, leaf in plan.leaves.items():
        for dep in leaf.task.depends_on:
            depended.setdefault(dep, []).append(node_id)
    expanded: dict[int, int] = {}  # id(sequence group) -> first child index collected
    seen = set(roots)
    work = list(seen)
    found: set[str] = set()
    while work:
        node_id = work.pop()
        reached = list(depended.get(node_id, ()))
        node: Group | Leaf | None = plan.leaves.get(node_id)
        while node is not None and node.parent is not None:
            group = node.parent
            if group.kind == "sequence":
                start = node.index + 1
                done_from = expanded.get(id(group))
                if done_from is not None and done_from <= start:
                    break  # this and every enclosing level were collected already
                stop = done_from if done_from is not None else len(group.children)
                for sibling in group.children[start:stop]:
                    reached.extend(_leaves_under(sibling))
                expanded[id(group)] = start
            node = group
        for other in reached:
            if other not in seen:
                seen.add(other)
                found.add(other)
                work.append(other)
    return found


def _input_value(wf: Workflow, state: RunState) -> Any:
    return check_input(wf, decode_json(state.input) or {})[0]


def _render(wf: Workflow, state: RunState, input_value: Any) -> Plan:
    return render_state(wf, state, input_value)[0]


def task_dependents(wf: Workflow, state: RunState, node_id: str) -> list[str]:
    """Return the tasks that depend on `node_id` in the workflow rendered at `state`.

    Dependents come from the rendered graph, not from timestamps: the later members of
    every Sequence (or Branch) the task is in, at every level (a Parallel joins before
    what follows it), tasks naming it in `depends_on`, transitively; and tasks mounted
    only because of an output being reset (they vanish when the workflow is rendered
    with those nodes back to pending), with their own dependents. Pure: renders only.

    Args:
        wf: The run's workflow.
        state: The run's state to render against.
        node_id: The task.

    Returns:
        Node ids in tree order, without `node_id`.

    Raises:
        InvalidInputError: if the run's recorded input no longer fits `wf`.
        Exception: whatever the workflow's builder raises for `state`.
    """
    input_value = _input_value(wf, state)
    plan = _render(wf, state, input_value)
    reset = {node_id} | _graph_dependents(plan, [node_id])
    while True:
        trial = state.copy()
        event = RetryTaskStarted(
            run_id=state.run_id,
            timestamp_ms=state.updated_at_ms or 0,
            node_id=node_id,
            iteration=BASE_ITERATION,
            reset_dependents=True,
            reset_nodes=tuple(reset),
        )
        apply_event(trial, event, seq=trial.seq + 1)
        try:
            again = _render(wf, trial, input_value)
        except Exception:  # the resume will report it; the graph rules still hold
            break
        vanished = [n for n in plan.leaves if n not in again.leaves and n not in reset]
        if not vanished:
            break
        reset |= set(vanished) | _graph_dependents(plan, vanished)
    return [n for n in plan.leaves if n in reset and n != node_id]


def enclosing_loop(wf: Workflow, state: RunState, node_id: str) -> tuple[str, list[str]] | None:
    """The innermost Loop mounting `node_id` in the workflow rendered at `state`.

    Returns:
        ``(scoped loop id, node ids of the loop's tasks)``, or None when the task is not
        in a loop (or not mounted). Pure: renders only.

    Raises:
        InvalidInputError: if the run's recorded input no longer fits `wf`.
        Exception: whatever the workflow's builder raises for `state`.
    """
    plan = _render(wf, state, _input_value(wf, state))
    node: Group | Leaf | None = plan.leaves.get(node_id)
    while node is not None:
        group = node.parent
        if group is not None and group.loop is not None:
            return group.loop.loop_id, _leaves_under(group)
        node = group
    return None
