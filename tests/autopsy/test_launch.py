"""When ``up`` launches the autopsy, and when it does not (opt-outs, no recursion)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from smithers.engine.autopsy import (
    OPS_WORKFLOWS,
    post_failure_enabled,
    post_failure_workflow_path,
)

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import Smithers


def test_no_post_failure_flag_launches_nothing(smithers: Smithers) -> None:
    done = smithers("up", "flows/unknown.py", "--no-post-failure")
    assert done.returncode == 1
    assert "[smithers]" not in done.stderr
    assert smithers.autopsies() == []


def test_env_opt_out_launches_nothing(smithers: Smithers) -> None:
    done = smithers("up", "flows/unknown.py", env={"SMITHERS_POST_FAILURE": "0"})
    assert done.returncode == 1
    assert "[smithers]" not in done.stderr
    assert smithers.autopsies() == []


def test_a_failed_autopsy_launches_no_autopsy(smithers: Smithers) -> None:
    path = post_failure_workflow_path()
    assert path is not None
    payload = json.dumps({"targetRunId": "no-such-run"})
    done = smithers("up", str(path), "--input", payload, "--run-id", "post-failure-by-hand")
    assert done.returncode == 1  # gather: RUN_NOT_FOUND
    assert "[smithers]" not in done.stderr
    assert smithers.autopsies() == ["post-failure-by-hand"]


def test_detached_up_launches_the_autopsy(smithers: Smithers) -> None:
    done = smithers("up", "flows/unknown.py", "--run-id", "bg", "--detach")
    assert done.returncode == 0, done.stderr
    found = smithers.wait_for(smithers.autopsies, "the autopsy of run bg")
    assert len(found) == 1
    smithers.wait_status(found[0], ("finished",))
    assert smithers.output(found[0], "output")["targetRunId"] == "bg"


def test_enabled_rules() -> None:
    assert post_failure_enabled("deploy", env={})
    assert not post_failure_enabled("deploy", opted_out=True, env={})
    for off in ("0", "false", "no", "off", " OFF "):
        assert not post_failure_enabled("deploy", env={"SMITHERS_POST_FAILURE": off})
    assert post_failure_enabled("deploy", env={"SMITHERS_POST_FAILURE": "1"})
    for name in OPS_WORKFLOWS:
        assert not post_failure_enabled(name, env={})


def test_project_copy_wins(tmp_path: Path) -> None:
    shipped = post_failure_workflow_path(tmp_path)
    assert shipped is not None
    assert shipped.parts[-3:] == ("pack", "workflows", "post_failure.py")
    project = tmp_path / ".smithers" / "workflows" / "post_failure.py"
    project.parent.mkdir(parents=True)
    project.write_text(shipped.read_text())
    (tmp_path / "sub").mkdir()
    assert post_failure_workflow_path(tmp_path / "sub") == project.resolve()


@pytest.mark.slow
def test_detached_up_forwards_the_opt_out(smithers: Smithers) -> None:
    done = smithers("up", "flows/unknown.py", "--run-id", "bg", "--detach", "--no-post-failure")
    assert done.returncode == 0, done.stderr
    smithers.wait_status("bg", ("failed",))
    log = smithers.db.parent / "executions" / "bg" / "logs" / "up.log"
    smithers.wait_for(lambda: "Error [" in log.read_text(), "the background up's report")
    assert "[smithers]" not in log.read_text()
    assert smithers.autopsies() == []
