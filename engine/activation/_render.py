"""Render: call the builder and compile its tree into a plan the scheduler walks.

`render` is deterministic: the same workflow and the same recorded state give the same
plan and the same `xml_hash` (SHA-256 of the canonical tree, as Smithers'
`FrameCommitted.xmlHash`).
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from ..authoring import Branch, Parallel, Sequence, Task
from ..errors import DuplicateIdError, EngineError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ("Group", "Leaf", "Plan", "compile_tree")

_canonical_encoder = msgspec.json.Encoder(order="sorted")


class Group:
    """A Sequence or Parallel in the compiled plan."""

    __slots__ = (
        "activated",
        "cap",
        "children",
        "done",
        "done_count",
        "index",
        "kind",
        "parent",
        "parked",
        "running",
    )

    def __init__(
        self,
        kind: Literal["sequence", "parallel"],
        parent: Group | None,
        index: int,
        cap: int | None,
    ) -> None:
        self.kind = kind
        self.parent = parent
        self.index = index
        self.cap = cap
        self.children: list[Group | Leaf] = []
        self.activated = False
        self.done = False
        self.done_count = 0
        self.running = 0
        self.parked: deque[Leaf] = deque()


class Leaf:
    """A Task in the compiled plan."""

    __slots__ = ("activated", "capped", "done", "index", "parent", "task")

    def __init__(self, task: Task, parent: Group, index: int, capped: tuple[Group, ...]) -> None:
        self.task = task
        self.parent = parent
        self.index = index
        self.capped = capped
        self.activated = False
        self.done = False

    @property
    def node_id(self) -> str:
        """The task's id."""
        return self.task.id


class Plan:
    """A compiled render: the root group, leaves by node id, canonical tree and hash."""

    __slots__ = ("leaves", "root", "tree", "xml_hash")

    def __init__(self, root: Group, leaves: dict[str, Leaf], tree: dict[str, Any]) -> None:
        self.root = root
        self.leaves = leaves
        self.tree = tree
        self.xml_hash = hashlib.sha256(_canonical_encoder.encode(tree)).hexdigest()


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
    return node


def compile_tree(root_value: Any, *, max_concurrency: int | None = None) -> Plan:
    """Compile what a builder returned into a `Plan`.

    A list (or any iterable of components) at the root means a Sequence.

    Raises:
        DuplicateIdError: if two tasks share an id.
        EngineError: if a child is not a component (``INVALID_INPUT``).
    """
    leaves: dict[str, Leaf] = {}
    root = Group("sequence", None, 0, None)
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
        index = len(parent.children)
        if isinstance(value, Task):
            if value.id in leaves:
                raise DuplicateIdError("task", value.id)
            leaf = Leaf(value, parent, index, capped)
            leaves[value.id] = leaf
            parent.children.append(leaf)
            siblings.append(_task_tree(value))
            continue
        if isinstance(value, Branch):
            chosen = value.then if value.condition else value.else_
            kids: list[dict[str, Any]] = []
            tree: dict[str, Any] = {"tag": "branch", "if": value.condition, "children": kids}
            siblings.append(tree)
            group = Group("sequence", parent, index, None)
            parent.children.append(group)
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
            group = Group(kind, parent, index, cap)
            parent.children.append(group)
            child_caps = (*capped, group) if cap is not None else capped
            work.extend(
                (c, group, tree["children"], child_caps) for c in reversed(_flatten(value.children))
            )
            continue
        if isinstance(value, list | tuple):
            group = Group("sequence", parent, index, None)
            parent.children.append(group)
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
    if max_concurrency is not None:
        root_tree["maxConcurrency"] = max_concurrency
    return Plan(root, leaves, root_tree)
