"""``examples/deploy_with_approval.py`` as issue 9's "done when" says, in real processes.

``smithers up`` parks with exit 3 and prints the exact ``smithers approve`` command;
running that command finishes the run, soak timer included, without any other step.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deploy_with_approval.py"


def test_up_parks_and_the_printed_approve_command_finishes_the_deploy(
    procs: Any, log: Any, helpers: Any, tmp_path: Path
) -> None:
    target = tmp_path / "deployed"
    params = json.dumps({"version": "2.1.0", "target": str(target), "soak": "1s"})
    up = procs.smithers("up", str(EXAMPLE), "--run-id", "dep-1", "--input", params)
    out, err = up.communicate(timeout=60)
    assert up.returncode == 3, err
    assert "Deploy 2.1.0?" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("approve:"))
    command = line.split("approve:", 1)[1].strip()
    assert command.startswith("smithers approve dep-1 --node approve-deploy")
    assert not (target / "canary.json").exists()  # nothing deployed before the decision

    argv = shlex.split(command)
    done = subprocess.run(
        [sys.executable, "-m", "smithers", *argv[1:], "--note", "ship it", "--by", "ana"],
        cwd=procs.root,
        env=procs.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pid = re.search(r"\(pid (\d+)\)", done.stdout)
    if pid:
        procs.track(int(pid.group(1)))
    helpers.wait_until(lambda: log.status("dep-1") == "finished", "the deploy to finish")
    state = log.state("dep-1")
    assert json.loads(bytes(state.node("output").output)) == {
        "version": "2.1.0",
        "digest": json.loads((target / "live.json").read_text())["digest"],
        "approvedBy": "ana",
    }
    soak = json.loads(bytes(state.node("soak").output))
    assert soak["firedAtMs"] >= soak["firesAtMs"]
    canary_done = state.node("canary").attempts[-1].finished_at_ms
    assert soak["firesAtMs"] - canary_done >= 900  # the soak really waited ~1 s
    types = log.types("dep-1")
    for kind in ("ApprovalRequested", "NodeWaitingApproval", "ApprovalGranted", "TimerCreated"):
        assert types.count(kind) == 1, kind
