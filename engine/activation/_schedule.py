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

    from ._render import Group, Plan

__all__ = ("Scheduler",)


class Scheduler:
    """Which tasks may start now, given a plan and what is done.

    Args:
        plan: The compiled render.
        is_done: Whether a node id is done for ordering purposes (finished, skipped, or
            failed with ``continue_on_fail``).
        is_busy: Whether a node id is running or waiting out a retry backoff; such a
            task is activated but not queued (the engine re-queues it with `requeue`).
    """

    __slots__ = ("_is_busy", "_is_done", "_waiting_deps", "_work", "plan", "ready")

    def __init__(
        self, plan: Plan, *, is_done: Callable[[str], bool], is_busy: Callable[[str], bool]
    ) -> None:
        self.plan = plan
        self.ready: deque[Leaf] = deque()
        self._is_done = is_done
        self._is_busy = is_busy
        self._waiting_deps: dict[str, list[Leaf]] = {}
        self._work: deque[tuple[bool, Group | Leaf]] = deque()
        self._activate(plan.root)
        self._drain()

    @property
    def finished(self) -> bool:
        """True once every mounted node is done."""
        return self.plan.root.done

    def waiting_on(self) -> dict[str, list[str]]:
        """Return unmet explicit dependencies: dependency id -> waiting task ids."""
        return {dep: [leaf.node_id for leaf in ls] for dep, ls in self._waiting_deps.items() if ls}

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
        if node.activated:
            return
        node.activated = True
        if isinstance(node, Leaf):
            leaf = node
            if self._is_done(leaf.node_id):
                self._complete(leaf)
                return
            for dep in leaf.task.depends_on:
                if not self._is_done(dep):
                    self._waiting_deps.setdefault(dep, []).append(leaf)
                    return
            if not self._is_busy(leaf.node_id):
                self.ready.append(leaf)
            return
        group = node
        if not group.children:
            self._complete(group)
        elif group.kind == "sequence":
            self._activate(group.children[0])
        else:
            for child in group.children:
                self._activate(child)

    def _do_complete(self, node: Group | Leaf) -> None:
        if node.done:
            return
        node.done = True
        if isinstance(node, Leaf):
            waiting = self._waiting_deps.pop(node.task.id, None)
            for leaf in waiting or ():
                leaf.activated = False
                self._activate(leaf)
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
            parent.done_count += 1
            if parent.done_count == len(parent.children):
                self._complete(parent)

    # ------------------------------------------------------------------ engine calls

    def complete(self, node_id: str) -> None:
        """Record that `node_id` is done; activates what follows it."""
        leaf = self.plan.leaves.get(node_id)
        if leaf is not None and leaf.activated:
            self._complete(leaf)
            self._drain()

    def requeue(self, node_id: str) -> None:
        """Queue `node_id` again (after a retry backoff), if it is mounted and active."""
        leaf = self.plan.leaves.get(node_id)
        if leaf is not None and leaf.activated and not leaf.done:
            self.ready.append(leaf)

    def take(self, slots: int) -> list[Leaf]:
        """Pop up to `slots` ready tasks whose capped Parallel ancestors have room.

        A task blocked by a full Parallel waits in that group until `released` frees a
        slot. Counters of the capped groups are incremented for each task returned.
        """
        out: list[Leaf] = []
        ready = self.ready
        while ready and len(out) < slots:
            leaf = ready.popleft()
            if leaf.done or self._is_busy(leaf.node_id):
                continue
            blocked = None
            for g in leaf.capped:
                if g.cap is not None and g.running >= g.cap:
                    blocked = g
                    break
            if blocked is not None:
                blocked.parked.append(leaf)
                continue
            for g in leaf.capped:
                g.running += 1
            out.append(leaf)
        return out

    def claim(self, node_id: str) -> None:
        """Count an already-running task against its capped groups (after a re-render)."""
        leaf = self.plan.leaves.get(node_id)
        if leaf is not None:
            for g in leaf.capped:
                g.running += 1

    def released(self, node_id: str) -> None:
        """Record that a task stopped running; un-parks one task per capped group."""
        leaf = self.plan.leaves.get(node_id)
        if leaf is None:
            return
        for g in leaf.capped:
            g.running -= 1
            if g.parked:
                self.ready.appendleft(g.parked.popleft())
