"""Triage a folder of issue reports with an agent, in parallel, then write a report.

Run it::

    smithers up examples/triage_issues.py                      # offline stand-in agent
    OPENAI_API_KEY=sk-... smithers up examples/triage_issues.py     # gpt-4o-mini
    ANTHROPIC_API_KEY=sk-... smithers up examples/triage_issues.py  # claude-haiku
    smithers up examples/triage_issues.py --input '{"folder": "issues"}'

``list`` finds the reports (``issues/*.txt`` next to this file: the run's sandbox root
is the workflow's folder unless ``--root`` says otherwise). Each report gets its own
agent task, all in parallel: the agent reads the file with the built-in ``read`` tool
and answers with a `Triage` (a msgspec Struct: its JSON schema is sent to the model,
and the reply is validated; a reply that does not fit gets up to two repair turns).
``report`` then writes ``triage-report.md`` with the ``write`` tool and returns the
counts.

With ``OPENAI_API_KEY`` (or ``ANTHROPIC_API_KEY``) set, a real model does the triage
(``TRIAGE_MODEL`` picks another model; ``OPENAI_BASE_URL`` points the OpenAI client at
a compatible server). Without a key, `KeywordTriager` stands in: an agent in a dozen
lines (anything with ``async generate(request)`` is an agent) that reads the file
through the same journaled tool and matches keywords.

Every model request and response, tool call and token count is in the log::

    smithers events RUN --type AgentEvent --type ToolCallFinished --type TokenUsageReported

Kill the run mid-way and ``smithers up --resume RUN``: finished triages are kept, and an
interrupted conversation is replayed from the log up to its first unanswered request.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal

import msgspec

import smithers
from smithers import Parallel, Sequence, Task, TaskContext, WorkflowContext, workflow
from smithers.agents import AgentRequest, AgentResult


class TriageInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    folder: str = "issues"


class Listing(msgspec.Struct):
    files: list[str]


class Triage(msgspec.Struct, kw_only=True):
    kind: Literal["bug", "feature", "question", "docs"]
    """bug: something broken; feature: a request; question: how to; docs: text to fix."""
    severity: Annotated[int, msgspec.Meta(ge=1, le=4)]
    """1 cosmetic, 2 minor, 3 major, 4 blocks work."""
    component: str
    """The part of the tool it is about, one lowercase word (cli, engine, web, docs)."""
    summary: str
    """One sentence."""


class Report(msgspec.Struct):
    path: str
    counts: dict[str, int]
    most_severe: str


PROMPT = """Read the issue report {path} with the read tool, then triage it.
kind: bug (something is broken), feature (a request for something new), question
(someone asks how to do something), docs (a text to fix). severity: 1 cosmetic,
2 minor, 3 major, 4 blocks work. component: one lowercase word (cli, engine, web,
docs). summary: one sentence."""


class KeywordTriager:
    """The offline stand-in: reads the report with the ``read`` tool, matches keywords."""

    id = "keyword-triager"
    engine = "offline"
    model = "keywords"

    async def generate(self, request: AgentRequest) -> AgentResult:
        found = re.search(r"issues/[\w.-]+\.txt", request.prompt)
        path = found.group(0) if found else ""
        text = await request.call_tool("read", {"path": path}, call_id=f"read:{path}")
        low = text.lower()
        if "how do i" in low or "is there a way" in low:
            kind, severity = "question", 2
        elif "typo" in low or "help text" in low:
            kind, severity = "docs", 1
        elif "would be nice" in low or "please add" in low:
            kind, severity = "feature", 1
        else:
            kind = "bug"
            severity = 4 if ("blocks" in low or "stuck" in low) else 3
        component = next(
            (c for c in ("web", "events", "rewind", "resume", "retry") if c in low), "engine"
        )
        title = text.splitlines()[0].removeprefix("Title: ") if text else path
        output = {"kind": kind, "severity": severity, "component": component, "summary": title}
        return AgentResult(output=output, finish_reason="stop")


def triager() -> Any:
    """A real model when a key is set (OpenAI first, then Anthropic), else the stand-in."""
    if os.environ.get("OPENAI_API_KEY"):
        return smithers.agents.openai(os.environ.get("TRIAGE_MODEL", "gpt-4o-mini"))
    if os.environ.get("ANTHROPIC_API_KEY"):
        return smithers.agents.anthropic(os.environ.get("TRIAGE_MODEL", "claude-3-5-haiku-latest"))
    return KeywordTriager()


AGENT = triager()


def _node_id(name: str) -> str:
    return "triage-" + re.sub(r"[^A-Za-z0-9_-]", "-", name.removesuffix(".txt"))


async def list_reports(ctx: TaskContext, folder: str) -> dict[str, list[str]]:
    hits = await smithers.tools.grep(ctx, pattern="^Title:", path=folder)
    files = sorted({line.split(":", 1)[0] for line in hits.splitlines() if line.strip()})
    return {"files": files}


async def write_report(ctx: TaskContext, triages: dict[str, Triage]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for t in triages.values():
        counts[t.kind] = counts.get(t.kind, 0) + 1
    ranked = sorted(triages.items(), key=lambda kv: (-kv[1].severity, kv[0]))
    lines = ["# Issue triage", ""]
    lines += [
        f"- **{t.kind}** (severity {t.severity}, {t.component}) {p}: {t.summary}" for p, t in ranked
    ]
    await smithers.tools.write(ctx, path="triage-report.md", content="\n".join(lines) + "\n")
    return {"path": "triage-report.md", "counts": counts, "most_severe": ranked[0][0]}


@workflow(name="triage-issues", input=TriageInput)
def triage_issues(ctx: WorkflowContext) -> Sequence:
    folder = ctx.input.folder
    listing = ctx.output_maybe(Listing, "list")
    files = listing.files if listing else []
    triages = {f: ctx.output_maybe(Triage, _node_id(os.path.basename(f))) for f in files}
    done = bool(files) and all(t is not None for t in triages.values())
    return Sequence(
        Task("list", output=Listing, run=lambda c: list_reports(c, folder)),
        listing
        and Parallel(
            *(
                Task(
                    _node_id(os.path.basename(f)),
                    output=Triage,
                    agent=AGENT,
                    prompt=PROMPT.format(path=f),
                    tools=["read"],
                    label=f"triage {os.path.basename(f)}",
                )
                for f in files
            ),
        ),
        done
        and Task(
            "report",
            output=Report,
            run=lambda c: write_report(c, {f: t for f, t in triages.items() if t}),
        ),
    )
