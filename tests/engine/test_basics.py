"""The authoring API end to end: `run_workflow` over static and compute tasks (DESIGN §12)."""

from __future__ import annotations

import gc
import threading
import warnings
from typing import Any

import anyio
import msgspec
import pytest
from smithers.engine import MissingOutputError, RunResult

from smithers import Parallel, Sequence, Task, TaskContext, run_workflow, workflow


class Count(msgspec.Struct):
    n: int


class Report(msgspec.Struct):
    title: str
    tags: list[str] = []


@workflow("count")
def count(ctx: Any) -> Any:
    first = ctx.output_maybe(Count, "first")
    return Sequence(
        Task("first", output=Count, value={"n": 1}),
        Task("second", output=Count, run=lambda: {"n": ctx.input["start"] + 1}),
        first and Task("third", output=Count, value={"n": first.n + 10}),
    )


# ---------------------------------------------------------------------------- DESIGN §12


async def test_design_example_finishes_with_every_output(backend: Any, read_log: Any) -> None:
    result = await run_workflow(count, input={"start": 5}, **backend.kwargs)

    assert isinstance(result, RunResult)
    assert result.status == "finished"
    assert result.error is None
    assert result.outputs == {"first": {"n": 1}, "second": {"n": 6}, "third": {"n": 11}}
    log = await read_log(result.run_id, store=backend.store)
    assert log.types[0] == "RunStarted"
    assert log.types[-1] == "RunFinished"
    for node in ("first", "second", "third"):
        assert log.node_types(node) == ["NodePending", "NodeStarted", "NodeFinished"]


async def test_run_id_is_used_when_given(db: Any) -> None:
    result = await run_workflow(count, input={"start": 0}, db=db, run_id="my-run")

    assert result.run_id == "my-run"
    assert result.outputs["second"] == {"n": 1}


async def test_generated_run_ids_differ(db: Any) -> None:
    a = await run_workflow(count, input={"start": 0}, db=db)
    b = await run_workflow(count, input={"start": 0}, db=db)

    assert a.run_id != b.run_id
    assert a.run_id.startswith("run-")


async def test_result_output_is_the_output_node(db: Any) -> None:
    @workflow("final")
    def final(ctx: Any) -> Any:
        return [
            Task("work", output=Count, value={"n": 2}),
            Task("output", output=Count, value={"n": 3}),
        ]

    result = await run_workflow(final, input={}, db=db)

    assert result.output == {"n": 3}
    assert result.output == result.outputs["output"]


async def test_result_output_is_none_without_an_output_node(db: Any) -> None:
    result = await run_workflow(count, input={"start": 1}, db=db)

    assert result.output is None


async def test_none_input_means_empty_object(db: Any) -> None:
    seen: list[Any] = []

    @workflow("noinput")
    def noinput(ctx: Any) -> Any:
        seen.append(ctx.input)
        return Task("a", output=Count, value={"n": 1})

    result = await run_workflow(noinput, db=db)

    assert result.status == "finished"
    assert seen == [{}]


# ---------------------------------------------------------------------------- tree shapes


async def test_a_list_means_a_sequence(db: Any, read_log: Any) -> None:
    @workflow("listed")
    def listed(ctx: Any) -> Any:
        return [
            Task("a", output=Count, run=lambda: {"n": 1}),
            Task("b", output=Count, run=lambda: {"n": 2}),
            Task("c", output=Count, run=lambda: {"n": 3}),
        ]

    result = await run_workflow(listed, input={}, db=db, max_concurrency=8)

    assert result.status == "finished"
    log = await read_log(result.run_id)
    finished_a = log.seq_of("NodeFinished", "a")
    started_b = log.seq_of("NodeStarted", "b")
    finished_b = log.seq_of("NodeFinished", "b")
    started_c = log.seq_of("NodeStarted", "c")
    assert finished_a < started_b
    assert finished_b < started_c


async def test_nested_lists_inside_components_are_sequences(db: Any, read_log: Any) -> None:
    @workflow("nested")
    def nested(ctx: Any) -> Any:
        return Parallel(
            [Task("a1", output=Count, value={"n": 1}), Task("a2", output=Count, value={"n": 2})],
            Task("b", output=Count, value={"n": 3}),
        )

    result = await run_workflow(nested, input={}, db=db)

    assert result.status == "finished"
    assert set(result.outputs) == {"a1", "a2", "b"}
    log = await read_log(result.run_id)
    assert log.seq_of("NodeFinished", "a1") < log.seq_of("NodeStarted", "a2")


@pytest.mark.parametrize("falsy", [None, False])
async def test_none_and_false_children_are_not_mounted(db: Any, read_log: Any, falsy: Any) -> None:
    @workflow("holes")
    def holes(ctx: Any) -> Any:
        return Sequence(
            falsy,
            Task("a", output=Count, value={"n": 1}),
            falsy,
            Parallel(falsy, Task("b", output=Count, value={"n": 2}), falsy),
            [falsy],
        )

    result = await run_workflow(holes, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"a": {"n": 1}, "b": {"n": 2}}
    log = await read_log(result.run_id)
    assert {e.node_id for e in log.find("NodePending")} == {"a", "b"}


async def test_empty_workflow_finishes(db: Any, read_log: Any) -> None:
    @workflow("empty")
    def empty(ctx: Any) -> Any:
        return None

    result = await run_workflow(empty, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {}
    log = await read_log(result.run_id)
    assert log.types[-1] == "RunFinished"
    assert "NodeStarted" not in log.types


async def test_a_single_task_may_be_the_root(db: Any) -> None:
    @workflow("single")
    def single(ctx: Any) -> Any:
        return Task("only", output=Count, value={"n": 7})

    result = await run_workflow(single, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"only": {"n": 7}}


# ---------------------------------------------------------------------------- callables


async def test_sync_run_executes_in_a_worker_thread(db: Any) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def work() -> dict[str, int]:
        threads.append(threading.get_ident())
        return {"n": 41}

    @workflow("sync")
    def sync_wf(ctx: Any) -> Any:
        return Task("a", output=Count, run=work)

    result = await run_workflow(sync_wf, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["a"] == {"n": 41}
    assert threads
    assert threads[0] != loop_thread


async def test_async_run_is_awaited(db: Any) -> None:
    async def work() -> dict[str, int]:
        await anyio.sleep(0)
        return {"n": 42}

    @workflow("async")
    def async_wf(ctx: Any) -> Any:
        return Task("a", output=Count, run=work)

    result = await run_workflow(async_wf, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["a"] == {"n": 42}


async def test_run_reading_the_input(db: Any) -> None:
    @workflow("echo")
    def echo(ctx: Any) -> Any:
        return Task("a", output=dict, run=lambda: {"echo": ctx.input["msg"]})

    result = await run_workflow(echo, input={"msg": "hi"}, db=db)

    assert result.outputs["a"] == {"echo": "hi"}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_run_taking_a_task_context(db: Any, is_async: bool) -> None:
    seen: list[TaskContext] = []

    def sync_work(tctx: TaskContext) -> dict[str, int]:
        seen.append(tctx)
        return {"n": tctx.attempt}

    async def async_work(tctx: TaskContext) -> dict[str, int]:
        seen.append(tctx)
        return {"n": tctx.attempt}

    @workflow("tctx")
    def wf(ctx: Any) -> Any:
        return Task("job", output=Count, run=async_work if is_async else sync_work)

    result = await run_workflow(wf, input={"k": 1}, db=db, run_id="run-tctx")

    assert result.status == "finished"
    assert result.outputs["job"] == {"n": 1}
    (tctx,) = seen
    assert isinstance(tctx, TaskContext)
    assert tctx.attempt == 1
    assert tctx.run_id == "run-tctx"
    assert tctx.node_id == "job"
    assert tctx.iteration == 0
    assert tctx.idempotency_key == "run-tctx:job:0"
    assert tctx.input == {"k": 1}


async def test_idempotency_key_is_the_same_for_every_attempt(db: Any) -> None:
    from smithers import Backoff

    seen: list[tuple[int, str]] = []

    def flaky(tctx: TaskContext) -> dict[str, int]:
        seen.append((tctx.attempt, tctx.idempotency_key))
        if tctx.attempt < 3:
            raise RuntimeError(f"attempt {tctx.attempt} failed")
        return {"n": tctx.attempt}

    @workflow("idem")
    def wf(ctx: Any) -> Any:
        return Task(
            "job",
            output=Count,
            run=flaky,
            retries=2,
            backoff=Backoff(kind="fixed", initial_ms=0),
        )

    result = await run_workflow(wf, input={}, db=db, run_id="run-idem")

    assert result.status == "finished"
    assert seen == [(1, "run-idem:job:0"), (2, "run-idem:job:0"), (3, "run-idem:job:0")]


# ---------------------------------------------------------------------------- outputs


async def test_struct_instances_and_dicts_are_both_valid_outputs(db: Any) -> None:
    @workflow("shapes")
    def shapes(ctx: Any) -> Any:
        return Parallel(
            Task("static_dict", output=Report, value={"title": "a", "tags": ["x"]}),
            Task("static_struct", output=Report, value=Report(title="b")),
            Task("compute_dict", output=Report, run=lambda: {"title": "c"}),
            Task("compute_struct", output=Report, run=lambda: Report(title="d", tags=["y", "z"])),
            Task("free_form", output=dict, run=lambda: {"any": [1, "two", None]}),
        )

    result = await run_workflow(shapes, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {
        "static_dict": {"title": "a", "tags": ["x"]},
        "static_struct": {"title": "b", "tags": []},
        "compute_dict": {"title": "c", "tags": []},
        "compute_struct": {"title": "d", "tags": ["y", "z"]},
        "free_form": {"any": [1, "two", None]},
    }


async def test_outputs_are_decoded_with_the_readers_schema(db: Any) -> None:
    got: list[Any] = []

    @workflow("typed")
    def typed(ctx: Any) -> Any:
        report = ctx.output_maybe(Report, "report")
        raw = ctx.output_maybe(dict, "report")
        got.append((report, raw))
        return [
            Task("report", output=Report, value={"title": "t", "tags": ["a"]}),
            report and Task("after", output=Count, value={"n": len(report.tags)}),
        ]

    result = await run_workflow(typed, input={}, db=db)

    assert result.outputs["after"] == {"n": 1}
    assert got[0] == (None, None)
    assert got[-1] == (Report(title="t", tags=["a"]), {"title": "t", "tags": ["a"]})


async def test_output_node_written_in_the_node_record(db: Any, read_log: Any) -> None:
    result = await run_workflow(count, input={"start": 5}, db=db)

    log = await read_log(result.run_id)
    (finished,) = log.find("NodeFinished", "second")
    assert msgspec.json.decode(finished.output) == {"n": 6}
    assert finished.attempt == 1


# ---------------------------------------------------------------------------- ctx


async def test_ctx_output_of_a_missing_node_fails_the_run(db: Any, read_log: Any) -> None:
    @workflow("strict")
    def strict(ctx: Any) -> Any:
        first = ctx.output(Count, "first")
        return [Task("first", output=Count, value={"n": first.n})]

    result = await run_workflow(strict, input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "MISSING_OUTPUT"
    assert result.error["name"] == MissingOutputError.__name__
    assert "first" in result.error["message"]
    log = await read_log(result.run_id)
    assert log.types[-1] == "RunFailed"
    (failed,) = log.find("RunFailed")
    assert failed.error.code == "MISSING_OUTPUT"
    assert "NodeStarted" not in log.types


async def test_ctx_output_returns_a_recorded_output(db: Any) -> None:
    @workflow("reader")
    def reader(ctx: Any) -> Any:
        done = ctx.output_maybe(Count, "a") is not None
        return [
            Task("a", output=Count, value={"n": 4}),
            done and Task("b", output=Count, value={"n": ctx.output(Count, "a").n * 2}),
        ]

    result = await run_workflow(reader, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["b"] == {"n": 8}


async def test_ctx_latest_and_iteration_count(db: Any) -> None:
    seen: list[tuple[Any, int, Any, int]] = []

    @workflow("latest")
    def latest_wf(ctx: Any) -> Any:
        latest = ctx.latest(Count, "a")
        seen.append(
            (latest, ctx.iteration_count(Count, "a"), ctx.latest(Count, "nope"), ctx.iteration)
        )
        return [
            Task("a", output=Count, value={"n": 3}),
            latest and Task("b", output=Count, value={"n": latest.n * 2}),
        ]

    result = await run_workflow(latest_wf, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["b"] == {"n": 6}
    assert seen[0] == (None, 0, None, 0)
    assert seen[-1] == (Count(n=3), 1, None, 0)


async def test_ctx_exposes_the_run_id(db: Any) -> None:
    seen: list[str] = []

    @workflow("rid")
    def rid(ctx: Any) -> Any:
        seen.append(ctx.run_id)
        return Task("a", output=Count, value={"n": 1})

    result = await run_workflow(rid, input={}, db=db, run_id="run-abc")

    assert result.run_id == "run-abc"
    assert set(seen) == {"run-abc"}


async def test_builder_exception_fails_the_run_with_its_message(db: Any) -> None:
    @workflow("broken")
    def broken(ctx: Any) -> Any:
        raise RuntimeError("builder exploded")

    result = await run_workflow(broken, input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["name"] == "RuntimeError"
    assert result.error["message"] == "builder exploded"


# ---------------------------------------------------------------------------- resources


async def test_a_run_leaves_no_unclosed_resources(db: Any) -> None:
    # pytest runs with filterwarnings=error: a ResourceWarning from a stream or store the
    # engine forgot to close surfaces later, in whichever test the garbage collector hits.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = await run_workflow(count, input={"start": 1}, db=db)
        gc.collect()

    assert result.status == "finished"
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


async def test_a_sync_callable_returning_an_awaitable_is_awaited(db: Any) -> None:
    async def work() -> dict[str, int]:
        await anyio.sleep(0)
        return {"n": 3}

    class Agentish:
        async def __call__(self, tctx: TaskContext) -> dict[str, int]:
            return {"n": tctx.attempt + 10}

    @workflow("awaitables")
    def awaitables(ctx: Any) -> Any:
        return Parallel(
            Task("lam", output=Count, run=lambda: work()),
            Task("obj", output=Count, run=Agentish()),
        )

    result = await run_workflow(awaitables, input={}, db=db)

    assert result.status == "finished", result.error
    assert result.outputs == {"lam": {"n": 3}, "obj": {"n": 11}}
