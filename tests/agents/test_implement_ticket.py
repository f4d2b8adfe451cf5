"""examples/implement_ticket.py end to end, as ``smithers up``, against the Claude double.

A real git repository in a temporary folder, the real ``smithers up`` subprocess, and
``claude`` resolved on PATH to tests/agents/doubles/claude: the coder writes hello.py,
the reviewer asks for a test, the second round adds it, the review approves, and the
run's output is a branch holding both files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOUBLES = Path(__file__).with_name("doubles")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def test_a_ticket_is_implemented_reviewed_and_delivered_on_a_branch(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "tickets").mkdir(parents=True)
    shutil.copy(EXAMPLES / "tickets" / "001-greeting.md", repo / "tickets")
    (repo / "README.md").write_text("# demo\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "start")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMITHERS_", "CLAUDE_"))}
    env.update(PATH=f"{DOUBLES}:{env['PATH']}", CLAUDE_DOUBLE_SCENARIO="ticket")

    done = subprocess.run(
        [sys.executable, "-m", "smithers", "up", str(EXAMPLES / "implement_ticket.py"),
         "--root", str(repo), "--run-id", "t1", "--db", str(tmp_path / "runs.db"), "--json",
         "--input", json.dumps({"ticket": "tickets/001-greeting.md"})],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "finished"
    branch = result["outputs"]["result"]["branch"]
    assert branch == "smithers/001-greeting-t1"
    assert result["outputs"]["result"]["rounds"] == 2
    files = _git(repo, "ls-tree", "--name-only", "-r", branch).split()
    assert sorted(files) == ["README.md", "hello.py", "test_hello.py", "tickets/001-greeting.md"]
    assert _git(repo, "status", "--porcelain") == ""  # the main checkout was not touched
    assert not (repo / "hello.py").exists()
