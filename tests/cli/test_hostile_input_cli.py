"""Issue 15, items 2 and 6 through ``smithers up``: coded refusals of hostile values."""

from __future__ import annotations

import json
from typing import Any


def test_a_lone_surrogate_in_input_is_invalid_input(cli: Any) -> None:
    # Before: INTERNAL_ERROR (a UnicodeEncodeError escaped from encoding the input).
    result = cli.up("count.py", "--input", '{"start": 5, "name": "\\ud800"}')
    assert result.exit_code == 4, result.output
    assert "Error [INVALID_INPUT]" in result.stderr
    assert "lone surrogate" in result.stderr


def test_an_input_nested_too_deep_is_invalid_input_naming_the_limit(cli: Any) -> None:
    deep = "[" * 600 + "]" * 600
    result = cli.up("count.py", "--input", '{"start": 5, "x": ' + deep + "}")
    assert result.exit_code == 4, result.output
    assert "Error [INVALID_INPUT]" in result.stderr
    assert "deeper than 200" in result.stderr


def test_up_max_task_output_bytes_fails_an_oversized_output(cli: Any) -> None:
    # count.py's static task `first` returns {"n":1} (7 bytes); the limit is 6.
    out = cli.up_json("count.py", "--input", '{"start": 5}', "--max-task-output-bytes", "6")
    assert out["status"] == "failed"
    assert out["error"]["code"] == "TASK_OUTPUT_TOO_LARGE"
    assert out["error"]["details"]["maxBytes"] == 6
    assert out["error"]["details"]["sizeBytes"] == len('{"n":1}')
    shown = json.loads(cli("inspect", out["runId"], "--json").stdout)
    assert [n["state"] for n in shown["nodes"] if n["nodeId"] == "first"] == ["failed"]
    resumed = cli("up", "--resume", out["runId"], "--json")
    assert json.loads(resumed.stdout)["error"]["code"] == "TASK_OUTPUT_TOO_LARGE"
    lines = cli("events", out["runId"], "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    starts = [e for e in events if e["type"] == "NodeStarted" and e["nodeId"] == "first"]
    assert len(starts) == 1  # the resume did not run it again
