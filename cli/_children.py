"""Child runs in ``inspect`` and ``ps``: the runs of a run's `Subflow` nodes.

Kept apart from the rest of ``inspect``: it adds one read (`RunHandle.children`) and
one section (``children`` in ``--json``, a ``Children`` table in text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._inspect_view import inspect_view
from ._output import print_table
from ._text import echo
from ._waiting import needs_descendants

if TYPE_CHECKING:
    from smithers.engine import ChildRun, Client
    from smithers.projections import RunState

__all__ = (
    "InspectView",
    "children_json",
    "inspect_with_children",
    "print_children",
    "subflow_json",
)

InspectView = tuple["RunState", "dict[str, Any] | None", "list[ChildRun]", "list[RunState]"]
"""What ``inspect`` shows: the state, its last tree, its child runs, and the states
of its active descendants (what a waiting `Subflow` node's child waits for)."""


async def inspect_with_children(client: Client, run_id: str) -> InspectView:
    """`inspect_view` plus the run's child runs and active descendants. Awaits reads.

    The descendants are folded only when a waiting node may be a `Subflow` waiting in
    its child run (`needs_descendants`).

    Raises:
        RunNotFoundError: if the run does not exist.
    """
    state, tree = await inspect_view(client, run_id)
    handle = await client.get_run(run_id)
    children = await handle.children()
    active = await handle.active_descendants() if needs_descendants(state) else []
    return state, tree, children, active


def children_json(children: list[ChildRun]) -> list[dict[str, Any]]:
    """``inspect --json``'s ``children``: ``[{runId, nodeId, iteration, status, workflowName}]``."""
    return [
        {
            "runId": c.run_id,
            "nodeId": c.node_id,
            "iteration": c.iteration,
            "status": c.status,
            "workflowName": c.workflow_name,
        }
        for c in children
    ]


def subflow_json(state: RunState) -> dict[str, Any] | None:
    """``inspect --json``'s ``subflowOf``: ``{runId, nodeId, iteration}`` of a child run."""
    parent = state.subflow_of
    if parent is None:
        return None
    return {"runId": parent.run_id, "nodeId": parent.node_id, "iteration": parent.iteration}


def print_children(state: RunState, children: list[ChildRun]) -> None:
    """Print where a child run comes from, and the run's own children, if any."""
    parent = state.subflow_of
    if parent is not None:
        echo()
        where = f"node {parent.node_id}, iteration {parent.iteration}"
        echo(f"Child of run {parent.run_id} ({where})")
    if not children:
        return
    echo()
    echo("Children:")
    print_table(
        ("CHILD RUN", "NODE", "ITER", "WORKFLOW", "STATUS"),
        (
            (c.run_id, c.node_id, str(c.iteration), c.workflow_name or "-", c.status)
            for c in children
        ),
    )
