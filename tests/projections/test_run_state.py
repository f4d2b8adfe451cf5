"""Given events -> RunState: one behaviour per test (STYLE §7, DESIGN §5)."""

from __future__ import annotations

import typing

import msgspec
import pytest
from smithers.eventstore import StoredEvent, decode_event, decode_json, encode_event, events, to_raw
from smithers.eventstore.events import (
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
    RunForked,
    RunStarted,
    RunStatusChanged,
    SupervisorStarted,
)
from smithers.projections import (
    DONE_NODE_STATES,
    AttemptRecord,
    FrameRecord,
    NodeRecord,
    RunState,
    RunStatus,
    apply_event,
    fold,
    fold_stored,
    is_run_status,
)

RUN = "run-1"
T0 = 1_700_000_000_000


def at(offset_ms: int) -> int:
    return T0 + offset_ms


def seqd(*events: Event) -> list[tuple[int, Event]]:
    """Number events 1, 2, 3... as the log would."""
    return list(enumerate(events, start=1))


def started(offset_ms: int = 0, **kw: object) -> RunStarted:
    fields: dict[str, object] = {
        "workflow_name": "review",
        "workflow_path": "/src/review.py",
        "workflow_hash": "ab" * 32,
        "input": to_raw({"repo": "smithers", "pr": 42}),
        "config": to_raw({"maxConcurrency": 4}),
        "smithers_version": "0.1.0",
        "owner_id": "owner-a",
        "pid": 1234,
        "host": "box-a",
    }
    fields.update(kw)
    return RunStarted(run_id=RUN, timestamp_ms=at(offset_ms), **fields)  # type: ignore[arg-type]


BOOM = ErrorInfo(name="ValueError", message="boom", retryable=True, details=to_raw({"n": 1}))


# --------------------------------------------------------------------------- empty


def test_new_state_is_pending_and_empty() -> None:
    s = fold(RUN, [])
    assert s == RunState(run_id=RUN)
    assert (s.seq, s.status, s.activation) == (0, "pending", 0)
    assert s.nodes == {}
    assert s.frames == []
    assert s.outputs() == {}
    assert s.counts() == {}
    assert decode_json(s.input) is None


# --------------------------------------------------------------------------- run lifecycle


def test_run_started_sets_status_metadata_input_and_activation() -> None:
    s = fold(RUN, seqd(started()))
    assert s.status == "running"
    assert s.activation == 1
    assert s.seq == 1
    assert s.workflow_name == "review"
    assert s.workflow_path == "/src/review.py"
    assert s.workflow_hash == "ab" * 32
    assert s.smithers_version == "0.1.0"
    assert decode_json(s.input) == {"repo": "smithers", "pr": 42}
    assert decode_json(s.config) == {"maxConcurrency": 4}
    assert (s.owner_id, s.pid, s.host) == ("owner-a", 1234, "box-a")
    assert s.created_at_ms == at(0)
    assert s.updated_at_ms == at(0)
    assert s.finished_at_ms is None
    assert s.error is None


def test_resume_bumps_activation_keeps_first_metadata_and_takes_new_owner() -> None:
    first = started(0)
    resume = started(
        5_000,
        workflow_name="renamed",
        workflow_path="/elsewhere.py",
        workflow_hash="cd" * 32,
        input=to_raw({"other": True}),
        config=to_raw({}),
        smithers_version="9.9.9",
        activation=2,
        owner_id="owner-b",
        pid=99,
        host="box-b",
    )
    s = fold(RUN, seqd(first, resume))
    assert s.activation == 2
    assert s.status == "running"
    assert (s.workflow_name, s.workflow_path, s.workflow_hash) == (
        "review",
        "/src/review.py",
        "ab" * 32,
    )
    assert decode_json(s.input) == {"repo": "smithers", "pr": 42}
    assert decode_json(s.config) == {"maxConcurrency": 4}
    assert s.smithers_version == "0.1.0"
    assert (s.owner_id, s.pid, s.host) == ("owner-b", 99, "box-b")
    assert s.created_at_ms == at(0)
    assert s.updated_at_ms == at(5_000)


def test_resume_fills_metadata_missing_from_first_start() -> None:
    s = fold(RUN, seqd(started(0, workflow_name=""), started(1, workflow_name="late")))
    assert s.workflow_name == "late"
    assert s.activation == 2


def test_resume_after_finish_clears_finished_at() -> None:
    s = fold(
        RUN,
        seqd(started(0), RunFinished(run_id=RUN, timestamp_ms=at(10)), started(20)),
    )
    assert s.status == "running"
    assert s.finished_at_ms is None


def test_resume_after_failure_clears_error() -> None:
    s = fold(
        RUN,
        seqd(started(0), RunFailed(run_id=RUN, timestamp_ms=at(10), error=BOOM), started(20)),
    )
    assert s.status == "running"
    assert s.finished_at_ms is None
    assert s.error is None


def test_run_failed_sets_error_status_and_finish_time() -> None:
    s = fold(RUN, seqd(started(0), RunFailed(run_id=RUN, timestamp_ms=at(7), error=BOOM)))
    assert s.status == "failed"
    assert s.error == BOOM
    assert decode_json(s.error.details) == {"n": 1}
    assert s.finished_at_ms == at(7)


def test_run_finished_sets_status_and_finish_time_and_clears_error() -> None:
    s = fold(
        RUN,
        seqd(
            started(0),
            RunFailed(run_id=RUN, timestamp_ms=at(1), error=BOOM),
            started(2),
            RunFinished(run_id=RUN, timestamp_ms=at(3)),
        ),
    )
    assert s.status == "finished"
    assert s.finished_at_ms == at(3)
    assert s.error is None
    assert s.seq == 4


def test_run_cancelled_sets_status_and_finish_time() -> None:
    s = fold(RUN, seqd(started(0), RunCancelled(run_id=RUN, timestamp_ms=at(4), reason="cli")))
    assert s.status == "cancelled"
    assert s.finished_at_ms == at(4)


@pytest.mark.parametrize(
    "status", ["waiting-approval", "waiting-event", "waiting-timer", "continued", "running"]
)
def test_run_status_changed_sets_status(status: str) -> None:
    s = fold(RUN, seqd(started(0), RunStatusChanged(run_id=RUN, timestamp_ms=at(1), status=status)))  # type: ignore[arg-type]
    assert s.status == status


def test_run_forked_records_parent() -> None:
    s = fold(
        RUN,
        seqd(RunForked(run_id=RUN, timestamp_ms=at(0), parent_run_id="parent", parent_frame_no=3)),
    )
    assert (s.parent_run_id, s.parent_frame_no) == ("parent", 3)


# --------------------------------------------------------------------------- frames


def test_frame_committed_records_frame_no_seq_hash_and_time() -> None:
    s = fold(
        RUN,
        [
            (1, started(0)),
            (2, FrameCommitted(run_id=RUN, timestamp_ms=at(1), frame_no=0, xml_hash="h0")),
            (3, NodePending(run_id=RUN, timestamp_ms=at(2), node_id="a")),
            (4, FrameCommitted(run_id=RUN, timestamp_ms=at(3), frame_no=1, xml_hash="h1")),
        ],
    )
    assert s.frames == [
        FrameRecord(frame_no=0, seq=2, xml_hash="h0", timestamp_ms=at(1)),
        FrameRecord(frame_no=1, seq=4, xml_hash="h1", timestamp_ms=at(3)),
    ]
    assert all(f.frame_no == i for i, f in enumerate(s.frames))


# --------------------------------------------------------------------------- nodes


def retried_then_finished() -> list[Event]:
    return [
        started(0),
        NodePending(run_id=RUN, timestamp_ms=at(10), node_id="fetch", label="Fetch PR"),
        NodeStarted(run_id=RUN, timestamp_ms=at(20), node_id="fetch", attempt=1),
        NodeFailed(run_id=RUN, timestamp_ms=at(30), node_id="fetch", attempt=1, error=BOOM),
        NodeRetrying(run_id=RUN, timestamp_ms=at(31), node_id="fetch", attempt=2, delay_ms=500),
        NodeStarted(run_id=RUN, timestamp_ms=at(531), node_id="fetch", attempt=2),
        NodeFinished(
            run_id=RUN,
            timestamp_ms=at(600),
            node_id="fetch",
            attempt=2,
            output=to_raw({"files": ["a.py"], "ok": True}),
        ),
    ]


def test_node_pending_creates_record_with_label() -> None:
    s = fold(RUN, seqd(*retried_then_finished()[:2]))
    assert s.node("fetch") == NodeRecord(node_id="fetch", state="pending", label="Fetch PR")
    assert s.counts() == {"pending": 1}


def test_failed_then_retried_then_finished_node() -> None:
    s = fold(RUN, seqd(*retried_then_finished()))
    rec = s.node("fetch")
    assert rec is not None
    assert rec.state == "finished"
    assert rec.state in DONE_NODE_STATES
    assert rec.label == "Fetch PR"
    assert rec.attempt_count == 2
    assert rec.attempts == (
        AttemptRecord(
            attempt=1, state="failed", started_at_ms=at(20), finished_at_ms=at(30), error=BOOM
        ),
        AttemptRecord(attempt=2, state="finished", started_at_ms=at(531), finished_at_ms=at(600)),
    )
    assert [a.duration_ms for a in rec.attempts] == [10, 69]
    assert rec.last_error == BOOM
    assert rec.has_output
    assert decode_json(rec.output) == {"files": ["a.py"], "ok": True}
    assert rec.next_attempt_delay_ms is None
    assert set(s.outputs()) == {"fetch"}
    assert decode_json(s.outputs()["fetch"]) == {"files": ["a.py"], "ok": True}
    assert s.counts() == {"finished": 1}


@pytest.mark.parametrize(
    ("upto", "state", "attempt_states", "delay"),
    [
        (3, "running", ["running"], None),
        (4, "failed", ["failed"], None),
        (5, "pending", ["failed"], 500),
        (6, "running", ["failed", "running"], None),
        (7, "finished", ["failed", "finished"], None),
    ],
)
def test_node_state_after_each_step(
    upto: int, state: str, attempt_states: list[str], delay: int | None
) -> None:
    s = fold(RUN, seqd(*retried_then_finished()[:upto]))
    rec = s.node("fetch")
    assert rec is not None
    assert rec.state == state
    assert [a.state for a in rec.attempts] == attempt_states
    assert rec.next_attempt_delay_ms == delay
    assert rec.has_output is (state == "finished")
    assert s.seq == upto


def test_running_attempt_has_no_duration() -> None:
    rec = fold(RUN, seqd(*retried_then_finished()[:3])).node("fetch")
    assert rec is not None
    assert rec.attempts[0].finished_at_ms is None
    assert rec.attempts[0].duration_ms is None


def test_finished_node_with_null_output_has_output() -> None:
    s = fold(
        RUN,
        seqd(
            NodeStarted(run_id=RUN, timestamp_ms=at(0), node_id="n", attempt=1),
            NodeFinished(run_id=RUN, timestamp_ms=at(1), node_id="n", attempt=1),
        ),
    )
    rec = s.node("n")
    assert rec is not None
    assert rec.has_output
    assert decode_json(rec.output) is None
    assert set(s.outputs()) == {"n"}


def test_outputs_pick_highest_finished_iteration_per_node() -> None:
    def finish(node: str, iteration: int, value: object, t: int) -> list[Event]:
        return [
            NodeStarted(
                run_id=RUN, timestamp_ms=at(t), node_id=node, iteration=iteration, attempt=1
            ),
            NodeFinished(
                run_id=RUN,
                timestamp_ms=at(t + 1),
                node_id=node,
                iteration=iteration,
                attempt=1,
                output=to_raw(value),
            ),
        ]

    s = fold(
        RUN,
        seqd(
            *finish("loop", 1, "second", 0),
            *finish("loop", 0, "first", 10),
            NodeStarted(run_id=RUN, timestamp_ms=at(20), node_id="loop", iteration=2, attempt=1),
            *finish("other", 0, 7, 30),
            NodeSkipped(run_id=RUN, timestamp_ms=at(40), node_id="skipped"),
        ),
    )
    outs = {k: decode_json(v) for k, v in s.outputs().items()}
    assert outs == {"loop": "second", "other": 7}
    assert s.node("loop", 2) is not None
    assert s.node("loop", 2).state == "running"  # type: ignore[union-attr]


def test_node_skipped_records_reason_and_no_attempts() -> None:
    s = fold(
        RUN,
        seqd(
            started(0),
            NodePending(run_id=RUN, timestamp_ms=at(1), node_id="s", label="Lint"),
            NodeSkipped(run_id=RUN, timestamp_ms=at(2), node_id="s", reason="skip_if"),
        ),
    )
    assert s.node("s") == NodeRecord(
        node_id="s", state="skipped", label="Lint", skip_reason="skip_if"
    )
    assert s.outputs() == {}
    assert s.counts() == {"skipped": 1}


def test_node_skipped_without_pending_creates_record() -> None:
    s = fold(RUN, seqd(NodeSkipped(run_id=RUN, timestamp_ms=at(0), node_id="s", iteration=3)))
    assert s.node("s", 3) == NodeRecord(node_id="s", iteration=3, state="skipped")
    assert s.node("s") is None


@pytest.mark.parametrize("attempt", [1, None])
def test_node_cancelled_closes_running_attempt_with_reason(attempt: int | None) -> None:
    s = fold(
        RUN,
        seqd(
            NodePending(run_id=RUN, timestamp_ms=at(0), node_id="c"),
            NodeStarted(run_id=RUN, timestamp_ms=at(1), node_id="c", attempt=1),
            NodeCancelled(
                run_id=RUN, timestamp_ms=at(9), node_id="c", attempt=attempt, reason="unmounted"
            ),
        ),
    )
    rec = s.node("c")
    assert rec is not None
    assert rec.state == "cancelled"
    assert rec.attempts == (
        AttemptRecord(
            attempt=1,
            state="cancelled",
            started_at_ms=at(1),
            finished_at_ms=at(9),
            cancel_reason="unmounted",
        ),
    )
    assert rec.attempts[0].duration_ms == 8
    assert not rec.has_output


def test_node_cancelled_before_start_has_no_attempts() -> None:
    s = fold(
        RUN,
        seqd(
            NodePending(run_id=RUN, timestamp_ms=at(0), node_id="c"),
            NodeCancelled(run_id=RUN, timestamp_ms=at(1), node_id="c", reason="cancelled"),
        ),
    )
    assert s.node("c") == NodeRecord(node_id="c", state="cancelled")


def test_node_cancelled_leaves_earlier_failed_attempt_alone() -> None:
    s = fold(
        RUN,
        seqd(
            NodeStarted(run_id=RUN, timestamp_ms=at(0), node_id="c", attempt=1),
            NodeFailed(run_id=RUN, timestamp_ms=at(1), node_id="c", attempt=1, error=BOOM),
            NodeRetrying(run_id=RUN, timestamp_ms=at(2), node_id="c", attempt=2),
            NodeCancelled(run_id=RUN, timestamp_ms=at(3), node_id="c"),
        ),
    )
    rec = s.node("c")
    assert rec is not None
    assert rec.state == "cancelled"
    assert [(a.state, a.finished_at_ms, a.error) for a in rec.attempts] == [("failed", at(1), BOOM)]


@pytest.mark.parametrize(
    ("event", "state"),
    [
        (NodeWaitingApproval(run_id=RUN, timestamp_ms=at(5), node_id="w"), "waiting-approval"),
        (
            NodeWaitingTimer(run_id=RUN, timestamp_ms=at(5), node_id="w", fires_at_ms=at(99)),
            "waiting-timer",
        ),
    ],
)
def test_node_waiting_states(event: Event, state: str) -> None:
    s = fold(RUN, seqd(NodePending(run_id=RUN, timestamp_ms=at(0), node_id="w"), event))
    rec = s.node("w")
    assert rec is not None
    assert rec.state == state


def test_nodes_keep_mount_order_and_iterations_are_separate() -> None:
    s = fold(
        RUN,
        seqd(
            NodePending(run_id=RUN, timestamp_ms=at(0), node_id="b"),
            NodePending(run_id=RUN, timestamp_ms=at(1), node_id="a"),
            NodePending(run_id=RUN, timestamp_ms=at(2), node_id="b", iteration=1),
            NodeStarted(run_id=RUN, timestamp_ms=at(3), node_id="b", iteration=1, attempt=1),
        ),
    )
    assert list(s.nodes) == [("b", 0), ("a", 0), ("b", 1)]
    assert s.node("b").state == "pending"  # type: ignore[union-attr]
    assert s.node("b", 1).state == "running"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- counts


def test_counts_nodes_by_state() -> None:
    s = fold(
        RUN,
        seqd(
            *retried_then_finished(),
            NodePending(run_id=RUN, timestamp_ms=at(700), node_id="p1"),
            NodePending(run_id=RUN, timestamp_ms=at(701), node_id="p2"),
            NodeSkipped(run_id=RUN, timestamp_ms=at(702), node_id="sk"),
            NodeStarted(run_id=RUN, timestamp_ms=at(703), node_id="r", attempt=1),
            NodeStarted(run_id=RUN, timestamp_ms=at(704), node_id="f", attempt=1),
            NodeFailed(run_id=RUN, timestamp_ms=at(705), node_id="f", attempt=1, error=BOOM),
            NodeCancelled(run_id=RUN, timestamp_ms=at(706), node_id="p2"),
        ),
    )
    assert s.counts() == {
        "finished": 1,
        "pending": 1,
        "skipped": 1,
        "running": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert sum(s.counts().values()) == len(s.nodes)


# --------------------------------------------------------------------------- seq bookkeeping


def test_unhandled_event_type_only_advances_seq_and_updated_at() -> None:
    before = fold(RUN, seqd(started(0)))
    after = fold(RUN, seqd(started(0)))
    apply_event(
        after,
        SupervisorStarted(
            run_id=RUN, timestamp_ms=at(50), poll_interval_ms=1, stale_threshold_ms=2
        ),
        seq=2,
    )
    assert after.seq == 2
    assert after.updated_at_ms == at(50)
    assert msgspec.structs.replace(after, seq=1, updated_at_ms=at(0)) == before


def test_apply_event_returns_the_same_state_object() -> None:
    s = RunState(run_id=RUN)
    assert apply_event(s, started(0), seq=1) is s


def test_fold_continues_a_given_state() -> None:
    events = seqd(*retried_then_finished())
    s = fold(RUN, events[:3])
    assert fold(RUN, events[3:], state=s) is s
    assert s == fold(RUN, events)


# --------------------------------------------------------------------------- copy


def test_copy_is_equal_and_independent() -> None:
    events = seqd(
        *retried_then_finished()[:3],
        FrameCommitted(run_id=RUN, timestamp_ms=at(25), frame_no=0, xml_hash="h0"),
    )
    original = fold(RUN, events)
    snapshot = fold(RUN, events)
    clone = original.copy()
    assert clone == original
    assert clone is not original

    more = [
        (5, NodeFinished(run_id=RUN, timestamp_ms=at(40), node_id="fetch", attempt=1)),
        (6, NodePending(run_id=RUN, timestamp_ms=at(41), node_id="new")),
        (7, FrameCommitted(run_id=RUN, timestamp_ms=at(42), frame_no=1, xml_hash="h1")),
        (8, RunFinished(run_id=RUN, timestamp_ms=at(43))),
    ]
    fold(RUN, more, state=clone)

    assert original == snapshot
    assert clone != original
    assert clone.node("fetch").state == "finished"  # type: ignore[union-attr]
    assert original.node("fetch").state == "running"  # type: ignore[union-attr]
    assert len(original.frames) == 1
    assert ("new", 0) not in original.nodes
    assert original.status == "running"
    assert original.seq == 4


def test_folding_the_original_leaves_the_copy_alone() -> None:
    events = seqd(*retried_then_finished())
    original = fold(RUN, events[:4])
    clone = original.copy()
    fold(RUN, events[4:], state=original)
    assert clone == fold(RUN, events[:4])


# --------------------------------------------------------------------------- fold_stored


def stored(seq: int, event: Event) -> StoredEvent:
    return StoredEvent(
        position=100 + seq,
        run_id=RUN,
        seq=seq,
        type=type(event).__name__,
        timestamp_ms=event.timestamp_ms,
        data=encode_event(event),
    )


def test_fold_stored_matches_fold() -> None:
    events = seqd(*retried_then_finished())
    assert fold_stored(RUN, [stored(q, e) for q, e in events]) == fold(RUN, events)


def test_fold_stored_skips_unknown_types_but_advances_seq() -> None:
    events = seqd(*retried_then_finished())
    rows = [stored(q, e) for q, e in events]
    future = StoredEvent(
        position=999,
        run_id=RUN,
        seq=len(rows) + 1,
        type="FutureEvent",
        timestamp_ms=at(10_000),
        data=b'{"type":"FutureEvent","runId":"run-1","timestampMs":1,"x":[1]}',
    )
    s = fold_stored(RUN, [*rows, future])
    expected = fold(RUN, events)
    assert s.seq == len(rows) + 1
    assert msgspec.structs.replace(s, seq=expected.seq) == expected


def test_fold_stored_ignores_unknown_fields_of_known_types() -> None:
    event = NodeStarted(run_id=RUN, timestamp_ms=at(0), node_id="n", attempt=1)
    data = encode_event(event)[:-1] + b',"addedLater":{"a":[1,2]}}'
    row = msgspec.structs.replace(stored(1, event), data=data)
    assert fold_stored(RUN, [row]) == fold(RUN, [(1, event)])


def test_fold_stored_raises_on_malformed_known_event() -> None:
    row = StoredEvent(
        position=1,
        run_id=RUN,
        seq=1,
        type="NodeStarted",
        timestamp_ms=at(0),
        data=b'{"type":"NodeStarted","runId":"run-1","timestampMs":1,"nodeId":"n"}',
    )
    with pytest.raises(msgspec.ValidationError, match="attempt"):
        fold_stored(RUN, [row])


def test_attempt_abandoned_by_a_crash_is_cancelled_then_rerun() -> None:
    # DESIGN §6: on resume, attempts left open are closed (NodeCancelled "abandoned") and
    # re-run.
    s = fold(
        RUN,
        seqd(
            started(0),
            NodePending(run_id=RUN, timestamp_ms=at(1), node_id="n"),
            NodeStarted(run_id=RUN, timestamp_ms=at(2), node_id="n", attempt=1),
            started(100, activation=2, owner_id="owner-b"),
            NodeCancelled(run_id=RUN, timestamp_ms=at(101), node_id="n", reason="abandoned"),
            NodeStarted(run_id=RUN, timestamp_ms=at(102), node_id="n", attempt=2),
            NodeFinished(run_id=RUN, timestamp_ms=at(110), node_id="n", attempt=2),
        ),
    )
    rec = s.node("n")
    assert rec is not None
    assert rec.state == "finished"
    assert [(a.attempt, a.state, a.cancel_reason, a.finished_at_ms) for a in rec.attempts] == [
        (1, "cancelled", "abandoned", at(101)),
        (2, "finished", None, at(110)),
    ]
    assert s.activation == 2
    assert s.owner_id == "owner-b"


# --------------------------------------------------------------------------- run status vocabulary


def test_run_status_is_the_events_vocabulary_plus_pending() -> None:
    assert set(typing.get_args(RunStatus)) == set(typing.get_args(events.RunStatus)) | {"pending"}


@pytest.mark.parametrize("value", typing.get_args(RunStatus))
def test_is_run_status_accepts_every_run_status(value: str) -> None:
    assert is_run_status(value)


@pytest.mark.parametrize("value", ["paused", "", "Running", "waiting", "finished "])
def test_is_run_status_refuses_other_strings(value: str) -> None:
    assert not is_run_status(value)


def test_a_status_from_a_later_version_decodes_and_leaves_the_status_alone() -> None:
    # A later version may add a status: this reader keeps the last one it knows and
    # goes on, as it does for an event type it does not know.
    data = (
        b'{"type":"RunStatusChanged","runId":"run-1","timestampMs":1700000000005,"status":"paused"}'
    )
    assert decode_event("RunStatusChanged", data) == RunStatusChanged(
        run_id=RUN, timestamp_ms=at(5), status="paused"
    )
    later = StoredEvent(
        position=200, run_id=RUN, seq=2, type="RunStatusChanged", timestamp_ms=at(5), data=data
    )
    s = fold_stored(RUN, [stored(1, started(0)), later])
    assert (s.seq, s.status, s.updated_at_ms) == (2, "running", at(5))


def test_a_status_from_a_later_version_does_not_undo_a_known_one() -> None:
    s = fold(
        RUN,
        seqd(
            started(0),
            RunStatusChanged(run_id=RUN, timestamp_ms=at(1), status="waiting-approval"),
            RunStatusChanged(run_id=RUN, timestamp_ms=at(2), status="paused"),
        ),
    )
    assert s.status == "waiting-approval"


def test_the_fold_handles_only_events_of_the_live_catalogue() -> None:
    # Events of features not built yet live in eventstore's planned modules; once the
    # fold handles one, it belongs in `events` (see `_planned_events`).
    from smithers.projections._apply import _HANDLERS

    planned = {
        "smithers.eventstore._planned_events",
        "smithers.eventstore._planned_extension_events",
    }
    assert not {cls.__module__ for cls in _HANDLERS} & planned
    assert all(getattr(events, cls.__name__) is cls for cls in _HANDLERS)
    assert set(_HANDLERS) <= set(typing.get_args(events.AnyEvent))
