"""Answer a question about the files under the sandbox root, citing where the answer is.

Run it in the folder to search (the sandbox root: ``--root``)::

    smithers workflow run research --root . --input '{"question": "Where are retries configured?"}'
    smithers workflow run research --input '{"question": "...", "path": "docs"}'

``gather`` greps the files for the question's keywords (journaled ``grep`` tool calls);
``answer`` asks the researcher, with the matches and the ``read``/``grep`` tools, for an
`Answer` (the text, a confidence, the ``file:line`` places it rests on); ``output`` is
that answer. With ``OPENAI_API_KEY`` (or ``ANTHROPIC_API_KEY``) set, a model answers
(``SMITHERS_MODEL`` picks another model); without one, `MatchReporter` stands in: it
answers with the places the keywords appear, most matched first.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

import msgspec
from smithers.engine import Sequence, Task, TaskContext, WorkflowContext, agents, tools, workflow


class ResearchInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    question: str
    """The question, in words."""
    path: str = "."
    """Where to look, relative to the sandbox root."""
    max_matches: int = 40
    """How many matching lines go to the researcher, at most."""


class Match(msgspec.Struct, kw_only=True):
    path: str
    line: int
    text: str


class Sources(msgspec.Struct, kw_only=True):
    keywords: list[str]
    matches: list[Match]


class Answer(msgspec.Struct, kw_only=True):
    answer: str
    """The answer, a few sentences."""
    confidence: Literal["low", "medium", "high"]
    citations: list[str]
    """``path:line`` places the answer rests on."""


PROMPT = """Answer this question about the files in the current folder: {question}

Lines matching its keywords ({keywords}), as path:line:text:
{matches}

Read the files you need with the read tool (grep finds more). Answer in a few sentences,
say how confident you are (low, medium, high), and cite the path:line places you used."""

_STOP = frozenset(
    [
        "about",
        "after",
        "again",
        "also",
        "because",
        "been",
        "before",
        "being",
        "does",
        "doing",
        "from",
        "have",
        "here",
        "how",
        "into",
        "just",
        "more",
        "most",
        "much",
        "other",
        "over",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "under",
        "very",
        "what",
        "when",
        "where",
        "which",
        "while",
        "with",
        "would",
        "your",
    ]
)


def keywords(question: str) -> list[str]:
    """The question's words worth searching for: 4+ letters, not common words, in order."""
    words = [w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_-]{3,}", question)]
    return list(dict.fromkeys(w for w in words if w not in _STOP))[:8]


async def gather(ctx: TaskContext, params: ResearchInput) -> dict[str, Any]:
    """Grep the files under `params.path` for the question's keywords."""
    words = keywords(params.question)
    matches: list[dict[str, Any]] = []
    if words:
        pattern = "|".join(re.escape(w) for w in words)
        found = await tools.grep(ctx.tools, pattern=pattern, path=params.path, ignore_case=True)
        for line in found.splitlines():
            path, _, rest = line.partition(":")
            number, _, text = rest.partition(":")
            if number.isdigit():
                matches.append({"path": path, "line": int(number), "text": text.strip()[:200]})
    score = {m["path"]: 0 for m in matches}
    for m in matches:
        score[m["path"]] += 1
    matches.sort(key=lambda m: (-score[m["path"]], m["path"], m["line"]))
    return {"keywords": words, "matches": matches[: params.max_matches]}


class MatchReporter:
    """The offline stand-in researcher: answers with where the keywords appear."""

    id = "match-reporter"
    engine = "offline"
    model = "grep"

    async def generate(self, request: agents.AgentRequest) -> agents.AgentResult:
        """Summarise the ``path:line:text`` lines of the prompt."""
        places = re.findall(r"^(\S+?):(\d+):(.*)$", request.prompt, flags=re.M)
        files = list(dict.fromkeys(p for p, _, _ in places))
        if not places:
            output = {
                "answer": "Nothing under the searched folder mentions the question's keywords.",
                "confidence": "low",
                "citations": [],
            }
        else:
            first = places[0]
            output = {
                "answer": (
                    f"The keywords appear {len(places)} time(s) in {len(files)} file(s), most "
                    f"in {files[0]}; e.g. {first[0]}:{first[1]}: {first[2].strip()}"
                ),
                "confidence": "medium" if len(files) <= 3 else "low",
                "citations": [f"{p}:{n}" for p, n, _ in places[:10]],
            }
        return agents.AgentResult(output=output, finish_reason="stop")


def researcher() -> Any:
    """A model when an API key is set (OpenAI first, then Anthropic), else the stand-in."""
    model = os.environ.get("SMITHERS_MODEL")
    if os.environ.get("OPENAI_API_KEY"):
        return agents.openai(model or "gpt-4o-mini")
    if os.environ.get("ANTHROPIC_API_KEY"):
        return agents.anthropic(model or "claude-3-5-haiku-latest")
    return MatchReporter()


RESEARCHER = researcher()


@workflow(name="research", input=ResearchInput)
def research(ctx: WorkflowContext) -> Sequence:
    """Answer a question: grep for its keywords, ask the researcher, return the answer."""
    params: ResearchInput = ctx.input
    sources = ctx.output_maybe(Sources, "gather")
    answer = ctx.output_maybe(Answer, "answer")
    listing = "\n".join(f"{m.path}:{m.line}:{m.text}" for m in sources.matches) if sources else ""
    return Sequence(
        Task("gather", output=Sources, run=lambda c: gather(c, params)),
        sources
        and Task(
            "answer",
            output=Answer,
            agent=RESEARCHER,
            prompt=PROMPT.format(
                question=params.question,
                keywords=", ".join(sources.keywords) or "none",
                matches=listing or "(none)",
            ),
            tools=["read", "grep"],
        ),
        answer and Task("output", output=Answer, value=msgspec.to_builtins(answer)),
    )
