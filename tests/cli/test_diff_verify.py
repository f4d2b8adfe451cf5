"""``smithers diff`` and ``smithers verify`` on the command line (issue 8, items 2, 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def _json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _replay(cli: Any, run_id: str, *args: str) -> str:
    out = _json(cli("replay", run_id, "--json", *args))
    child: str = out["runId"]
    return child


# ---------------------------------------------------------------------- diff


def test_diff_of_a_run_against_itself_is_empty(cli: Any, finished_run: str) -> None:
    out = _json(cli("diff", finished_run, finished_run, "--json"))
    assert out["empty"] is True
    assert (out["status"], out["input"], out["nodes"]) == (None, [], [])
    assert out["a"]["runId"] == out["b"]["runId"] == finished_run
    text = cli("diff", finished_run)
    assert text.exit_code == 0
    assert "No differences" in text.stdout


def test_diff_a_replay_against_its_original(cli: Any, finished_run: str) -> None:
    child = _replay(cli, finished_run, "--frame", "1", "--input", '{"start": 7}')

    out = _json(cli("diff", finished_run, child, "--json"))

    assert out["empty"] is False
    assert out["input"] == [{"path": "$.start", "op": "changed", "old": 5, "new": 7}]
    assert out["nodes"] == [
        {
            "nodeId": "second",
            "iteration": 0,
            "change": "changed",
            "stateA": "finished",
            "stateB": "finished",
            "output": [{"path": "$.n", "op": "changed", "old": 6, "new": 8}],
        }
    ]
    text = cli("diff", finished_run, child).stdout
    assert "~ $.start: 5 -> 7" in text
    assert "~ second  finished" in text
    assert "output ~ $.n: 6 -> 8" in text
    inherited = _json(cli("diff", finished_run, child, "--frame", "1", "--json"))
    assert inherited["empty"] is True
    assert inherited["b"]["sourceRunId"] == finished_run


def test_diff_between_two_frames(cli: Any, finished_run: str) -> None:
    out = _json(cli("diff", finished_run, "--from", "0", "--to", "3", "--json"))
    assert [(n["nodeId"], n["change"], n["stateB"]) for n in out["nodes"]] == [
        ("first", "added", "finished"),
        ("second", "added", "finished"),
        ("third", "added", "finished"),
    ]
    assert "+ third  finished" in cli("diff", finished_run, "--from", "0", "--to", "3").stdout


def test_diff_errors(cli: Any, finished_run: str) -> None:
    both = cli("diff", finished_run, "--frame", "1", "--from", "0")
    assert both.exit_code == 4
    assert "Error [INVALID_INPUT]" in both.stderr
    missing = cli("diff", finished_run, "--from", "99")
    assert missing.exit_code == 4
    assert "Error [SNAPSHOT_NOT_FOUND]" in missing.stderr
    nosuch = cli("diff", finished_run, "nosuch")
    assert nosuch.exit_code == 4
    assert "Error [RUN_NOT_FOUND]" in nosuch.stderr


# ---------------------------------------------------------------------- verify


def test_verify_passes_then_fails_when_the_workflow_is_edited(cli: Any, finished_run: str) -> None:
    ok = cli("verify", finished_run)
    assert ok.exit_code == 0, ok.output
    assert "all match" in ok.stdout
    out = _json(cli("verify", finished_run, "--json"))
    assert (out["ok"], out["firstMismatch"], out["mismatchedFrames"]) == (True, None, [])
    assert out["framesChecked"] >= 4

    path = cli.flows / "count.py"
    path.write_text(
        path.read_text().replace('"third", output=Count', '"third", label="edited", output=Count')
    )
    bad = cli("verify", finished_run, "--json")
    assert bad.exit_code == 1
    found = json.loads(bad.stdout)
    assert found["ok"] is False
    assert [n["nodeId"] for n in found["firstMismatch"]["nodes"]] == ["third"]
    text = cli("verify", finished_run)
    assert text.exit_code == 1
    assert f"frame {found['firstMismatch']['frameNo']}" in text.stdout
    assert '~ task third label: null -> "edited"' in text.stdout


def test_verify_errors(cli: Any, finished_run: str) -> None:
    nosuch = cli("verify", "nosuch")
    assert nosuch.exit_code == 4
    assert "Error [RUN_NOT_FOUND]" in nosuch.stderr
    (cli.flows / "count.py").unlink()
    gone = cli("verify", finished_run)
    assert gone.exit_code == 4
    assert "Error [WORKFLOW_MISSING_DEFAULT]" in gone.stderr


def test_diff_and_verify_in_a_real_process(cli: Any, finished_run: str) -> None:
    def smithers(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args, "--db", str(cli.db)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    verified = smithers("verify", finished_run)
    assert verified.returncode == 0, verified.stderr
    assert "all match" in verified.stdout
    diffed = smithers("diff", finished_run, "--from", "1", "--to", "3", "--json")
    assert diffed.returncode == 0, diffed.stderr
    assert json.loads(diffed.stdout)["empty"] is False

    path = cli.flows / "count.py"
    path.write_text(path.read_text().replace('Task("first"', 'Task("zeroth"'))
    failed = smithers("verify", finished_run)
    assert failed.returncode == 1
    assert "- task first" in failed.stdout
    assert "+ task zeroth" in failed.stdout
    bad_usage = smithers("verify")
    assert bad_usage.returncode == 4
    assert "Error [INVALID_INPUT]" in bad_usage.stderr or "Missing argument" in bad_usage.stderr
