"""Error handling: failures, retries, timeouts, continue_on_fail, skip_if, Branch, bad trees.

Semantics from Smithers' error-handling reference (seed 002) and DESIGN §6, §12.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import msgspec
import pytest
from smithers.engine import InvalidInputError, TaskContext
from smithers.eventstore import MemoryEventStore, RunAlreadyExistsError
from smithers.projections import fold_stored

from smithers import (
    Backoff,
    Branch,
    Parallel,
    Sequence,
    SmithersError,
    Task,
    run_workflow,
    workflow,
)

NO_WAIT = Backoff(kind="fixed", initial_ms=0)


class Count(msgspec.Struct):
    n: int


class Risky(msgspec.Struct):
    ok: bool
    message: str


class Summary(msgspec.Struct):
    summary: str


def one_task(task: Task) -> Any:
    @workflow("one")
    def one(ctx: Any) -> Any:
        return task

    return one


def failing_until(success_attempt: int | None, *, error: Exception | None = None) -> Any:
    """A `run` callable failing every attempt before `success_attempt` (None: always)."""

    def run(tctx: TaskContext) -> dict[str, int]:
        if success_attempt is None or tctx.attempt < success_attempt:
            raise error or RuntimeError(f"boom on attempt {tctx.attempt}")
        return {"n": tctx.attempt}

    return run


def node_state(log: Any, run_id: str, node_id: str) -> str:
    rec = fold_stored(run_id, log.rows).node(node_id)
    assert rec is not None, f"node {node_id} not in the log"
    return rec.state


# ---------------------------------------------------------------------------- failures


async def test_a_raising_compute_task_fails_the_run(db: Any, read_log: Any) -> None:
    def explode() -> dict[str, int]:
        raise ValueError("disk on fire")

    @workflow("boom")
    def boom(ctx: Any) -> Any:
        return [Task("a", output=Count, run=explode), Task("b", output=Count, value={"n": 1})]

    result = await run_workflow(boom, input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["message"] == "disk on fire"
    assert result.error["name"] == "ValueError"
    log = await read_log(result.run_id)
    (failed,) = log.find("NodeFailed", "a")
    assert failed.attempt == 1
    assert failed.error.name == "ValueError"
    assert failed.error.message == "disk on fire"
    assert failed.error.code is None
    assert log.types[-1] == "RunFailed"
    assert log.find("RunFailed")[0].error.message == "disk on fire"
    assert log.find("NodeStarted", "b") == []
    assert "RunFinished" not in log.types


async def test_an_async_task_raising_fails_the_run(db: Any) -> None:
    async def explode() -> dict[str, int]:
        await anyio.sleep(0)
        raise KeyError("missing")

    result = await run_workflow(one_task(Task("a", output=Count, run=explode)), input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["name"] == "KeyError"


async def test_a_custom_code_on_an_exception_is_recorded(db: Any, read_log: Any) -> None:
    class QuotaError(Exception):
        code = "QUOTA_EXCEEDED"

    def explode() -> dict[str, int]:
        raise QuotaError("over quota")

    result = await run_workflow(one_task(Task("a", output=Count, run=explode)), input={}, db=db)

    assert result.error is not None
    assert result.error["code"] == "QUOTA_EXCEEDED"
    log = await read_log(result.run_id)
    assert log.find("NodeFailed", "a")[0].error.code == "QUOTA_EXCEEDED"


async def test_nothing_new_starts_after_a_failure(db: Any, read_log: Any) -> None:
    def explode() -> dict[str, int]:
        raise RuntimeError("first fails")

    @workflow("stop")
    def stop(ctx: Any) -> Any:
        return Parallel(
            Task("a", output=Count, run=explode),
            Task("b", output=Count, run=lambda: {"n": 2}),
            Task("c", output=Count, run=lambda: {"n": 3}),
        )

    result = await run_workflow(stop, input={}, db=db, max_concurrency=1)

    assert result.status == "failed"
    log = await read_log(result.run_id)
    assert [e.node_id for e in log.find("NodeStarted")] == ["a"]


async def test_running_siblings_finish_before_the_run_fails(db: Any, read_log: Any) -> None:
    release = anyio.Event()

    def on_progress(event: Any) -> None:
        if type(event).__name__ == "NodeFailed":
            release.set()

    async def slow() -> dict[str, int]:
        with anyio.fail_after(5):
            await release.wait()
        return {"n": 1}

    def explode() -> dict[str, int]:
        raise RuntimeError("fails while slow runs")

    @workflow("siblings")
    def siblings(ctx: Any) -> Any:
        return [
            Parallel(Task("slow", output=Count, run=slow), Task("bad", output=Count, run=explode)),
            Task("after", output=Count, value={"n": 9}),
        ]

    result = await run_workflow(siblings, input={}, db=db, on_progress=on_progress)

    assert result.status == "failed"
    assert result.outputs == {"slow": {"n": 1}}
    log = await read_log(result.run_id)
    assert log.seq_of("NodeFinished", "slow") < log.seq_of("RunFailed")
    assert log.find("NodeStarted", "after") == []


# ---------------------------------------------------------------------------- retries


async def test_retries_make_extra_attempts_then_fail(db: Any, read_log: Any) -> None:
    task = Task("a", output=Count, run=failing_until(None), retries=2, backoff=NO_WAIT)

    result = await run_workflow(one_task(task), input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["message"] == "boom on attempt 3"
    log = await read_log(result.run_id)
    assert [e.attempt for e in log.find("NodeStarted", "a")] == [1, 2, 3]
    assert [e.attempt for e in log.find("NodeFailed", "a")] == [1, 2, 3]
    assert [e.attempt for e in log.find("NodeRetrying", "a")] == [2, 3]
    assert log.node_types("a") == [
        "NodePending",
        "NodeStarted",
        "NodeFailed",
        "NodeRetrying",
        "NodeStarted",
        "NodeFailed",
        "NodeRetrying",
        "NodeStarted",
        "NodeFailed",
    ]
    for attempt in (2, 3):
        retrying = log.seq_of("NodeRetrying", "a", attempt=attempt)
        assert log.seq_of("NodeFailed", "a", attempt=attempt - 1) < retrying
        assert retrying < log.seq_of("NodeStarted", "a", attempt=attempt)
    assert node_state(log, result.run_id, "a") == "failed"


async def test_retries_succeeding_on_the_third_attempt_finish(db: Any, read_log: Any) -> None:
    task = Task("a", output=Count, run=failing_until(3), retries=2, backoff=NO_WAIT)

    result = await run_workflow(one_task(task), input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"a": {"n": 3}}
    log = await read_log(result.run_id)
    assert [e.attempt for e in log.find("NodeFailed", "a")] == [1, 2]
    assert [e.attempt for e in log.find("NodeFinished", "a")] == [3]
    rec = fold_stored(result.run_id, log.rows).node("a")
    assert rec is not None
    assert [a.state for a in rec.attempts] == ["failed", "failed", "finished"]


async def test_no_retries_by_default_for_compute_tasks(db: Any, read_log: Any) -> None:
    result = await run_workflow(
        one_task(Task("a", output=Count, run=failing_until(2))), input={}, db=db
    )

    assert result.status == "failed"
    log = await read_log(result.run_id)
    assert len(log.find("NodeStarted", "a")) == 1
    assert log.find("NodeRetrying") == []


async def test_retries_wait_out_a_non_zero_backoff(db: Any, read_log: Any) -> None:
    task = Task(
        "a",
        output=Count,
        run=failing_until(3),
        retries=2,
        backoff=Backoff(kind="fixed", initial_ms=20),
    )

    result = await run_workflow(one_task(task), input={}, db=db)

    assert result.status == "finished"
    log = await read_log(result.run_id)
    retrying = log.find("NodeRetrying", "a")
    assert [(e.attempt, e.delay_ms) for e in retrying] == [(2, 20), (3, 20)]
    for attempt in (2, 3):
        (failed,) = log.find("NodeFailed", "a", attempt=attempt - 1)
        (started,) = log.find("NodeStarted", "a", attempt=attempt)
        assert started.timestamp_ms - failed.timestamp_ms >= 15


async def test_async_retries_with_backoff(db: Any) -> None:
    async def flaky(tctx: TaskContext) -> dict[str, int]:
        await anyio.sleep(0)
        if tctx.attempt == 1:
            raise ConnectionError("flaky network")
        return {"n": 5}

    task = Task(
        "a", output=Count, run=flaky, retries=1, backoff=Backoff(kind="linear", initial_ms=5)
    )

    result = await run_workflow(one_task(task), input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["a"] == {"n": 5}


async def test_exponential_backoff_delays_are_announced(db: Any, read_log: Any) -> None:
    backoff = Backoff(kind="exponential", initial_ms=1, factor=3.0, max_ms=5)
    task = Task("a", output=Count, run=failing_until(None), retries=3, backoff=backoff)

    result = await run_workflow(one_task(task), input={}, db=db)

    assert result.status == "failed"
    log = await read_log(result.run_id)
    assert [e.delay_ms for e in log.find("NodeRetrying", "a")] == [1, 3, 5]


@pytest.mark.parametrize(
    ("backoff", "delays"),
    [
        (Backoff(kind="fixed", initial_ms=100), [100, 100, 100]),
        (Backoff(kind="linear", initial_ms=100), [100, 200, 300]),
        (Backoff(kind="exponential", initial_ms=100), [100, 200, 400]),
        (Backoff(kind="exponential", initial_ms=100, factor=10, max_ms=5_000), [100, 1000, 5000]),
        (Backoff(), [1000, 2000, 4000]),
    ],
)
def test_backoff_delays(backoff: Backoff, delays: list[int]) -> None:
    assert [backoff.delay_ms(n) for n in (1, 2, 3)] == delays


async def test_non_retryable_errors_are_not_retried(db: Any, read_log: Any) -> None:
    error = SmithersError("bad configuration", code="INVALID_INPUT")
    task = Task("a", output=Count, run=failing_until(None, error=error), retries=3, backoff=NO_WAIT)

    result = await run_workflow(one_task(task), input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_INPUT"
    log = await read_log(result.run_id)
    assert len(log.find("NodeStarted", "a")) == 1
    assert log.find("NodeFailed", "a")[0].error.retryable is False


async def test_a_pending_retry_does_not_delay_a_failing_run(db: Any, read_log: Any) -> None:
    # "bad" (static, invalid) fails the run in the first tick; "flaky" then fails its first
    # attempt. No new attempt may start once the run is failing, so waiting out flaky's
    # 30 s backoff only delays the RunFailed (DESIGN §6: it fails once running tasks end).
    async def flaky() -> dict[str, int]:
        await anyio.sleep(0)
        raise RuntimeError("flaky")

    @workflow("stuck")
    def stuck(ctx: Any) -> Any:
        return Parallel(
            Task(
                "flaky",
                output=Count,
                run=flaky,
                retries=1,
                backoff=Backoff(kind="fixed", initial_ms=30_000),
            ),
            Task("bad", output=Count, value={"n": "not a number"}),
        )

    with anyio.move_on_after(2) as scope:
        result = await run_workflow(stuck, input={}, db=db)

    assert not scope.cancelled_caught, "the failing run waited for a retry that cannot start"
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_OUTPUT"


async def test_no_retry_is_announced_once_the_run_is_failing(db: Any, read_log: Any) -> None:
    # NodeRetrying "fires before the next attempt starts" (seed 003): when the run is
    # already failing no next attempt starts, so the node must not be left pending.
    async def flaky() -> dict[str, int]:
        await anyio.sleep(0)
        raise RuntimeError("flaky")

    @workflow("announced")
    def announced(ctx: Any) -> Any:
        return Parallel(
            Task("flaky", output=Count, run=flaky, retries=1, backoff=NO_WAIT),
            Task("bad", output=Count, value={"n": "not a number"}),
        )

    with anyio.fail_after(5):
        result = await run_workflow(announced, input={}, db=db)

    assert result.status == "failed"
    log = await read_log(result.run_id)
    for retrying in log.find("NodeRetrying", "flaky"):
        assert log.find("NodeStarted", "flaky", attempt=retrying.attempt), (
            f"NodeRetrying announced attempt {retrying.attempt}, which never started"
        )
    assert node_state(log, result.run_id, "flaky") != "pending"


# ---------------------------------------------------------------------------- timeouts


async def test_async_task_over_its_timeout_fails_with_task_timeout(db: Any, read_log: Any) -> None:
    async def hang() -> dict[str, int]:
        await anyio.sleep(10)
        return {"n": 1}

    started = time.monotonic()
    result = await run_workflow(
        one_task(Task("a", output=Count, run=hang, timeout_ms=50)), input={}, db=db
    )

    assert time.monotonic() - started < 5
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "TASK_TIMEOUT"
    assert result.error["details"] == {"nodeId": "a", "attempt": 1, "timeoutMs": 50}
    log = await read_log(result.run_id)
    (failed,) = log.find("NodeFailed", "a")
    assert failed.error.code == "TASK_TIMEOUT"
    assert failed.error.retryable is True


async def test_sync_task_over_its_timeout_fails_with_task_timeout(db: Any) -> None:
    def hang() -> dict[str, int]:
        time.sleep(0.3)
        return {"n": 1}

    started = time.monotonic()
    result = await run_workflow(
        one_task(Task("a", output=Count, run=hang, timeout_ms=30)), input={}, db=db
    )

    # The worker thread is abandoned: the run does not wait for the sleep to end.
    assert time.monotonic() - started < 0.25
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "TASK_TIMEOUT"


async def test_a_timed_out_attempt_is_retried(db: Any, read_log: Any) -> None:
    async def slow_first(tctx: TaskContext) -> dict[str, int]:
        if tctx.attempt == 1:
            await anyio.sleep(10)
        return {"n": tctx.attempt}

    task = Task("a", output=Count, run=slow_first, timeout_ms=50, retries=1, backoff=NO_WAIT)

    result = await run_workflow(one_task(task), input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["a"] == {"n": 2}
    log = await read_log(result.run_id)
    assert [e.error.code for e in log.find("NodeFailed", "a")] == ["TASK_TIMEOUT"]


async def test_a_task_within_its_timeout_finishes(db: Any) -> None:
    async def quick() -> dict[str, int]:
        await anyio.sleep(0)
        return {"n": 1}

    result = await run_workflow(
        one_task(Task("a", output=Count, run=quick, timeout_ms=5_000)), input={}, db=db
    )

    assert result.status == "finished"


# ---------------------------------------------------------------------------- outputs


@pytest.mark.parametrize(
    "bad",
    [{"n": "seven"}, {"m": 1}, [1, 2], "text", None, {"n": 1.5}],
    ids=["wrong-type", "missing-field", "list", "str", "none", "float"],
)
async def test_output_not_matching_the_schema_is_invalid_output(
    db: Any, read_log: Any, bad: Any
) -> None:
    result = await run_workflow(one_task(Task("a", output=Count, run=lambda: bad)), input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_OUTPUT"
    assert result.error["details"]["nodeId"] == "a"
    assert result.error["details"]["schema"] == "Count"
    log = await read_log(result.run_id)
    assert log.find("NodeFailed", "a")[0].error.code == "INVALID_OUTPUT"
    assert log.find("NodeFinished") == []


async def test_static_value_not_matching_the_schema_is_invalid_output(db: Any) -> None:
    result = await run_workflow(
        one_task(Task("a", output=Count, value={"n": "x"})), input={}, db=db
    )

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_OUTPUT"


async def test_unencodable_output_is_invalid_output(db: Any) -> None:
    result = await run_workflow(
        one_task(Task("a", output=dict, run=lambda: {"x": object()})), input={}, db=db
    )

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "INVALID_OUTPUT"


async def test_invalid_output_is_retried(db: Any, read_log: Any) -> None:
    def shaky(tctx: TaskContext) -> dict[str, Any]:
        return {"n": "wrong"} if tctx.attempt == 1 else {"n": 2}

    task = Task("a", output=Count, run=shaky, retries=1, backoff=NO_WAIT)

    result = await run_workflow(one_task(task), input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["a"] == {"n": 2}
    log = await read_log(result.run_id)
    assert [e.error.code for e in log.find("NodeFailed", "a")] == ["INVALID_OUTPUT"]
    assert [e.attempt for e in log.find("NodeRetrying", "a")] == [2]


# ---------------------------------------------------------------------------- continue_on_fail


async def test_continue_on_fail_lets_later_tasks_run(db: Any, read_log: Any) -> None:
    @workflow("optional-lint")
    def optional_lint(ctx: Any) -> Any:
        return Sequence(
            Task(
                "lint",
                output=Count,
                run=failing_until(None),
                retries=1,
                backoff=NO_WAIT,
                continue_on_fail=True,
            ),
            Task("report", output=Count, value={"n": 1}),
        )

    result = await run_workflow(optional_lint, input={}, db=db)

    assert result.status == "finished"
    assert result.error is None
    assert result.outputs == {"report": {"n": 1}}
    log = await read_log(result.run_id)
    assert len(log.find("NodeStarted", "lint")) == 2  # its retries were used first
    assert log.seq_of("NodeFailed", "lint", attempt=2) < log.seq_of("NodeStarted", "report")
    assert node_state(log, result.run_id, "lint") == "failed"
    assert node_state(log, result.run_id, "report") == "finished"
    assert log.types[-1] == "RunFinished"


async def test_continue_on_fail_in_a_parallel(db: Any, read_log: Any) -> None:
    def explode() -> dict[str, int]:
        raise RuntimeError("optional")

    @workflow("par")
    def par(ctx: Any) -> Any:
        return [
            Parallel(
                Task("opt", output=Count, run=explode, continue_on_fail=True),
                Task("ok", output=Count, run=lambda: {"n": 1}),
            ),
            Task("join", output=Count, value={"n": 2}),
        ]

    result = await run_workflow(par, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"ok": {"n": 1}, "join": {"n": 2}}
    log = await read_log(result.run_id)
    assert node_state(log, result.run_id, "opt") == "failed"


async def test_output_maybe_of_a_failed_task_is_none(db: Any) -> None:
    @workflow("fallback")
    def fallback(ctx: Any) -> Any:
        lint = ctx.output_maybe(Count, "lint")
        return [
            Task("lint", output=Count, run=failing_until(None), continue_on_fail=True),
            Task("report", output=dict, value={"lint": None if lint is None else lint.n}),
        ]

    result = await run_workflow(fallback, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["report"] == {"lint": None}


# ---------------------------------------------------------------------------- skip_if


async def test_skip_if_skips_without_starting(db: Any, read_log: Any) -> None:
    @workflow("quick")
    def quick(ctx: Any) -> Any:
        return Sequence(
            Task("analyze", output=Count, value={"n": 1}),
            Task(
                "deep",
                output=Count,
                run=failing_until(None),
                skip_if=ctx.input["mode"] == "quick",
            ),
            Task("final", output=Count, value={"n": 3}),
        )

    result = await run_workflow(quick, input={"mode": "quick"}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"analyze": {"n": 1}, "final": {"n": 3}}
    log = await read_log(result.run_id)
    assert log.node_types("deep") == ["NodeSkipped"]
    assert log.find("NodeSkipped", "deep")[0].reason == "skip_if"
    assert node_state(log, result.run_id, "deep") == "skipped"
    assert log.seq_of("NodeSkipped", "deep") < log.seq_of("NodeStarted", "final")


async def test_skip_if_false_runs_the_task(db: Any) -> None:
    @workflow("thorough")
    def thorough(ctx: Any) -> Any:
        return Task("deep", output=Count, value={"n": 2}, skip_if=ctx.input["mode"] == "quick")

    result = await run_workflow(thorough, input={"mode": "full"}, db=db)

    assert result.outputs == {"deep": {"n": 2}}


async def test_depends_on_a_skipped_task_continues(db: Any, read_log: Any) -> None:
    @workflow("skipdep")
    def skipdep(ctx: Any) -> Any:
        return Parallel(
            Task("after", output=Count, value={"n": 1}, depends_on=("skipped",)),
            Task("skipped", output=Count, value={"n": 0}, skip_if=True),
        )

    result = await run_workflow(skipdep, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"after": {"n": 1}}


async def test_once_skipped_a_task_stays_skipped(db: Any, read_log: Any) -> None:
    @workflow("sticky")
    def sticky(ctx: Any) -> Any:
        a = ctx.output_maybe(Count, "a")
        return Parallel(
            Task("a", output=Count, run=lambda: {"n": 1}),
            # Skipped at the first render (a not done yet); false at the next one.
            Task("b", output=Count, value={"n": 2}, skip_if=a is None),
        )

    result = await run_workflow(sticky, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"a": {"n": 1}}
    log = await read_log(result.run_id)
    assert log.node_types("b") == ["NodeSkipped"]


# ---------------------------------------------------------------------------- Branch


def error_recovery(risky: Any, *, continue_on_fail: bool = False) -> Any:
    """The seed's error-recovery workflow: a risky task, then a Branch on its output."""

    @workflow("error-recovery")
    def wf(ctx: Any) -> Any:
        done = ctx.output_maybe(Risky, "risky")
        ok = done.ok if done is not None else False
        return Sequence(
            Task(
                "risky",
                output=Risky,
                run=risky,
                retries=2,
                timeout_ms=30_000,
                backoff=NO_WAIT,
                continue_on_fail=continue_on_fail,
            ),
            Branch(
                ok,
                then=Task(
                    "summary",
                    output=Summary,
                    value={"summary": f"Success: {done.message if done else ''}"},
                ),
                else_=Task(
                    "summary",
                    output=Summary,
                    value={"summary": "Fallback: operation did not succeed"},
                ),
            ),
        )

    return wf


async def test_branch_takes_then_when_the_condition_holds(db: Any, read_log: Any) -> None:
    wf = error_recovery(lambda: {"ok": True, "message": "all good"})

    result = await run_workflow(wf, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["summary"] == {"summary": "Success: all good"}
    log = await read_log(result.run_id)
    assert log.node_types("summary") == ["NodePending", "NodeStarted", "NodeFinished"]
    assert log.seq_of("NodeFinished", "risky") < log.seq_of("NodeStarted", "summary")
    hashes = [f.xml_hash for f in log.find("FrameCommitted")]
    assert len(set(hashes)) == 2  # the branch flipped once


async def test_branch_takes_else_when_the_condition_fails(db: Any) -> None:
    wf = error_recovery(lambda: {"ok": False, "message": "nope"})

    result = await run_workflow(wf, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["summary"] == {"summary": "Fallback: operation did not succeed"}


async def test_branch_after_retries_succeed(db: Any, read_log: Any) -> None:
    def risky(tctx: TaskContext) -> dict[str, Any]:
        if tctx.attempt < 3:
            raise RuntimeError("transient")
        return {"ok": True, "message": f"attempt {tctx.attempt}"}

    result = await run_workflow(error_recovery(risky), input={}, db=db)

    assert result.status == "finished"
    assert result.outputs["summary"] == {"summary": "Success: attempt 3"}


async def test_branch_falls_back_when_a_continue_on_fail_task_fails(db: Any, read_log: Any) -> None:
    wf = error_recovery(failing_until(None), continue_on_fail=True)

    result = await run_workflow(wf, input={}, db=db)

    assert result.status == "finished"
    assert result.outputs == {"summary": {"summary": "Fallback: operation did not succeed"}}
    log = await read_log(result.run_id)
    assert len(log.find("NodeFailed", "risky")) == 3


async def test_branch_without_fallback_stops_on_failure(db: Any, read_log: Any) -> None:
    result = await run_workflow(error_recovery(failing_until(None)), input={}, db=db)

    assert result.status == "failed"
    log = await read_log(result.run_id)
    assert log.find("NodeStarted", "summary") == []


async def test_branch_with_a_missing_side_mounts_nothing(db: Any) -> None:
    @workflow("halfbranch")
    def halfbranch(ctx: Any) -> Any:
        return [
            Branch(ctx.input["go"], then=Task("yes", output=Count, value={"n": 1})),
            Branch(ctx.input["go"], else_=[Task("no1", output=Count, value={"n": 2})]),
        ]

    go = await run_workflow(halfbranch, input={"go": True}, db=db)
    stop = await run_workflow(halfbranch, input={"go": False}, db=db)

    assert go.outputs == {"yes": {"n": 1}}
    assert stop.outputs == {"no1": {"n": 2}}


# ---------------------------------------------------------------------------- bad trees


async def test_duplicate_ids_fail_the_run(db: Any, read_log: Any) -> None:
    @workflow("dup")
    def dup(ctx: Any) -> Any:
        return Parallel(
            Task("same", output=Count, value={"n": 1}),
            Sequence(Task("same", output=Count, value={"n": 2})),
        )

    result = await run_workflow(dup, input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "DUPLICATE_ID"
    assert result.error["details"] == {"kind": "task", "id": "same"}
    log = await read_log(result.run_id)
    assert "NodeStarted" not in log.types
    assert log.types[-1] == "RunFailed"


async def test_a_duplicate_mounted_by_a_later_render_fails_the_run(db: Any) -> None:
    @workflow("latedup")
    def latedup(ctx: Any) -> Any:
        a = ctx.output_maybe(Count, "a")
        return [Task("a", output=Count, value={"n": 1}), a and Task("a", output=Count, value={})]

    result = await run_workflow(latedup, input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "DUPLICATE_ID"
    assert result.outputs == {"a": {"n": 1}}


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: Task("", output=Count, value={"n": 1}), "TASK_ID_REQUIRED"),
        (lambda: Task(None, output=Count, value={"n": 1}), "TASK_ID_REQUIRED"),  # type: ignore[arg-type]
        (lambda: Task("x", value={"n": 1}), "TASK_MISSING_OUTPUT"),
        (lambda: Task("x", output=Count), "INVALID_INPUT"),
        (lambda: Task("x", output=Count, value={}, run=dict), "INVALID_INPUT"),
        (lambda: "not a component", "INVALID_INPUT"),
    ],
    ids=["empty-id", "none-id", "no-output", "no-body", "two-bodies", "not-a-component"],
)
async def test_invalid_trees_fail_the_run_with_their_code(
    db: Any, read_log: Any, make: Any, code: str
) -> None:
    @workflow("invalid")
    def invalid(ctx: Any) -> Any:
        return [Task("ok", output=Count, value={"n": 1}), make()]

    result = await run_workflow(invalid, input={}, db=db)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == code
    log = await read_log(result.run_id)
    assert log.types[-1] == "RunFailed"
    assert log.find("RunFailed")[0].error.code == code
    assert "NodeStarted" not in log.types


# ---------------------------------------------------------------------------- input


@pytest.mark.parametrize("bad", [[1, 2], "text", 5, 1.5, True], ids=repr)
async def test_non_object_input_is_refused_before_anything_is_recorded(db: Any, bad: Any) -> None:
    @workflow("needs-object")
    def needs_object(ctx: Any) -> Any:
        return Task("a", output=Count, value={"n": 1})

    with pytest.raises(InvalidInputError) as info:
        await run_workflow(needs_object, input=bad, db=db)

    assert info.value.code == "INVALID_INPUT"
    assert not db.exists()


@pytest.mark.parametrize("cap", [0, -1])
async def test_max_concurrency_below_one_is_refused(db: Any, cap: int) -> None:
    with pytest.raises(InvalidInputError):
        await run_workflow(
            one_task(Task("a", output=Count, value={"n": 1})), db=db, max_concurrency=cap
        )

    assert not db.exists()


async def test_unserialisable_input_is_refused(db: Any) -> None:
    store = MemoryEventStore()

    @workflow("needs-json")
    def needs_json(ctx: Any) -> Any:
        return Task("a", output=Count, value={"n": 1})

    with pytest.raises(InvalidInputError):
        await run_workflow(needs_json, input={"x": object()}, store=store)

    assert await store.list_runs() == []


class Params(msgspec.Struct):
    name: str
    times: int = 1


@workflow(name="typed-input", input=Params)
def typed_input(ctx: Any) -> Any:
    assert isinstance(ctx.input, Params)
    return Task("greet", output=dict, value={"text": ctx.input.name * ctx.input.times})


async def test_typed_input_is_decoded_into_the_struct(db: Any, read_log: Any) -> None:
    result = await run_workflow(typed_input, input={"name": "ab", "times": 2}, db=db)

    assert result.status == "finished"
    assert result.outputs["greet"] == {"text": "abab"}
    log = await read_log(result.run_id)
    assert log.events[0].workflow_name == "typed-input"
    assert msgspec.json.decode(log.events[0].input) == {"name": "ab", "times": 2}


async def test_typed_input_accepts_an_instance(db: Any, read_log: Any) -> None:
    result = await run_workflow(typed_input, input=Params(name="x"), db=db)

    assert result.outputs["greet"] == {"text": "x"}
    log = await read_log(result.run_id)
    assert msgspec.json.decode(log.events[0].input) == {"name": "x", "times": 1}


@pytest.mark.parametrize(
    "bad",
    [{}, {"name": 3}, {"name": "a", "times": "two"}, [1]],
    ids=["missing", "type", "field", "list"],
)
async def test_typed_input_is_validated(db: Any, bad: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        await run_workflow(typed_input, input=bad, db=db)

    assert info.value.code == "INVALID_INPUT"
    assert not db.exists()


# ---------------------------------------------------------------------------- run ids


async def test_reusing_a_run_id_is_run_already_exists(db: Any, read_log: Any) -> None:
    @workflow("once")
    def once(ctx: Any) -> Any:
        return Task("a", output=Count, value={"n": 1})

    first = await run_workflow(once, input={}, db=db, run_id="run-same")
    before = await read_log("run-same")

    with pytest.raises(RunAlreadyExistsError) as info:
        await run_workflow(once, input={}, db=db, run_id="run-same")

    assert first.status == "finished"
    assert info.value.code == "RUN_ALREADY_EXISTS"
    after = await read_log("run-same")
    assert [r.data for r in after.rows] == [r.data for r in before.rows]


async def test_reusing_a_run_id_on_a_memory_store(read_log: Any) -> None:
    store = MemoryEventStore()

    @workflow("once")
    def once(ctx: Any) -> Any:
        return Task("a", output=Count, value={"n": 1})

    await run_workflow(once, input={}, store=store, run_id="run-same")
    with pytest.raises(RunAlreadyExistsError):
        await run_workflow(once, input={}, store=store, run_id="run-same")
