"""Implement a ticket with a coding agent in a scratch git worktree, in a review loop.

Run it from a git repository (the run's sandbox root is the repository: ``--root``)::

    smithers workflow run implement --root . --input '{"ticket": "tickets/001-greeting.md"}'
    smithers workflow run implement --root . \\
        --input '{"ticket": "tickets/001-greeting.md", "agent": "codex"}'

``worktree`` makes a branch ``smithers/<ticket>-<run>`` in a scratch worktree under
``.smithers-worktrees/`` (the main checkout is not touched) and reads the ticket. Then
the loop ``rounds``: ``implement`` asks the coding agent (Claude Code with edits
allowed, or Codex in its workspace-write sandbox) to do the ticket in that worktree,
``diff`` commits its work and takes the diff, ``review`` asks a second agent (Claude
Code in plan mode, or Codex read-only) for a verdict. A rejected review's comments go
into the next round's prompt; the loop ends when a review approves (at most
``maxRounds``, else the run fails). ``output`` names the branch and the rounds it took.

The CLIs' session ids are saved as the tasks' heartbeats: a retry, or ``smithers up
--resume RUN`` after a crash, continues the same session rather than starting over.
Adapted from ``examples/implement_ticket.py``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec
from smithers.engine import Loop, Sequence, Task, TaskContext, WorkflowContext, tools, workflow
from smithers.engine.agents import ClaudeCodeAgent, CodexAgent

GIT_USER = ["-c", "user.name=smithers", "-c", "user.email=smithers@localhost"]


class TicketInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    ticket: str
    """The ticket (a Markdown file), relative to the sandbox root."""
    agent: Literal["claude", "codex"] = "claude"
    max_rounds: int = 3
    base: str = "HEAD"


class Worktree(msgspec.Struct, kw_only=True):
    path: str
    branch: str
    base_commit: str
    ticket_text: str


class Work(msgspec.Struct, kw_only=True):
    summary: str
    files: list[str]


class Diff(msgspec.Struct, kw_only=True):
    commit: str
    diff: str


class Review(msgspec.Struct, kw_only=True):
    approved: bool
    comments: str


class Outcome(msgspec.Struct, kw_only=True):
    branch: str
    rounds: int


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text.rsplit("/", 1)[-1].removesuffix(".md")).strip("-")


async def make_worktree(ctx: TaskContext, ticket: str, base: str) -> dict[str, Any]:
    text = await tools.read(ctx.tools, path=ticket)
    branch = f"smithers/{_slug(ticket)}-{_slug(ctx.run_id)[:12]}"
    path = f".smithers-worktrees/{_slug(ticket)}-{_slug(ctx.run_id)[:12]}"
    commit = await tools.bash(ctx.tools, command=["git", "rev-parse", base])
    if not (ctx.tools.root_dir / path).exists():  # a retry finds it made already
        await tools.bash(ctx.tools, command=["git", "worktree", "add", "-b", branch, path, base])
    await _exclude(ctx, ".smithers-worktrees/")
    return {
        "path": path,
        "branch": branch,
        "base_commit": commit.stdout.strip(),
        "ticket_text": text,
    }


async def _exclude(ctx: TaskContext, pattern: str) -> None:
    """Keep `pattern` out of the main checkout's `git status` (.git/info/exclude, local)."""
    where = await tools.bash(ctx.tools, command=["git", "rev-parse", "--git-path", "info/exclude"])
    path = where.stdout.strip()
    try:
        text = await tools.read(ctx.tools, path=path)
    except tools.ToolError:  # no exclude file yet
        text = ""
    if pattern not in text.splitlines():
        await tools.write(ctx.tools, path=path, content=f"{text.rstrip()}\n{pattern}\n".lstrip())


async def commit_and_diff(ctx: TaskContext, wt: Worktree, round_no: int) -> dict[str, Any]:
    await tools.bash(ctx.tools, command=["git", "add", "-A"], cwd=wt.path)
    status = await tools.bash(ctx.tools, command=["git", "status", "--porcelain"], cwd=wt.path)
    if status.stdout.strip():
        message = f"Round {round_no + 1} of the ticket"
        await tools.bash(
            ctx.tools, command=["git", *GIT_USER, "commit", "-q", "-m", message], cwd=wt.path
        )
    head = await tools.bash(ctx.tools, command=["git", "rev-parse", "HEAD"], cwd=wt.path)
    diff = await tools.bash(
        ctx.tools, command=["git", "diff", f"{wt.base_commit}..HEAD"], cwd=wt.path
    )
    return {"commit": head.stdout.strip(), "diff": diff.stdout}


def coder(kind: str, cwd: str) -> Any:
    if kind == "codex":
        return CodexAgent(cwd=cwd, sandbox="workspace-write", id="codex-coder")
    return ClaudeCodeAgent(
        cwd=cwd,
        permission_mode="acceptEdits",
        allowed_tools=["Read", "Edit", "Write", "Bash(python *)", "Bash(ls *)"],
        id="claude-coder",
    )


def reviewer(kind: str, cwd: str) -> Any:
    if kind == "codex":
        return CodexAgent(cwd=cwd, sandbox="read-only", id="codex-reviewer")
    return ClaudeCodeAgent(cwd=cwd, permission_mode="plan", id="claude-reviewer")


def implement_prompt(wt: Worktree, comments: str | None) -> str:
    prompt = (
        "Implement this ticket in the current folder (a git worktree of the repository; "
        f"do not commit, the workflow does).\n\n{wt.ticket_text}"
    )
    if comments:
        prompt += f"\n\nA reviewer asked for changes to your last attempt:\n{comments}"
    return prompt


def review_prompt(wt: Worktree, diff: Diff) -> str:
    return (
        "Review this diff against the ticket. Approve it only if it does everything the "
        "ticket asks; otherwise say precisely what is missing.\n\n"
        f"Ticket:\n{wt.ticket_text}\n\nDiff:\n{diff.diff}"
    )


@workflow(name="implement", input=TicketInput)
def implement(ctx: WorkflowContext) -> Sequence:
    """Implement a ticket: worktree, then rounds of implement, diff, review, until approved."""
    params: TicketInput = ctx.input
    wt = ctx.latest(Worktree, "worktree")  # outside the loop: not "this round's"
    last = ctx.latest(Review, "review")
    done = last is not None and last.approved
    comments = last.comments if last is not None and not last.approved else None
    work = ctx.output_maybe(Work, "implement")  # this round's
    diff = ctx.output_maybe(Diff, "diff")
    round_no = ctx.iteration
    return Sequence(
        Task(
            "worktree", output=Worktree, run=lambda c: make_worktree(c, params.ticket, params.base)
        ),
        wt
        and Loop(
            "rounds",
            Task(
                "implement",
                output=Work,
                agent=coder(params.agent, wt.path),
                prompt=implement_prompt(wt, comments),
            ),
            work and Task("diff", output=Diff, run=lambda c: commit_and_diff(c, wt, round_no)),
            diff
            and Task(
                "review",
                output=Review,
                agent=reviewer(params.agent, wt.path),
                prompt=review_prompt(wt, diff),
            ),
            until=done,
            max_iterations=params.max_rounds,
            on_max_reached="fail",
        ),
        done
        and wt
        and Task(
            "output",
            output=Outcome,
            value={"branch": wt.branch, "rounds": ctx.iteration_count(Review, "review")},
        ),
    )
