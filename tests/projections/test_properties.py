"""Hypothesis properties of the RunState fold (STYLE §7, DESIGN §5).

fold(all) = fold(prefix) then the rest; rebuilding from stored bytes = folding the events;
unknown event types are ignored; the fold is deterministic; and the folded nodes match the
life cycles the histories were generated from.
"""

from __future__ import annotations

import dataclasses
import functools
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
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStatusChanged,
)
from smithers.projections import RunState, fold, fold_stored

RUN = "run-p"
T0 = 1_700_000_000_000

SETTINGS = settings(
    max_examples=200,
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
