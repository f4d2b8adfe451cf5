"""The ``post-failure`` system workflow: an autopsy of a failed run, with a verdict.

``smithers up`` launches it in the background when a run fails (input ``{targetRunId,
workflowPath}``; opt out with ``--no-post-failure`` or ``SMITHERS_POST_FAILURE=0``). By
hand::

    smithers up <this file> --input '{"targetRunId": "run-..."}'

One sequence:

- ``gather`` (deterministic): the failed run's state, errors, last 80 events, workflow
  source (up to 20,000 characters) and smithers version, as `Evidence`.
- ``investigate``: the offline classifier's verdict (`classify`), always the first
  opinion; then, only when ``SMITHERS_AUTOPSY_AGENT`` names an agent (``claude``,
  ``codex``, ``gemini`` or a path to one), ``investigate-agent``: that agent, with
  read-only tools, gives its opinion (`AgentOpinion`, merged by `merge_opinion`; if it
  fails, the offline verdict stands).
- ``approve-bug-report``: an approval (``on_deny="continue"``), mounted only when the
  class is ``smithers-bug``: nothing is reported without a person's yes.
- ``report-bug``: files the report (`file_bug`, as ``smithers bug``) when approved; records "not
  filed" otherwise.
- ``output``: the verdict (``smithers output <autopsy-run> output``).

It only ever reads the failed run: it never retries, rewinds or edits it.
"""

from __future__ import annotations

import functools

import msgspec
from smithers.engine import (
    Approval,
    ApprovalDecision,
    Sequence,
    Task,
    WorkflowContext,
    connect,
    file_bug,
    workflow,
)
from smithers.engine.autopsy import (
    APPROVE_NODE,
    AgentOpinion,
    AutopsyVerdict,
    Evidence,
    autopsy_agent,
    autopsy_agent_spec,
    autopsy_prompt,
    classify,
    collect_evidence,
    merge_opinion,
)
from smithers.eventstore.errors import SmithersError

MAX_SOURCE_CHARS = 20_000


class PostFailureInput(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """The autopsy's input."""

    target_run_id: str
    """The failed run."""
    workflow_path: str | None = None
    """Its workflow file (default: the path its log recorded)."""
    db_path: str | None = None
    """Its database (default: ``SMITHERS_DB``, else the nearest ``.smithers/smithers.db``)."""


class BugReport(msgspec.Struct, kw_only=True, rename="camel"):
    """What ``report-bug`` did."""

    filed: bool
    url: str | None = None
    note: str = ""


def _source(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(MAX_SOURCE_CHARS)
    except OSError:
        return ""


async def gather(params: PostFailureInput) -> Evidence:
    """Read the failed run (read-only) and return its evidence."""
    async with connect(params.db_path, read_only=True) as client:
        handle = await client.get_run(params.target_run_id)
        state = await handle.state()
        events = await handle.events()
        db_path = client.db
    source = _source(params.workflow_path or state.workflow_path)
    agent = autopsy_agent_spec()  # recorded here: the builder reads no environment
    return collect_evidence(state, events, workflow_source=source, db_path=db_path, agent=agent)


async def report_bug(verdict: AutopsyVerdict, db_path: str | None, approved: bool) -> BugReport:
    """File the bug report (`smithers.engine.file_bug`, as ``smithers bug``) when `approved`.

    The bundle is always written when approved; it is posted only where
    ``SMITHERS_BUG_URL`` is set. Not approved, or a failure to build the bundle, is
    recorded as "not filed" with why.
    """
    if not approved:
        return BugReport(filed=False, note="Not filed: the bug report was not approved.")
    title = f"post-failure: {verdict.failure_class} in run {verdict.target_run_id}"
    try:
        filed = await file_bug(verdict.target_run_id, title=title, body=verdict.summary, db=db_path)
    except SmithersError as e:
        return BugReport(filed=False, note=f"Not filed: {e.summary}")
    kept = f" (bundle: {filed.path})"
    if filed.posted:
        note = f"Filed: {filed.url or filed.endpoint}{kept}."
    elif filed.post_error:
        note = f"Not filed: the post failed ({filed.post_error}){kept}."
    else:
        note = f"Not filed (no bug endpoint configured){kept}."
    return BugReport(filed=filed.posted, url=filed.url, note=note)


@workflow(name="post-failure", input=PostFailureInput)
def post_failure(ctx: WorkflowContext) -> Sequence:
    """Gather, investigate, ask before reporting a smithers bug, then the verdict."""
    params: PostFailureInput = ctx.input
    evidence = ctx.output_maybe(Evidence, "gather")
    verdict = ctx.output_maybe(AutopsyVerdict, "investigate")
    decision = ctx.output_maybe(ApprovalDecision, APPROVE_NODE)
    report = ctx.output_maybe(BugReport, "report-bug")
    first = Task("gather", output=Evidence, run=lambda: gather(params), label="Gather evidence")
    if evidence is None:
        return Sequence(first)
    investigate = Task(
        "investigate",
        output=AutopsyVerdict,
        run=lambda tctx: classify(evidence, autopsy_run_id=tctx.run_id),
        label="Classify the failure",
    )
    if verdict is None:
        return Sequence(first, investigate)
    # The second opinion, when SMITHERS_AUTOPSY_AGENT named an agent at gather: its
    # failure (or absence) leaves the offline verdict as it is.
    second = (
        Task(
            "investigate-agent",
            output=AgentOpinion,
            agent=autopsy_agent(evidence.agent),
            prompt=autopsy_prompt(evidence, verdict),
            retries=0,
            continue_on_fail=True,
            label="Investigate with an agent (read-only)",
        )
        if evidence.agent
        else None
    )
    opinion = ctx.output_maybe(AgentOpinion, "investigate-agent") if second else None
    verdict = merge_opinion(verdict, opinion)
    if verdict.failure_class != "smithers-bug":
        return Sequence(
            first, investigate, second, Task("output", output=AutopsyVerdict, value=verdict)
        )
    approve = Approval(
        APPROVE_NODE,
        request={
            "title": f"Report a smithers bug for run {verdict.target_run_id}?",
            "summary": verdict.root_cause,
            "metadata": {"targetRunId": verdict.target_run_id, "evidence": list(verdict.evidence)},
        },
        on_deny="continue",
    )
    approved = bool(decision and decision.approved)
    file_bug = (
        Task(
            "report-bug",
            output=BugReport,
            run=functools.partial(report_bug, verdict, evidence.db_path, approved),
        )
        if decision is not None
        else None
    )
    final = (
        Task(
            "output",
            output=AutopsyVerdict,
            value=msgspec.structs.replace(verdict, bug_filed=report.filed, bug_url=report.url),
        )
        if report is not None
        else None
    )
    return Sequence(first, investigate, second, approve, file_bug, final)


__all__ = ("BugReport", "PostFailureInput", "post_failure")
