"""Render: call the builder and compile its tree into a plan the scheduler walks.

`render` is deterministic: the same workflow and the same recorded state give the same
plan and the same `xml_hash` (SHA-256 of the canonical tree, as Smithers'
`FrameCommitted.xmlHash`).
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ..authoring import Approval, Branch, Parallel, Sequence, Subflow, Task, Timer, WaitForEvent
from ..errors import DuplicateIdError, EngineError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from smithers.projections import NodeKey

__all__ = ("BASE_ITERATION", "Group", "Leaf", "Plan", "compile_tree")

BASE_ITERATION = 0
"""The iteration of a node outside any Loop: every task's key is ``(node_id, 0)`` there."""

_canonical_encoder = msgspec.json.Encoder(order="sorted")


class Group(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A Sequence or Parallel in the compiled plan (immutable once compiled).

    Compared and hashed by identity: the scheduler keys its own counters by node.
    """

    pos: int
    """The node's number in its plan, from 0 (the root) to ``Plan.size - 1``."""
    kind: Literal["sequence", "parallel"]
    """How the children run: one after another, or together."""
    parent: Group | None
    """The enclosing group; None for the plan's root."""
    index: int
    """Position among the parent's children (0 for the root)."""
    cap: int | None
    """The Parallel's ``max_concurrency``; None when uncapped (and for a Sequence)."""
    children: tuple[Group | Leaf, ...] = ()
    """The children in tree order (filled in once, by `compile_tree`)."""


class Leaf(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A Task in the compiled plan (immutable once compiled).

    Compared and hashed by identity: the scheduler keys its own state by node.
    """

    pos: int
    """The node's number in its plan, from 1 to ``Plan.size - 1``."""
    task: Task
    """The task as the builder returned it."""
    key: NodeKey
    """``(node_id, iteration)``: the key of the task's record in the run's state."""
    parent: Group
    """The enclosing group."""
    index: int
    """Position among the parent's children."""
    capped: tuple[Group, ...]
    """Ancestor Parallels with a ``max_concurrency``, outermost first."""

    @property
    def node_id(self) -> str:
        """The task's id."""
        return self.task.id

    @property
    def iteration(self) -> int:
        """The loop iteration this task is mounted in (`BASE_ITERATION` outside loops)."""
        return self.key[1]


class Plan(msgspec.Struct, frozen=True, kw_only=True, eq=False):
    """A compiled render: the root group, leaves by node id, canonical tree and hash.

    Never changed after `compile_tree` returns: what a run does with it (activated,
    done, running counts) the `Scheduler` keeps.
    """

    root: Group
    """The top Sequence."""
    leaves: Mapping[str, Leaf]
    """Every mounted task by node id, in tree order (a read-only mapping)."""
    tree: dict[str, Any]
    """The canonical tree (what frames record); treat as read-only."""
    xml_hash: str
    """SHA-256 hex digest of the canonical JSON of `tree`."""
    size: int
    """How many nodes (groups and leaves) the plan has: their `pos` is below it."""


def _flatten(items: Iterable[Any]) -> list[Any]:
    """Drop None/False/True children and splice nested plain lists/tuples/generators."""
    out: list[Any] = []
    stack: list[Any] = [iter(items)]
    while stack:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        if item is None or item is False or item is True:
            continue
        if isinstance(item, list | tuple) or (
            hasattr(item, "__iter__")
            and not isinstance(item, str | bytes | dict)
            and not isinstance(item, Task | Sequence | Parallel | Branch)
        ):
            stack.append(iter(item))
            continue
        out.append(item)
    return out


def _task_tree(task: Task) -> dict[str, Any]:
    node: dict[str, Any] = {
        "tag": "task",
        "id": task.id,
        "kind": task.kind,
        "output": task.output_name,
    }
    if task.label:
        node["label"] = task.label
    if task.skip_if:
        node["skipIf"] = True
    if task.continue_on_fail:
        node["continueOnFail"] = True
    if task.depends_on:
        node["dependsOn"] = list(task.depends_on)
    if task.prompt is not None:
        node["prompt"] = task.prompt
    if task.needs_approval:
        node["needsApproval"] = True
    if isinstance(task, Approval):
        node["mode"] = task.mode
        if task.options:
            node["options"] = list(task.options)
        if task.on_deny != "fail":
            node["onDeny"] = task.on_deny
    elif isinstance(task, WaitForEvent):
        node["event"] = task.event
        if task.correlation_id is not None:
            node["correlationId"] = task.correlation_id
        if task.timeout_ms is not None:
            node["timeoutMs"] = task.timeout_ms
            node["onTimeout"] = task.on_timeout
    elif isinstance(task, Timer):
        if task.until_ms is not None:
            node["untilMs"] = task.until_ms
        else:
            node["durationMs"] = task.duration_ms
    elif isinstance(task, Subflow):
        node["workflow"] = task.workflow.name
    return node


def compile_tree(root_value: Any, *, max_concurrency: int | None = None) -> Plan:
    """Compile what a builder returned into a `Plan`.

    A list (or any iterable of components) at the root means a Sequence. Every task is
    mounted at `BASE_ITERATION` (no Loop yet).

    Raises:
        DuplicateIdError: if two tasks share an id.
        EngineError: if a child is not a component (``INVALID_INPUT``).
    """
    leaves: dict[str, Leaf] = {}
    root = Group(pos=0, kind="sequence", parent=None, index=0, cap=None)
    # Each group's children, collected during the walk and frozen into it at the end.
    kids_of: dict[Group, list[Group | Leaf]] = {root: []}
    root_tree: dict[str, Any] = {"tag": "workflow", "children": []}
    if isinstance(root_value, Sequence | Parallel | Branch | Task):
        top: list[Any] = [root_value]
    elif root_value is None or root_value is False:
        top = []
    else:
        top = _flatten([root_value])
    # Iterative walk (a 10,000-long sequence must not hit the recursion limit).
    work: list[tuple[Any, Group, list[dict[str, Any]], tuple[Group, ...]]] = [
        (child, root, root_tree["children"], ()) for child in reversed(top)
    ]
    while work:
        value, parent, siblings, capped = work.pop()
        children = kids_of[parent]
        index = len(children)
        if isinstance(value, Task):
            if value.id in leaves:
                raise DuplicateIdError("task", value.id)
            leaf = Leaf(
                pos=len(kids_of) + len(leaves),
                task=value,
                key=(value.id, BASE_ITERATION),
                parent=parent,
                index=index,
                capped=capped,
            )
            leaves[value.id] = leaf
            children.append(leaf)
            siblings.append(_task_tree(value))
            continue
        if isinstance(value, Branch):
            chosen = value.then if value.condition else value.else_
            kids: list[dict[str, Any]] = []
            tree: dict[str, Any] = {"tag": "branch", "if": value.condition, "children": kids}
            siblings.append(tree)
            group = _group(kids_of, leaves, "sequence", parent, index, None)
            work.extend((c, group, kids, capped) for c in reversed(_flatten([chosen])))
            continue
        if isinstance(value, Sequence | Parallel):
            kind: Literal["sequence", "parallel"] = (
                "parallel" if isinstance(value, Parallel) else "sequence"
            )
            cap = value.max_concurrency if isinstance(value, Parallel) else None
            kids = []
            tree = {"tag": kind, "children": kids}
            if cap is not None:
                tree["maxConcurrency"] = cap
            siblings.append(tree)
            group = _group(kids_of, leaves, kind, parent, index, cap)
            child_caps = (*capped, group) if cap is not None else capped
            work.extend(
                (c, group, tree["children"], child_caps) for c in reversed(_flatten(value.children))
            )
            continue
        if isinstance(value, list | tuple):
            group = _group(kids_of, leaves, "sequence", parent, index, None)
            kids = []
            siblings.append({"tag": "sequence", "children": kids})
            work.extend((c, group, kids, capped) for c in reversed(_flatten(value)))
            continue
        raise EngineError(
            f"A workflow returned {value!r}, which is not a Task, Sequence, Parallel, Branch "
            "or list of them.",
            code="INVALID_INPUT",
            details={"got": repr(value)[:200]},
        )
    for group, children in kids_of.items():
        # The one write after construction: a parent must exist before its children.
        msgspec.structs.force_setattr(group, "children", tuple(children))
    if max_concurrency is not None:
        root_tree["maxConcurrency"] = max_concurrency
    xml_hash = hashlib.sha256(_canonical_encoder.encode(root_tree)).hexdigest()
    return Plan(
        root=root,
        leaves=MappingProxyType(leaves),
        tree=root_tree,
        xml_hash=xml_hash,
        size=len(kids_of) + len(leaves),
    )


def _group(
    kids_of: dict[Group, list[Group | Leaf]],
    leaves: dict[str, Leaf],
    kind: Literal["sequence", "parallel"],
    parent: Group,
    index: int,
    cap: int | None,
) -> Group:
    """Make a group, append it to `parent`'s children and give it a children list."""
    group = Group(pos=len(kids_of) + len(leaves), kind=kind, parent=parent, index=index, cap=cap)
    kids_of[parent].append(group)
    kids_of[group] = []
    return group
