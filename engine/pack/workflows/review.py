"""Review a diff: an agent reads it and returns a verdict (approved, summary, comments).

Run it from a git repository (the sandbox root is the folder it runs in: ``--root``)::

    smithers workflow run review --root .                                  # git diff HEAD
    smithers workflow run review --root . --input '{"base": "main"}'       # git diff main
    smithers workflow run review --input '{"diffFile": "change.patch"}'
    smithers workflow run review --input '{"diff": "--- a/x.py\\n+++ b/x.py\\n..."}'

``diff`` takes the diff (the input's text, a file, or ``git diff BASE``); ``review``
asks the reviewer for a `Verdict`, a schema the reply is validated against; ``output``
is the verdict with the files the diff touches. With ``OPENAI_API_KEY`` (or
``ANTHROPIC_API_KEY``) set, a model reviews (``SMITHERS_MODEL`` picks another model);
without one, `ChecklistReviewer` stands in: it flags conflict markers, debugger calls,
credentials, TODOs, debug prints and very long lines among the added lines.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

import msgspec
from smithers.engine import Sequence, Task, TaskContext, WorkflowContext, agents, tools, workflow


class ReviewInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    diff: str | None = None
    """The diff itself (unified format)."""
    diff_file: str | None = None
    """A file holding the diff, relative to the sandbox root."""
    base: str = "HEAD"
    """Without `diff` or `diff_file`: review ``git diff BASE`` of the sandbox root."""
    instructions: str = ""
    """What to pay attention to, added to the reviewer's prompt."""


class Diff(msgspec.Struct, kw_only=True):
    text: str
    files: list[str]
    source: str


class Comment(msgspec.Struct, kw_only=True):
    file: str
    """The file the comment is about ("" for the whole diff)."""
    line: int | None
    """The line in the new file, when the comment is about one."""
    severity: Literal["blocker", "major", "minor", "nit"]
    message: str


class Verdict(msgspec.Struct, kw_only=True):
    approved: bool
    """True if the diff can go in as it is (no blocker or major comment)."""
    summary: str
    """One or two sentences."""
    comments: list[Comment]


class Review(msgspec.Struct, kw_only=True):
    approved: bool
    summary: str
    comments: list[Comment]
    files: list[str]


PROMPT = """Review this diff. Approve it only if it can be merged as it is: no bug, no
leftover debugging, no credential, nothing half done. For each problem give the file,
the line in the new file, a severity (blocker, major, minor, nit) and what to change.
{instructions}
Diff ({source}):
{diff}"""

_CHECKS: tuple[tuple[re.Pattern[str], Literal["blocker", "major", "minor", "nit"], str], ...] = (
    (re.compile(r"^(<<<<<<<|=======$|>>>>>>>)"), "blocker", "merge conflict marker left in"),
    (re.compile(r"\b(breakpoint\(\)|pdb\.set_trace\(\)|debugger;)"), "blocker", "debugger call"),
    (
        re.compile(r"(sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})"),
        "blocker",
        "a credential is committed; remove it and rotate it",
    ),
    (re.compile(r"\b(TODO|FIXME|XXX)\b"), "minor", "unfinished work (TODO/FIXME)"),
    (re.compile(r"^\s*(print\(|console\.log\()"), "nit", "debug print"),
)


def diff_files(text: str) -> list[str]:
    """The files a unified diff touches (new names), in order."""
    found = re.findall(r"^\+\+\+ (?:b/)?(\S+)", text, flags=re.M)
    return list(dict.fromkeys(f for f in found if f != "/dev/null"))


def checklist(text: str) -> dict[str, Any]:
    """The offline review of a unified diff: rules over its added lines."""
    comments: list[dict[str, Any]] = []
    file, line = "", 0
    for raw in text.splitlines():
        if raw.startswith("+++ "):
            file = re.sub(r"^\+\+\+ (?:b/)?", "", raw).strip()
        elif raw.startswith("@@"):
            found = re.search(r"\+(\d+)", raw)
            line = int(found.group(1)) - 1 if found else 0
        elif raw.startswith("+"):
            line += 1
            added = raw[1:]
            for pattern, severity, message in _CHECKS:
                if pattern.search(added):
                    comments.append(
                        {"file": file, "line": line, "severity": severity, "message": message}
                    )
            if len(added) > 120:
                comments.append(
                    {"file": file, "line": line, "severity": "nit", "message": "line over 120"}
                )
        elif not raw.startswith("-"):
            line += 1
    blocking = [c for c in comments if c["severity"] in ("blocker", "major")]
    if not text.strip():
        summary = "The diff is empty: nothing to review."
    elif blocking:
        summary = f"{len(blocking)} problem(s) must be fixed before this can go in."
    else:
        summary = f"No blocking problem found ({len(comments)} remark(s))."
    return {"approved": not blocking, "summary": summary, "comments": comments}


class ChecklistReviewer:
    """The offline stand-in reviewer: `checklist` over the diff in the prompt."""

    id = "checklist-reviewer"
    engine = "offline"
    model = "checklist"

    async def generate(self, request: agents.AgentRequest) -> agents.AgentResult:
        """Review the diff that follows ``Diff (...):`` in the prompt."""
        text = request.prompt.partition("\nDiff (")[2].partition("):\n")[2]
        return agents.AgentResult(output=checklist(text), finish_reason="stop")


def reviewer() -> Any:
    """A model when an API key is set (OpenAI first, then Anthropic), else the checklist."""
    model = os.environ.get("SMITHERS_MODEL")
    if os.environ.get("OPENAI_API_KEY"):
        return agents.openai(model or "gpt-4o-mini")
    if os.environ.get("ANTHROPIC_API_KEY"):
        return agents.anthropic(model or "claude-3-5-haiku-latest")
    return ChecklistReviewer()


REVIEWER = reviewer()


async def take_diff(ctx: TaskContext, params: ReviewInput) -> dict[str, Any]:
    """The diff to review: the input's, a file's, or ``git diff BASE``."""
    if params.diff is not None:
        text, source = params.diff, "given"
    elif params.diff_file is not None:
        text, source = await tools.read(ctx.tools, path=params.diff_file), params.diff_file
    else:
        done = await tools.bash(ctx.tools, command=["git", "diff", params.base])
        text, source = done.stdout, f"git diff {params.base}"
    return {"text": text, "files": diff_files(text), "source": source}


@workflow(name="review", input=ReviewInput)
def review(ctx: WorkflowContext) -> Sequence:
    """Review a diff: take it, ask the reviewer for a verdict, return it."""
    params: ReviewInput = ctx.input
    diff = ctx.output_maybe(Diff, "diff")
    verdict = ctx.output_maybe(Verdict, "review")
    extra = f"\nPay attention to: {params.instructions}\n" if params.instructions else ""
    return Sequence(
        Task("diff", output=Diff, run=lambda c: take_diff(c, params)),
        diff
        and Task(
            "review",
            output=Verdict,
            agent=REVIEWER,
            prompt=PROMPT.format(instructions=extra, source=diff.source, diff=diff.text),
        ),
        diff
        and verdict
        and Task(
            "output",
            output=Review,
            value={
                "approved": verdict.approved,
                "summary": verdict.summary,
                "comments": msgspec.to_builtins(verdict.comments),
                "files": diff.files,
            },
        ),
    )
