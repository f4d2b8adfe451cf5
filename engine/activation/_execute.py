"""Execute one attempt of a task: the only place user task code runs.

An attempt returns an `Outcome` (validated output JSON, or an `ErrorInfo`); it never
raises for a task failure. Cancellation is never swallowed: it propagates to the engine,
which records NodeCancelled.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import MAX_JSON_DEPTH, JsonValueError, encode_json_strict
from smithers.eventstore.errors import error_info_of
from smithers.eventstore.events import NULL_RAW, ErrorInfo

from ..errors import InvalidOutputError, TaskOutputTooLargeError, TaskTimeoutError
from ._tracebacks import raised_at, trimmed_stack

if TYPE_CHECKING:
    from ..agents import AgentPlan
    from ..authoring import Task, TaskContext

__all__ = (
    "DEFAULT_MAX_TASK_OUTPUT_BYTES",
    "Outcome",
    "error_info",
    "execute_attempt",
    "retry_delay_ms",
    "validate_output",
)

DEFAULT_MAX_TASK_OUTPUT_BYTES = 64 * 1024 * 1024
"""Default cap on one task output's JSON, in bytes (64 MiB): far under SQLite's 1 GB
blob limit, so an oversized output fails its attempt with ``TASK_OUTPUT_TOO_LARGE``
instead of failing the database write. Per run: ``run_workflow(max_task_output_bytes=)``,
``smithers up --max-task-output-bytes``."""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """Result of one attempt: `output` JSON when `error` is None."""

    output: msgspec.Raw = NULL_RAW
    error: ErrorInfo | None = None


_MAX_CAUSES = 5
"""Deepest chain of ``raise ... from`` causes recorded with an error."""


def error_info(err: BaseException, *, _depth: int = 0) -> ErrorInfo:
    """Turn an exception into an `ErrorInfo` (failure as data, never pickled).

    Records the exception's name, message, code and details, its traceback with the
    engine's own frames trimmed (`trimmed_stack`), the file:line in user code where it
    was raised (`raised_at`), and its ``__cause__`` (up to 5 deep; causes carry no
    stack of their own, the top error's stack shows the chain). No I/O beyond reading
    source lines for the traceback.

    Args:
        err: The exception a task's callable, a builder or the engine raised.

    Returns:
        The error as data: ``code`` None and ``retryable`` True for a plain exception.
    """
    where = raised_at(err)
    cause = err.__cause__
    common: dict[str, Any] = {
        "stack": trimmed_stack(err) if _depth == 0 else None,
        "file": where.file if where else None,
        "line": where.line if where else None,
        "function": where.function if where else None,
        "cause": (
            error_info(cause, _depth=_depth + 1)
            if cause is not None and _depth < _MAX_CAUSES
            else None
        ),
    }
    return msgspec.structs.replace(error_info_of(err), **common)


def validate_output(task: Task, value: Any) -> msgspec.Raw:
    """Validate `value` against the task's output schema and encode it as JSON.

    The JSON is strict (`encode_json_strict`): a lone surrogate in a string, NaN or
    infinity, or a tree nested deeper than `MAX_JSON_DEPTH` (200) is refused, not
    mangled.

    Raises:
        InvalidOutputError: if `value` does not fit the schema or is not JSON-encodable
            (details ``maxDepth`` too when it is nested too deep).
    """
    schema = task.output
    try:
        if not (isinstance(schema, type) and isinstance(value, schema)):
            value = msgspec.convert(value, type=schema, from_attributes=True)
        return msgspec.Raw(encode_json_strict(value))
    except JsonValueError as e:
        err = InvalidOutputError(task.id, task.output_name, e.reason)
        if e.max_depth is not None:
            err.details["maxDepth"] = e.max_depth
        raise err from e
    except RecursionError as e:  # msgspec.convert of a tree too deep for the stack
        err = InvalidOutputError(
            task.id, task.output_name, f"it is nested deeper than {MAX_JSON_DEPTH} levels"
        )
        err.details["maxDepth"] = MAX_JSON_DEPTH
        raise err from e
    except (msgspec.ValidationError, msgspec.EncodeError, TypeError) as e:
        raise InvalidOutputError(task.id, task.output_name, str(e)) from e


def _sized(raw: msgspec.Raw, task: Task, tctx: TaskContext, max_bytes: int) -> Outcome:
    """`raw` as the outcome, unless it is over `max_bytes`: then the attempt's error."""
    if len(raw) > max_bytes:
        raise TaskOutputTooLargeError(task.id, tctx.iteration, tctx.attempt, len(raw), max_bytes)
    return Outcome(output=raw)


async def _call(task: Task, tctx: TaskContext, plan: AgentPlan | None) -> Any:
    if task.kind == "agent":
        from ..agents import AgentPlan, run_agent_task

        return await run_agent_task(task, tctx, plan or AgentPlan())
    fn = task.run
    assert fn is not None
    args = (tctx,) if task.run_arity else ()
    if inspect.iscoroutinefunction(fn):
        result = await fn(*args)
    else:
        result = await anyio.to_thread.run_sync(lambda: fn(*args), abandon_on_cancel=True)
    if inspect.isawaitable(result):
        result = await result
    return result


async def execute_attempt(
    task: Task,
    tctx: TaskContext,
    plan: AgentPlan | None = None,
    *,
    max_output_bytes: int = DEFAULT_MAX_TASK_OUTPUT_BYTES,
) -> Outcome:
    """Run one attempt of `task` and validate its output.

    Awaits the task's own work. Sync callables run in a worker thread (abandoned on
    timeout or cancellation, since a thread cannot be interrupted). An agent task asks
    its agent (`run_agent_task`, with `plan` from the run's state).

    Args:
        task: The task.
        tctx: The attempt's context.
        plan: For an agent task, what the run's state says about it.
        max_output_bytes: Cap on the output's JSON, in bytes (the run's
            ``max_task_output_bytes``); a bigger output fails the attempt with
            ``TASK_OUTPUT_TOO_LARGE`` (not retryable) and is never recorded.

    Returns:
        An `Outcome` with the output JSON, or with the error (``TASK_TIMEOUT``,
        ``INVALID_OUTPUT``, ``TASK_OUTPUT_TOO_LARGE``, or what the callable raised).
    """
    try:
        if task.kind == "static":
            return _sized(validate_output(task, task.value), task, tctx, max_output_bytes)
        if task.timeout_ms is not None:
            with anyio.move_on_after(task.timeout_ms / 1000) as scope:
                value = await _call(task, tctx, plan)
            if scope.cancelled_caught:
                raise TaskTimeoutError(task.id, tctx.attempt, task.timeout_ms)
        else:
            value = await _call(task, tctx, plan)
        return _sized(validate_output(task, value), task, tctx, max_output_bytes)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as e:
        info = error_info(e)
        if getattr(e, "fallback_available", False):
            # A refused agent with a fallback left: the next attempt uses the next agent.
            info = msgspec.structs.replace(info, retryable=True)
        return Outcome(error=info)


class _RetryAfter(msgspec.Struct):
    retryAfterMs: int | None = None
    quotaResetAtMs: int | None = None


_retry_after = msgspec.json.Decoder(_RetryAfter)


def retry_delay_ms(task: Task, failed_attempt: int, error: ErrorInfo, *, now_ms: int) -> int:
    """The delay in ms before the attempt after `failed_attempt` of `task` failed with `error`.

    The task's backoff, or longer when the error names when to try again: the delay a
    provider asked for (``details.retryAfterMs``, from ``retry-after``), as Smithers
    honouring rate limits, or a quota's reset time (``details.quotaResetAtMs``, Unix
    epoch ms, as Smithers pausing until the reset).
    """
    delay = task.backoff.delay_ms(failed_attempt)
    if error.details is NULL_RAW or error.code is None:
        return delay
    try:
        asked = _retry_after.decode(error.details)
    except msgspec.DecodeError:
        return delay
    reset = asked.quotaResetAtMs - now_ms if asked.quotaResetAtMs is not None else 0
    return max(delay, asked.retryAfterMs or 0, reset)
