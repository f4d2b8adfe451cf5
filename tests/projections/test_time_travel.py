"""Given events -> RunState for time travel: rewind, retry-task, fork, replay (DESIGN §5, §7)."""

from __future__ import annotations

import msgspec
import pytest
from smithers.eventstore import StoredEvent, encode_event, to_raw
from smithers.eventstore.events import (
    NULL_RAW,
    ErrorInfo,
    Event,
    FrameCommitted,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    ReplayStarted,
    RetryTaskFinished,
    RetryTaskStarted,
    RunFailed,
    RunFinished,
    RunForked,
    RunRewound,
    RunStarted,
    RunStatusChanged,
)
from smithers.projections import (
    AttemptRecord,
    ForkBaseMismatchError,
    FrameRecord,
    InvalidRewindError,
    NodeRecord,
    ProjectionError,
    RunState,
    apply_event,
    apply_rewind,
    effective_events,
    fold,
    fold_stored,
    fork_state,
)

RUN = "run-1"
CHILD = "run-2"
T0 = 1_700_000_000_000
BOOM = ErrorInfo(name="ValueError", message="boom")


def at(offset_ms: int) -> int:
    return T0 + offset_ms


def seqd(*events: Event) -> list[tuple[int, Event]]:
    return list(enumerate(events, start=1))


def stored(seq: int, event: Event) -> StoredEvent:
    return StoredEvent(
        position=100 + seq,
        run_id=event.run_id,
        seq=seq,
        type=type(event).__name__,
        timestamp_ms=event.timestamp_ms,
        data=encode_event(event),
    )


def started(t: int = 0, run_id: str = RUN, **kw: object) -> RunStarted:
    return RunStarted(
        run_id=run_id,
        timestamp_ms=at(t),
        workflow_name="review",
        input=to_raw({"pr": 42}),
        owner_id="owner-a",
        **kw,  # type: ignore[arg-type]
    )


def frame(t: int, frame_no: int, run_id: str = RUN) -> FrameCommitted:
    return FrameCommitted(
        run_id=run_id, timestamp_ms=at(t), frame_no=frame_no, xml_hash=f"h{frame_no}"
    )


def pending(t: int, node_id: str, iteration: int = 0, run_id: str = RUN) -> NodePending:
    return NodePending(run_id=run_id, timestamp_ms=at(t), node_id=node_id, iteration=iteration)


def start(t: int, node_id: str, attempt: int = 1, iteration: int = 0) -> NodeStarted:
    return NodeStarted(
        run_id=RUN, timestamp_ms=at(t), node_id=node_id, iteration=iteration, attempt=attempt
    )


def finish(
    t: int, node_id: str, value: object, attempt: int = 1, iteration: int = 0
) -> NodeFinished:
    return NodeFinished(
        run_id=RUN,
        timestamp_ms=at(t),
        node_id=node_id,
        iteration=iteration,
        attempt=attempt,
        output=to_raw(value),
    )


def rewound(t: int, to_frame_no: int, to_seq: int, run_id: str = RUN) -> RunRewound:
    return RunRewound(run_id=run_id, timestamp_ms=at(t), to_frame_no=to_frame_no, to_seq=to_seq)


def two_tasks_then_finished() -> list[Event]:
    """Seqs: 1 start, 2 frame 0, 3-5 a, 6 frame 1, 7-9 b, 10 frame 2, 11 finished."""
    return [
        started(0),
        frame(1, 0),
        pending(2, "a"),
        start(3, "a"),
        finish(4, "a", "A"),
        frame(5, 1),
        pending(6, "b"),
        start(7, "b"),
        finish(8, "b", "B"),
        frame(9, 2),
        RunFinished(run_id=RUN, timestamp_ms=at(10)),
    ]


# --------------------------------------------------------------------------- rewind


def test_rewind_restores_the_state_at_to_seq_then_applies_later_events() -> None:
    log = seqd(*two_tasks_then_finished(), rewound(20, 1, 6), pending(21, "c"))
    s = fold(RUN, log)
    at_frame_1 = fold(RUN, log[:6])

    assert s.status == "running"
    assert s.finished_at_ms is None
    assert list(s.nodes) == [("a", 0), ("c", 0)]
    assert s.nodes[("a", 0)] == at_frame_1.nodes[("a", 0)]
    assert s.node("c") == NodeRecord(node_id="c")
    assert s.outputs().keys() == {"a"}
    assert s.frames == at_frame_1.frames
    assert [f.frame_no for f in s.frames] == [0, 1]
    assert s.rewinds == 1
    assert s.activation == 1


def test_rewind_keeps_log_position_and_next_frame_no() -> None:
    log = seqd(*two_tasks_then_finished(), rewound(20, 1, 6), pending(21, "c"))
    s = fold(RUN, log)
    assert s.seq == 13  # the log position, not the rewind target
    assert s.updated_at_ms == at(21)
    assert s.next_frame_no == 3  # frame 2 was discarded but its number is not reused


def test_frames_after_a_rewind_continue_at_next_frame_no() -> None:
    log = seqd(*two_tasks_then_finished(), rewound(20, 1, 6), frame(21, 3), frame(22, 4))
    s = fold(RUN, log)
    assert [(f.frame_no, f.seq) for f in s.frames] == [(0, 2), (1, 6), (3, 13), (4, 14)]
    assert s.next_frame_no == 5


def test_rewind_event_itself_is_the_state_at_to_seq_plus_the_count() -> None:
    log = seqd(*two_tasks_then_finished(), rewound(20, 0, 2))
    s = fold(RUN, log)
    expected = fold(RUN, log[:2])
    expected.seq, expected.updated_at_ms = 12, at(20)
    expected.rewinds, expected.next_frame_no = 1, 3
    # Appended from outside the activation: the run has no owner until it resumes.
    expected.owner_id, expected.pid, expected.host, expected.activated_at_ms = "", None, None, None
    assert s == expected


def test_rewind_to_seq_zero_goes_back_to_the_empty_state() -> None:
    s = fold(RUN, seqd(*two_tasks_then_finished(), rewound(20, 0, 0)))
    assert s == RunState(run_id=RUN, seq=12, updated_at_ms=at(20), rewinds=1, next_frame_no=3)


def test_rewind_after_a_rewind_uses_log_seqs() -> None:
    # 12: back to frame 1 (seq 6); 13-14: c; 15: back to seq 13, after the first rewind.
    log = seqd(
        *two_tasks_then_finished(),
        rewound(20, 1, 6),
        pending(21, "c"),
        start(22, "c"),
        rewound(23, 1, 13),
    )
    s = fold(RUN, log)
    assert list(s.nodes) == [("a", 0), ("c", 0)]
    assert s.node("c") == NodeRecord(node_id="c")  # the start at seq 14 is gone
    assert s.rewinds == 2
    assert [seq for seq, _ in effective_events(log)] == [1, 2, 3, 4, 5, 6, 12, 13, 15]


def test_rewind_into_history_an_earlier_rewind_discarded() -> None:
    # 12 discards 7-11 (b); 13 goes back to seq 9, where b had finished.
    log = seqd(*two_tasks_then_finished(), rewound(20, 0, 2), rewound(21, 2, 9))
    s = fold(RUN, log)
    assert s.node("b") is not None
    assert s.node("b").has_output  # type: ignore[union-attr]
    assert s.status == "running"
    assert s.rewinds == 1  # the rewind at 12 was itself discarded
    assert [seq for seq, _ in effective_events(log)] == [*range(1, 10), 13]


def test_effective_events_without_rewind_is_the_log() -> None:
    log = seqd(*two_tasks_then_finished())
    assert effective_events(log) == log
    assert effective_events([]) == []


def test_effective_events_are_their_own_effective_events() -> None:
    log = seqd(
        *two_tasks_then_finished(),
        rewound(20, 0, 2),
        pending(21, "c"),
        rewound(22, 2, 9),
        rewound(23, 0, 13),
    )
    once = effective_events(log)
    assert effective_events(once) == once
    assert fold(RUN, once) == msgspec.structs.replace(fold(RUN, log), next_frame_no=1)


def test_fold_stored_is_rewind_aware_and_skips_unknown_rows() -> None:
    log = seqd(*two_tasks_then_finished(), rewound(20, 1, 6), pending(21, "c"))
    rows = [stored(q, e) for q, e in log]
    future = StoredEvent(
        position=1, run_id=RUN, seq=99, type="FutureEvent", timestamp_ms=at(30), data=b"?"
    )
    # An unknown row inside the discarded part is not even looked at.
    rows[7] = msgspec.structs.replace(rows[7], type="FutureEvent", data=b"\xff")
    assert fold_stored(RUN, rows) == fold(RUN, log)
    assert fold_stored(RUN, [*rows, future]).seq == 99


def test_unknown_row_after_a_rewind_target_counts_only_for_seq() -> None:
    rows = [stored(q, e) for q, e in seqd(started(0), frame(1, 0))]
    rows.append(
        StoredEvent(position=3, run_id=RUN, seq=3, type="Later", timestamp_ms=at(2), data=b"")
    )
    rows.append(stored(4, rewound(3, 0, 3)))
    s = fold_stored(RUN, rows)
    assert s.seq == 4
    assert s.rewinds == 1
    assert [f.frame_no for f in s.frames] == [0]


def test_fold_continues_a_state_across_a_rewind_to_or_after_its_seq() -> None:
    log = seqd(*two_tasks_then_finished(), rewound(20, 1, 6), pending(21, "c"))
    for k in (0, 3, 6, 12):
        assert fold(RUN, log[k:], state=fold(RUN, log[:k])) == fold(RUN, log)


def test_fold_refuses_to_rewind_before_the_state_it_continues() -> None:
    log = seqd(*two_tasks_then_finished(), rewound(20, 1, 6))
    with pytest.raises(InvalidRewindError, match="before the state the fold starts from"):
        fold(RUN, log[7:], state=fold(RUN, log[:7]))


@pytest.mark.parametrize("to_seq", [3, 4, -1])
def test_rewind_must_target_an_earlier_seq(to_seq: int) -> None:
    log = seqd(started(0), frame(1, 0), rewound(2, 0, to_seq))
    with pytest.raises(InvalidRewindError) as info:
        fold(RUN, log)
    assert isinstance(info.value, ProjectionError)
    assert isinstance(info.value, ValueError)
    assert info.value.details == {"runId": RUN, "seq": 3, "toSeq": to_seq, "startSeq": 0}
    with pytest.raises(InvalidRewindError):
        fold_stored(RUN, [stored(q, e) for q, e in log])


def test_a_discarded_invalid_rewind_is_not_checked() -> None:
    log = seqd(started(0), frame(1, 0), rewound(2, 0, 99), rewound(3, 0, 2))
    assert fold(RUN, log).seq == 4


def test_apply_event_only_counts_a_rewind_and_clears_the_owner() -> None:
    s = fold(RUN, seqd(*two_tasks_then_finished()))
    before = s.copy()
    apply_event(s, rewound(20, 0, 2), seq=12)
    assert (s.owner_id, s.pid, s.host, s.activated_at_ms) == ("", None, None, None)
    owner = {k: getattr(before, k) for k in ("owner_id", "pid", "host", "activated_at_ms")}
    restored = msgspec.structs.replace(s, seq=11, updated_at_ms=at(10), rewinds=0, **owner)
    assert restored == before


def test_apply_rewind_continues_a_live_state_as_the_fold_does() -> None:
    events = two_tasks_then_finished()
    live = fold(RUN, seqd(*events))
    rewind = rewound(20, 1, 6)
    target = fold(RUN, seqd(*events[:6]))
    target_copy = target.copy()
    live_copy = live.copy()

    after = apply_rewind(live, rewind, seq=12, target=target)
    assert after == fold(RUN, seqd(*events, rewind))
    assert after.next_frame_no == 3
    assert (live, target) == (live_copy, target_copy)  # neither is modified
    apply_event(after, pending(21, "c"), seq=13)
    assert after == fold(RUN, seqd(*events, rewind, pending(21, "c")))


def test_apply_rewind_checks_its_arguments() -> None:
    events = two_tasks_then_finished()
    live = fold(RUN, seqd(*events))
    with pytest.raises(InvalidRewindError):
        apply_rewind(live, rewound(20, 1, 12), seq=12, target=fold(RUN, seqd(*events[:6])))
    with pytest.raises(ValueError, match="past to_seq"):
        apply_rewind(live, rewound(20, 1, 6), seq=12, target=fold(RUN, seqd(*events[:7])))
    with pytest.raises(ValueError, match="is a state of run 'other'"):
        apply_rewind(live, rewound(20, 1, 6), seq=12, target=RunState(run_id="other"))


# --------------------------------------------------------------------------- retry-task


def retry(t: int, node_id: str, *reset: str) -> RetryTaskStarted:
    return RetryTaskStarted(
        run_id=RUN,
        timestamp_ms=at(t),
        node_id=node_id,
        reset_dependents=len(reset) > 1,
        reset_nodes=reset,
    )


def looped_then_failed() -> list[Event]:
    return [
        started(0),
        pending(1, "fetch"),
        start(2, "fetch"),
        NodeFailed(run_id=RUN, timestamp_ms=at(3), node_id="fetch", attempt=1, error=BOOM),
        NodeRetrying(run_id=RUN, timestamp_ms=at(4), node_id="fetch", attempt=2, delay_ms=9),
        start(5, "fetch", attempt=2),
        finish(6, "fetch", {"files": 1}, attempt=2),
        pending(7, "loop", 0),
        start(8, "loop", iteration=0),
        finish(9, "loop", "i0", iteration=0),
        pending(10, "loop", 1),
        start(11, "loop", iteration=1),
        finish(12, "loop", "i1", iteration=1),
        NodeSkipped(run_id=RUN, timestamp_ms=at(13), node_id="lint", reason="skip_if"),
        pending(14, "review"),
        start(15, "review"),
        NodeFailed(run_id=RUN, timestamp_ms=at(16), node_id="review", attempt=1, error=BOOM),
        RunFailed(run_id=RUN, timestamp_ms=at(17), error=BOOM),
    ]


def test_retry_task_resets_every_iteration_of_the_listed_nodes() -> None:
    before = fold(RUN, seqd(*looped_then_failed()))
    s = fold(RUN, seqd(*looped_then_failed(), retry(20, "loop", "loop", "lint", "review")))
    for key in [("loop", 0), ("loop", 1), ("lint", 0), ("review", 0)]:
        rec = s.nodes[key]
        assert rec.state == "pending"
        assert not rec.has_output
        assert rec.output == NULL_RAW
        assert rec.skip_reason is None
        assert rec.attempts == before.nodes[key].attempts  # kept for audit
    assert s.nodes[("fetch", 0)] == before.nodes[("fetch", 0)]
    assert list(s.nodes) == list(before.nodes)
    assert s.outputs().keys() == {"fetch"}


def test_retry_task_leaves_the_run_status_alone() -> None:
    s = fold(RUN, seqd(*looped_then_failed(), retry(20, "review", "review")))
    assert s.status == "failed"
    s = fold(
        RUN,
        seqd(
            *looped_then_failed(),
            retry(20, "review", "review"),
            RunStatusChanged(run_id=RUN, timestamp_ms=at(21), status="running"),
        ),
    )
    assert s.status == "running"


def test_attempt_numbers_continue_after_a_retry_task() -> None:
    events = [*looped_then_failed(), retry(20, "fetch", "fetch"), start(21, "fetch", attempt=3)]
    rec = fold(RUN, seqd(*events)).node("fetch")
    assert rec is not None
    assert rec.state == "running"
    assert [(a.attempt, a.state) for a in rec.attempts] == [
        (1, "failed"),
        (2, "finished"),
        (3, "running"),
    ]
    assert rec.next_attempt_delay_ms is None


def test_retry_task_finished_changes_no_node() -> None:
    events = [*looped_then_failed(), retry(20, "review", "review")]
    done = RetryTaskFinished(
        run_id=RUN,
        timestamp_ms=at(21),
        node_id="review",
        reset_nodes=("review",),
        success=True,
    )
    before = fold(RUN, seqd(*events))
    after = fold(RUN, seqd(*events, done))
    assert before.open_retry is not None
    assert before.open_retry.node_id == "review"
    assert after.open_retry is None  # the retry is over; nothing else changes
    assert msgspec.structs.replace(
        after, seq=before.seq, updated_at_ms=before.updated_at_ms, open_retry=before.open_retry
    ) == (before)


def test_retry_task_of_unknown_nodes_changes_nothing() -> None:
    before = fold(RUN, seqd(*looped_then_failed()))
    after = fold(RUN, seqd(*looped_then_failed(), retry(20, "ghost", "ghost")))
    assert after.nodes == before.nodes


# --------------------------------------------------------------------------- fork


def forked(t: int = 100, **kw: object) -> RunForked:
    fields: dict[str, object] = {
        "parent_run_id": RUN,
        "parent_frame_no": 1,
        "parent_seq": 6,
        "reset_nodes": ("a",),
        "branch_label": "try-2",
    }
    fields.update(kw)
    return RunForked(run_id=CHILD, timestamp_ms=at(t), **fields)  # type: ignore[arg-type]


def parent_at_frame_1() -> RunState:
    return fold(RUN, seqd(*two_tasks_then_finished()[:6]))


def test_fork_state_seeds_the_child_from_the_parent() -> None:
    parent = parent_at_frame_1()
    parent_copy = parent.copy()
    s = fork_state(parent, forked(), run_id=CHILD)

    assert parent == parent_copy  # not modified
    assert s.run_id == CHILD
    assert (s.seq, s.status, s.activation, s.rewinds) == (0, "pending", 0, 0)
    assert (s.parent_run_id, s.parent_frame_no) == (RUN, 1)
    assert s.frames == []
    assert s.next_frame_no == 2
    assert (s.error, s.finished_at_ms, s.created_at_ms, s.updated_at_ms) == (None,) * 4
    assert (s.owner_id, s.pid, s.host, s.replay_of) == ("", None, None, None)
    assert (s.workflow_name, s.input) == (parent.workflow_name, parent.input)
    rec = s.node("a")
    assert rec is not None
    assert (rec.state, rec.has_output, rec.output) == ("pending", False, NULL_RAW)
    assert rec.attempts == parent.nodes[("a", 0)].attempts
    s.nodes.clear()
    assert parent.nodes  # independent containers


def test_fork_state_after_a_failed_parent_clears_the_error() -> None:
    parent = fold(RUN, seqd(*looped_then_failed()))
    s = fork_state(parent, forked(parent_seq=18, reset_nodes=("review",)), run_id=CHILD)
    assert (s.status, s.error, s.finished_at_ms) == ("pending", None, None)
    assert s.node("review").state == "pending"  # type: ignore[union-attr]
    assert s.node("fetch") == parent.node("fetch")


def test_forked_log_folds_on_top_of_fork_state() -> None:
    event = forked()
    base = fork_state(parent_at_frame_1(), event, run_id=CHILD)
    log = [
        (1, event),
        (2, started(101, run_id=CHILD, activation=1)),
        (3, frame(102, 2, run_id=CHILD)),
        (4, pending(103, "b", run_id=CHILD)),
    ]
    rows = [stored(q, e) for q, e in log]
    s = fold_stored(CHILD, rows, base=base)

    assert s == fold(CHILD, log, base=base)
    assert base == fork_state(parent_at_frame_1(), event, run_id=CHILD)  # base is copied
    assert s.seq == 4
    assert s.status == "running"
    assert s.activation == 1
    assert s.created_at_ms == at(100)
    assert s.frames == [FrameRecord(frame_no=2, seq=3, xml_hash="h2", timestamp_ms=at(102))]
    assert s.next_frame_no == 3
    assert list(s.nodes) == [("a", 0), ("b", 0)]
    assert s.node("a").state == "pending"  # type: ignore[union-attr]


def test_rewind_to_seq_zero_of_a_fork_goes_back_to_its_base() -> None:
    event = forked()
    base = fork_state(parent_at_frame_1(), event, run_id=CHILD)
    log = [
        (1, event),
        (2, started(101, run_id=CHILD)),
        (3, frame(102, 2, run_id=CHILD)),
        (4, rewound(103, 1, 0, run_id=CHILD)),
    ]
    s = fold(CHILD, log, base=base)
    expected = msgspec.structs.replace(
        base.copy(), seq=4, updated_at_ms=at(103), rewinds=1, next_frame_no=3
    )
    assert s == expected


def test_fork_without_base_still_knows_its_ancestry() -> None:
    s = fold(CHILD, [(1, forked())])
    assert (s.parent_run_id, s.parent_frame_no, s.next_frame_no) == (RUN, 1, 2)
    assert s.created_at_ms == at(100)
    assert s.nodes == {}


@pytest.mark.parametrize(
    "event",
    [forked(parent_seq=5), forked(parent_run_id="someone-else")],
    ids=["seq", "run"],
)
def test_fork_state_checks_the_parent_state(event: RunForked) -> None:
    with pytest.raises(ForkBaseMismatchError) as info:
        fork_state(parent_at_frame_1(), event, run_id=CHILD)
    assert info.value.details["givenSeq"] == 6
    assert isinstance(info.value, ValueError)


def test_fold_refuses_a_base_of_another_run() -> None:
    with pytest.raises(ValueError, match="fork_state"):
        fold(CHILD, [(1, forked())], base=parent_at_frame_1())
    with pytest.raises(ValueError, match="not both"):
        fold(RUN, [], base=RunState(run_id=RUN), state=RunState(run_id=RUN))


# --------------------------------------------------------------------------- replay


def test_replay_started_is_recorded() -> None:
    event = ReplayStarted(run_id=CHILD, timestamp_ms=at(1), parent_run_id=RUN, parent_frame_no=4)
    s = fold(CHILD, [(1, forked(parent_frame_no=4)), (2, event)])
    assert s.replay_of == (RUN, 4)
    assert s.status == "pending"


def test_new_fields_default() -> None:
    s = RunState(run_id=RUN)
    assert (s.next_frame_no, s.rewinds, s.replay_of) == (0, 0, None)
    assert fold(RUN, seqd(*two_tasks_then_finished())).next_frame_no == 3


def test_attempt_records_survive_a_rewind_that_keeps_them() -> None:
    log = seqd(*looped_then_failed(), rewound(20, 0, 7))
    rec = fold(RUN, log).node("fetch")
    assert rec is not None
    assert rec.attempts[-1] == AttemptRecord(
        attempt=2, state="finished", started_at_ms=at(5), finished_at_ms=at(6)
    )
