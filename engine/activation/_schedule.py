"""Incremental scheduling over a compiled `Plan` (DESIGN §6, §11).

The scheduler keeps the ready queue and per-group counters up to date as tasks
complete, instead of walking the whole tree per completion: activating a node and
completing one are O(1) amortised. It is pure bookkeeping: no I/O, no clock; the engine
tells it which tasks are done and which are busy (running or backing off).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ._render import Leaf

if TYPE_CHECKING:
    from collections.abc import Callable

    from smithers.projections import NodeKey

    from ._render import Group, Plan

__all__ = ("Scheduler",)

_ACTIVATED = 1
_DONE = 2


class Scheduler:
    """Which tasks may start now, given a plan and what is done.

    The plan is never changed: which nodes are activated or done (flags by the
    node's `pos`), each Parallel's count of done children and each capped Parallel's
    running count and parked tasks are kept here.

    Args:
        plan: The compiled render.
        is_done: Whether a node key is done for ordering purposes (finished, skipped,
            or failed with ``continue_on_fail``).
        is_busy: Whether a node key is running or waiting out a retry backoff; such a
            task is activated but not queued (the engine re-queues it with `requeue`).

    Loops (``Group.loop``): a loop's group completes only once the run's state records
    the loop finished; when every child of a pass is done the group is listed in
    `passes_ended` instead, for the engine to decide the next pass (`_loops`). Loops
    whose group was activated are listed in `loops_started`, ``ContinueAsNew`` groups
    reached in `continuations` (neither completes). The engine drains the three lists.
    """

    __slots__ = (
        "_done_count",
        "_flags",
        "_is_busy",
        "_is_done",
        "_parked",
        "_running",
        "_waiting_deps",
        "_work",
        "continuations",
        "loops_started",
        "passes_ended",
        "plan",
        "ready",
    )

    def __init__(
        self,
        plan: Plan,
        *,
        is_done: Callable[[NodeKey], bool],
        is_busy: Callable[[NodeKey], bool],
    ) -> None:
        self.plan = plan
        self.ready: deque[Leaf] = deque()
        self._is_done = is_done
        self._is_busy = is_busy
        self._flags = bytearray(plan.size)  # _ACTIVATED | _DONE, by node pos
        self._done_count: dict[Group, int] = {}
        self._running: dict[Group, int] = {}
        self._parked: dict[Group, deque[Leaf]] = {}
        self._waiting_deps: dict[NodeKey, list[Leaf]] = {}
        self._work: deque[tuple[bool, Group | Leaf]] = deque()
        self.loops_started: list[Group] = []
        self.passes_ended: list[Group] = []
        self.continuations: list[Group] = []
        self._activate(plan.root)
        self._drain()

    @property
    def finished(self) -> bool:
        """True once every mounted node is done."""
        return bool(self._flags[self.plan.root.pos] & _DONE)

    def waiting_on(self) -> dict[str, list[str]]:
        """Return unmet explicit dependencies: dependency id -> waiting task ids."""
        return {
            dep[0]: [leaf.node_id for leaf in ls] for dep, ls in self._waiting_deps.items() if ls
        }

    def _leaf(self, key: NodeKey) -> Leaf | None:
        """The mounted leaf of `key`, or None (not mounted, or another iteration)."""
        leaf = self.plan.leaves.get(key[0])
        return leaf if leaf is not None and leaf.key == key else None

    # ------------------------------------------------------------------ transitions

    def _activate(self, node: Group | Leaf) -> None:
        self._work.append((True, node))

    def _complete(self, node: Group | Leaf) -> None:
        self._work.append((False, node))

    def _drain(self) -> None:
        work = self._work
        while work:
            activate, node = work.popleft()
            if activate:
                self._do_activate(node)
            else:
                self._do_complete(node)

    def _do_activate(self, node: Group | Leaf) -> None:
        flags = self._flags
        pos = node.pos
        if flags[pos] & _ACTIVATED:
            return
        flags[pos] |= _ACTIVATED
        if isinstance(node, Leaf):
            leaf = node
            if self._is_done(leaf.key):
                self._complete(leaf)
                return
            for dep_key in leaf.deps:
                # In the task's own pass when mounted in its loop (see `Leaf.deps`).
                if not self._is_done(dep_key):
                    self._waiting_deps.setdefault(dep_key, []).append(leaf)
                    return
            if not self._is_busy(leaf.key):
                self.ready.append(leaf)
            return
        group = node
        if group.loop is not None:
            self.loops_started.append(group)
        if group.continue_state is not None:
            self.continuations.append(group)  # never completes: the run goes on as new
            return
        if not group.children:
            self._complete(group)
        elif group.kind == "sequence":
            self._activate(group.children[0])
        else:
            for child in group.children:
                self._activate(child)

    def _do_complete(self, node: Group | Leaf) -> None:
        flags = self._flags
        pos = node.pos
        if flags[pos] & _DONE:
            return
        flags[pos] |= _DONE
        if isinstance(node, Leaf):
            if self._waiting_deps:
                for leaf in self._waiting_deps.pop(node.key, ()):
                    flags[leaf.pos] &= ~_ACTIVATED
                    self._activate(leaf)
        elif node.loop is not None and not node.loop.finished:
            self.passes_ended.append(node)  # the engine decides: next pass, or done
            return
        parent = node.parent
        if parent is None:
            return
        if parent.kind == "sequence":
            nxt = node.index + 1
            if nxt < len(parent.children):
                self._activate(parent.children[nxt])
            else:
                self._complete(parent)
        else:
            count = self._done_count.get(parent, 0) + 1
            self._done_count[parent] = count
            if count == len(parent.children):
                self._complete(parent)

    # ------------------------------------------------------------------ engine calls

    def complete(self, key: NodeKey) -> None:
        """Record that `key` is done; activates what follows it."""
        leaf = self._leaf(key)
        if leaf is not None and self._flags[leaf.pos] & _ACTIVATED:
            self._complete(leaf)
            self._drain()

    def requeue(self, key: NodeKey) -> None:
        """Queue `key` again (after a retry backoff), if it is mounted and active."""
        leaf = self._leaf(key)
        if leaf is not None and self._flags[leaf.pos] == _ACTIVATED:  # and not done
            self.ready.append(leaf)

    def take(self, slots: int) -> list[Leaf]:
        """Pop up to `slots` ready tasks whose capped Parallel ancestors have room.

        A task blocked by a full Parallel waits in that group until `released` frees a
        slot. Running counts of the capped groups are incremented for each task returned.
        """
        out: list[Leaf] = []
        ready = self.ready
        flags = self._flags
        running = self._running
        while ready and len(out) < slots:
            leaf = ready.popleft()
            if flags[leaf.pos] & _DONE or self._is_busy(leaf.key):
                continue
            if leaf.capped:
                blocked = None
                for g in leaf.capped:
                    if g.cap is not None and running.get(g, 0) >= g.cap:
                        blocked = g
                        break
                if blocked is not None:
                    self._parked.setdefault(blocked, deque()).append(leaf)
                    continue
                for g in leaf.capped:
                    running[g] = running.get(g, 0) + 1
            out.append(leaf)
        return out

    def claim(self, key: NodeKey) -> None:
        """Count an already-running task against its capped groups (after a re-render)."""
        leaf = self._leaf(key)
        if leaf is not None:
            running = self._running
            for g in leaf.capped:
                running[g] = running.get(g, 0) + 1

    def released(self, key: NodeKey) -> None:
        """Record that a task stopped running; un-parks one task per capped group."""
        leaf = self._leaf(key)
        if leaf is None:
            return
        running = self._running
        for g in leaf.capped:
            running[g] = running.get(g, 0) - 1
            parked = self._parked.get(g)
            if parked:
                self.ready.appendleft(parked.popleft())
