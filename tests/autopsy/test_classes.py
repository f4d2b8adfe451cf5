"""Each failure class reached by a real failing run: the autopsy's verdict and its first
suggested command, run as printed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from .conftest import Smithers


def test_workflow_bug_verdict_and_replay_after_the_fix(
    smithers: Smithers, edit: Callable[[str, str, str], None]
) -> None:
    autopsy, verdict = smithers.fail_with_autopsy("workflow_bug.py", "wb")
    assert verdict["failureClass"] == "workflow-bug"
    assert verdict["confidence"] == "high"
    assert verdict["suggestion"] == "edit-workflow-and-reset"
    assert "workflow_bug.py:15" in verdict["rootCause"]
    assert any(line.startswith("seq ") and "KeyError" in line for line in verdict["evidence"])
    assert verdict["commands"][0].startswith("smithers replay wb --frame ")

    edit("workflow_bug.py", 'PRICES["pear"]', 'PRICES.get("pear", 0)')
    done = smithers.command(verdict["commands"][0])
    assert done.returncode == 0, done.stderr
    assert " finished " in done.stdout
    text = smithers("why", "wb")
    assert f"Autopsy {autopsy}: workflow-bug (high confidence)" in text.stdout


def test_environment_verdict_and_retry_once_the_variable_is_set(smithers: Smithers) -> None:
    _, verdict = smithers.fail_with_autopsy("environment.py", "env")
    assert verdict["failureClass"] == "environment"
    assert verdict["suggestion"] == "fix-environment"
    assert "AUTOPSY_TEST_TOKEN" in verdict["rootCause"]
    assert verdict["commands"][0].startswith("smithers retry-task env --node call")

    done = smithers.command(verdict["commands"][0], env={"AUTOPSY_TEST_TOKEN": "t0k3n"})
    assert done.returncode == 0, done.stderr
    assert smithers.status("env") == "finished"


def test_agent_flake_verdict_and_retry(smithers: Smithers) -> None:
    _, verdict = smithers.fail_with_autopsy("agent_flake.py", "flake")
    assert verdict["failureClass"] == "agent-flake"
    assert verdict["suggestion"] == "retry"
    assert any("TASK_TIMEOUT" in line for line in verdict["evidence"])
    assert verdict["commands"][0].startswith("smithers retry-task flake --node ask")

    done = smithers.command(verdict["commands"][0])
    assert done.returncode == 0, done.stderr
    assert smithers.status("flake") == "finished"


def test_smithers_bug_parks_on_the_bug_report_approval(smithers: Smithers) -> None:
    autopsy, verdict = smithers.fail_with_autopsy("smithers_bug.py", "sb")
    assert verdict["failureClass"] == "smithers-bug"
    assert verdict["suggestion"] == "escalate"
    assert smithers.status(autopsy) == "waiting-approval"
    assert verdict["commands"][0].startswith(
        f"smithers approve {autopsy} --node approve-bug-report"
    )

    done = smithers.command(verdict["commands"][0])
    assert done.returncode == 0, done.stderr
    smithers.wait_status(autopsy, ("finished",))
    final = smithers.output(autopsy, "output")
    assert final["failureClass"] == "smithers-bug"
    report = smithers.output(autopsy, "report-bug")
    assert final["bugFiled"] is report["filed"]
    if not report["filed"]:  # `smithers bug` not built (or no endpoint): recorded, not filed
        assert report["note"].startswith("Not filed")


def test_unknown_verdict_points_at_the_traceback(smithers: Smithers) -> None:
    _, verdict = smithers.fail_with_autopsy("unknown.py", "unk")
    assert verdict["failureClass"] == "unknown"
    assert verdict["confidence"] == "low"
    assert verdict["suggestion"] == "escalate"
    assert verdict["commands"][0].startswith("smithers node unk step")

    done = smithers.command(verdict["commands"][0])
    assert done.returncode == 0, done.stderr
    assert "MysteryError: the frobnicator said no" in done.stdout


@pytest.mark.slow
def test_smithers_bug_denied_keeps_the_verdict_and_reports_nothing(smithers: Smithers) -> None:
    autopsy, verdict = smithers.fail_with_autopsy("smithers_bug.py", "sb")
    done = smithers("deny", autopsy, "--node", "approve-bug-report", "--note", "not now")
    assert done.returncode == 0, done.stderr
    smithers.wait_status(autopsy, ("finished",))
    report = smithers.output(autopsy, "report-bug")
    assert report == {
        "filed": False,
        "url": None,
        "note": "Not filed: the bug report was not approved.",
    }
    final = smithers.output(autopsy, "output")
    assert {**final, "bugFiled": False} == {**verdict, "bugFiled": False}
    assert final["bugFiled"] is False
