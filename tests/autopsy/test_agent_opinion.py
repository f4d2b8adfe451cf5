"""The optional second opinion (SMITHERS_AUTOPSY_AGENT), with the Claude Code test double."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conftest import Smithers

DOUBLE = Path(__file__).resolve().parents[1] / "agents" / "doubles" / "claude"
OPINION = {
    "failureClass": "environment",
    "confidence": "medium",
    "rootCause": "the frobnicator service is down",
    "suggestion": "fix-environment",
    "suggestionDetail": "Start the frobnicator, then run the task again.",
    "commands": ["smithers retry-task unk --node step"],
}


def test_the_agent_verdict_wins_and_its_tools_are_read_only(
    smithers: Smithers, tmp_path: Path
) -> None:
    smithers.env.update(
        SMITHERS_AUTOPSY_AGENT=str(DOUBLE),
        CLAUDE_DOUBLE_LOG=str(tmp_path / "calls.ndjson"),
        CLAUDE_DOUBLE_OUTPUT=json.dumps(OPINION),
    )
    autopsy, verdict = smithers.fail_with_autopsy("unknown.py", "unk")
    assert verdict["failureClass"] == "environment"
    assert verdict["rootCause"] == OPINION["rootCause"]
    assert verdict["commands"][0] == "smithers retry-task unk --node step"
    assert "disagrees with the offline classifier (unknown, low)" in verdict["evidence"][-1]
    offline = smithers.output(autopsy, "investigate")
    assert offline["failureClass"] == "unknown"
    calls = [json.loads(line) for line in (tmp_path / "calls.ndjson").read_text().splitlines()]
    assert len(calls) == 1
    argv = calls[0]["argv"]
    assert argv[argv.index("--permission-mode") + 1] == "plan"
    assert "Write" in argv[argv.index("--disallowedTools") + 1].split(",")
    assert "MysteryError: the frobnicator said no" in calls[0]["stdin"] + " ".join(argv)


def test_a_failing_agent_leaves_the_offline_verdict(smithers: Smithers) -> None:
    smithers.env.update(SMITHERS_AUTOPSY_AGENT=str(DOUBLE), CLAUDE_DOUBLE_SCENARIO="not-logged-in")
    autopsy, verdict = smithers.fail_with_autopsy("unknown.py", "unk")
    assert verdict["failureClass"] == "unknown"
    assert verdict == smithers.output(autopsy, "investigate")
    node = smithers("node", autopsy, "investigate-agent")
    assert "failed" in node.stdout
