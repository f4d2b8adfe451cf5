"""``smithers node``, file:line in ``inspect``, the hint of a failed ``up``, one error shape.

The failed run of the fixtures is ``bad.py``: node ``second`` raises ``ValueError("boom")``
in ``boom()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

from smithers.eventstore.errors import ERROR_JSON_KEYS

if TYPE_CHECKING:
    from pathlib import Path

FLAKY = """
    from smithers import Backoff, Task, workflow

    def flaky(ctx):
        ctx.heartbeat({"attempt": ctx.attempt})
        if ctx.attempt == 1:
            raise RuntimeError("first try [/] fails")
        return {"n": ctx.attempt}

    @workflow("flaky")
    def wf(ctx):
        return [Task("work", output=dict, run=flaky, retries=1,
                     backoff=Backoff(kind="fixed", initial_ms=0))]
"""

EXPLODING = """
    from smithers import workflow

    @workflow("exploding")
    def wf(ctx):
        raise RuntimeError("builder exploded")
"""


def _line(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def _write(flows: Path, name: str, body: str) -> Path:
    path = flows / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- node


def test_node_text_shows_attempts_error_location_traceback_and_events(
    cli: Any, failed_run: str
) -> None:
    result = cli("node", failed_run, "second")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    line = _line(cli.flows / "bad.py", "raise ValueError")
    assert text.startswith(f"Node second of run {failed_run}\n")
    assert "second (iteration 0): failed, 1 attempt" in text
    assert "  Attempt 1  failed" in text
    assert "    ValueError: boom\n" in text
    assert f"    at flows/bad.py:{line} in boom\n" in text
    assert "    Traceback (most recent call last):\n" in text
    assert f'bad.py", line {line}, in boom' in text
    assert 'raise ValueError("boom")' in text
    assert "/engine/activation/" not in text  # the engine's frames are trimmed
    assert "anyio" not in text
    assert "  output: -\n" in text
    assert "Events (" in text
    for event_type in ("NodePending", "NodeStarted", "NodeFailed"):
        assert event_type in text


def test_node_json_has_the_whole_story(cli: Any, failed_run: str) -> None:
    result = cli("node", failed_run, "second", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["runId"], out["nodeId"]) == (failed_run, "second")
    (it,) = out["iterations"]
    assert (it["iteration"], it["state"], it["hasOutput"], it["output"]) == (
        0,
        "failed",
        False,
        None,
    )
    (attempt,) = it["attempts"]
    assert attempt["state"] == "failed"
    assert attempt["durationMs"] == attempt["finishedAtMs"] - attempt["startedAtMs"]
    error = attempt["error"]
    assert tuple(error) == ERROR_JSON_KEYS
    assert error["file"] == str((cli.flows / "bad.py").resolve())
    assert error["line"] == _line(cli.flows / "bad.py", "raise ValueError")
    assert error["function"] == "boom"
    assert error["stack"].rstrip().endswith("ValueError: boom")
    types = [e["type"] for e in out["events"]]
    assert types[:1] == ["NodePending"]
    assert "NodeFailed" in types
    assert all(e["nodeId"] == "second" for e in out["events"])


def test_node_shows_retries_heartbeats_and_the_output(cli: Any, flows: Path) -> None:
    _write(flows, "flaky.py", FLAKY)
    run = cli.up_json("flaky.py")
    assert run["status"] == "finished"
    text = cli("node", run["runId"], "work").stdout
    assert "work (iteration 0): finished, 2 attempts" in text
    assert "  Attempt 1  failed" in text
    assert "  Attempt 2  finished" in text
    assert "    RuntimeError: first try [/] fails\n" in text  # user text as it is
    assert "    heartbeats: 1\n" in text
    assert '{"attempt":2}' in text
    assert '  output: {"n":2}\n' in text
    out = json.loads(cli("node", run["runId"], "work", "--json").stdout)
    first, second = out["iterations"][0]["attempts"]
    assert [h["data"] for h in first["heartbeats"]] == [{"attempt": 1}]
    assert [h["data"] for h in second["heartbeats"]] == [{"attempt": 2}]
    assert second["error"] is None
    assert out["iterations"][0]["output"] == {"n": 2}


def test_node_of_a_finished_node_points_at_its_output(cli: Any, finished_run: str) -> None:
    result = cli("node", finished_run, "second", "--iteration", "0")
    assert result.exit_code == 0
    assert '  output: {"n":6}\n' in result.stdout
    assert f"smithers output {finished_run} second" in result.stdout


def test_node_unknown_node_or_iteration_is_node_not_found(cli: Any, failed_run: str) -> None:
    result = cli("node", failed_run, "nosuch")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [NODE_NOT_FOUND]: Run ")
    assert "Nodes of this run: first, second." in result.stderr
    result = cli("node", failed_run, "second", "--iteration", "3", "--json")
    assert result.exit_code == 4
    assert "has no iteration 3" in result.stderr
    assert "Its iterations: 0." in result.stderr
    assert cli("node", "run-nope", "second").stderr.startswith("Error [RUN_NOT_FOUND]")


# ---------------------------------------------------------------------- inspect and up


def test_inspect_shows_file_and_line_of_each_failed_attempt(cli: Any, failed_run: str) -> None:
    text = cli("inspect", failed_run).stdout
    line = _line(cli.flows / "bad.py", "raise ValueError")
    assert "Failed attempts:\n" in text
    assert f"  second attempt 1: ValueError: boom  at flows/bad.py:{line} in boom\n" in text
    assert f"  traceback: smithers node {failed_run} second --db {cli.db}\n" in text
    attempt = json.loads(cli("inspect", failed_run, "--json").stdout)["nodes"][1]["attempts"][0]
    assert (attempt["error"]["line"], attempt["error"]["function"]) == (line, "boom")


def test_a_failed_task_hint_names_the_node_command(cli: Any) -> None:
    result = cli.up("bad.py")
    assert result.exit_code == 1
    line = _line(cli.flows / "bad.py", "raise ValueError")
    assert "Error [WORKFLOW_EXECUTION_FAILED]: ValueError: boom" in result.stderr
    assert f"in node 'second' (attempt 1) at flows/bad.py:{line} in boom" in result.stderr
    assert "See the traceback: smithers node run-" in result.stderr
    assert "--type NodeFailed" not in result.stderr
    run_id = result.stderr.split("smithers node ")[1].split()[0]
    shown = cli("node", run_id, "second")
    assert shown.exit_code == 0
    assert "ValueError: boom" in shown.stdout


def test_a_builder_failure_hint_names_a_command_that_shows_the_error(cli: Any, flows: Path) -> None:
    path = _write(flows, "exploding.py", EXPLODING)
    result = cli("up", str(path), "--run-id", "exploded")
    assert result.exit_code == 1
    line = _line(path, "raise RuntimeError")
    assert f"  raised at flows/exploding.py:{line} in wf\n" in result.stderr
    assert "See the error and its traceback: smithers inspect exploded" in result.stderr
    text = cli("inspect", "exploded").stdout
    assert "Run error:\n  RuntimeError: builder exploded\n" in text
    assert f"  at flows/exploding.py:{line} in wf\n" in text
    assert "  Traceback (most recent call last):\n" in text
    assert 'raise RuntimeError("builder exploded")' in text


# ---------------------------------------------------------------------- one error shape


def test_every_json_output_has_the_one_error_shape(cli: Any, flows: Path) -> None:
    result = cli.up("bad.py", "--json", "--run-id", "shape")
    up = json.loads(result.stdout)["error"]
    inspect = json.loads(cli("inspect", "shape", "--json").stdout)
    node = json.loads(cli("node", "shape", "second", "--json").stdout)
    events = [
        json.loads(line)
        for line in cli(
            "events", "shape", "--json", "--type", "NodeFailed,RunFailed"
        ).stdout.splitlines()
    ]
    errors = [
        up,
        inspect["error"],
        inspect["nodes"][1]["attempts"][0]["error"],
        node["iterations"][0]["attempts"][0]["error"],
        *(e["error"] for e in events),
    ]
    assert len(errors) == 6
    for error in errors:
        assert tuple(error) == ERROR_JSON_KEYS
        assert error == up
    # An error the command itself stops on: the same keys first.
    missing = json.loads(cli("up", "--resume", "run-nope", "--json").stdout)["error"]
    assert tuple(missing)[: len(ERROR_JSON_KEYS)] == ERROR_JSON_KEYS
    assert missing["code"] == "RUN_NOT_FOUND"


# ---------------------------------------------------------------------- a real process


def test_node_through_a_real_subprocess(tmp_path: Path, db: Path, flows: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "SMITHERS_DEBUG")}

    def smithers(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args, "--db", str(db)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    up = smithers("up", str(flows / "bad.py"), "--run-id", "real")
    assert up.returncode == 1
    assert "See the traceback: smithers node real second" in up.stderr
    shown = smithers("node", "real", "second")
    assert shown.returncode == 0, shown.stderr
    line = _line(flows / "bad.py", "raise ValueError")
    assert f"    at flows/bad.py:{line} in boom\n" in shown.stdout
    assert "Traceback (most recent call last):" in shown.stdout
    as_json = json.loads(smithers("node", "real", "second", "--json").stdout)
    assert as_json["iterations"][0]["attempts"][0]["error"]["line"] == line
    missing = smithers("node", "real", "nosuch")
    assert missing.returncode == 4
    assert missing.stderr.startswith("Error [NODE_NOT_FOUND]")
    assert "Traceback" not in missing.stderr
