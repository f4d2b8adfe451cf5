"""Retention: ``smithers gc`` deletes whole finished runs and records that it did."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from smithers.engine import collect_runs
from smithers.eventstore import (
    BulkDeletion,
    BulkRun,
    MemoryEventStore,
    SeqConflictError,
    SQLiteEventStore,
)
from smithers.eventstore.events import Actor, RunsDeleted

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from smithers.eventstore import EventStore


def _audit(machine: Any) -> list[dict[str, Any]]:
    result = machine("events", "_audit", "--json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_dry_run_lists_old_finished_runs_and_deletes_nothing(a: Any, finished: str) -> None:
    before = a.count_rows()

    out = a.json("gc", "--finished-before", "1ms", "--dry-run")

    assert out["runIds"] == [finished]
    assert out["dryRun"] is True
    assert a.count_rows() == before
    assert a("events", "_audit", "--json").exit_code == 4  # nothing recorded


def test_gc_deletes_a_whole_run_and_records_who_did_it(a: Any, finished: str) -> None:
    out = a.json("gc", "--finished-before", "1ms", "--by", "ops", "--reason", "retention")

    assert out["runIds"] == [finished]
    assert out["deletedEvents"] > 0
    assert a.rows(finished) == []
    assert a.json("ps") == []  # the audit stream is not a run
    (record,) = _audit(a)
    assert record["type"] == "RunsDeleted"
    assert record["runIds"] == [finished]
    assert record["deletedEvents"] == out["deletedEvents"]
    assert record["actor"]["name"] == "ops"
    assert record["actor"]["reason"] == "retention"
    assert record["actor"]["interface"] == "cli"


def test_runs_that_ended_after_the_cutoff_stay(a: Any, finished: str) -> None:
    out = a.json("gc", "--finished-before", "1d")

    assert out["runIds"] == []
    assert len(a.rows(finished)) > 0


def test_a_run_a_kept_run_forks_from_stays_unless_asked(a: Any, finished: str, forked: str) -> None:
    kept = a.json("gc", "--finished-before", "1ms")

    assert kept["runIds"] == []  # the fork is pending, not finished: it stays, so its parent
    assert kept["protected"] == [finished]
    assert len(a.rows(finished)) > 0

    gone = a.json("gc", "--finished-before", "1ms", "--include-forked-from")

    assert gone["runIds"] == [finished]
    assert a.rows(finished) == []
    assert len(a.rows(forked)) == 1  # never a non-terminal run


def test_keep_audit_keeps_operation_events_and_the_chain_head(a: Any, finished: str) -> None:
    rows = a.rows(finished)

    a.json("gc", "--finished-before", "1ms", "--keep-audit")

    left = a.rows(finished)
    assert [r[1] for r in left] == ["RunStarted", rows[-1][1]]
    assert left[-1] == rows[-1]  # the last row, byte for byte
    assert {r["runId"]: r["status"] for r in a.json("ps")} == {finished: "collected"}
    text = a("inspect", finished)
    assert text.exit_code == 0
    assert "collected by `smithers gc --keep-audit`" in text.stdout
    assert a.json("inspect", finished)["collected"] is True
    assert _audit(a)[0]["keepAudit"] is True
    # A collected run has gaps: it cannot travel, and gc leaves it alone from now on.
    assert a("export", finished).exit_code == 4
    assert a.json("gc", "--finished-before", "1ms")["runIds"] == []


@pytest.mark.parametrize(
    "args",
    [
        ("--finished-before", "soon"),
        ("--finished-before", "0s"),
        ("--finished-before", "1d", "--by", "   "),
    ],
)
def test_bad_gc_options_exit_4(a: Any, finished: str, args: tuple[str, ...]) -> None:
    before = a.count_rows()

    result = a("gc", *args)

    assert result.exit_code == 4, result.output
    assert "Error [INVALID_INPUT]" in result.stderr
    assert a.count_rows() == before


# ---------------------------------------------------------------------- the stores


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield MemoryEventStore()
        return
    async with await SQLiteEventStore.open(tmp_path / "s.db") as opened:
        yield opened


def _run(run_id: str, n: int) -> BulkRun:
    rows = tuple(
        (seq, "RunStatusChanged", 1000 + seq, _payload(run_id, 1000 + seq))
        for seq in range(1, n + 1)
    )
    return BulkRun(run_id=run_id, rows=rows, status="finished", workflow_name="w")


def _payload(run_id: str, ms: int) -> bytes:
    return b'{"type":"RunStatusChanged","runId":"%s","timestampMs":%d,"status":"finished"}' % (
        run_id.encode(),
        ms,
    )


async def test_stores_import_verbatim_extend_and_refuse_alike(store: EventStore) -> None:
    assert await store.import_runs([_run("r1", 2)]) == ["imported"]
    assert await store.import_runs([_run("r1", 2)]) == ["identical"]
    assert await store.import_runs([_run("r1", 3)]) == ["extended"]
    assert await store.import_runs([_run("r1", 2)]) == ["kept"]
    assert [e.data for e in await store.read("r1")] == [r[3] for r in _run("r1", 3).rows]
    other = _run("r2", 1)
    clash = BulkRun(run_id="r1", rows=((1, "X", 5, b"{}"),), status="finished")
    with pytest.raises(Exception, match="different contents") as info:
        await store.import_runs([other, clash])
    assert getattr(info.value, "code", None) == "RUN_ALREADY_EXISTS"
    assert await store.last_seq("r2") == 0  # all or nothing


async def test_stores_delete_runs_keep_rows_and_record_alike(store: EventStore) -> None:
    await store.import_runs([_run("r1", 4), _run("r2", 3)])
    actor = Actor(name="ops", host="h", pid=1, interface="cli")
    event = RunsDeleted(
        run_id="_audit", timestamp_ms=9, run_ids=("r1", "r2"), finished_before_ms=5, actor=actor
    )

    deleted = await store.delete_runs(
        [BulkDeletion(run_id="r1", keep_seqs=(1, 4)), BulkDeletion(run_id="r2")],
        audit_stream="_audit",
        audit_event=event,
    )

    assert deleted == 5
    assert [e.seq for e in await store.read("r1")] == [1, 4]
    assert [e.seq for e in await store.read("r1", after_seq=1)] == [4]
    assert await store.read("r2") == []
    assert await store.get_run("r2") is None
    record = await store.get_run("r1")
    assert record is not None
    assert record.status == "collected"
    (audit,) = await store.read("_audit")
    assert audit.type == "RunsDeleted"
    assert [e.run_id for e in await store.read_all()] == ["r1", "r1", "_audit"]


async def test_a_subflow_run_goes_only_with_its_parent(store: EventStore) -> None:
    parent, child = "p1", "p1:child:twice:0"
    await store.import_runs([_run(child, 2), _run("old", 2)])
    running = BulkRun(run_id=parent, rows=_run(parent, 2).rows, status="running")
    await store.import_runs([running])
    actor = Actor(name="ops", host="h", pid=1, interface="cli")

    result = await collect_runs(finished_before_ms=10**13, actor=actor, store=store)

    assert result.run_ids == ("old",)
    assert result.protected == (child,)
    assert len(await store.read(child)) == 2


async def test_a_run_that_grew_since_it_was_chosen_is_not_deleted(store: EventStore) -> None:
    await store.import_runs([_run("r1", 3), _run("r2", 2)])

    with pytest.raises(SeqConflictError, match="r1"):
        await store.delete_runs(
            [BulkDeletion(run_id="r2"), BulkDeletion(run_id="r1", expected_last_seq=2)],
            audit_stream="_audit",
            audit_event=None,
        )

    assert len(await store.read("r2")) == 2  # the whole batch was refused
