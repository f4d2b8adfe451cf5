"""Fixtures of the workflow-pack tests: ``smithers`` as a real process in a project folder.

Every test gets a project folder (a git repository with one commit) as the cwd of its
``smithers`` processes, a clean environment (no ``SMITHERS_*``, no model API keys: the
pack's offline stand-ins answer) and its own database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


class Project:
    """A project folder and ``smithers`` run in it (``--db`` is not added: pass it)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "runs" / "smithers.db"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SMITHERS_", "OPENAI_", "ANTHROPIC_"))
        }
        self.env["SMITHERS_POST_FAILURE"] = "0"

    def smithers(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m smithers ARGS`` in the project (or `cwd`)."""
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args],
            cwd=cwd or self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def run_json(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """``smithers workflow run ARGS --json --db DB --no-log``: the result object."""
        done = self.smithers(
            "workflow", "run", *args, "--json", "--db", str(self.db), "--no-log", env=env
        )
        assert done.returncode in (0, 1), done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def git(self, *args: str) -> str:
        return _git(self.root, *args)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A git repository with one commit (``app.py``), as the tests' project folder."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "app.py").write_text(
        'def greet(name):\n    """Say hello."""\n    return f"Hello, {name}!"\n', encoding="utf-8"
    )
    p = Project(root)
    p.git("init", "-q", "-b", "main")
    p.git("add", "-A")
    p.git("commit", "-q", "-m", "start")
    return p
