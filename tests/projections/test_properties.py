"""Hypothesis properties of the RunState fold (STYLE §7, DESIGN §5).

fold(all) = fold(prefix) then the rest; rebuilding from stored bytes = folding the events;
unknown event types are ignored; the fold is deterministic; and the folded nodes match the
life cycles the histories were generated from. Time travel (DESIGN §7): with rewinds, every
prefix folds to the state the definition gives, fold(all) = fold(effective events), the
live fold (apply_event + apply_rewind) = a rebuild, a checkpoint continued = a rebuild,
checkpoints round-trip, retry-task resets exactly its nodes, a fork starts from its parent.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smithers.eventstore import EVENT_TYPES, StoredEvent, encode_event, to_raw
from smithers.eventstore.events import (
    NULL_RAW,
    ErrorInfo,
    Event,
    FrameCommitted,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeWaitingApproval,
    NodeWaitingTimer,
    ReplayStarted,
    RetryTaskStarted,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunForked,
    RunRewound,
    RunStarted,
    RunStatusChanged,
)
from smithers.projections import (
    InvalidRewindError,
    RunState,
    apply_event,
    apply_rewind,
    decode_state,
    effective_events,
    encode_state,
    fold,
    fold_stored,
    fork_state,
)

RUN = "run-p"
T0 = 1_700_000_000_000

FULL = bool(os.environ.get("CI")) or os.environ.get("SMITHERS_SLOW") == "1"
"""In CI (or with SMITHERS_SLOW=1) every property gets 200 examples; 50 in a quick run."""

SETTINGS = settings(
    max_examples=200 if FULL else 50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Builder = Callable[..., Event]
"""Makes an event given its timestamp_ms."""


# --------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

# Raw JSON as an encoder makes it, plus hand-written JSON with inner whitespace: outputs
# must come back byte for byte.
raws = st.one_of(
    json_values.map(to_raw),
    st.sampled_from([b'{"a" : [1 , 2]}', b"1.0e3", b'"\\u00e9"', b"[ ]"]).map(msgspec.Raw),
)

errors = st.builds(
    ErrorInfo,
    name=st.sampled_from(["ValueError", "TimeoutError", "SmithersError"]),
    message=st.text(max_size=20),
    code=st.none() | st.sampled_from(["TASK_TIMEOUT", "SCHEMA_INVALID"]),
    retryable=st.booleans(),
    details=st.just(NULL_RAW)
    | st.dictionaries(st.text(max_size=4), json_values, max_size=2).map(to_raw),
)

node_keys = st.lists(
    st.tuples(st.sampled_from(["fetch", "lint", "review", "a", "b-1"]), st.integers(0, 2)),
    unique=True,
    max_size=5,
)


@dataclasses.dataclass(frozen=True)
class NodePlan:
    """One node's generated life cycle and what the fold should say at its end."""

    events: tuple[Builder, ...]
    state: str
    attempt_states: tuple[str, ...]
    has_output: bool


@dataclasses.dataclass(frozen=True)
class History:
    """A generated run history and the facts the generator knows about it."""

    events: tuple[Event, ...]
    plans: dict[tuple[str, int], NodePlan]
    run_starts: int
    frames: int
    final_status: str

    def seqd(self) -> list[tuple[int, Event]]:
        return list(enumerate(self.events, start=1))


def node_event(cls: type[Event], node_id: str, iteration: int, **kw: Any) -> Builder:
    return functools.partial(cls, run_id=RUN, node_id=node_id, iteration=iteration, **kw)


@st.composite
def node_plans(draw: st.DrawFn, node_id: str, iteration: int) -> NodePlan:
    """A valid life cycle: pending, then skipped / cancelled / attempts with retries."""

    def ev(cls: type[Event], **kw: Any) -> Builder:
        return node_event(cls, node_id, iteration, **kw)

    events = [ev(NodePending, label=draw(st.none() | st.text(max_size=6)))]
    kind = draw(st.sampled_from(["attempts", "attempts", "attempts", "skipped", "cancelled"]))
    if kind == "skipped":
        events.append(ev(NodeSkipped, reason=draw(st.none() | st.just("skip_if"))))
        return NodePlan(tuple(events), "skipped", (), False)
    if kind == "cancelled":
        events.append(ev(NodeCancelled, reason=draw(st.sampled_from(["cancelled", "unmounted"]))))
        return NodePlan(tuple(events), "cancelled", (), False)

    if draw(st.booleans()):
        if draw(st.booleans()):
            events.append(ev(NodeWaitingApproval))
        else:
            events.append(ev(NodeWaitingTimer, fires_at_ms=T0 + draw(st.integers(0, 10**6))))
    n = draw(st.integers(1, 3))
    attempt_states: list[str] = []
    for k in range(1, n):
        events += [
            ev(NodeStarted, attempt=k),
            ev(NodeFailed, attempt=k, error=draw(errors)),
            ev(NodeRetrying, attempt=k + 1, delay_ms=draw(st.integers(0, 60_000))),
        ]
        attempt_states.append("failed")
    ending = draw(st.sampled_from(["finished", "failed", "cancelled", "running", "retrying"]))
    if ending == "retrying":
        # Failed, announced a retry, and the log ends before the next start.
        events += [
            ev(NodeStarted, attempt=n),
            ev(NodeFailed, attempt=n, error=draw(errors)),
            ev(NodeRetrying, attempt=n + 1, delay_ms=draw(st.integers(0, 60_000))),
        ]
        return NodePlan(tuple(events), "pending", (*attempt_states, "failed"), False)
    events.append(ev(NodeStarted, attempt=n))
    if ending == "finished":
        events.append(ev(NodeFinished, attempt=n, output=draw(raws)))
    elif ending == "failed":
        events.append(ev(NodeFailed, attempt=n, error=draw(errors)))
    elif ending == "cancelled":
        events.append(
            ev(
                NodeCancelled,
                attempt=draw(st.none() | st.just(n)),
                reason=draw(st.sampled_from(["cancelled", "abandoned", "unmounted"])),
            )
        )
    return NodePlan(tuple(events), ending, (*attempt_states, ending), ending == "finished")


@st.composite
def histories(draw: st.DrawFn) -> History:
    """RunStarted, then node life cycles interleaved with frames, maybe a resume and an end."""
    keys = draw(node_keys)
    plans = {key: draw(node_plans(*key)) for key in keys}
    pending = {key: list(plan.events) for key, plan in plans.items()}

    t = T0 + draw(st.integers(0, 10**9))
    events: list[Event] = []

    def emit(build: Builder) -> None:
        nonlocal t
        events.append(build(timestamp_ms=t))
        t += draw(st.integers(1, 5_000))

    emit(
        functools.partial(
            RunStarted,
            run_id=RUN,
            workflow_name=draw(st.sampled_from(["review", "deploy"])),
            workflow_hash=draw(st.none() | st.just("ab" * 32)),
            input=draw(raws),
            config=draw(st.just(NULL_RAW) | raws),
            owner_id="owner-1",
            pid=draw(st.none() | st.integers(1, 2**16)),
        )
    )
    run_starts, frames = 1, 0
    resume_left = draw(st.booleans())
    while True:
        live = sorted(key for key, rest in pending.items() if rest)
        if draw(st.integers(0, 3)) == 2:  # not an edge value: Hypothesis favours those
            emit(
                functools.partial(
                    FrameCommitted, run_id=RUN, frame_no=frames, xml_hash=f"h{frames}"
                )
            )
            frames += 1
        if resume_left and draw(st.integers(0, 7)) == 3:
            resume_left = False
            run_starts += 1
            emit(
                functools.partial(
                    RunStarted,
                    run_id=RUN,
                    workflow_name="resumed-name",
                    input=to_raw("resume input"),
                    activation=run_starts,
                    owner_id="owner-2",
                )
            )
        if draw(st.integers(0, 15)) == 7:
            status = draw(st.sampled_from(["waiting-approval", "waiting-timer", "running"]))
            emit(functools.partial(RunStatusChanged, run_id=RUN, status=status))
        if not live:
            break
        key = draw(st.sampled_from(live))
        emit(pending[key].pop(0))

    ending = draw(st.sampled_from(["running", "running", "finished", "failed", "cancelled"]))
    if ending == "finished":
        emit(functools.partial(RunFinished, run_id=RUN))
    elif ending == "failed":
        emit(functools.partial(RunFailed, run_id=RUN, error=draw(errors)))
    elif ending == "cancelled":
        emit(functools.partial(RunCancelled, run_id=RUN, reason="cancel-requested"))
    status = "running"
    for event in events:
        if isinstance(event, RunStarted):
            status = "running"
        elif isinstance(event, RunStatusChanged):
            status = event.status
    final_status = status if ending == "running" else ending
    return History(tuple(events), plans, run_starts, frames, final_status)


# --------------------------------------------------------------------------- helpers


def snapshot(state: RunState) -> Any:
    """State as plain JSON values, nodes as a list of pairs (dict keys are tuples)."""
    fields = msgspec.structs.asdict(state)
    fields["nodes"] = list(state.nodes.items())
    return msgspec.json.decode(msgspec.json.encode(fields))


def assert_same(actual: RunState, expected: RunState) -> None:
    # The snapshot gives a readable diff; `==` also compares Raw JSON byte for byte and
    # the nodes' order.
    assert snapshot(actual) == snapshot(expected)
    assert actual == expected
    assert list(actual.nodes) == list(expected.nodes)


def stored_row(seq: int, event: Event) -> StoredEvent:
    return StoredEvent(
        position=10_000 + seq,
        run_id=RUN,
        seq=seq,
        type=type(event).__name__,
        timestamp_ms=event.timestamp_ms,
        data=encode_event(event),
    )


UNKNOWN_TYPES = ("FutureEvent", "EventFromANewerVersion", "ZzUnknownV99")

unknown_data = st.one_of(
    st.builds(
        lambda type_name, ts: msgspec.json.encode(
            {"type": type_name, "runId": RUN, "timestampMs": ts, "extra": [1, {"x": None}]}
        ),
        st.sampled_from(UNKNOWN_TYPES),
        st.integers(0, 2**40),
    ),
    st.binary(max_size=20),  # the fold must not even look at an unknown row's data
)


# --------------------------------------------------------------------------- properties


def test_unknown_type_names_are_really_unknown() -> None:
    assert not set(UNKNOWN_TYPES) & set(EVENT_TYPES)


@SETTINGS
@given(histories())
def test_fold_all_equals_fold_prefix_then_rest(history: History) -> None:
    events = history.seqd()
    whole = fold(RUN, events)
    for split in range(len(events) + 1):
        prefix = fold(RUN, events[:split])
        assert prefix.seq == (events[split - 1][0] if split else 0)
        continued = fold(RUN, events[split:], state=prefix)
        assert_same(continued, whole)


@SETTINGS
@given(histories(), st.data())
def test_copy_of_a_prefix_is_unaffected_by_folding_the_rest(
    history: History, data: st.DataObject
) -> None:
    events = history.seqd()
    split = data.draw(st.integers(0, len(events)), label="split")
    state = fold(RUN, events[:split])
    frozen_copy = state.copy()
    fold(RUN, events[split:], state=state)
    assert_same(frozen_copy, fold(RUN, events[:split]))
    assert_same(state, fold(RUN, events))


@SETTINGS
@given(histories())
def test_fold_stored_bytes_equals_fold_events(history: History) -> None:
    events = history.seqd()
    rows = [stored_row(seq, event) for seq, event in events]
    assert_same(fold_stored(RUN, rows), fold(RUN, events))


@SETTINGS
@given(histories(), st.data())
def test_unknown_event_types_are_ignored_except_for_seq(
    history: History, data: st.DataObject
) -> None:
    # Interleave unknown rows anywhere, then number every row 1..N as the store would.
    slots: list[Event | None] = list(history.events)
    for _ in range(data.draw(st.integers(1, 5), label="unknown count")):
        at = data.draw(st.integers(0, len(slots)), label="position")
        slots.insert(at, None)
    rows: list[StoredEvent] = []
    known: list[tuple[int, Event]] = []
    for seq, event in enumerate(slots, start=1):
        if event is None:
            rows.append(
                StoredEvent(
                    position=10_000 + seq,
                    run_id=RUN,
                    seq=seq,
                    type=data.draw(st.sampled_from(UNKNOWN_TYPES), label="type"),
                    timestamp_ms=T0 + 10**10,
                    data=data.draw(unknown_data, label="data"),
                )
            )
        else:
            rows.append(stored_row(seq, event))
            known.append((seq, event))

    expected = fold(RUN, known)
    # The only trace of unknown rows: the state has seen the log up to the last row.
    expected.seq = len(slots)
    assert_same(fold_stored(RUN, rows), expected)


@SETTINGS
@given(histories())
def test_fold_is_deterministic(history: History) -> None:
    events = history.seqd()
    rows = [stored_row(seq, event) for seq, event in events]
    assert_same(fold(RUN, events), fold(RUN, events))
    assert_same(fold_stored(RUN, rows), fold_stored(RUN, rows))
    assert_same(fold(RUN, iter(events)), fold(RUN, events))


@SETTINGS
@given(histories())
def test_folded_state_matches_generated_life_cycles(history: History) -> None:
    s = fold(RUN, history.seqd())
    assert s.seq == len(history.events)
    assert s.updated_at_ms == history.events[-1].timestamp_ms
    assert s.created_at_ms == history.events[0].timestamp_ms
    assert s.activation == history.run_starts
    assert s.status == history.final_status
    assert s.workflow_name == history.events[0].workflow_name  # type: ignore[attr-defined]
    assert s.input == history.events[0].input  # type: ignore[attr-defined]
    assert (s.finished_at_ms is not None) == (
        history.final_status in {"finished", "failed", "cancelled"}
    )

    assert [f.frame_no for f in s.frames] == list(range(history.frames))
    for f in s.frames:
        assert history.events[f.seq - 1] == FrameCommitted(
            run_id=RUN, timestamp_ms=f.timestamp_ms, frame_no=f.frame_no, xml_hash=f.xml_hash
        )

    mount_order = dict.fromkeys(
        (e.node_id, e.iteration) for e in history.events if isinstance(e, NodePending)
    )
    assert list(s.nodes) == list(mount_order)
    assert set(s.nodes) == set(history.plans)
    for key, plan in history.plans.items():
        rec = s.nodes[key]
        assert (rec.node_id, rec.iteration) == key
        assert rec.state == plan.state, key
        assert tuple(a.state for a in rec.attempts) == plan.attempt_states, key
        assert [a.attempt for a in rec.attempts] == list(range(1, len(rec.attempts) + 1))
        assert rec.has_output == plan.has_output
        if not rec.has_output:
            assert rec.output == NULL_RAW
        for a in rec.attempts:
            assert (a.finished_at_ms is None) == (a.state == "running")
            assert a.duration_ms is None or a.duration_ms > 0
            assert (a.error is not None) == (a.state == "failed")
            assert (a.cancel_reason is not None) == (a.state == "cancelled")

    assert sum(s.counts().values()) == len(s.nodes)
    finished_ids = {key[0] for key, plan in history.plans.items() if plan.has_output}
    assert set(s.outputs()) == finished_ids


# --------------------------------------------------------------------------- time travel
# DESIGN §7: time travel is replay of the log. "The state at seq S" is folding the log's
# first S events, where a RunRewound{to_seq} at R makes the state the state at `to_seq`
# again before the events after R apply.

NODE_IDS = ["fetch", "lint", "review", "a", "b-1", "ghost"]


def definitional_states(log: list[tuple[int, Event]]) -> list[RunState]:
    """``states[S]`` = the state at seq S, straight from the definition (a copy per step)."""
    states = [RunState(run_id=RUN)]
    for seq, event in log:
        if isinstance(event, RunRewound):
            s = states[event.to_seq].copy()
            # Frame numbers are never reused: the log position's next number survives.
            s.next_frame_no = max(s.next_frame_no, states[seq - 1].next_frame_no)
        else:
            s = states[seq - 1].copy()
        states.append(apply_event(s, event, seq=seq))
    return states


@st.composite
def rewound_logs(draw: st.DrawFn) -> list[tuple[int, Event]]:
    """A generated history with rewinds (to earlier frames) and retry-tasks inserted."""
    history = draw(histories())
    out: list[Event] = []
    frames: list[tuple[int, int]] = []  # (seq, frame_no) of every FrameCommitted so far
    rewinds = 0
    for event in history.events:
        out.append(event)
        if isinstance(event, FrameCommitted):
            frames.append((len(out), event.frame_no))
        roll = draw(st.integers(0, 9))
        if frames and roll in (2, 3):
            to_seq, to_frame_no = draw(st.sampled_from(frames), label="rewind to")
            out.append(
                RunRewound(
                    run_id=RUN,
                    timestamp_ms=event.timestamp_ms,
                    to_frame_no=to_frame_no,
                    to_seq=to_seq,
                )
            )
            rewinds += 1
        elif roll == 7:
            reset = draw(st.lists(st.sampled_from(NODE_IDS), unique=True, max_size=3))
            out.append(
                RetryTaskStarted(
                    run_id=RUN,
                    timestamp_ms=event.timestamp_ms,
                    node_id=reset[0] if reset else "fetch",
                    reset_dependents=len(reset) > 1,
                    reset_nodes=tuple(reset),
                )
            )
    if frames and not rewinds:
        to_seq, to_frame_no = draw(st.sampled_from(frames), label="final rewind to")
        out.append(
            RunRewound(
                run_id=RUN,
                timestamp_ms=out[-1].timestamp_ms,
                to_frame_no=to_frame_no,
                to_seq=to_seq,
            )
        )
    return list(enumerate(out, start=1))


def max_frame_no(log: list[tuple[int, Event]]) -> int:
    return max((e.frame_no for _, e in log if isinstance(e, FrameCommitted)), default=-1)


@SETTINGS
@given(rewound_logs())
def test_fold_with_rewinds_equals_fold_of_effective_events(log: list[tuple[int, Event]]) -> None:
    whole = fold(RUN, log)
    effective = effective_events(log)
    assert effective[-1] == log[-1]
    by_seq = dict(log)
    assert all(by_seq[seq] is event for seq, event in effective)
    assert [seq for seq, _ in effective] == sorted({seq for seq, _ in effective})
    assert effective_events(effective) == effective
    # Every field but `next_frame_no`, which counts the discarded frames too.
    assert whole.next_frame_no == max_frame_no(log) + 1
    expected = fold(RUN, effective)
    expected.next_frame_no = whole.next_frame_no
    assert_same(whole, expected)
    assert whole.seq == log[-1][0]
    assert whole.rewinds == sum(isinstance(e, RunRewound) for _, e in effective)
    frame_nos = [f.frame_no for f in whole.frames]
    assert frame_nos == sorted(set(frame_nos))


@SETTINGS
@given(rewound_logs())
def test_fold_of_every_prefix_is_the_state_at_that_seq(log: list[tuple[int, Event]]) -> None:
    states = definitional_states(log)
    rows = [stored_row(seq, event) for seq, event in log]
    for s in range(len(log) + 1):
        assert_same(fold(RUN, log[:s]), states[s])
        assert_same(fold_stored(RUN, rows[:s]), states[s])


@SETTINGS
@given(rewound_logs())
def test_live_fold_with_apply_rewind_equals_rebuild(log: list[tuple[int, Event]]) -> None:
    # The engine: apply_event per append, apply_rewind (target folded from the log) at
    # a rewind.
    live = RunState(run_id=RUN)
    for seq, event in log:
        if isinstance(event, RunRewound):
            target = fold(RUN, log[: event.to_seq])
            live = apply_rewind(live, event, seq=seq, target=target)
        else:
            apply_event(live, event, seq=seq)
        assert_same(live, fold(RUN, log[:seq]))


@SETTINGS
@given(rewound_logs(), st.data())
def test_state_at_seq_from_a_checkpoint(log: list[tuple[int, Event]], data: st.DataObject) -> None:
    s = data.draw(st.integers(0, len(log)), label="S")
    k = data.draw(st.integers(0, s), label="K")
    checkpoint = decode_state(encode_state(fold(RUN, log[:k])))
    assert_same(checkpoint, fold(RUN, log[:k]))
    rest = log[k:s]
    if all(e.to_seq >= k for _, e in rest if isinstance(e, RunRewound)):
        assert_same(fold(RUN, rest, state=checkpoint), fold(RUN, log[:s]))
        rows = [stored_row(seq, event) for seq, event in rest]
        checkpoint = decode_state(encode_state(fold(RUN, log[:k])))
        assert_same(fold_stored(RUN, rows, state=checkpoint), fold(RUN, log[:s]))
    else:
        # A rewind before the checkpoint: refused if it counts, ignored if discarded.
        try:
            continued = fold(RUN, rest, state=checkpoint)
        except InvalidRewindError:
            return
        assert_same(continued, fold(RUN, log[:s]))


@SETTINGS
@given(rewound_logs(), st.data())
def test_checkpoint_round_trip_of_generated_states(
    log: list[tuple[int, Event]], data: st.DataObject
) -> None:
    s = data.draw(st.integers(0, len(log)), label="S")
    state = fold(RUN, log[:s])
    if data.draw(st.booleans(), label="as a fork"):
        reset = data.draw(st.lists(st.sampled_from(NODE_IDS), unique=True), label="reset")
        event = RunForked(
            run_id="child",
            timestamp_ms=T0,
            parent_run_id=RUN,
            parent_frame_no=max(0, max_frame_no(log[:s])),
            parent_seq=s,
            reset_nodes=tuple(reset),
            branch_label=data.draw(st.none() | st.text(max_size=5), label="label"),
        )
        state = fork_state(state, event, run_id="child")
        replay = ReplayStarted(
            run_id="child", timestamp_ms=T0, parent_run_id=RUN, parent_frame_no=1
        )
        state = fold("child", [(1, event), (2, replay)], base=state)
    data_bytes = encode_state(state)
    assert_same(decode_state(data_bytes), state)
    assert encode_state(decode_state(data_bytes)) == data_bytes


@SETTINGS
@given(histories(), st.lists(st.sampled_from(NODE_IDS), unique=True, max_size=4))
def test_retry_task_resets_exactly_the_listed_nodes(history: History, reset: list[str]) -> None:
    events = history.seqd()
    before = fold(RUN, events)
    retry = RetryTaskStarted(
        run_id=RUN,
        timestamp_ms=history.events[-1].timestamp_ms + 1,
        node_id=reset[0] if reset else "fetch",
        reset_dependents=True,
        reset_nodes=tuple(reset),
    )
    after = fold(RUN, [*events, (len(events) + 1, retry)])

    assert list(after.nodes) == list(before.nodes)
    for key, rec in after.nodes.items():
        old = before.nodes[key]
        if key[0] in reset:
            assert rec == msgspec.structs.replace(
                old,
                state="pending",
                output=NULL_RAW,
                has_output=False,
                skip_reason=None,
                next_attempt_delay_ms=None,
                next_attempt_at_ms=None,
                agent_replay=None,
            )
        else:
            assert rec == old
    # Nothing else changes, the run's status included, but the owner: a retry is
    # appended from outside any activation.
    expected = before.copy()
    expected.nodes = after.nodes
    expected.seq, expected.updated_at_ms = after.seq, after.updated_at_ms
    expected.owner_id, expected.pid, expected.host, expected.activated_at_ms = "", None, None, None
    assert after.open_retry is not None
    assert after.open_retry.reset_nodes == tuple(reset)
    expected.open_retry = after.open_retry
    assert_same(after, expected)


@SETTINGS
@given(histories(), st.data())
def test_fork_starts_from_the_parent_state(history: History, data: st.DataObject) -> None:
    events = history.seqd()
    parent_seq = data.draw(st.integers(0, len(events)), label="parent seq")
    parent = fold(RUN, events[:parent_seq])
    reset = data.draw(st.lists(st.sampled_from(NODE_IDS), unique=True), label="reset")
    parent_frame_no = max(0, max_frame_no(events[:parent_seq]))
    event = RunForked(
        run_id="child",
        timestamp_ms=T0 + 10**10,
        parent_run_id=RUN,
        parent_frame_no=parent_frame_no,
        parent_seq=parent_seq,
        reset_nodes=tuple(reset),
    )
    base = fork_state(parent, event, run_id="child")
    child_log: list[tuple[int, Event]] = [
        (1, event),
        (2, RunStarted(run_id="child", timestamp_ms=T0 + 10**10 + 1, owner_id="o")),
    ]
    rows = [stored_row(seq, e) for seq, e in child_log]
    child = fold_stored("child", rows, base=base)

    assert_same(child, fold("child", child_log, base=base))
    assert_same(parent, fold(RUN, events[:parent_seq]))  # untouched
    assert (child.run_id, child.seq, child.status, child.activation) == ("child", 2, "running", 1)
    assert (child.parent_run_id, child.parent_frame_no) == (RUN, parent_frame_no)
    assert child.frames == []
    assert child.next_frame_no == parent_frame_no + 1
    assert child.created_at_ms == T0 + 10**10
    assert child.error is None
    # Workflow metadata is the parent's until the child's first RunStarted records its own.
    assert (base.workflow_name, base.input) == (parent.workflow_name, parent.input)
    assert (child.workflow_name, child.input) == ("", NULL_RAW)
    assert list(child.nodes) == list(parent.nodes)
    for key, rec in child.nodes.items():
        old = parent.nodes[key]
        if key[0] in reset:
            assert (rec.state, rec.has_output, rec.output) == ("pending", False, NULL_RAW)
            assert rec.attempts == old.attempts
        else:
            assert rec == old
