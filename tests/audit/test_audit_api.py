"""The audit trail through the Python API and the store: actors with interface ``api``,
old logs without actors, reads by type, and a run's forks and continuations.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from smithers.engine import OPERATION_TYPES, InvalidInputError, audit, is_operation
from smithers.engine.history import operation_params, related_runs
from smithers.eventstore import MemoryEventStore, SQLiteEventStore, decode_event
from smithers.eventstore.events import (
    Actor,
    ContinuationLoaded,
    Event,
    NodeFinished,
    RunContinuedAsNew,
    RunForked,
    RunRewound,
    RunStarted,
    SignalReceived,
)

from smithers import Sequence, Task, connect, workflow

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from smithers.eventstore import EventStore


@workflow("two")
def two(ctx: Any) -> Any:
    return Sequence(
        Task("a", output=dict, value={"n": 1}),
        Task("b", output=dict, value={"n": 2}),
    )


async def test_python_api_operations_record_interface_api(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect(db) as client:
        result = await client.run(two, run_id="r1", by="py-user", reason="nightly batch")
        assert result.status == "finished"
        handle = await client.get_run("r1")
        await handle.rewind(1, by="py-user", reason="redo b")
        monkeypatch.setenv("SMITHERS_ACTOR", "from-env")
        await handle.fork(0, run_id_new="f1")
        ops = await client.audit("r1")
    assert [(o.run_id, o.type, o.actor.name, o.actor.reason) for o in ops] == [
        ("f1", "RunForked", "from-env", None),
        ("r1", "RunRewound", "py-user", "redo b"),
        ("r1", "RunStarted", "py-user", "nightly batch"),
    ]
    for op in ops:
        assert (op.actor.interface, op.actor.pid, op.actor.host) == (
            "api",
            os.getpid(),
            socket.gethostname(),
        )


async def test_a_bad_by_is_refused_before_anything_is_recorded(db: Path) -> None:
    async with connect(db) as client:
        await client.run(two, run_id="r1")
        handle = await client.get_run("r1")
        before = (await handle.state()).seq
        with pytest.raises(InvalidInputError) as info:
            await handle.rewind(0, by="")
        assert info.value.code == "INVALID_INPUT"
        with pytest.raises(InvalidInputError):
            await handle.cancel(reason="line\x00break")
        assert (await handle.state()).seq == before


def test_an_event_written_before_the_audit_trail_decodes_and_is_no_operation() -> None:
    old = b'{"type":"RunRewound","runId":"r","timestampMs":5,"toFrameNo":2,"toSeq":9}'
    event = decode_event("RunRewound", old)
    assert isinstance(event, RunRewound)
    assert event.actor is None
    assert not is_operation(event)
    actor = Actor(name="a", host="h", pid=1, interface="cli")
    assert is_operation(msgspec.structs.replace(event, actor=actor))


def test_every_event_with_an_actor_field_can_be_an_operation() -> None:
    assert {
        "RunStarted", "RunCancelRequested", "RunRewound", "RunForked", "ReplayStarted",
        "RetryTaskStarted", "ApprovalGranted", "ApprovalDenied", "SignalReceived",
        "RunAutoResumed", "RunAutoResumeSkipped", "SupervisorStarted",
    } <= OPERATION_TYPES  # fmt: skip
    assert "NodeFinished" not in OPERATION_TYPES


def test_params_hide_payloads_behind_their_hash() -> None:
    event = SignalReceived(
        run_id="r",
        timestamp_ms=1,
        signal_name="paid",
        data=msgspec.Raw(b'{"amount":3}'),
        sent_by="bob",
    )
    params = operation_params(event)
    assert params["signalName"] == "paid"
    assert params["sentBy"] == "bob"
    assert "data" not in params
    assert params["dataSizeBytes"] == len(b'{"amount":3}')
    assert len(params["dataHash"]) == 64


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: Any, tmp_path: Path) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield MemoryEventStore()
        return
    sqlite = await SQLiteEventStore.open(tmp_path / "s.db")
    try:
        yield sqlite
    finally:
        await sqlite.close()


def _actor(name: str) -> Actor:
    return Actor(name=name, host="h", pid=1, interface="api")


async def _append(store: EventStore, run_id: str, *events: Event) -> None:
    await store.append(run_id, events, expected_seq=await store.last_seq(run_id))


async def test_read_types_filters_by_type_stream_and_time(store: EventStore) -> None:
    await _append(store, "a", RunStarted(run_id="a", timestamp_ms=10, actor=_actor("x")))
    await _append(
        store,
        "a",
        NodeFinished(run_id="a", timestamp_ms=20, node_id="n", attempt=1),
        RunRewound(run_id="a", timestamp_ms=30, to_frame_no=0, to_seq=1),
    )
    await _append(store, "b", RunStarted(run_id="b", timestamp_ms=40))
    rows = await store.read_types(["RunStarted", "RunRewound"])
    assert [(r.run_id, r.seq, r.type) for r in rows] == [
        ("a", 1, "RunStarted"),
        ("a", 3, "RunRewound"),
        ("b", 1, "RunStarted"),
    ]
    assert [r.run_id for r in await store.read_types(["RunStarted"], run_ids=["b"])] == ["b"]
    assert [r.seq for r in await store.read_types(["RunStarted", "RunRewound"], since_ms=30)] == [
        3,
        1,
    ]
    assert await store.read_types([]) == []
    assert await store.read_types(["RunStarted"], run_ids=[]) == []
    # An operation is an event with an actor: the start of a, not b's or the rewind.
    ops = await audit(store=store)
    assert [(o.run_id, o.type) for o in ops] == [("a", "RunStarted")]


async def test_a_runs_audit_follows_its_forks_and_continuations(store: EventStore) -> None:
    def fork(child: str, parent: str, who: str) -> RunForked:
        return RunForked(
            run_id=child, timestamp_ms=5, parent_run_id=parent, parent_frame_no=0, actor=_actor(who)
        )

    await _append(store, "r1", RunStarted(run_id="r1", timestamp_ms=1, actor=_actor("ann")))
    await _append(store, "f1", fork("f1", "r1", "bo"))
    await _append(store, "f2", fork("f2", "f1", "cy"))
    await _append(
        store,
        "r1",
        RunContinuedAsNew(run_id="r1", timestamp_ms=6, new_run_id="c1", iteration=0,
                          carried_state_size=0),
    )  # fmt: skip
    await _append(
        store,
        "c1",
        RunStarted(run_id="c1", timestamp_ms=7),
        ContinuationLoaded(run_id="c1", timestamp_ms=7, from_run_id="r1", ancestry_depth=1),
        RunRewound(run_id="c1", timestamp_ms=8, to_frame_no=0, to_seq=1, actor=_actor("di")),
    )
    await _append(store, "x", fork("x", "other", "ed"))
    related = await related_runs(store, "r1")
    assert related[0] == "r1"
    assert set(related) == {"r1", "f1", "f2", "c1"}
    assert await related_runs(store, "f1") == ["f1", "f2"]
    names = [o.actor.name for o in await audit("r1", store=store)]
    assert names == ["di", "cy", "bo", "ann"]
    alone = await audit("r1", store=store, related=False)
    assert [o.actor.name for o in alone] == ["ann"]
