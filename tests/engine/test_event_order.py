"""What a run writes to its log, and in which order (DESIGN §3, §4, §6, §11)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import encode_event

from smithers import Parallel, Sequence, Task, run_workflow, workflow

if TYPE_CHECKING:
    from smithers.eventstore.events import Event

HEX64 = re.compile(r"[0-9a-f]{64}")


class Count(msgspec.Struct):
    n: int


def compute(n: int) -> Any:
    async def run() -> dict[str, int]:
        await anyio.sleep(0)
        return {"n": n}

    return run


@workflow("mixed")
def mixed(ctx: Any) -> Any:
    a = ctx.output_maybe(Count, "a")
    return Sequence(
        Task("a", output=Count, run=compute(1)),
        Parallel(
            Task("b", output=Count, run=compute(2)),
            Task("c", output=Count, value={"n": 3}),
            Sequence(
                Task("d", output=Count, run=compute(4)), Task("e", output=Count, run=compute(5))
            ),
        ),
        a and Task("f", output=Count, value={"n": a.n + 100}),
    )


NODES = ("a", "b", "c", "d", "e", "f")


# ---------------------------------------------------------------------------- seqs


async def test_run_started_is_seq_one_and_seqs_are_contiguous(backend: Any, read_log: Any) -> None:
    result = await run_workflow(mixed, input={}, **backend.kwargs)

    assert result.status == "finished"
    log = await read_log(result.run_id, store=backend.store)
    assert log.types[0] == "RunStarted"
    assert log.seqs == list(range(1, len(log) + 1))
    assert all(e.run_id == result.run_id for e in log.events)


async def test_run_started_records_what_the_run_is(db: Any, read_log: Any) -> None:
    result = await run_workflow(mixed, input={"k": [1, 2]}, db=db, max_concurrency=3)

    log = await read_log(result.run_id)
    started = log.events[0]
    assert started.workflow_name == "mixed"
    assert msgspec.json.decode(started.input) == {"k": [1, 2]}
    assert msgspec.json.decode(started.config)["maxConcurrency"] == 3
    assert started.activation == 1
    assert started.smithers_version


async def test_each_node_is_pending_then_started_then_finished(backend: Any, read_log: Any) -> None:
    result = await run_workflow(mixed, input={}, **backend.kwargs)

    assert result.status == "finished"
    log = await read_log(result.run_id, store=backend.store)
    for node in NODES:
        assert log.node_types(node) == ["NodePending", "NodeStarted", "NodeFinished"], node
        pending = log.seq_of("NodePending", node)
        started = log.seq_of("NodeStarted", node)
        finished = log.seq_of("NodeFinished", node)
        assert pending < started < finished


async def test_run_finished_is_last_and_after_every_node(backend: Any, read_log: Any) -> None:
    result = await run_workflow(mixed, input={}, **backend.kwargs)

    log = await read_log(result.run_id, store=backend.store)
    assert log.types[-1] == "RunFinished"
    assert log.types.count("RunFinished") == 1
    run_finished = log.seq_of("RunFinished")
    assert all(seq < run_finished for seq, _ in log.find_seq("NodeFinished"))
    assert log.find("RunStatusChanged")[-1].status == "finished"


async def test_sequence_order_is_respected(db: Any, read_log: Any) -> None:
    result = await run_workflow(mixed, input={}, db=db, max_concurrency=8)

    log = await read_log(result.run_id)
    a_done = log.seq_of("NodeFinished", "a")
    for node in ("b", "c", "d"):
        assert a_done < log.seq_of("NodeStarted", node)
    assert log.seq_of("NodeFinished", "d") < log.seq_of("NodeStarted", "e")
    for node in ("b", "c", "e"):
        assert log.seq_of("NodeFinished", node) < log.seq_of("NodeStarted", "f")


# ---------------------------------------------------------------------------- frames


async def test_frames_are_contiguous_from_zero_with_a_sha256_hash(
    backend: Any, read_log: Any
) -> None:
    result = await run_workflow(mixed, input={}, **backend.kwargs)

    log = await read_log(result.run_id, store=backend.store)
    frames = log.find("FrameCommitted")
    assert len(frames) >= 2
    assert [f.frame_no for f in frames] == list(range(len(frames)))
    for f in frames:
        assert HEX64.fullmatch(f.xml_hash), f.xml_hash
    # On the wire the fields are camelCase, as Smithers' NDJSON.
    row = next(r for r in log.rows if r.type == "FrameCommitted")
    wire = json.loads(row.data)
    assert wire["type"] == "FrameCommitted"
    assert wire["frameNo"] == 0
    assert HEX64.fullmatch(wire["xmlHash"])
    assert wire["runId"] == result.run_id


async def test_first_frame_precedes_every_node_event(db: Any, read_log: Any) -> None:
    result = await run_workflow(mixed, input={}, db=db)

    log = await read_log(result.run_id)
    first_frame = log.find_seq("FrameCommitted")[0][0]
    first_node_event = min(seq for seq, e in log if hasattr(e, "node_id"))
    assert first_frame < first_node_event


async def test_a_builder_that_reads_nothing_renders_once(db: Any, read_log: Any) -> None:
    calls: list[int] = []

    @workflow("blind")
    def blind(ctx: Any) -> Any:
        calls.append(1)
        return Sequence(
            Task("a", output=Count, run=compute(1)),
            Parallel(
                Task("b", output=Count, run=compute(2)), Task("c", output=Count, run=compute(3))
            ),
            Task("d", output=Count, run=compute(4)),
        )

    result = await run_workflow(blind, input={"x": 1}, db=db)

    assert result.status == "finished"
    assert len(calls) == 1
    log = await read_log(result.run_id)
    frames = log.find("FrameCommitted")
    assert len(frames) >= 4  # one frame per completion tick, each an unchanged tree
    assert len({f.xml_hash for f in frames}) == 1


async def test_only_completions_of_read_nodes_re_render(db: Any, read_log: Any) -> None:
    calls: list[bool] = []

    @workflow("picky")
    def picky(ctx: Any) -> Any:
        a = ctx.output_maybe(Count, "a")
        calls.append(a is not None)
        return Sequence(
            Task("a", output=Count, run=compute(1)),
            Task("b", output=Count, run=compute(2)),
            Task("c", output=Count, run=compute(3)),
            a and Task("d", output=Count, run=compute(a.n + 10)),
        )

    result = await run_workflow(picky, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["d"] == {"n": 11}
    # The first render, then one after "a" finished; b, c and d were never read.
    assert calls == [False, True]
    log = await read_log(result.run_id)
    hashes = [f.xml_hash for f in log.find("FrameCommitted")]
    assert hashes[0] != hashes[-1]
    assert len(set(hashes)) == 2


async def test_frame_hash_is_deterministic_across_runs(db: Any, read_log: Any) -> None:
    first = await run_workflow(mixed, input={}, db=db)
    second = await run_workflow(mixed, input={}, db=db)

    log1 = await read_log(first.run_id)
    log2 = await read_log(second.run_id)
    assert log1.find("FrameCommitted")[0].xml_hash == log2.find("FrameCommitted")[0].xml_hash
    assert {f.xml_hash for f in log1.find("FrameCommitted")} == {
        f.xml_hash for f in log2.find("FrameCommitted")
    }


# ---------------------------------------------------------------------------- on_progress


async def test_on_progress_sees_every_event_once_in_seq_order(backend: Any, read_log: Any) -> None:
    seen: list[Event] = []

    result = await run_workflow(mixed, input={}, on_progress=seen.append, **backend.kwargs)

    log = await read_log(result.run_id, store=backend.store)
    assert len(seen) == len(log)
    assert [encode_event(e) for e in seen] == [row.data for row in log.rows]


async def test_on_progress_that_raises_does_not_stop_the_run(db: Any, read_log: Any) -> None:
    calls: list[str] = []

    def explode(event: Event) -> None:
        calls.append(type(event).__name__)
        raise RuntimeError("observer bug")

    result = await run_workflow(mixed, input={}, db=db, on_progress=explode)

    assert result.status == "finished"
    log = await read_log(result.run_id)
    assert calls == log.types


# ---------------------------------------------------------------------------- NDJSON mirror


async def test_ndjson_mirror_has_every_event_with_its_seq(db: Any, read_log: Any) -> None:
    result = await run_workflow(mixed, input={}, db=db)

    path = db.parent / "executions" / result.run_id / "logs" / "stream.ndjson"
    assert path.is_file()
    lines = path.read_bytes().splitlines()
    log = await read_log(result.run_id)
    assert len(lines) == len(log)
    for line, row in zip(lines, log.rows, strict=True):
        obj = json.loads(line)
        assert obj["seq"] == row.seq
        assert obj["type"] == row.type
        assert obj["runId"] == result.run_id
        assert obj == {"seq": row.seq, **json.loads(row.data)}


async def test_ndjson_mirror_goes_to_a_given_log_dir(db: Any, tmp_path: Any) -> None:
    log_dir = tmp_path / "elsewhere"

    result = await run_workflow(mixed, input={}, db=db, log_dir=log_dir)

    assert (log_dir / "stream.ndjson").is_file()
    assert not (db.parent / "executions" / result.run_id).exists()


async def test_log_dir_none_writes_no_mirror(db: Any, tmp_path: Any) -> None:
    result = await run_workflow(mixed, input={}, db=db, log_dir=None)

    assert result.status == "finished"
    assert not (db.parent / "executions").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("smithers.db")] == []


async def test_memory_store_writes_no_mirror_by_default(tmp_path: Any, monkeypatch: Any) -> None:
    from smithers.eventstore import MemoryEventStore

    monkeypatch.chdir(tmp_path)
    store = MemoryEventStore()

    result = await run_workflow(mixed, input={}, store=store)

    assert result.status == "finished"
    assert list(tmp_path.iterdir()) == []
    assert await store.last_seq(result.run_id) > 0


async def test_completions_landing_together_share_one_tick(db: Any, read_log: Any) -> None:
    @workflow("together")
    def together(ctx: Any) -> Any:
        return Parallel(*(Task(f"t{i}", output=Count, run=compute(i)) for i in range(4)))

    result = await run_workflow(together, input={}, db=db, max_concurrency=4)

    assert result.status == "finished"
    log = await read_log(result.run_id)
    # Frame 0 is the first render; the four completions arrive in the same loop pass
    # and are decided (and committed) together, not one frame each.
    assert len(log.find("FrameCommitted")) < 1 + 4
