"""`RunState`: the read model of one run, and the records it holds (DESIGN §5).

A `RunState` is built by folding the run's events (`_apply.apply_event`, driven by
`fold`/`fold_stored` in `_fold.py`). It is a mutable Struct whose containers (`nodes`,
`frames`) the fold updates in place; the records in them (`NodeRecord`,
`AttemptRecord`, `FrameRecord`) are frozen Structs, replaced when they change, never
mutated, so a record read earlier keeps its value. Use `RunState.copy()` for an
independent snapshot.
"""

from __future__ import annotations

from typing import Literal, TypeGuard, get_args

import msgspec
from smithers.eventstore.events import NULL_RAW, ErrorInfo

__all__ = (
    "DONE_NODE_STATES",
    "WAITING_NODE_STATES",
    "ApprovalRecord",
    "AttemptRecord",
    "EventWaitRecord",
    "CarriedOutput",
    "FrameRecord",
    "LoopRecord",
    "NodeKey",
    "NodeRecord",
    "NodeStateName",
    "RunState",
    "RunStatus",
    "SignalRecord",
    "SubflowParent",
    "TimerRecord",
    "is_run_status",
)

RunStatus = Literal[
    "pending",
    "queued",
    "running",
    "waiting-approval",
    "waiting-event",
    "waiting-timer",
    "waiting-resume",
    "finished",
    "continued",
    "failed",
    "cancelled",
]
"""Status of a run: Smithers' `RunStatus` (`smithers.eventstore.events.RunStatus`), plus
``"pending"``, the status of a state before the run's first `RunStarted`."""

_RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))


def is_run_status(value: str) -> TypeGuard[RunStatus]:
    """Return whether `value` is a `RunStatus` this version knows. Does no I/O.

    The checked conversion for statuses read from outside the fold's own literals (a
    `RunStatusChanged` from the log, a runs-index row): ``if is_run_status(s): ...``
    narrows `s` to `RunStatus` for the type checker.
    """
    return value in _RUN_STATUSES


NodeStateName = Literal[
    "pending",
    "running",
    "finished",
    "failed",
    "cancelled",
    "skipped",
    "waiting-approval",
    "waiting-event",
    "waiting-timer",
]
"""States of a node, as Smithers' node states (``"waiting-event"``: a `WaitForEvent`
waiting for its signal)."""

WAITING_NODE_STATES: frozenset[str] = frozenset(
    {"waiting-approval", "waiting-event", "waiting-timer"}
)
"""Node states of a node that waits for something outside the run (a decision, a
signal, a timer): the run parks when nothing else can go on."""

NodeKey = tuple[str, int]
"""``(node_id, iteration)``."""

DONE_NODE_STATES: frozenset[str] = frozenset({"finished", "skipped"})


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One attempt of a node."""

    attempt: int
    """Attempt number, from 1."""
    state: Literal["running", "finished", "failed", "cancelled"]
    started_at_ms: int
    """Unix epoch ms of NodeStarted."""
    finished_at_ms: int | None = None
    """Unix epoch ms of the attempt's end, None while running."""
    error: ErrorInfo | None = None
    """The failure, for failed attempts."""
    cancel_reason: str | None = None
    """Why the attempt was cancelled (``"cancelled"``, ``"abandoned"``, ``"unmounted"``)."""

    @property
    def duration_ms(self) -> int | None:
        """Milliseconds from start to end, None while running."""
        if self.finished_at_ms is None:
            return None
        return self.finished_at_ms - self.started_at_ms


class ApprovalRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An approval asked for by a node (`ApprovalRequested`) and its decision, if any."""

    requested_at_ms: int
    """Unix epoch ms of the request."""
    title: str | None = None
    summary: str | None = None
    metadata: msgspec.Raw = NULL_RAW
    mode: Literal["approve", "select", "rank"] = "approve"
    options: tuple[str, ...] = ()
    decision: Literal["granted", "denied"] | None = None
    """None while pending."""
    auto: bool = False
    """Granted by a policy (`ApprovalAutoApproved`), not a person."""
    note: str | None = None
    decided_by: str | None = None
    decided_at_ms: int | None = None
    selected: str | None = None
    """The option picked, for ``"select"``."""
    ranked: tuple[str, ...] = ()
    """The options in order, for ``"rank"``."""


class EventWaitRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A `WaitForEvent` node's wait (`NodeWaitingEvent`) and the signal that resolved it."""

    event_name: str
    correlation_id: str | None = None
    timeout_at_ms: int | None = None
    """Unix epoch ms the wait times out at; None: never."""
    since_seq: int
    """Seq of the `NodeWaitingEvent`: only a signal recorded after it resolves the wait."""
    since_ms: int
    """Unix epoch ms the wait began."""
    received: bool = False
    """True once a signal resolved the wait."""
    data: msgspec.Raw = NULL_RAW
    """The resolving signal's payload (JSON null until then)."""
    signal_seq: int | None = None
    """Seq of the resolving `SignalReceived`."""
    sent_by: str | None = None


class TimerRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A `Timer` node's durable timer (`TimerCreated`, then `TimerFired` or `TimerCancelled`)."""

    timer_id: str
    fires_at_ms: int
    """Unix epoch ms the timer is due."""
    timer_type: Literal["duration", "absolute"] = "duration"
    state: Literal["pending", "fired", "cancelled"] = "pending"
    fired_at_ms: int | None = None
    created_at_ms: int | None = None
    """Unix epoch ms the timer was created (`TimerCreated`), i.e. since when its node
    waits; None in states folded before this field existed."""


class SignalRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A signal sent to the run (`SignalReceived`), kept for audit."""

    seq: int
    signal_name: str
    timestamp_ms: int
    correlation_id: str | None = None
    sent_by: str | None = None
    delivered_to: tuple[str, int] | None = None
    """``(node_id, iteration)`` of the wait it resolved; None if none was waiting."""


class AgentReplay(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What an agent attempt interrupted by a crash recorded, for the next one to replay.

    Kept on the node from its attempts' ``AgentEvent``/``ToolCallFinished`` events while
    they end cancelled (a crash's ``abandoned``, a cancel) or fail because the provider
    did (``AGENT_RATE_LIMITED``, ``AGENT_PROVIDER_ERROR``); dropped when an attempt
    finishes or fails otherwise (a retry starts a fresh conversation), when another
    agent of a fallback chain starts, or when the node is reset.
    """

    agent_id: str | None = None
    """The agent that had the conversation (its ``{"type": "start"}`` event)."""
    responses: tuple[msgspec.Raw, ...] = ()
    """The recorded ``{"type": "response", ...}`` agent events, in order (whole JSON)."""
    tool_results: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)
    """Successful tool results by the model's tool-call id."""


class NodeRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One node in one iteration."""

    node_id: str
    iteration: int = 0
    state: NodeStateName = "pending"
    attempts: tuple[AttemptRecord, ...] = ()
    output: msgspec.Raw = NULL_RAW
    """Validated output JSON of the last finished attempt (JSON null if none)."""
    has_output: bool = False
    """True once an attempt finished (outputs may legitimately be JSON null)."""
    label: str | None = None
    skip_reason: str | None = None
    heartbeat_at_ms: int | None = None
    """Unix epoch ms of the latest recorded TaskHeartbeat, any attempt."""
    heartbeat_data: msgspec.Raw = NULL_RAW
    """Payload of the latest TaskHeartbeat that carried one, JSON null if none (handed to
    the next attempt as ``TaskContext.last_heartbeat``)."""
    next_attempt_delay_ms: int | None = None
    """Backoff announced by NodeRetrying before the next attempt, None otherwise."""
    next_attempt_at_ms: int | None = None
    """Unix epoch ms the next attempt is due (NodeRetrying's time plus its delay), None
    when no retry waits: a resumed run waits until then, parked if it is far off."""
    approval: ApprovalRecord | None = None
    """The approval this node asked for (an `Approval`, or ``needs_approval=True``)."""
    wait: EventWaitRecord | None = None
    """The signal wait of a `WaitForEvent` node."""
    timer: TimerRecord | None = None
    """The durable timer of a `Timer` node."""
    agent_replay: AgentReplay | None = None
    """What the agent attempts a crash interrupted recorded (replayed by the next one)."""

    @property
    def attempt_count(self) -> int:
        """Number of attempts started so far."""
        return len(self.attempts)

    @property
    def last_error(self) -> ErrorInfo | None:
        """The error of the last failed attempt, if any."""
        for a in reversed(self.attempts):
            if a.error is not None:
                return a.error
        return None


class SubflowParent(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Where a child run comes from: the parent run and its `Subflow` node."""

    run_id: str
    """The parent run's id."""
    node_id: str
    """The parent's `Subflow` node that runs this child."""
    iteration: int = 0
    """That node's loop iteration."""


class OpenRetry(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A `retry-task` whose `RetryTaskStarted` has no `RetryTaskFinished` yet."""

    node_id: str
    """The retried node."""
    iteration: int = 0
    """Its iteration."""
    reset_nodes: tuple[str, ...] = ()
    """The nodes it reset."""


class FrameRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A committed render."""

    frame_no: int
    seq: int
    """Seq of the FrameCommitted event."""
    xml_hash: str
    timestamp_ms: int


class LoopRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A Loop's progress (from `LoopIterationStarted`, `LoopFinished`, `LoopRewound`)."""

    loop_id: str
    """The loop's scoped id (``"<id>"``, or ``"<id>@<outer iteration>"`` when scoped)."""
    iteration: int = 0
    """The current (or, once finished, the last) pass, from 0."""
    finished: bool = False
    """True once the loop is done (`LoopFinished`)."""
    reason: str | None = None
    """Why it finished: ``"until"`` or ``"max-iterations"``; None while it runs."""


class CarriedOutput(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A node's latest output carried from an earlier run of a continue-as-new chain."""

    iteration: int
    """The iteration that output is from."""
    output: msgspec.Raw
    """The output JSON."""
    count: int = 1
    """Iterations of the node with an output in the chain so far (this one included)."""
    as_node: bool = False
    """True when the output is also a finished node of this run (a loop's
    continuation, `ContinuationLoaded.carry_nodes`)."""


class RunState(msgspec.Struct, kw_only=True):
    """Everything known about a run up to `seq` (DESIGN §5).

    Built by `fold`; the engine keeps one and folds every event it appends.

    After a `RunRewound`, the state is that of the *effective* history (see
    `effective_events`): events a rewind discarded no longer count. Only two fields
    describe the whole log instead: `seq` (the log position) and `next_frame_no`
    (frame numbers are never reused, so discarded frames still count).
    """

    run_id: str
    seq: int = 0
    """Seq of the last event of the log folded in, rewinds included (0: nothing yet)."""
    status: RunStatus = "pending"
    """Smithers' `RunStatus`, or ``"pending"`` before the first RunStarted.

    A `RunStatusChanged` whose status this version does not know (written by a later
    one) leaves it unchanged: like an event type the fold does not handle, the value
    is skipped, so an older reader shows the last status it understands instead of
    failing on the log."""
    workflow_name: str = ""
    workflow_path: str | None = None
    workflow_hash: str | None = None
    queue: str | None = None
    """The queue the run was submitted to (its `RunQueued`); None: started, not
    submitted. A submitted run is resumed by a worker of its queue (`run_worker`)."""
    input: msgspec.Raw = NULL_RAW
    config: msgspec.Raw = NULL_RAW
    smithers_version: str = ""
    activation: int = 0
    """Number of RunStarted events (starts and resumes)."""
    owner_id: str = ""
    pid: int | None = None
    host: str | None = None
    created_at_ms: int | None = None
    activated_at_ms: int | None = None
    """Unix epoch ms of the latest RunStarted (when the current owner claimed the run)."""
    updated_at_ms: int | None = None
    finished_at_ms: int | None = None
    error: ErrorInfo | None = None
    """Why the run failed, for failed runs."""
    nodes: dict[NodeKey, NodeRecord] = msgspec.field(default_factory=dict)
    """Nodes by ``(node_id, iteration)``, in mount order."""
    frames: list[FrameRecord] = msgspec.field(default_factory=list)
    """Committed frames of the effective history, in log order.

    Frame numbers strictly increase but are not always the list index: frames a rewind
    discarded leave gaps (they are never reused), and a fork's first frame is
    ``parent_frame_no + 1``. For a run never rewound nor forked, ``frames[i].frame_no
    == i``.
    """
    next_frame_no: int = 0
    """Number the engine gives its next frame: one more than the highest frame number
    anywhere in the log (frames a rewind discarded included), at least
    ``parent_frame_no + 1`` for a fork; 0 for a new run."""
    rewinds: int = 0
    """Number of `RunRewound` events in the effective history (a rewind that a later
    rewind discarded no longer counts)."""
    parent_run_id: str | None = None
    """Run this one was forked from (`RunForked`), None otherwise."""
    parent_frame_no: int | None = None
    """Frame of the parent this run was forked at, None otherwise."""
    replay_of: tuple[str, int] | None = None
    """``(parent_run_id, parent_frame_no)`` of the last `ReplayStarted`, None otherwise."""
    branch_label: str | None = None
    """The fork's branch label (`RunForked.branch_label`), None if none or not a fork."""
    signals: list[SignalRecord] = msgspec.field(default_factory=list)
    """Signals sent to the run, in log order (effective history)."""
    subflow_of: SubflowParent | None = None
    """For the child run of a `Subflow` node: its parent run and node (from its
    `RunStarted`); None for other runs. Unrelated to `parent_run_id`, a fork's parent."""
    # ---- loops (issue 9: Loop and continue-as-new)
    loops: dict[str, LoopRecord] = msgspec.field(default_factory=dict)
    """Loops by scoped loop id; the most recently (re)started pass's loop is last."""
    continuation: msgspec.Raw = NULL_RAW
    """State carried by continue-as-new (`ContinuationLoaded.state`), JSON null if none."""
    continued_from_run_id: str | None = None
    """The run this one continues (continue-as-new), None otherwise."""
    continued_as_run_id: str | None = None
    """The run this one continued as (`RunContinuedAsNew.new_run_id`), None otherwise."""
    ancestry_depth: int = 0
    """Number of continue-as-new steps leading to this run (0 for a first run)."""
    open_retry: OpenRetry | None = None
    """The `retry-task` still going on (started, not finished); the run's end closes it
    (`RetryTaskFinished`), whichever process drives the run then."""
    carried: dict[str, CarriedOutput] = msgspec.field(default_factory=dict)
    """Per node id, the latest output of the earlier runs of a continue-as-new chain
    (`ContinuationLoaded.outputs`): what ``ctx.latest``/``ctx.iteration_count`` see."""

    @property
    def frame_count(self) -> int:
        """Number of frames in the run's own log, those a rewind discarded included.

        What ``timeline`` lists for the run: the engine numbers frames one by one from
        `next_frame_no` and never reuses a number, so a run's log holds every number
        from its first frame (0, or ``parent_frame_no + 1`` for a fork) to
        ``next_frame_no - 1``. ``len(frames)`` counts only the effective history's.
        """
        first = self.parent_frame_no + 1 if self.parent_frame_no is not None else 0
        return max(self.next_frame_no - first, 0)

    def copy(self) -> RunState:
        """Return an independent snapshot (containers copied, records shared: they are frozen)."""
        return msgspec.structs.replace(
            self,
            nodes=dict(self.nodes),
            frames=list(self.frames),
            signals=list(self.signals),
            loops=dict(self.loops),
            carried=dict(self.carried),
        )

    def node_ids(self) -> list[str]:
        """Return the ids of the run's nodes, each once, in mount order (any iteration)."""
        return list(dict.fromkeys(node_id for node_id, _ in self.nodes))

    def node(self, node_id: str, iteration: int = 0) -> NodeRecord | None:
        """Return the node record or None."""
        return self.nodes.get((node_id, iteration))

    def outputs(self) -> dict[str, msgspec.Raw]:
        """Return each node's latest output JSON (highest finished iteration), by node id."""
        out: dict[str, msgspec.Raw] = {}
        best: dict[str, int] = {}
        for (node_id, iteration), rec in self.nodes.items():
            if rec.has_output and iteration >= best.get(node_id, -1):
                best[node_id] = iteration
                out[node_id] = rec.output
        return out

    def waiting(self) -> list[NodeRecord]:
        """Return the nodes waiting for a decision, a signal or a timer, in mount order."""
        return [rec for rec in self.nodes.values() if rec.state in WAITING_NODE_STATES]

    def signal_target(self, name: str, correlation_id: str | None) -> NodeRecord | None:
        """Return the node a signal `name` (with `correlation_id`) would resolve now.

        The oldest node (by the seq its wait began) waiting for `name` whose wait names
        no correlation id or this one; None if no node waits for it. The fold delivers
        a `SignalReceived` to exactly this node.
        """
        target: NodeRecord | None = None
        since = 0
        for rec in self.nodes.values():
            w = rec.wait
            if (
                rec.state == "waiting-event"
                and w is not None
                and not w.received
                and w.event_name == name
                and (w.correlation_id is None or w.correlation_id == correlation_id)
                and (target is None or w.since_seq < since)
            ):
                target, since = rec, w.since_seq
        return target

    def resolved_waits(self) -> list[NodeRecord]:
        """Return the nodes whose wait is resolved but not yet taken up, in mount order.

        An approval decided, or a `WaitForEvent` whose signal was received, while the
        node still shows its waiting state: the run must be resumed (by the command
        that recorded it, or a worker for a submitted run) for the node to go on.
        """
        return [
            rec
            for rec in self.nodes.values()
            if (
                rec.state == "waiting-approval"
                and rec.approval is not None
                and rec.approval.decision is not None
            )
            or (rec.state == "waiting-event" and rec.wait is not None and rec.wait.received)
        ]

    def pending_approvals(self) -> list[NodeRecord]:
        """Return the nodes whose approval is asked and not decided yet, in mount order."""
        return [
            rec
            for rec in self.nodes.values()
            if rec.approval is not None
            and rec.approval.decision is None
            and rec.state == "waiting-approval"
        ]

    def counts(self) -> dict[str, int]:
        """Return the number of nodes in each state."""
        counts: dict[str, int] = {}
        for rec in self.nodes.values():
            counts[rec.state] = counts.get(rec.state, 0) + 1
        return counts
