"""The README's Python examples run as written, and print what their comments say.

Each block opens with a comment naming its file (``# count.py``, ``# flows/checked.py``);
the test writes the blocks to those files in a temporary folder and runs the programs
with this interpreter, as a reader would. A ``print(...)  # text`` line's comment must
begin with what it printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
FILE_COMMENT = re.compile(r"#\s*([\w./]+\.py)\b")


def readme_files() -> dict[str, str]:
    """The README's Python blocks, by the file name their first line gives."""
    out: dict[str, str] = {}
    for block in BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")):
        m = FILE_COMMENT.match(block.splitlines()[0])
        assert m is not None, f"a README Python block does not name its file:\n{block}"
        out[m.group(1)] = block
    return out


def run_program(tmp_path: Path, name: str) -> list[str]:
    """Write every README block into `tmp_path`, run `name` there; its stdout lines."""
    for path, code in readme_files().items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "SMITHERS_DEBUG")}
    proc = subprocess.run(
        [sys.executable, name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def check_comments(code: str, printed: list[str]) -> None:
    """Each ``print(...)  # comment`` line's comment begins with what it printed."""
    comments = [
        line.split("  # ", 1)[1].strip()
        for line in code.splitlines()
        if line.strip().startswith("print(") and "  # " in line
    ]
    assert len(comments) == len(printed), (comments, printed)
    for line, comment in zip(printed, comments, strict=True):
        assert comment == line or (comment.startswith(line) and not comment[len(line)].isalnum()), (
            f"printed {line!r}, the README says {comment!r}"
        )


def test_every_python_block_names_its_file() -> None:
    assert set(readme_files()) == {
        "count.py",
        "flows/checked.py",
        "debug.py",
        "wait.py",
        "agent.py",
    }


def test_the_agents_example(tmp_path: Path) -> None:
    printed = run_program(tmp_path, "agent.py")
    check_comments(readme_files()["agent.py"], printed)
    assert printed == [
        "finished python",
        "['AgentEvent', 'ToolCallFinished', 'AgentEvent']",
    ]


def test_the_runs_that_wait_example(tmp_path: Path) -> None:
    printed = run_program(tmp_path, "wait.py")
    check_comments(readme_files()["wait.py"], printed)
    assert printed == ["waiting-approval", "waiting-event", "finished {'ok': True}"]


def test_the_writing_a_workflow_example(tmp_path: Path) -> None:
    printed = run_program(tmp_path, "count.py")
    check_comments(readme_files()["count.py"], printed)
    assert printed[:2] == [
        "finished",
        "{'first': {'n': 1}, 'second': {'n': 6}, 'third': {'n': 11}}",
    ]
    assert (tmp_path / "runs" / "smithers.db").is_file()


def test_the_debug_a_failed_run_example(tmp_path: Path) -> None:
    printed = run_program(tmp_path, "debug.py")
    check_comments(readme_files()["debug.py"], printed)
    assert printed == [
        "failed",
        "[(0, 0), (1, 1), (2, 1)]",
        "finished {'n': 6}",
        "negative start",
        "1",
        "True",
    ]
