"""Why a run is in its state, and what to type next (``smithers why``).

`explain` is pure: it reads a run's folded state, its owner verdict and a few of its
events, and returns a `WhyReport` whose `steps` are the commands that move the run on
(as argument lists after ``smithers``; the CLI quotes them). One screen for the 3 a.m.
question: for a failed run the failing nodes, their error (code, category, file:line),
whether a retry can help and the exact recovery (``up --resume``, ``retry-task``,
``replay --frame N`` after a fix, a fork with fixed input); for a waiting run what it
waits for; for a run whose process is gone, that it is stale and how to resume it; for a
cancelled run who cancelled it and when; and, when a post-failure autopsy of the run
exists (`smithers.engine.autopsy.find_autopsy`), its verdict. The retry heuristics
(`TRANSIENT_CODES`, `TRANSIENT_EXCEPTIONS`, `BUG_EXCEPTIONS`) are the autopsy's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import msgspec
from smithers.eventstore.errors import get_error_definition
from smithers.eventstore.events import (
    NodeStarted,
    RunCancelled,
    RunCancelRequested,
    RunContinuedAsNew,
    RunRewound,
)

from ..autopsy import BUG_EXCEPTIONS, TRANSIENT_CODES, TRANSIENT_EXCEPTIONS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from smithers.eventstore import StoredEvent
    from smithers.eventstore.events import Actor, ErrorInfo, Event
    from smithers.projections import NodeRecord, RunState

    from ..autopsy import AutopsyFound, AutopsyVerdict

__all__ = ("WHY_EVENT_TYPES", "WhyCancel", "WhyFailure", "WhyReport", "WhyStep", "explain")

WHY_EVENT_TYPES: tuple[str, ...] = (
    "NodeStarted",
    "RunCancelRequested",
    "RunCancelled",
    "RunContinuedAsNew",
    "RunRewound",
)
"""The event types `explain` reads (pass the run's events of these types)."""


class OwnerVerdictLike(Protocol):
    """What `explain` reads of a `smithers.engine.OwnerVerdict` (``RunHandle.owner()``)."""

    @property
    def kind(self) -> str:
        """``"alive"``, ``"stale"``, ``"gone"`` or ``"none"``."""
        ...

    @property
    def reason(self) -> str:
        """Why, in a sentence."""
        ...


class WhyStep(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One thing to do next: a ``smithers`` command and what it does."""

    verb: str
    """The ``smithers`` subcommand, e.g. ``"retry-task"``."""
    args: tuple[str, ...] = ()
    """Its positional arguments (run ids)."""
    options: tuple[tuple[str, str | None], ...] = ()
    """Its options in order: ``(name, value)``, value None for a flag."""
    says: str
    """What it does, in a sentence."""


class WhyFailure(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A node whose last attempt failed, and what its error says."""

    node_id: str
    iteration: int
    attempts: int
    """How many attempts it made."""
    error: ErrorInfo
    """The last attempt's error."""
    category: str
    """The code's catalogue category, or ``"user code"`` for an exception without one."""
    retry_helps: bool
    """Whether running it again may pass: a transient code, or attempts that failed in
    different ways. False for a deterministic error (the same on every attempt, or a
    code that is never retryable)."""
    why_retry: str
    """Why `retry_helps` says so, in a sentence."""
    same_every_attempt: bool
    """Whether every attempt failed with the same code and message."""
    frame_before: int | None
    """The last frame before its first attempt started (where a replay runs it again),
    or None when the run has no frame before it."""


class WhyCancel(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Who cancelled a run, when and why."""

    at_ms: int
    """Unix epoch ms of the request (or of the cancellation when none was recorded)."""
    source: str | None
    """Through what: ``"cli"``, ``"api"``, ``"signal"``, …"""
    reason: str | None
    actor: Actor | None = None
    """Who, when the log recorded it."""


class WhyReport(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Why a run is in its state and what to do (see `explain`)."""

    run_id: str
    status: str
    headline: str
    """One sentence: the state and its cause."""
    notes: tuple[str, ...] = ()
    """Further sentences (the owner's verdict, the rewind, the next run)."""
    failures: tuple[WhyFailure, ...] = ()
    waiting: tuple[tuple[str, int], ...] = ()
    """``(node id, iteration)`` of each node the run waits on."""
    stale: bool = False
    """True for a run marked running whose process is gone or silent."""
    cancelled: WhyCancel | None = None
    continued_as: str | None = None
    """The run this one continued as (status ``continued``)."""
    steps: tuple[WhyStep, ...] = ()
    """What to type next, best first."""
    autopsy: AutopsyVerdict | None = None
    """The post-failure autopsy's verdict, when one exists and has one."""
    autopsy_run_id: str | None = None
    """The run id of the run's newest post-failure autopsy, or None."""
    autopsy_status: str | None = None
    """That autopsy run's status (``running`` while it works)."""


def _same(a: ErrorInfo | None, b: ErrorInfo | None) -> bool:
    return a is not None and b is not None and (a.code, a.message) == (b.code, b.message)


def _frame_before(state: RunState, seq: int | None) -> int | None:
    if seq is None:
        return None
    before = [f.frame_no for f in state.frames if f.seq < seq]
    return max(before) if before else None


def _failure(state: RunState, rec: NodeRecord, started_seq: int | None) -> WhyFailure | None:
    if not rec.attempts or rec.attempts[-1].error is None:
        return None
    error = rec.attempts[-1].error
    errors = [a.error for a in rec.attempts if a.state == "failed"]
    same = len(errors) > 1 and all(_same(e, error) for e in errors)
    definition = get_error_definition(error.code) if error.code else None
    category = definition.category if definition else "user code"
    if error.code in TRANSIENT_CODES:
        helps, why = True, f"{error.code} is usually transient: the same attempt may pass later."
    elif not error.retryable or (definition is not None and not definition.retryable):
        helps, why = False, "This error does not go away by running the same thing again."
    elif same:
        helps, why = False, f"It failed the same way on all {len(errors)} attempts."
    elif len(errors) > 1:
        helps, why = True, "Its attempts failed in different ways: it may be flaky."
    elif error.name in TRANSIENT_EXCEPTIONS:
        helps, why = True, f"{error.name} is usually transient (network, time, a busy service)."
    elif error.name in BUG_EXCEPTIONS:
        helps, why = False, f"{error.name} usually means a bug: the same input fails the same way."
    else:
        helps, why = True, "It failed once; a retry runs the same code on the same input."
    return WhyFailure(
        node_id=rec.node_id,
        iteration=rec.iteration,
        attempts=len(rec.attempts),
        error=error,
        category=category,
        retry_helps=helps,
        why_retry=why,
        same_every_attempt=same,
        frame_before=_frame_before(state, started_seq),
    )


def _first_starts(events: Iterable[tuple[StoredEvent, Event]]) -> dict[tuple[str, int], int]:
    """Seq of the latest first attempt (``attempt == 1``) of each node iteration."""
    starts: dict[tuple[str, int], int] = {}
    for stored, event in events:
        if isinstance(event, NodeStarted) and event.attempt == 1:
            starts[(event.node_id, event.iteration)] = stored.seq
    return starts


def _failed_steps(run_id: str, failures: Sequence[WhyFailure]) -> list[WhyStep]:
    """Return the recovery commands for a failed run, best first.

    Never ``up --resume``: resuming a failed run only reports the failure again (its
    failed tasks spent their attempts); ``retry-task`` gives a task new ones.
    """
    if not failures:
        return [
            WhyStep(
                verb="replay",
                args=(run_id,),
                options=(("--frame", "0"),),
                says="After fixing the workflow: run it again from the start (a new run).",
            )
        ]
    first = failures[0]
    node: tuple[tuple[str, str | None], ...] = (("--node", first.node_id),)
    if first.iteration:
        node += (("--iteration", str(first.iteration)),)
    retry = WhyStep(
        verb="retry-task",
        args=(run_id,),
        options=node,
        says=f"Run {first.node_id} and the tasks after it again, in this run.",
    )
    steps: list[WhyStep] = []
    if first.error.code == "INVALID_INPUT":
        steps.append(
            WhyStep(
                verb="fork",
                args=(run_id,),
                options=(("--frame", "0"), ("--input", "@fixed-input.json"), ("--run", None)),
                says="Fix the input (here in fixed-input.json) and run it again from the start.",
            )
        )
    if first.retry_helps:
        return [*steps, retry]
    where = f" at {first.error.file}:{first.error.line}" if first.error.file else ""
    frame = first.frame_before if first.frame_before is not None else 0
    steps.append(
        WhyStep(
            verb="replay",
            args=(run_id,),
            options=(("--frame", str(frame)),),
            says=f"After fixing the cause{where}: run it again from the frame before "
            f"{first.node_id} started, on the edited workflow (a new run).",
        )
    )
    steps.append(
        msgspec.structs.replace(
            retry,
            says="After fixing something outside the workflow's code (a file, a service, "
            "a credential): run the task again in this run.",
        )
    )
    return steps


def explain(
    state: RunState,
    owner: OwnerVerdictLike | None,
    events: Iterable[tuple[StoredEvent, Event]] = (),
    autopsy: AutopsyFound | None = None,
) -> WhyReport:
    """Return why `state`'s run is in its status and what to type next. Pure.

    Args:
        state: The run's current state.
        owner: Its owner verdict (`RunHandle.owner`), or None when not known: then a
            ``running`` run is taken as driven by a live process.
        events: The run's events of the `WHY_EVENT_TYPES` (others are ignored).
        autopsy: The run's post-failure autopsy (`smithers.engine.autopsy.find_autopsy`),
            if any: its verdict is part of the report.

    Returns:
        A `WhyReport`; its `steps` are the commands to type, best first.
    """
    report = _explain(state, owner, events)
    if autopsy is None:
        return report
    return msgspec.structs.replace(
        report,
        autopsy=autopsy.verdict,
        autopsy_run_id=autopsy.run_id,
        autopsy_status=autopsy.status,
    )


def _explain(
    state: RunState,
    owner: OwnerVerdictLike | None,
    events: Iterable[tuple[StoredEvent, Event]] = (),
) -> WhyReport:
    run_id, status = state.run_id, state.status
    events = list(events)
    if status == "failed":
        starts = _first_starts(events)
        failures = tuple(
            f
            for rec in state.nodes.values()
            if rec.state == "failed"
            and (f := _failure(state, rec, starts.get((rec.node_id, rec.iteration)))) is not None
        )
        if failures:
            names = ", ".join(f.node_id for f in failures)
            code = failures[0].error.code or failures[0].error.name
            headline = f"The run failed: {names} failed ({code})."
        else:
            error = state.error
            what = f"{error.code or error.name}: {error.message}" if error else "no error recorded"
            headline = f"The run failed outside any task ({what})."
        return WhyReport(
            run_id=run_id,
            status=status,
            headline=headline,
            failures=failures,
            steps=tuple(_failed_steps(run_id, failures)),
        )
    if status.startswith("waiting-") and status != "waiting-resume":
        return WhyReport(
            run_id=run_id,
            status=status,
            headline="The run is parked: it waits for something outside it (below). No "
            "process runs it meanwhile.",
            waiting=tuple((rec.node_id, rec.iteration) for rec in state.waiting()),
        )
    if status == "waiting-resume":
        rewound = [e for _, e in events if isinstance(e, RunRewound)]
        notes = (f"It was rewound to frame {rewound[-1].to_frame_no}.",) if rewound else ()
        return WhyReport(
            run_id=run_id,
            status=status,
            headline="The run is stopped and waits for a person to resume it.",
            notes=notes,
            steps=(
                WhyStep(
                    verb="up", options=(("--resume", run_id),), says="Resume it from where it is."
                ),
            ),
        )
    if status == "running":
        if owner is not None and owner.kind in ("stale", "gone", "none"):
            return WhyReport(
                run_id=run_id,
                status=status,
                headline="The run is marked running, but no live process drives it: it is stale.",
                notes=(owner.reason,),
                stale=True,
                steps=(
                    WhyStep(
                        verb="up",
                        options=(("--resume", run_id),),
                        says="Resume it here (finished tasks are kept).",
                    ),
                    WhyStep(
                        verb="supervise",
                        options=(("--once", None),),
                        says="Or let the supervisor resume every stale run.",
                    ),
                ),
            )
        notes = (owner.reason,) if owner is not None else ()
        return WhyReport(
            run_id=run_id,
            status=status,
            headline="The run is running: a live process drives it.",
            notes=notes,
            steps=(
                WhyStep(
                    verb="inspect", args=(run_id,), options=(("--watch", None),), says="Watch it."
                ),
            ),
        )
    if status == "cancelled":
        asked = [(s, e) for s, e in events if isinstance(e, RunCancelRequested)]
        ended = [e for _, e in events if isinstance(e, RunCancelled)]
        cancel: WhyCancel | None = None
        if asked:
            _, req = asked[-1]
            assert isinstance(req, RunCancelRequested)
            cancel = WhyCancel(
                at_ms=req.timestamp_ms, source=req.source, reason=req.reason, actor=req.actor
            )
        elif ended:
            cancel = WhyCancel(
                at_ms=ended[-1].timestamp_ms, source=ended[-1].source, reason=ended[-1].reason
            )
        last = state.frames[-1].frame_no if state.frames else 0
        return WhyReport(
            run_id=run_id,
            status=status,
            headline="The run was cancelled.",
            cancelled=cancel,
            steps=(
                WhyStep(
                    verb="fork",
                    args=(run_id,),
                    options=(("--frame", str(last)), ("--run", None)),
                    says="Go on from where it stopped, in a new run (a cancelled run "
                    "cannot be resumed).",
                ),
            ),
        )
    if status == "continued":
        nxt = [e for _, e in events if isinstance(e, RunContinuedAsNew)]
        new = nxt[-1].new_run_id if nxt else None
        return WhyReport(
            run_id=run_id,
            status=status,
            headline="The run continued as a new run." if new else "The run continued as new.",
            continued_as=new,
            steps=(WhyStep(verb="why", args=(new,), says="Ask about that run."),) if new else (),
        )
    if status == "finished":
        return WhyReport(
            run_id=run_id,
            status=status,
            headline="The run finished: nothing to do.",
            steps=(WhyStep(verb="inspect", args=(run_id,), says="See its outputs."),),
        )
    if status == "queued":
        return WhyReport(
            run_id=run_id,
            status=status,
            headline="The run is queued (smithers submit): a `smithers worker` on this "
            "database starts it.",
            steps=(
                WhyStep(verb="workers", says="See the workers and what they run."),
                WhyStep(verb="up", options=(("--resume", run_id),), says="Run it here instead."),
            ),
        )
    return WhyReport(  # pending: a fork made but never run
        run_id=run_id,
        status=status,
        headline="The run was made but has not started (a fork not run yet).",
        steps=(WhyStep(verb="up", options=(("--resume", run_id),), says="Run it."),),
    )
