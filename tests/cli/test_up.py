"""``smithers up``: load a workflow file, run it, report, exit with the run's status."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

LINE = re.compile(r"^\[ *\d+\.\d\ds\] (\S+) +(.*)$")


def test_up_finishes_and_exits_0(cli: Any) -> None:
    result = cli.up("count.py", "--input", '{"start": 5}')
    assert result.exit_code == 0, result.output
    run_id = re.search(r"Run (\S+) finished", result.stdout)
    assert run_id is not None
    assert f"smithers inspect {run_id.group(1)} --db {cli.db}" in result.stdout
    assert result.stderr == ""


def test_up_prints_one_plain_line_per_node_end_when_not_a_tty(cli: Any) -> None:
    result = cli.up("count.py")
    lines = [m.groups() for line in result.stdout.splitlines() if (m := LINE.match(line))]
    assert lines == [
        ("finished", "first"),
        ("finished", "second"),
        ("finished", "third"),
        ("run", "finished"),
    ]


def test_up_json_prints_one_result_object(cli: Any) -> None:
    out = cli.up_json("count.py", "--input", '{"start": 5}', "--run-id", "r-json")
    assert out == {
        "runId": "r-json",
        "status": "finished",
        "outputs": {"first": {"n": 1}, "second": {"n": 6}, "third": {"n": 11}},
        "error": None,
    }


def test_up_failed_run_exits_1_with_error_code_on_stderr(cli: Any) -> None:
    result = cli.up("bad.py")
    assert result.exit_code == 1
    assert "Error [WORKFLOW_EXECUTION_FAILED]: ValueError: boom" in result.stderr
    assert "in node 'second' (attempt 1)" in result.stderr
    assert "failed    second (attempt 1): ValueError: boom" in result.stdout
    assert "Traceback" not in result.output


def test_up_typed_failure_shows_its_code(cli: Any) -> None:
    result = cli.up("wrong_shape.py")
    assert result.exit_code == 1
    assert "Error [INVALID_OUTPUT]: Output of task 'only'" in result.stderr


def test_up_json_failure_carries_the_error_and_exits_1(cli: Any) -> None:
    result = cli.up("bad.py", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["status"] == "failed"
    assert out["outputs"] == {"first": {"n": 1}}
    assert out["error"]["name"] == "ValueError"
    assert out["error"]["message"] == "boom"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "--input is not valid JSON"),
        ("[1, 2]", "--input must be a JSON object, got list"),
    ],
)
def test_up_invalid_input_exits_4(cli: Any, value: str, message: str) -> None:
    result = cli.up("count.py", "--input", value)
    assert result.exit_code == 4
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {message}")
    assert not cli.db.exists()


def test_up_missing_file_exits_4(cli: Any) -> None:
    result = cli("up", "nowhere/flow.py")
    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]: Workflow file nowhere/flow.py does not exist" in result.stderr


def test_up_file_without_workflow_is_workflow_missing_default(cli: Any) -> None:
    result = cli.up("empty.py")
    assert result.exit_code == 4
    assert "Error [WORKFLOW_MISSING_DEFAULT]:" in result.stderr
    assert "@workflow" in result.stderr


def test_up_several_workflows_need_a_name(cli: Any) -> None:
    result = cli.up("several.py")
    assert result.exit_code == 4
    assert "Error [WORKFLOW_MISSING_DEFAULT]:" in result.stderr
    assert "alpha ('first-flow')" in result.stderr
    assert "beta ('second-flow')" in result.stderr


@pytest.mark.parametrize(
    ("pick", "node", "origin"),
    [("alpha", "a", "alpha"), ("beta", "b", "beta"), ("second-flow", "b", "beta")],
)
def test_up_file_colon_name_picks_a_workflow(cli: Any, pick: str, node: str, origin: str) -> None:
    out = cli.up_json(f"several.py:{pick}")
    assert out["outputs"] == {node: {"from": origin}}


def test_up_unknown_name_is_workflow_missing_default(cli: Any) -> None:
    result = cli.up("several.py:gamma")
    assert result.exit_code == 4
    assert "has no workflow called 'gamma'" in result.stderr


def test_up_import_error_exits_4_without_traceback(cli: Any) -> None:
    result = cli.up("broken.py")
    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]: Could not import" in result.stderr
    assert "ModuleNotFoundError" in result.stderr
    assert "Traceback" not in result.output


def test_up_workflow_can_import_its_siblings(cli: Any) -> None:
    out = cli.up_json("uses_helper.py")
    assert out["outputs"] == {"greeting": {"msg": "hello from a sibling"}}


def test_up_reused_run_id_exits_4(cli: Any) -> None:
    assert cli.up("count.py", "--run-id", "same").exit_code == 0
    result = cli.up("count.py", "--run-id", "same")
    assert result.exit_code == 4
    assert "Error [RUN_ALREADY_EXISTS]:" in result.stderr


@pytest.mark.parametrize("args", [("-c", "0"), ("--max-concurrency", "x"), ("--bogus",)])
def test_up_bad_options_exit_4(cli: Any, args: tuple[str, ...]) -> None:
    result = cli.up("count.py", *args)
    assert result.exit_code == 4
    assert "Usage: smithers up" in result.stderr


def test_up_log_dir_and_no_log_are_exclusive(cli: Any, tmp_path: Any) -> None:
    result = cli.up("count.py", "--no-log", "--log-dir", str(tmp_path / "logs"))
    assert result.exit_code == 4
    assert "--log-dir or --no-log" in result.stderr


def test_up_writes_the_ndjson_mirror_by_default(cli: Any) -> None:
    run_id = cli.up_json("count.py")["runId"]
    stream = cli.db.parent / "executions" / run_id / "logs" / "stream.ndjson"
    lines = [json.loads(line) for line in stream.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))


def test_up_log_dir_and_no_log(cli: Any, tmp_path: Any) -> None:
    cli.up_json("count.py", "--log-dir", str(tmp_path / "mirror"))
    assert (tmp_path / "mirror" / "stream.ndjson").is_file()
    cli.up_json("count.py", "--no-log", "--run-id", "quiet")
    assert not (cli.db.parent / "executions" / "quiet").exists()


def test_up_records_the_workflow_file_and_input(cli: Any) -> None:
    run_id = cli.up_json("count.py", "--input", '{"start": 2}')["runId"]
    out = json.loads(cli("inspect", run_id, "--json").stdout)
    assert out["workflowPath"] == str(cli.flows / "count.py")
    assert out["input"] == {"start": 2}


def test_up_keyboard_interrupt_exits_130(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    engine = importlib.import_module("smithers.engine")

    async def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.Client, "run", interrupted)
    result = cli.up("count.py")
    assert result.exit_code == 130
    assert "Interrupted" in result.stderr
    assert "Traceback" not in result.output
