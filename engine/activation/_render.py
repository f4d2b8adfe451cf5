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

from ..agents import agent_id_of
from ..authoring import (
    Approval,
    Branch,
    ContinueAsNew,
    Loop,
    Parallel,
    Sequence,
    Subflow,
    Task,
    Timer,
    WaitForEvent,
    WorkflowContext,
)
from ..errors import DuplicateIdError, EngineError, NestedLoopError, TreeTooDeepError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from smithers.projections import LoopRecord, NodeKey, RunState

    from ..authoring import Workflow

__all__ = (
    "BASE_ITERATION",
    "MAX_TREE_DEPTH",
    "Group",
    "Leaf",
    "LoopSpec",
    "Plan",
    "compile_tree",
    "render_state",
)

BASE_ITERATION = 0
MAX_TREE_DEPTH = 350
"""Deepest nesting of groups (Sequence, Parallel, Branch, Loop, list) in a workflow's
tree. The walk here is iterative, but a frame's tree is encoded, hashed and diffed
recursively, and Python's recursion limit failed trees about 485 deep: deeper trees
fail with ``TREE_TOO_DEEP`` instead of a RecursionError."""
"""The iteration of a node outside any Loop: every task's key is ``(node_id, 0)`` there."""

_canonical_encoder = msgspec.json.Encoder(order="sorted")


class LoopSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A Loop as this render compiled it: its scoped id, current pass and options."""

    loop_id: str
    """The scoped loop id: ``"<id>"``, or ``"<id>@<outer iteration>"`` inside a loop."""
    iteration: int
    """The pass mounted (from the run's state; 0 for a loop not started yet)."""
    until: bool
    """The loop's ``until`` as this render computed it."""
    max_iterations: int
    on_max_reached: str
    continue_as_new_every: int | None
    finished: bool
    """Whether the run's state records the loop as done."""


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
    loop: LoopSpec | None = None
    """For a Loop's pass (a sequence): the loop; None otherwise."""
    continue_state: bytes | None = None
    """For a ``ContinueAsNew`` (a group with no children): the state's JSON."""


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
    deps: tuple[NodeKey, ...] = ()
    """Keys of the task's ``depends_on``: a dependency mounted in the task's loop scope
    is that node in this pass; one mounted elsewhere is its own key."""

    @property
    def node_id(self) -> str:
        """The node id: the task's id, with the outer passes for a scoped loop (``t@2``)."""
        return self.key[0]

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
    loops: tuple[Group, ...] = ()
    """The groups of every mounted Loop, in tree order."""


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
            and not isinstance(item, Task | Sequence | Parallel | Branch | Loop | ContinueAsNew)
        ):
            stack.append(iter(item))
            continue
        out.append(item)
    return out


_NODE_KINDS = frozenset({"approval", "event", "timer", "subflow"})
"""`Task.kind` of the leaves that are not plain tasks (`Approval`, `WaitForEvent`,
`Timer`, `Subflow`): only those record more in the tree."""


def _agent_tree(task: Task, node: dict[str, Any]) -> None:
    """What an agent task adds to the tree: its prompt, agents and tools.

    A prompt computed from the context is recorded by the callable's name (its text is
    known only when an attempt starts).
    """
    prompt = task.prompt
    if isinstance(prompt, str):
        node["prompt"] = prompt
    elif prompt is not None:
        node["prompt"] = f"{getattr(prompt, '__qualname__', type(prompt).__name__)}(ctx)"
    node["agents"] = [agent_id_of(a) for a in task.agents]
    if task.tools:
        node["tools"] = [t if isinstance(t, str) else t.name for t in task.tools]
    if task.allow_tools is not None:
        node["allowTools"] = sorted(task.allow_tools)


def _task_tree(task: Task, node_id: str, iteration: int | None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "tag": "task",
        "id": node_id,
        "kind": task.kind,
        "output": task.output_name,
    }
    if iteration is not None:
        node["iteration"] = iteration
    if task.label:
        node["label"] = task.label
    if task.skip_if:
        node["skipIf"] = True
    if task.continue_on_fail:
        node["continueOnFail"] = True
    if task.depends_on:
        node["dependsOn"] = list(task.depends_on)
    if task.kind == "agent":
        _agent_tree(task, node)
    if task.needs_approval:
        node["needsApproval"] = True
    if task.kind not in _NODE_KINDS:
        return node  # a plain Task (the common case): no isinstance chain per leaf
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


_Scope = tuple[str, int, "str | None"]
"""Where a node is compiled: ``(id suffix, iteration, enclosing loop's scoped id)``."""
_TOP: _Scope = ("", BASE_ITERATION, None)


def render_state(wf: Workflow, state: RunState, input_value: Any) -> tuple[Plan, WorkflowContext]:
    """Render `wf` from `state` as the engine renders a frame: the plan and the `ctx` used.

    Calls the builder with a `WorkflowContext` over `state` (``ctx.input`` is
    `input_value`) and compiles the result with the run's loop passes. The context's
    `reads` tell which outputs the render read. Every render of a recorded state (the
    run loop, verify, retry-task's dependents, a signal's payload check) goes through here,
    so they all see the same tree.

    Raises:
        Whatever the builder raises, and `compile_tree`'s errors.
    """
    ctx = WorkflowContext(run_id=state.run_id, input=input_value, state=state)
    return compile_tree(wf.build(ctx), loops=state.loops), ctx


def compile_tree(
    root_value: Any,
    *,
    max_concurrency: int | None = None,
    loops: Mapping[str, LoopRecord] | None = None,
) -> Plan:
    """Compile what a builder returned into a `Plan`.

    A list (or any iterable of components) at the root means a Sequence. A task outside
    loops is mounted at `BASE_ITERATION`; inside a Loop, at the loop's pass recorded in
    `loops` (0 if none), with its id suffixed by the outer passes when the loop is
    scoped inside another (``"t@2"``, see `Loop`). The tree records each loop as
    ``{"tag": "loop", "id", "iteration", ...}``, so the frame hash changes per pass.

    Args:
        root_value: What the builder returned.
        max_concurrency: Recorded in the tree.
        loops: The run's loop records (`RunState.loops`); None: no loop started.

    Raises:
        DuplicateIdError: if two tasks (or two loops) share an id.
        NestedLoopError: if a Loop is a direct child of a Loop.
        TreeTooDeepError: if groups nest more than `MAX_TREE_DEPTH` deep.
        EngineError: if a child is not a component (``INVALID_INPUT``).
    """
    loop_records: Mapping[str, LoopRecord] = loops if loops is not None else {}
    leaves: dict[str, Leaf] = {}
    loop_groups: dict[str, Group] = {}
    root = Group(pos=0, kind="sequence", parent=None, index=0, cap=None, children=_tracked())
    # Each group's children, collected during the walk and frozen into it at the end.
    kids_of: dict[Group, list[Group | Leaf]] = {root: []}
    root_tree: dict[str, Any] = {"tag": "workflow", "children": []}
    if isinstance(root_value, Sequence | Parallel | Branch | Task | Loop | ContinueAsNew):
        top: list[Any] = [root_value]
    elif root_value is None or root_value is False:
        top = []
    else:
        top = _flatten([root_value])
    # Iterative walk (a 10,000-long sequence must not hit the recursion limit).
    work: list[tuple[Any, Group, list[dict[str, Any]], tuple[Group, ...], _Scope]] = [
        (child, root, root_tree["children"], (), _TOP) for child in reversed(top)
    ]
    while work:
        value, parent, siblings, capped, scope = work.pop()
        children = kids_of[parent]
        index = len(children)
        sfx, iteration, in_loop = scope
        if isinstance(value, Task):
            node_id = value.id + sfx
            if node_id in leaves:
                raise DuplicateIdError("task", node_id)
            leaf = Leaf(
                pos=len(kids_of) + len(leaves),
                task=value,
                key=(node_id, iteration),
                parent=parent,
                index=index,
                capped=capped,
            )
            leaves[node_id] = leaf
            children.append(leaf)
            siblings.append(_task_tree(value, node_id, iteration if in_loop else None))
            continue
        if isinstance(value, Loop):
            if parent.loop is not None:
                raise NestedLoopError(value.id, parent.loop.loop_id)
            loop_sfx = sfx + (f"@{iteration}" if in_loop is not None else "")
            loop_id = value.id + loop_sfx
            if loop_id in loop_groups:
                raise DuplicateIdError("loop", loop_id)
            rec = loop_records.get(loop_id)
            spec = LoopSpec(
                loop_id=loop_id,
                iteration=rec.iteration if rec is not None else BASE_ITERATION,
                until=value.until,
                max_iterations=value.max_iterations,
                on_max_reached=value.on_max_reached,
                continue_as_new_every=value.continue_as_new_every,
                finished=rec is not None and rec.finished,
            )
            loop_kids: list[dict[str, Any]] = []
            loop_tree: dict[str, Any] = {
                "tag": "loop",
                "id": loop_id,
                "iteration": spec.iteration,
                "maxIterations": spec.max_iterations,
                "until": spec.until,
                "children": loop_kids,
            }
            siblings.append(loop_tree)
            group = _group(kids_of, leaves, "sequence", parent, index, None, loop=spec)
            loop_groups[loop_id] = group
            inner: _Scope = (loop_sfx, spec.iteration, loop_id)
            work.extend(
                (c, group, loop_kids, capped, inner) for c in reversed(_flatten(value.children))
            )
            continue
        if isinstance(value, ContinueAsNew):
            siblings.append({"tag": "continue-as-new", "stateBytes": len(value.state_json)})
            _group(kids_of, leaves, "sequence", parent, index, None, state=value.state_json)
            continue
        if isinstance(value, Branch):
            chosen = value.then if value.condition else value.else_
            kids: list[dict[str, Any]] = []
            tree: dict[str, Any] = {"tag": "branch", "if": value.condition, "children": kids}
            siblings.append(tree)
            group = _group(kids_of, leaves, "sequence", parent, index, None)
            work.extend((c, group, kids, capped, scope) for c in reversed(_flatten([chosen])))
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
                (c, group, tree["children"], child_caps, scope)
                for c in reversed(_flatten(value.children))
            )
            continue
        if isinstance(value, list | tuple):
            group = _group(kids_of, leaves, "sequence", parent, index, None)
            kids = []
            siblings.append({"tag": "sequence", "children": kids})
            work.extend((c, group, kids, capped, scope) for c in reversed(_flatten(value)))
            continue
        raise EngineError(
            f"A workflow returned {value!r}, which is not a Task, Sequence, Parallel, Branch, "
            "Loop, ContinueAsNew or list of them.",
            code="INVALID_INPUT",
            details={"got": repr(value)[:200]},
        )
    for group, children in kids_of.items():
        # The one write after construction: a parent must exist before its children.
        msgspec.structs.force_setattr(group, "children", tuple(children))
    for leaf in leaves.values():
        if leaf.task.depends_on:
            msgspec.structs.force_setattr(leaf, "deps", _dep_keys(leaf, leaves))
    if max_concurrency is not None:
        root_tree["maxConcurrency"] = max_concurrency
    try:
        xml_hash = hashlib.sha256(_canonical_encoder.encode(root_tree)).hexdigest()
    except RecursionError as e:  # a stack already deep (a child run's render, say)
        raise TreeTooDeepError(MAX_TREE_DEPTH) from e
    return Plan(
        root=root,
        leaves=MappingProxyType(leaves),
        tree=root_tree,
        xml_hash=xml_hash,
        size=len(kids_of) + len(leaves),
        loops=tuple(loop_groups.values()),
    )


def _tracked() -> Any:
    """A placeholder for `Group.children` that makes msgspec GC-track the group.

    msgspec leaves untracked a Struct whose fields hold nothing GC-tracked when it is
    made (a group with ``parent=None, children=()``), and never tracks it later. The
    children set afterwards (`force_setattr`) point back at the group: a cycle the
    collector cannot see, so every plan leaked (a long run, or a continue-as-new
    chain, grew by a plan per render). Replaced by the tuple of children before use.
    """
    return []


def _dep_keys(leaf: Leaf, leaves: Mapping[str, Leaf]) -> tuple[NodeKey, ...]:
    """The keys `leaf`'s ``depends_on`` ids name: in its own scope first, else anywhere."""
    node_id, iteration = leaf.key
    sfx = node_id[len(leaf.task.id) :]
    out: list[NodeKey] = []
    for dep in leaf.task.depends_on:
        mounted = leaves.get(dep + sfx) or leaves.get(dep)
        out.append(mounted.key if mounted is not None else (dep + sfx, iteration))
    return tuple(out)


def _group(
    kids_of: dict[Group, list[Group | Leaf]],
    leaves: dict[str, Leaf],
    kind: Literal["sequence", "parallel"],
    parent: Group,
    index: int,
    cap: int | None,
    *,
    loop: LoopSpec | None = None,
    state: bytes | None = None,
) -> Group:
    """Make a group, append it to `parent`'s children and give it a children list.

    Raises:
        TreeTooDeepError: if the group would be more than `MAX_TREE_DEPTH` deep.
    """
    depth, up = 1, parent.parent
    while up is not None:  # at most MAX_TREE_DEPTH steps: deeper raised before
        depth, up = depth + 1, up.parent
    if depth > MAX_TREE_DEPTH:
        raise TreeTooDeepError(MAX_TREE_DEPTH)
    group = Group(
        pos=len(kids_of) + len(leaves),
        kind=kind,
        parent=parent,
        index=index,
        cap=cap,
        children=_tracked(),
        loop=loop,
        continue_state=state,
    )
    kids_of[parent].append(group)
    kids_of[group] = []
    return group
