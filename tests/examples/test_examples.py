"""The examples run end to end on real (temporary) input and do what they say."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from smithers.engine import load_workflow
from smithers.eventstore.events import (
    Event,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
)

from smithers import RunResult, run_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_loaded: dict[str, ModuleType] = {}


def load(name: str) -> ModuleType:
    """Import examples/<name>.py as a fresh module (registered so msgspec can resolve it)."""
    if name not in _loaded:
        mod_name = f"_smithers_example_{name}"
        spec = importlib.util.spec_from_file_location(mod_name, EXAMPLES / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
        _loaded[name] = module
    return _loaded[name]


async def run(
    name: str, wf_attr: str, tmp_path: Path, input: dict[str, Any]
) -> tuple[RunResult, list[Event]]:
    events: list[Event] = []
    wf = getattr(load(name), wf_attr)
    db = tmp_path / "smithers.db"
    result = await run_workflow(wf, input=input, db=db, on_progress=events.append)
    return result, events


def count(events: list[Event], kind: type[Event], node_id: str) -> int:
    return sum(1 for e in events if isinstance(e, kind) and getattr(e, "node_id", None) == node_id)


@pytest.mark.parametrize(
    ("name", "wf_name"),
    [
        ("hello", "hello"),
        ("repo_audit", "repo-audit"),
        ("error_recovery", "error-recovery"),
        ("robust_pipeline", "robust-pipeline"),
    ],
)
def test_each_example_is_a_workflow_file(name: str, wf_name: str) -> None:
    wf, path = load_workflow(str(EXAMPLES / f"{name}.py"))
    assert wf.name == wf_name
    assert path == (EXAMPLES / f"{name}.py").resolve()
    doc = load(name).__doc__
    assert doc is not None
    assert "smithers up examples/" in doc


# ---------------------------------------------------------------------------- hello


async def test_hello(tmp_path: Path) -> None:
    result, _ = await run("hello", "hello", tmp_path, {"name": "Ada"})
    assert result.status == "finished"
    assert result.outputs["greet"] == {"message": "Hello, Ada!"}
    assert result.output == {"message": "HELLO, ADA!"}


async def test_hello_default_name(tmp_path: Path) -> None:
    result, _ = await run("hello", "hello", tmp_path, {})
    assert result.output == {"message": "HELLO, WORLD!"}


# ---------------------------------------------------------------------------- repo_audit


def make_tree(root: Path) -> None:
    """A small tree: 13 counted files, 19 lines, 5 TODO/FIXME lines, 3 skipped files."""
    root.mkdir()
    (root / "README.md").write_text("# Demo\n\nTODO: write docs\n")
    (root / "setup.sh").write_text("#!/bin/sh\necho hi")  # 2 lines, no final newline
    (root / "dangling").symlink_to(root / "missing")  # unreadable
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text(
        "import os\n# TODO: tidy\nx = 1  # FIXME later\n# TODOLIST and todo are not markers\n"
    )
    (pkg / "sub" / "b.py").write_text("print('TODO FIXME')\n")  # one marker line
    (pkg / "data.json").write_text('{"a": 1}\n')
    (pkg / "blob.bin").write_bytes(b"\x00\x01\x02TODO\n" * 10)  # binary
    (pkg / "big.txt").write_bytes(b"TODO\n" * (2 * 1024 * 1024 // 5 + 1))  # over 2 MB
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"TODO\n")
    docs = root / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("one\ntwo\nFIXME three\n")
    (docs / "conf.yaml").write_text("a: 1\nb: 2\n")
    (docs / "cfg.toml").write_text("[x]\n")
    (docs / "main.rs").write_text("fn main() {}\n")
    (root / "my docs").mkdir()
    (root / "my docs" / "note.txt").write_text("hello\n")
    for excluded in (".git", "node_modules", "demo.egg-info", ".smithers"):
        (root / excluded).mkdir()
        (root / excluded / "x.js").write_text("TODO\nTODO\n")


def check_audit(output: dict[str, Any], report: Path) -> None:
    assert output == {
        "report_path": str(report.resolve()),
        "files": 13,
        "lines": 19,
        "todos": 5,
        "skipped": 3,
    }
    text = report.read_text()
    for line in (
        "- Files: 13",
        "- Lines: 19",
        "- TODO/FIXME lines: 5",
        "- Skipped: 3 (1 binary, 1 over 2 MB, 1 unreadable)",
        "| pkg | 5 | 6 | 3 | 2 |",
        "| Python | 2 | 5 |",
        "| Markdown | 2 | 6 |",
        "- `pkg/a.py:2`",
        "- `docs/guide.md:3`",
    ):
        assert line in text


async def test_repo_audit_counts_what_is_there(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_tree(root)
    report = tmp_path / "out" / "audit.md"
    result, events = await run(
        "repo_audit", "repo_audit", tmp_path, {"root": str(root), "report": str(report)}
    )
    assert result.status == "finished", result.error
    outs = result.outputs
    assert outs["scan"] == {
        "root": str(root.resolve()),
        "folders": ["docs", "my docs", "pkg"],
        "root_files": 3,
    }
    assert set(outs) == {"scan", "count-docs", "count-my-docs", "count-pkg", "root-files", "output"}
    pkg = outs["count-pkg"]
    assert pkg["files"] == 5
    assert pkg["lines"] == 6
    assert pkg["languages"] == {
        "Python": {"files": 2, "lines": 5},
        "JSON": {"files": 1, "lines": 1},
    }
    assert pkg["todos"] == 3
    assert pkg["todo_examples"] == ["pkg/a.py:2", "pkg/a.py:3", "pkg/sub/b.py:1"]
    assert pkg["skipped"] == {"binary": 1, "large": 1, "unreadable": 0}
    assert outs["count-docs"]["languages"] == {
        "Markdown": {"files": 1, "lines": 3},
        "YAML": {"files": 1, "lines": 2},
        "TOML": {"files": 1, "lines": 1},
        "Rust": {"files": 1, "lines": 1},
    }
    assert outs["count-my-docs"]["languages"] == {"other": {"files": 1, "lines": 1}}
    assert outs["root-files"]["languages"] == {
        "Markdown": {"files": 1, "lines": 3},
        "Shell": {"files": 1, "lines": 2},
    }
    assert outs["root-files"]["skipped"]["unreadable"] == 1
    check_audit(result.output, report)
    # Every task ran once: the per-folder tasks were mounted after `scan`, in one Parallel.
    for node_id in outs:
        assert count(events, NodeStarted, node_id) == 1


async def test_repo_audit_default_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    make_tree(root)
    monkeypatch.chdir(root)
    for _ in range(2):  # the report lands in .smithers/, which is not counted the next time
        result, _ = await run("repo_audit", "repo_audit", tmp_path, {})
        assert result.status == "finished", result.error
        check_audit(result.output, root / ".smithers" / "reports" / "repo_audit.md")


async def test_repo_audit_empty_root(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    report = tmp_path / "r.md"
    result, _ = await run(
        "repo_audit", "repo_audit", tmp_path, {"root": str(root), "report": str(report)}
    )
    assert result.status == "finished", result.error
    assert result.output["files"] == 0
    assert "None found." in report.read_text()


async def test_repo_audit_missing_root_fails(tmp_path: Path) -> None:
    result, _ = await run("repo_audit", "repo_audit", tmp_path, {"root": str(tmp_path / "nope")})
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["name"] == "FileNotFoundError"


def test_task_ids_are_sanitised_and_unique() -> None:
    ids = load("repo_audit").task_ids(["a b", "a-b", "ünï", "root-files", "---"])
    assert ids == {
        "a b": "count-a-b",
        "a-b": "count-a-b-2",
        "ünï": "count-n",
        "root-files": "count-root-files",
        "---": "count-folder",
    }


# ---------------------------------------------------------------------------- error_recovery


async def test_error_recovery_success_branch(tmp_path: Path) -> None:
    result, events = await run("error_recovery", "error_recovery", tmp_path, {"message": "done"})
    assert result.status == "finished"
    assert result.outputs["risky"] == {"ok": True, "message": "done"}
    assert result.outputs["summary"] == {"summary": "Success: done"}
    assert count(events, NodeStarted, "risky") == 1


async def test_error_recovery_fallback_branch(tmp_path: Path) -> None:
    result, _ = await run("error_recovery", "error_recovery", tmp_path, {"ok": False})
    assert result.status == "finished"
    assert result.outputs["summary"] == {"summary": "Fallback: operation did not succeed"}


async def test_error_recovery_retries_then_succeeds(tmp_path: Path) -> None:
    result, events = await run(
        "error_recovery", "error_recovery", tmp_path, {"fail_times": 2, "retry_delay_ms": 0}
    )
    assert result.status == "finished"
    assert count(events, NodeStarted, "risky") == 3
    assert count(events, NodeFailed, "risky") == 2
    assert count(events, NodeRetrying, "risky") == 2
    assert result.outputs["summary"] == {"summary": "Success: operation completed"}


async def test_error_recovery_fails_after_retries(tmp_path: Path) -> None:
    result, events = await run(
        "error_recovery", "error_recovery", tmp_path, {"fail_times": 3, "retry_delay_ms": 0}
    )
    assert result.status == "failed"
    assert count(events, NodeStarted, "risky") == 3
    assert result.error is not None
    assert result.error["name"] == "OperationError"
    assert result.error["message"] == "attempt 3 of the operation failed"
    assert "summary" not in result.outputs
    assert count(events, NodeStarted, "summary") == 0


async def test_error_recovery_timeout(tmp_path: Path) -> None:
    result, events = await run(
        "error_recovery",
        "error_recovery",
        tmp_path,
        {"sleep_ms": 5_000, "timeout_ms": 50, "retry_delay_ms": 0},
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "TASK_TIMEOUT"
    assert count(events, NodeStarted, "risky") == 3


# ---------------------------------------------------------------------------- robust_pipeline


def make_py_tree(root: Path, *, dirty: bool = False) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "main.py").write_text("import pkg\n\nprint('hi')\n")
    (root / "pkg" / "__init__.py").write_text("x = 1 \n" if dirty else "x = 1\n")
    (root / "notes.md").write_text("not python\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "skip.py").write_text("x = 1\n")


async def test_robust_pipeline_full(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    make_py_tree(root)
    result, _ = await run("robust_pipeline", "robust_pipeline", tmp_path, {"root": str(root)})
    assert result.status == "finished", result.error
    assert result.outputs["analyze"] == {
        "summary": "2 Python files, 4 lines, under proj",
        "filesAnalyzed": ["main.py", "pkg/__init__.py"],
        "pythonFiles": 2,
        "pythonLines": 4,
    }
    assert result.outputs["lint"] == {"passed": True, "issues": []}
    assert "Lint results: no issues" in result.outputs["report"]["text"]
    assert result.outputs["final"] == {
        "summary": "2 Python files, 4 lines, under proj",
        "lintPassed": True,
    }


async def test_robust_pipeline_lint_finds_issues(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    make_py_tree(root, dirty=True)
    result, _ = await run("robust_pipeline", "robust_pipeline", tmp_path, {"root": str(root)})
    assert result.outputs["lint"] == {
        "passed": False,
        "issues": ["pkg/__init__.py:1: trailing whitespace"],
    }
    assert result.outputs["final"]["lintPassed"] is False


async def test_robust_pipeline_quick_mode_skips_report(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    make_py_tree(root)
    result, events = await run(
        "robust_pipeline", "robust_pipeline", tmp_path, {"root": str(root), "mode": "quick"}
    )
    assert result.status == "finished"
    assert "report" not in result.outputs
    assert count(events, NodeSkipped, "report") == 1
    assert count(events, NodeStarted, "report") == 0
    assert result.outputs["final"]["lintPassed"] is True


async def test_robust_pipeline_lint_failure_does_not_fail_the_run(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    make_py_tree(root)
    result, events = await run(
        "robust_pipeline",
        "robust_pipeline",
        tmp_path,
        {"root": str(root), "lint_fails": True, "retry_delay_ms": 0},
    )
    assert result.status == "finished"
    assert result.error is None
    assert count(events, NodeStarted, "lint") == 2  # retries=1
    assert count(events, NodeFailed, "lint") == 2
    assert "lint" not in result.outputs
    assert "Lint results: lint skipped or failed" in result.outputs["report"]["text"]
    assert result.outputs["final"] == {
        "summary": "2 Python files, 4 lines, under proj",
        "lintPassed": None,
    }


@pytest.mark.parametrize(("fail_times", "status"), [(3, "finished"), (4, "failed")])
async def test_robust_pipeline_analysis_retries(
    tmp_path: Path, fail_times: int, status: str
) -> None:
    root = tmp_path / "proj"
    make_py_tree(root)
    result, events = await run(
        "robust_pipeline",
        "robust_pipeline",
        tmp_path,
        {"root": str(root), "analyze_fail_times": fail_times, "retry_delay_ms": 0},
    )
    assert result.status == status
    assert count(events, NodeStarted, "analyze") == 4  # retries=3
    assert ("final" in result.outputs) == (status == "finished")


# ---------------------------------------------------------------------------- refine_loop


def test_refine_loop_is_a_workflow_file() -> None:
    wf, _ = load_workflow(str(EXAMPLES / "refine_loop.py"))
    assert wf.name == "refine-loop"
    doc = load("refine_loop").__doc__
    assert doc is not None
    assert "smithers up examples/refine_loop.py" in doc


async def test_refine_loop_drafts_until_the_third_review_passes(tmp_path: Path) -> None:
    result, events = await run("refine_loop", "refine_loop", tmp_path, {"topic": "loops"})
    assert result.status == "finished"
    started = [(e.node_id, e.iteration) for e in events if isinstance(e, NodeStarted)]
    assert started == [
        ("draft", 0),
        ("review", 0),
        ("draft", 1),
        ("review", 1),
        ("draft", 2),
        ("review", 2),
        ("output", 0),
    ]
    assert result.output == {
        "text": "Draft 3 about loops (addressing: needs 1 more point(s))",
        "passes": 3,
    }


async def test_refine_loop_fails_when_no_draft_passes_in_time(tmp_path: Path) -> None:
    result, _ = await run(
        "refine_loop", "refine_loop", tmp_path, {"pass_score": 9, "max_passes": 2}
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["code"] == "RALPH_MAX_REACHED"
    assert "output" not in result.outputs
