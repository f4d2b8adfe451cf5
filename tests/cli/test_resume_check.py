"""``up --resume`` and ``replay`` refuse a workflow that contradicts the log (issue 8, item 3).

Through the CLI in a real subprocess: the builder reads an environment variable, which
changes between the run and its resume.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

FLOW = """
    import os
    from smithers import Sequence, Task, workflow

    def boom():
        raise ValueError("boom")

    @workflow("env")
    def env(ctx):
        return Sequence(
            Task("a", output=dict, value={"n": 1}, label=os.environ.get("SMITHERS_T_LABEL")),
            Task("b", output=dict, run=boom, retries=0),
        )
"""


def smithers(tmp_path: Path, label: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}
    env["SMITHERS_T_LABEL"] = label
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args, "--db", str(tmp_path / "smithers.db")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_up_resume_and_replay_refuse_a_render_that_contradicts_the_log(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(FLOW), encoding="utf-8")
    first = smithers(tmp_path, "one", "up", "flow.py", "--run-id", "r", "--json")
    assert json.loads(first.stdout)["status"] == "failed", first.stderr

    refused = smithers(tmp_path, "two", "up", "--resume", "r")
    assert refused.returncode == 4, refused.stderr
    assert refused.stderr.startswith("Error [RESUME_FRAME_MISMATCH]:")
    assert "a (changed)" in refused.stderr
    assert "smithers verify r" in refused.stderr
    assert "--allow-nondeterminism" in refused.stderr

    as_json = smithers(tmp_path, "two", "up", "--resume", "r", "--json")
    assert as_json.returncode == 4
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "RESUME_FRAME_MISMATCH"
    assert error["details"]["nodes"] == [{"nodeId": "a", "change": "changed"}]

    replayed = smithers(tmp_path, "two", "replay", "r", "--frame", "1")
    assert replayed.returncode == 4, replayed.stderr
    assert "Error [RESUME_FRAME_MISMATCH]: Cannot replay run 'r'" in replayed.stderr
    runs = json.loads(smithers(tmp_path, "two", "ps", "--json").stdout)
    assert [run["runId"] for run in runs] == ["r"]  # no fork was recorded

    same = smithers(tmp_path, "one", "up", "--resume", "r", "--json")
    assert json.loads(same.stdout)["error"]["code"] != "RESUME_FRAME_MISMATCH"

    forced = smithers(tmp_path, "two", "up", "--resume", "r", "--allow-nondeterminism", "--json")
    out = json.loads(forced.stdout)
    assert out["status"] == "failed", forced.stderr  # past the check: `b` fails again
    assert out["error"]["name"] == "ValueError"
    assert (
        "--allow-nondeterminism only applies to --resume."
        in smithers(tmp_path, "two", "up", "flow.py", "--allow-nondeterminism").stderr
    )
