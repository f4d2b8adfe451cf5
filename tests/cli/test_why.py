"""``smithers why RUN``: why a run is in its state, and commands that work when typed.

Each scenario makes a real run in a SQLite file through the CLI, asks `why`, then runs
the first suggested command as printed (its words from ``--json``) and checks that it
moves the run on.
"""

from __future__ import annotations

import json
import shlex
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

FLAKY = """
    from pathlib import Path
    from smithers import Sequence, Task, workflow

    def flaky():
        mark = Path(__file__).with_name("tries")
        n = int(mark.read_text()) if mark.exists() else 0
        mark.write_text(str(n + 1))
        if n == 0:
            raise ConnectionError("connection reset")
        if n == 1:
            raise TimeoutError("read timed out")
        return {"ok": n}

    @workflow("flaky")
    def wf(ctx):
        return Sequence(
            Task("first", output=dict, value={"n": 1}),
            Task("fetch", output=dict, run=flaky, retries=1),
        )
"""

ASK = """
    from smithers import Approval, Sequence, Task, workflow

    @workflow("ask")
    def wf(ctx):
        return Sequence(
            Approval("ok", request={"title": "Ship it?"}),
            Task("ship", output=dict, value={"shipped": True}),
        )
"""


def why(cli: Any, run_id: str) -> tuple[str, dict[str, Any]]:
    text = cli("why", run_id)
    assert text.exit_code == 0, text.output
    data = cli("why", run_id, "--json")
    assert data.exit_code == 0, data.output
    return text.stdout, json.loads(data.stdout)


def run_step(cli: Any, command: str) -> Any:
    words = shlex.split(command)
    assert words[0] == "smithers"
    return cli.raw(*words[1:])


def test_a_deterministic_failure_points_at_the_code_and_a_replay_after_the_fix(
    cli: Any, flows: Path
) -> None:
    run_id = cli.up_json("bad.py")["runId"]
    text, data = why(cli, run_id)
    assert f"Run {run_id}: failed" in text
    assert "second failed (ValueError)" in text
    assert "category: user code · at " in text
    assert "bad.py:" in text
    [failure] = data["failures"]
    assert failure["nodeId"] == "second"
    assert failure["error"]["message"] == "boom"
    assert failure["error"]["file"].endswith("bad.py")
    assert failure["category"] == "user code"
    first = data["steps"][0]
    assert first["verb"] == "replay"
    # Fix the code as the step says, then type the command: a new run finishes.
    bad = flows / "bad.py"
    bad.write_text(bad.read_text().replace('raise ValueError("boom")', "return {}"))
    result = run_step(cli, first["command"])
    assert result.exit_code == 0, result.output
    assert "finished" in result.stdout


def test_a_flaky_failure_says_a_retry_helps_and_the_retry_finishes(cli: Any, flows: Path) -> None:
    (flows / "flaky.py").write_text(textwrap.dedent(FLAKY), encoding="utf-8")
    run_id = cli.up_json("flaky.py")["runId"]
    text, data = why(cli, run_id)
    [failure] = data["failures"]
    assert failure["retryHelps"] is True
    assert failure["sameEveryAttempt"] is False
    assert "retry helps: yes" in text
    first = data["steps"][0]
    assert first["command"].startswith(f"smithers retry-task {run_id} --node fetch")
    result = run_step(cli, first["command"])
    assert result.exit_code == 0, result.output
    _, after = why(cli, run_id)
    assert after["status"] == "finished"
    assert after["headline"] == "The run finished: nothing to do."


def test_a_waiting_run_says_what_it_waits_for_and_how_to_continue(cli: Any, flows: Path) -> None:
    (flows / "ask.py").write_text(textwrap.dedent(ASK), encoding="utf-8")
    result = cli.up("ask.py", "--run-id", "w1")
    assert result.exit_code == 3
    text, data = why(cli, "w1")
    assert data["status"] == "waiting-approval"
    assert data["waiting"] == [["ok", 0]]
    assert data["waitingFor"][0]["nodeId"] == "ok"
    assert "Waiting:" in text
    assert "smithers approve w1 --node ok" in text


def test_a_cancelled_run_says_who_cancelled_it_when_and_why(cli: Any, flows: Path) -> None:
    (flows / "ask.py").write_text(textwrap.dedent(ASK), encoding="utf-8")
    assert cli.up("ask.py", "--run-id", "c1").exit_code == 3
    assert cli("cancel", "c1", "--reason", "wrong branch", "--by", "dana").exit_code == 0
    text, data = why(cli, "c1")
    assert data["status"] == "cancelled"
    assert data["cancelled"]["reason"] == "wrong branch"
    assert data["cancelled"]["source"] == "cli"
    assert data["cancelled"]["atMs"] > 0
    assert "Cancelled at " in text
    assert "by dana on " in text
    assert "via cli: wrong branch." in text
    assert data["cancelled"]["actor"]["name"] == "dana"
    assert data["steps"][0]["verb"] == "fork"


def test_an_unknown_run_is_refused(cli: Any, finished_run: str) -> None:
    result = cli("why", "nope")
    assert result.exit_code == 4
    assert "Error [RUN_NOT_FOUND]" in result.output
    assert cli("why", "../etc").exit_code == 4
