"""Retries, timeouts, continue-on-fail and skip-if together: Smithers' "Combining Patterns".

Run it (from the repository root, it analyses the repository's Python files)::

    smithers up examples/robust_pipeline.py
    smithers up examples/robust_pipeline.py --input '{"mode": "quick"}'
    smithers up examples/robust_pipeline.py --input '{"lint_fails": true}'

Mapping to the seed (``robust-pipeline`` in the Smithers docs), node by node:

- ``analyze`` (``retries={3} timeoutMs={120_000}``): `analyse` stands in for the
  analyst agent. It walks `root` (skipping caches, virtualenvs and VCS folders), counts
  the Python files and their lines, and lists up to ten of them.
- ``lint`` (``retries={1} continueOnFail``), mounted once the analysis exists
  (``{analysis ? <Task .../> : null}`` is ``... if analysis else None``): `lint_files`
  stands in for the linter. It checks the analysed files for lines over 100 characters,
  trailing whitespace and tab indentation. With ``lint_fails`` it crashes on every
  attempt: the node ends ``failed``, and the run goes on.
- ``report`` (``skipIf={ctx.input.mode === "quick"}``), mounted once the analysis
  exists: in quick mode it is recorded as skipped and never runs. In full mode
  `write_report` composes the detailed report text from the analysis and lint results
  (``"lint skipped or failed"`` when ``lint`` has no output).
- ``final`` (static, schema ``Output``): ``{summary, lintPassed}``, where ``lintPassed``
  is None when lint failed (the seed's ``lint?.passed ?? null``). Output keys are
  camelCase as in the seed (``rename="camel"``); read it as ``result.outputs["final"]``.

Input (all optional): ``mode`` (``"full"`` or ``"quick"``), ``lint_fails``, ``root``
(default ``"."``), ``analyze_fail_times`` (the analysis raises on its first N attempts,
to show retries) and ``retry_delay_ms`` (initial exponential backoff, default 1 000 as
the engine's; 0 retries at once).
"""

import os
from pathlib import Path
from typing import Literal

import msgspec

from smithers import Backoff, Sequence, Task, TaskContext, WorkflowContext, workflow

SKIP_DIRS = frozenset(
    {
        ".git",
        ".smithers",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        "build",
        "dist",
        ".mypy_cache",
        ".ruff_cache",
        ".hypothesis",
    }
)
MAX_LISTED = 10
MAX_LINE = 100


class PipelineInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mode: Literal["full", "quick"] = "full"
    lint_fails: bool = False
    root: str = "."
    analyze_fail_times: int = 0
    retry_delay_ms: int = 1_000


class Analysis(msgspec.Struct, kw_only=True, rename="camel"):
    summary: str
    files_analyzed: list[str]
    """Up to ten Python files, relative to root."""
    python_files: int
    python_lines: int


class Lint(msgspec.Struct, kw_only=True):
    passed: bool
    issues: list[str]


class Report(msgspec.Struct, kw_only=True):
    text: str


class Output(msgspec.Struct, kw_only=True, rename="camel"):
    summary: str
    lint_passed: bool | None


# ---------------------------------------------------------------------------- stand-ins


def analyse(tctx: TaskContext) -> Analysis:
    """Stand-in for the analyst agent: "Analyze the codebase thoroughly"."""
    inp: PipelineInput = tctx.input
    if tctx.attempt <= inp.analyze_fail_times:
        raise RuntimeError(f"analysis attempt {tctx.attempt} failed")
    root = Path(inp.root).resolve()
    files: list[str] = []
    lines = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")
        )
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = Path(dirpath) / name
            try:
                with path.open("rb") as f:
                    lines += sum(1 for _ in f)
            except OSError:
                continue
            files.append(path.relative_to(root).as_posix())
    listed = files[:MAX_LISTED]
    summary = f"{len(files)} Python files, {lines} lines, under {root.name or root}"
    return Analysis(
        summary=summary, files_analyzed=listed, python_files=len(files), python_lines=lines
    )


def lint_files(root: str, files: list[str], crash: bool) -> Lint:
    """Stand-in for the linter: "Lint the files: ..."."""
    if crash:
        raise RuntimeError("linter crashed")
    base = Path(root).resolve()
    issues: list[str] = []
    for rel in files:
        try:
            text = (base / rel).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            issues.append(f"{rel}: unreadable ({e.strerror})")
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            if len(line) > MAX_LINE:
                issues.append(f"{rel}:{lineno}: line longer than {MAX_LINE} characters")
            if line != line.rstrip():
                issues.append(f"{rel}:{lineno}: trailing whitespace")
            if line.startswith("\t"):
                issues.append(f"{rel}:{lineno}: tab indentation")
    return Lint(passed=not issues, issues=issues)


def write_report(analysis: Analysis, lint: Lint | None) -> Report:
    """Stand-in for the reporter agent: "Generate a detailed report"."""
    lint_text = (", ".join(lint.issues) or "no issues") if lint else "lint skipped or failed"
    files = "\n".join(f"- {f}" for f in analysis.files_analyzed)
    text = (
        f"Detailed report.\nAnalysis: {analysis.summary}\nLint results: {lint_text}\n"
        f"Files analysed:\n{files}\n"
    )
    return Report(text=text)


# ---------------------------------------------------------------------------- the workflow


@workflow(name="robust-pipeline", input=PipelineInput)
def robust_pipeline(ctx: WorkflowContext) -> Sequence:
    inp: PipelineInput = ctx.input
    analysis = ctx.output_maybe(Analysis, "analyze")
    lint = ctx.output_maybe(Lint, "lint")
    backoff = Backoff(kind="exponential", initial_ms=inp.retry_delay_ms)
    return Sequence(
        # Retries + timeout for the critical analysis step.
        Task(
            "analyze",
            output=Analysis,
            run=analyse,
            retries=3,
            timeout_ms=120_000,
            backoff=backoff,
        ),
        # Optional lint step: continues even if it fails.
        Task(
            "lint",
            output=Lint,
            run=lambda: lint_files(inp.root, analysis.files_analyzed, inp.lint_fails),
            retries=1,
            backoff=backoff,
            continue_on_fail=True,
        )
        if analysis
        else None,
        # Skip the detailed report in quick mode.
        Task(
            "report",
            output=Report,
            run=lambda: write_report(analysis, lint),
            skip_if=inp.mode == "quick",
        )
        if analysis
        else None,
        # Always produce a final summary.
        Task(
            "final",
            output=Output,
            value=Output(summary=analysis.summary, lint_passed=lint.passed if lint else None),
        )
        if analysis
        else None,
    )
