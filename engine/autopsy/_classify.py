"""The offline classifier: a failed run's evidence in, the autopsy's verdict out. Pure.

Rules over the log, no model: the failing task's error code and its catalogue
category and retryability, where its traceback points (the workflow's own code, an
installed library, or nowhere outside smithers: the engine raised it itself), the
attempt history (attempts that failed in different ways, a task that failed then
passed elsewhere in the run, timeouts and rate limits) and the environment signals of
`environment_signal`. The verdict has the reference's schema (``targetRunId,
failureClass, confidence, rootCause, evidence[], suggestion, suggestionDetail,
commands[], bugFiled, bugUrl, summary``); its evidence lines cite event seqs and its
commands are exact ``smithers ...`` lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec
from smithers.eventstore.errors import get_error_definition

from .._shell import shell_command
from ._evidence import ErrorFact, Evidence, FailedNode, collect_evidence
from ._rules import BUG_EXCEPTIONS, FLAKE_CODES, TRANSIENT_EXCEPTIONS, environment_signal

if TYPE_CHECKING:
    from collections.abc import Iterable

    from smithers.eventstore import StoredEvent
    from smithers.eventstore.events import Event
    from smithers.projections import RunState


__all__ = (
    "APPROVE_NODE",
    "FAILURE_CLASSES",
    "SUGGESTIONS",
    "AutopsyVerdict",
    "classify",
    "classify_run",
)

FailureClass = Literal["workflow-bug", "environment", "agent-flake", "smithers-bug", "unknown"]
Confidence = Literal["low", "medium", "high"]
Suggestion = Literal[
    "retry", "resume", "rewind", "edit-workflow-and-reset", "fix-environment", "escalate"
]
FAILURE_CLASSES: tuple[str, ...] = (
    "workflow-bug",
    "environment",
    "agent-flake",
    "smithers-bug",
    "unknown",
)
"""The verdict's failure classes, as the reference names them."""
SUGGESTIONS: tuple[str, ...] = (
    "retry",
    "resume",
    "rewind",
    "edit-workflow-and-reset",
    "fix-environment",
    "escalate",
)
"""The verdict's suggestions, as the reference names them."""
APPROVE_NODE = "approve-bug-report"
"""The ``post-failure`` workflow's approval node (asked before a bug is reported)."""

_ROOT = Path(__file__).resolve().parents[2]
_PACKAGE_DIRS = tuple(
    f"{_ROOT / name}/" for name in ("engine", "eventstore", "projections", "cli", "smithers")
)
"""Folders of smithers' own code, with a trailing ``/``: the layer folders of a checkout
(``engine/``, ``eventstore/``, ...) or of an installed ``smithers/`` package."""
_WORKFLOW_CATEGORIES = frozenset({"engine", "components", "tools"})


class AutopsyVerdict(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The post-failure autopsy's verdict on a failed run (the reference's schema)."""

    target_run_id: str
    failure_class: FailureClass
    """``workflow-bug``, ``environment``, ``agent-flake``, ``smithers-bug`` or
    ``unknown``."""
    confidence: Confidence
    """``low``, ``medium`` or ``high``: how much the evidence supports the class."""
    root_cause: str
    evidence: tuple[str, ...] = ()
    """Facts, each citing the event seq it comes from (``seq 12: ...``)."""
    suggestion: Suggestion
    suggestion_detail: str
    commands: tuple[str, ...] = ()
    """Exact ``smithers ...`` command lines, best first."""
    bug_filed: bool = False
    bug_url: str | None = None
    summary: str


class _Call(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules concluded, before the commands are written."""

    cls: FailureClass
    confidence: Confidence
    root_cause: str
    suggestion: Suggestion
    detail: str
    evidence: tuple[str, ...] = ()


def _describe(error: ErrorFact) -> str:
    code = f"[{error.code}] " if error.code else ""
    return f"{code}{error.name}: {error.message}"


def _points_at(error: ErrorFact, workflow_path: str | None) -> str:
    """``"smithers"``, ``"workflow"``, ``"user"``, ``"library"`` or ``"none"``."""
    if error.stack and any(d in error.stack for d in _PACKAGE_DIRS):
        return "smithers"
    if error.file is None:
        return "none"
    if workflow_path and Path(error.file) == Path(workflow_path):
        return "workflow"
    if error.file.startswith(_PACKAGE_DIRS):
        return "smithers"
    if "site-packages" in error.file or "dist-packages" in error.file:
        return "library"
    return "user"


def _flaky(ev: Evidence, node: FailedNode) -> str | None:
    """A sentence citing seqs when the attempt history looks flaky, else None."""
    mine = [a for a in ev.attempts if a.node_id == node.node_id and a.iteration == node.iteration]
    errors = {(a.error.code, a.error.message) for a in mine if a.error is not None}
    if len(errors) > 1:
        seqs = ", ".join(str(a.seq) for a in mine if a.outcome == "failed")
        return f"seq {seqs}: its attempts failed in {len(errors)} different ways."
    for a in ev.attempts:
        if a.outcome != "finished" or a.node_id != node.node_id or a.iteration == node.iteration:
            continue
        before = [
            b
            for b in ev.attempts
            if b.node_id == a.node_id and b.outcome == "failed" and b.seq < a.seq
        ]
        if before:
            return (
                f"seq {before[-1].seq} then {a.seq}: {a.node_id} (iteration {a.iteration}) failed "
                "then passed elsewhere in the run."
            )
    return None


def _call_node(ev: Evidence, node: FailedNode) -> _Call:
    error = node.error
    seq = f"seq {node.seq}" if node.seq is not None else "the log"
    who = node.node_id or "the run"
    facts = [f"{seq}: {who} failed on attempt {node.attempts}: {_describe(error)}"]
    definition = get_error_definition(error.code) if error.code else None
    if definition is not None:
        retry = "retryable" if definition.retryable else "not retryable"
        facts.append(f"{seq}: {error.code} is a {definition.category} error, {retry}.")
    where = _points_at(error, ev.workflow_path)
    at = f"{error.file}:{error.line}" if error.file else None
    if at:
        facts.append(f"{seq}: the traceback points at {at} ({where} code).")
    elif error.code is None:
        facts.append(f"{seq}: no frame of the traceback is outside smithers.")
    signal = environment_signal(error)
    if signal is not None:
        facts.append(f"{seq}: environment signal ({signal.kind}): {signal.what}")
        return _Call(
            cls="environment",
            confidence="high" if signal.strong else "medium",
            root_cause=signal.what,
            suggestion="fix-environment",
            detail=signal.fix,
            evidence=tuple(facts),
        )
    flaky = _flaky(ev, node)
    if flaky:
        facts.append(flaky)
    if error.code in FLAKE_CODES or (flaky and error.name not in BUG_EXCEPTIONS):
        return _Call(
            cls="agent-flake",
            confidence="high" if error.code in FLAKE_CODES else "medium",
            root_cause=f"{who} hit a transient fault ({error.code or error.name}: "
            f"{error.message}).",
            suggestion="retry",
            detail=f"Run {who} again: a transient fault usually clears on a re-run.",
            evidence=tuple(facts),
        )
    if error.name in TRANSIENT_EXCEPTIONS and error.code is None:
        return _Call(
            cls="agent-flake",
            confidence="medium",
            root_cause=f"{who} hit a transient fault ({error.name}: {error.message}).",
            suggestion="retry",
            detail=f"Run {who} again: {error.name} usually passes on a retry.",
            evidence=tuple(facts),
        )
    if error.code is None and where in ("smithers", "none"):
        return _Call(
            cls="smithers-bug",
            confidence="high" if where == "smithers" else "medium",
            root_cause=f"smithers raised {error.name} ({error.message}) in {who} "
            "with no frame of the workflow's code involved: an engine defect.",
            suggestion="escalate",
            detail="Report it (approve the autopsy's bug report, or `smithers bug`); "
            "meanwhile a retry of the task may pass.",
            evidence=tuple(facts),
        )
    if definition is not None and (
        definition.category in _WORKFLOW_CATEGORIES and not definition.retryable
    ):
        return _Call(
            cls="workflow-bug",
            confidence="high",
            root_cause=f"{who}: {definition.when} ({error.code}: {error.message})",
            suggestion="edit-workflow-and-reset",
            detail=_edit_detail(who, at),
            evidence=tuple(facts),
        )
    if (
        error.code is None
        and where in ("workflow", "user", "library")
        and (error.name in BUG_EXCEPTIONS or not error.retryable)
    ):
        same = [a for a in ev.attempts if a.node_id == node.node_id and a.outcome == "failed"]
        sure = where == "workflow" or len(same) > 1
        return _Call(
            cls="workflow-bug",
            confidence="high" if sure else "medium",
            root_cause=f"The workflow's code raised {error.name} at {at}: {error.message}",
            suggestion="edit-workflow-and-reset",
            detail=_edit_detail(who, at),
            evidence=tuple(facts),
        )
    if definition is not None and definition.retryable and definition.category == "agents":
        return _Call(
            cls="agent-flake",
            confidence="low",
            root_cause=f"{who}: the agent failed ({error.code}: {error.message}).",
            suggestion="retry",
            detail=f"Run {who} again; if it fails the same way, look at the agent.",
            evidence=tuple(facts),
        )
    return _Call(
        cls="unknown",
        confidence="low",
        root_cause=f"{who} failed with {_describe(error)}; the log does not say why.",
        suggestion="escalate",
        detail=f"Read {who}'s traceback and decide: fix the workflow, or run the "
        "task again if the cause was outside it.",
        evidence=tuple(facts),
    )


def _edit_detail(who: str, at: str | None) -> str:
    where = f" at {at}" if at else ""
    if who == "the run":
        return f"Fix the workflow{where}, then start a fresh run."
    return (
        f"Fix the workflow{where}, then run it again from the frame before {who} "
        "started (a new run; never edit a file while its run is resumable)."
    )


def _call_run(ev: Evidence) -> _Call:
    error = ev.run_error
    seq = f"seq {ev.run_error_seq}" if ev.run_error_seq is not None else "the log"
    if error is None:
        return _Call(
            cls="unknown",
            confidence="low",
            root_cause="The run failed without recording an error.",
            suggestion="escalate",
            detail="Inspect the run's last events.",
            evidence=(f"{seq}: the run failed; no task failed and no error was recorded.",),
        )
    node = FailedNode(
        node_id="", iteration=0, attempts=0, seq=ev.run_error_seq, error=error, frame_before=None
    )
    call = _call_node(ev, node)
    facts = (f"{seq}: the run failed outside any task: {_describe(error)}", *call.evidence[1:])
    return msgspec.structs.replace(call, evidence=facts)


def _commands(ev: Evidence, call: _Call, autopsy_run_id: str | None) -> list[str]:
    db: list[tuple[str, str | None]] = [("--db", ev.db_path)] if ev.db_path else []
    target = ev.target_run_id
    first = ev.failed[0] if ev.failed else None
    report: list[str] = []
    if call.cls == "smithers-bug":
        if autopsy_run_id is not None:
            approve = [("--node", APPROVE_NODE), *db]
            report.append(shell_command("approve", args=[autopsy_run_id], options=approve))
        report.append(shell_command("bug", options=[("--run", target), *db]))
    if first is None:
        inspect = shell_command("inspect", args=[target], options=db)
        if call.cls == "workflow-bug" and ev.workflow_path:
            return [shell_command("up", args=[ev.workflow_path], options=db), inspect]
        return [*report, inspect]
    node: list[tuple[str, str | None]] = [("--node", first.node_id)]
    if first.iteration:
        node.append(("--iteration", str(first.iteration)))
    retry = shell_command("retry-task", args=[target], options=[*node, *db])
    show = shell_command("node", args=[target, first.node_id], options=db)
    if call.cls in ("environment", "agent-flake"):
        return [retry, show]
    if call.cls == "workflow-bug":
        out: list[str] = []
        if first.error.code == "INVALID_INPUT":
            fork = [("--frame", "0"), ("--input", "@fixed-input.json"), ("--run", None)]
            out.append(shell_command("fork", args=[target], options=[*fork, *db]))
        frame = str(first.frame_before if first.frame_before is not None else 0)
        out.append(shell_command("replay", args=[target], options=[("--frame", frame), *db]))
        return [*out, show]
    if call.cls == "smithers-bug":
        return [*report, retry]
    return [show, retry]


def classify(ev: Evidence, *, autopsy_run_id: str | None = None) -> AutopsyVerdict:
    """Return the offline verdict on the run `ev` describes. Pure.

    Args:
        ev: The run's evidence (`collect_evidence`).
        autopsy_run_id: The ``post-failure`` run asking, if any: a ``smithers-bug``
            verdict's first command then approves its bug report.

    Returns:
        The `AutopsyVerdict`; ``bugFiled`` False (only the workflow's ``report-bug``
        files one).
    """
    if ev.status != "failed":
        call = _Call(
            cls="unknown",
            confidence="low",
            root_cause=f"The run is {ev.status}, not failed: there is no failure to explain.",
            suggestion="escalate",
            detail="Ask `smithers why` about the run.",
        )
        db = [("--db", ev.db_path)] if ev.db_path else []
        commands = [shell_command("why", args=[ev.target_run_id], options=db)]
    else:
        call = _call_node(ev, ev.failed[0]) if ev.failed else _call_run(ev)
        commands = _commands(ev, call, autopsy_run_id)
        if len(ev.failed) > 1:
            more = ", ".join(f.node_id for f in ev.failed[1:])
            call = msgspec.structs.replace(
                call, evidence=(*call.evidence, f"Other failed tasks: {more}.")
            )
    summary = f"{call.cls} ({call.confidence} confidence): {call.root_cause}"
    return AutopsyVerdict(
        target_run_id=ev.target_run_id,
        failure_class=call.cls,
        confidence=call.confidence,
        root_cause=call.root_cause,
        evidence=call.evidence,
        suggestion=call.suggestion,
        suggestion_detail=call.detail,
        commands=tuple(commands),
        summary=summary,
    )


def classify_run(
    state: RunState,
    events: Iterable[tuple[StoredEvent, Event]],
    *,
    db_path: str | None = None,
    autopsy_run_id: str | None = None,
) -> AutopsyVerdict:
    """Return the offline verdict on a run from its state and events. Pure.

    `classify` of `collect_evidence` (see both).
    """
    return classify(collect_evidence(state, events, db_path=db_path), autopsy_run_id=autopsy_run_id)
