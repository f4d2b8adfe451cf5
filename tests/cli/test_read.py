"""Read commands: ``ps``, ``inspect``, ``events``, ``output``, ``logs`` on a test database."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import pytest


def _ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------------- ps


def test_ps_json_lists_runs_newest_first(cli: Any) -> None:
    first = cli.up_json("count.py", "--run-id", "r-1")
    second = cli.up_json("bad.py", "--run-id", "r-2")
    result = cli("ps", "--json")
    assert result.exit_code == 0
    runs = json.loads(result.stdout)
    assert [r["runId"] for r in runs] == [second["runId"], first["runId"]]
    assert runs[0]["status"] == "failed"
    assert runs[1] == {
        "runId": "r-1",
        "status": "finished",
        "workflowName": "count",
        "createdAtMs": runs[1]["createdAtMs"],
        "updatedAtMs": runs[1]["updatedAtMs"],
        "parentRunId": None,
    }
    assert runs[1]["updatedAtMs"] >= runs[1]["createdAtMs"]


def test_ps_filters_by_status_and_limit(cli: Any) -> None:
    for run_id in ("a", "b", "c"):
        cli.up("count.py", "--run-id", run_id)
    cli.up("bad.py", "--run-id", "d")
    failed = json.loads(cli("ps", "--json", "--status", "failed").stdout)
    assert [r["runId"] for r in failed] == ["d"]
    finished = json.loads(cli("ps", "--json", "--status", "finished", "--limit", "2").stdout)
    assert [r["runId"] for r in finished] == ["c", "b"]


def test_ps_text_is_a_table(cli: Any, finished_run: str) -> None:
    result = cli("ps")
    header, row = result.stdout.splitlines()
    assert header.split() == ["RUN", "ID", "WORKFLOW", "STATUS", "STARTED", "DURATION"]
    assert row.split()[:3] == [finished_run, "count", "finished"]


def test_ps_on_an_empty_database(cli: Any) -> None:
    from smithers.eventstore import SQLiteEventStore

    async def create() -> None:
        await (await SQLiteEventStore.open(cli.db)).close()

    anyio.run(create)
    assert cli("ps", "--json").stdout == "[]\n"
    assert cli("ps").stdout == "No runs. Start one with `smithers up FILE`.\n"


def test_ps_rejects_an_unknown_status(cli: Any, finished_run: str) -> None:
    result = cli("ps", "--status", "sleeping")
    assert result.exit_code == 4
    assert "Invalid value for '--status'" in result.stderr


# ---------------------------------------------------------------------- inspect


def test_inspect_json_shape(cli: Any, failed_run: str) -> None:
    result = cli("inspect", failed_run, "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["runId"] == failed_run
    assert out["status"] == "failed"
    assert out["workflowName"] == "bad"
    assert out["workflowPath"] == str(cli.flows / "bad.py")
    assert out["input"] == {}
    assert out["error"]["message"] == "boom"
    assert out["finishedAtMs"] >= out["createdAtMs"]
    assert out["frames"] >= 1
    first, second = out["nodes"]
    assert first["nodeId"] == "first"
    assert first["iteration"] == 0
    assert first["state"] == "finished"
    assert first["output"] == {"n": 1}
    assert first["attemptCount"] == 1
    assert second["state"] == "failed"
    assert second["output"] is None
    (attempt,) = second["attempts"]
    assert set(attempt) >= {"attempt", "state", "startedAtMs", "finishedAtMs", "error"}
    assert attempt["attempt"] == 1
    assert attempt["state"] == "failed"
    assert attempt["error"]["name"] == "ValueError"


def test_inspect_text_shows_summary_and_nodes(cli: Any, failed_run: str) -> None:
    result = cli("inspect", failed_run)
    assert result.exit_code == 0
    text = result.stdout
    assert f"Run       {failed_run}" in text
    assert "Status    failed" in text
    assert "Error     ValueError: boom" in text
    # The node table, then the run's last operations (its start by `up`).
    head, _, ops = text.partition("\nLast operations")
    lines = head.rstrip("\n").splitlines()
    rows = {line.split()[0]: line.split() for line in lines[-2:]}
    assert rows["first"][1:4] == ["0", "finished", "1"]
    assert rows["second"][1:4] == ["0", "failed", "1"]
    assert "ValueError: boom" in lines[-1]
    assert "started bad" in ops


# ---------------------------------------------------------------------- events


def test_events_json_is_ndjson_with_contiguous_seq(cli: Any, finished_run: str) -> None:
    result = cli("events", finished_run, "--json")
    assert result.exit_code == 0
    events = _ndjson(result.stdout)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "RunStarted"
    assert events[-1]["type"] == "RunFinished"
    assert all(e["runId"] == finished_run and isinstance(e["timestampMs"], int) for e in events)
    finished = [e for e in events if e["type"] == "NodeFinished"]
    assert finished[1] == {
        "seq": finished[1]["seq"],
        "type": "NodeFinished",
        "runId": finished_run,
        "timestampMs": finished[1]["timestampMs"],
        "nodeId": "second",
        "iteration": 0,
        "attempt": 1,
        "output": {"n": 6},
    }


def test_events_filter_by_type_repeatable_or_comma_separated(cli: Any, failed_run: str) -> None:
    repeated = _ndjson(cli("events", failed_run, "--json", "--type", "NodeFailed").stdout)
    assert [e["type"] for e in repeated] == ["NodeFailed"]
    both = cli("events", failed_run, "--json", "--type", "NodeStarted", "--type", "RunFailed")
    comma = cli("events", failed_run, "--json", "--type", "NodeStarted,RunFailed")
    assert both.stdout == comma.stdout
    assert [e["type"] for e in _ndjson(both.stdout)] == ["NodeStarted", "NodeStarted", "RunFailed"]


def test_events_filter_by_node(cli: Any, finished_run: str) -> None:
    events = _ndjson(cli("events", finished_run, "--json", "--node", "second").stdout)
    assert [e["type"] for e in events] == ["NodePending", "NodeStarted", "NodeFinished"]
    assert {e["nodeId"] for e in events} == {"second"}


def test_events_limit_and_since_seq(cli: Any, finished_run: str) -> None:
    events = _ndjson(cli("events", finished_run, "--json", "--since", "3", "--limit", "2").stdout)
    assert [e["seq"] for e in events] == [4, 5]


def test_events_since_duration(
    cli: Any, finished_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_events = _ndjson(cli("events", finished_run, "--json").stdout)
    last_ms = all_events[-1]["timestampMs"]
    monkeypatch.setattr(time, "time_ns", lambda: (last_ms + 10_000) * 1_000_000)
    assert cli("events", finished_run, "--json", "--since", "5s").stdout == ""
    recent = _ndjson(cli("events", finished_run, "--json", "--since", "1m").stdout)
    assert recent == all_events


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "yesterday"),
        ("--since", "-5"),
        ("--limit", "0"),
        ("--limit", "many"),
        ("--type", "NodeExploded"),
    ],
)
def test_events_invalid_options_exit_4(cli: Any, finished_run: str, args: tuple[str, ...]) -> None:
    result = cli("events", finished_run, *args)
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [INVALID_EVENTS_OPTIONS]:")


def test_events_text_has_a_readable_line_per_event(cli: Any, failed_run: str) -> None:
    lines = cli("events", failed_run).stdout.splitlines()
    assert len(lines) == len(_ndjson(cli("events", failed_run, "--json").stdout))
    failed = next(line for line in lines if "NodeFailed" in line)
    seq, _clock, kind, node, *rest = failed.split()
    assert seq.isdigit()
    assert (kind, node) == ("NodeFailed", "second")
    assert " ".join(rest) == "attempt=1 error=ValueError: boom"


def test_events_text_says_when_nothing_matches(cli: Any, finished_run: str) -> None:
    result = cli("events", finished_run, "--type", "NodeFailed")
    assert result.exit_code == 0
    assert result.stdout == "No matching events.\n"


# ---------------------------------------------------------------------- output


def test_output_prints_the_node_output_as_json(cli: Any, finished_run: str) -> None:
    result = cli("output", finished_run, "second")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"n": 6}
    assert cli("output", finished_run, "third", "--json").stdout == '{"n":11}\n'
    assert json.loads(cli("output", finished_run, "first", "--iteration", "0").stdout) == {"n": 1}


def test_output_unknown_node_lists_the_nodes(cli: Any, finished_run: str) -> None:
    result = cli("output", finished_run, "fourth")
    assert result.exit_code == 4
    assert "Error [NODE_NOT_FOUND]: Run" in result.stderr
    assert "Nodes of this run: first, second, third." in result.stderr


def test_output_of_a_failed_node_is_missing_output(cli: Any, failed_run: str) -> None:
    result = cli("output", failed_run, "second")
    assert result.exit_code == 4
    assert "Error [MISSING_OUTPUT]:" in result.stderr
    assert "it is failed" in result.stderr
    assert f"smithers inspect {failed_run}" in result.stderr


def test_output_of_an_unknown_iteration_is_missing_output(cli: Any, finished_run: str) -> None:
    result = cli("output", finished_run, "first", "--iteration", "3")
    assert result.exit_code == 4
    assert "Error [MISSING_OUTPUT]:" in result.stderr
    assert "no iteration 3" in result.stderr


# ---------------------------------------------------------------------- logs


def test_logs_prints_the_same_lines_as_events_json(cli: Any, finished_run: str) -> None:
    result = cli("logs", finished_run)
    assert result.exit_code == 0
    assert result.stdout == cli("events", finished_run, "--json").stdout


def test_logs_follow_stops_at_a_terminal_run(cli: Any, failed_run: str) -> None:
    result = cli("logs", failed_run, "-f")
    assert result.exit_code == 0
    assert _ndjson(result.stdout)[-1]["type"] == "RunFailed"


def test_logs_matches_the_ndjson_mirror(cli: Any, finished_run: str) -> None:
    stream = cli.db.parent / "executions" / finished_run / "logs" / "stream.ndjson"
    mirrored = _ndjson(stream.read_text())
    assert _ndjson(cli("logs", finished_run).stdout) == mirrored


# ---------------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    "command",
    [("inspect",), ("events",), ("logs",), ("logs", "-f"), ("output", "NODE")],
)
def test_unknown_run_is_run_not_found(
    cli: Any, finished_run: str, command: tuple[str, ...]
) -> None:
    verb, *rest = command
    result = cli(verb, "run-nope", *rest)
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RUN_NOT_FOUND]: No run 'run-nope' in this database.")
    assert "smithers ps" in result.stderr


@pytest.mark.parametrize(
    "command",
    [("ps",), ("inspect", "r"), ("events", "r"), ("output", "r", "n"), ("logs", "r")],
)
def test_missing_database_is_cli_db_not_found(cli: Any, command: tuple[str, ...]) -> None:
    result = cli(*command)
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [CLI_DB_NOT_FOUND]: No smithers database at")
    assert not cli.db.exists()


def test_database_from_smithers_db_env(cli: Any, finished_run: str) -> None:
    result = cli.raw("inspect", finished_run, "--json", env={"SMITHERS_DB": str(cli.db)})
    assert result.exit_code == 0
    assert json.loads(result.stdout)["runId"] == finished_run


def test_database_found_walking_up_from_the_cwd(
    cli: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = cli.raw("up", str(cli.flows / "count.py"), "--run-id", "here")
    assert up.exit_code == 0
    assert (tmp_path / ".smithers" / "smithers.db").is_file()
    deeper = tmp_path / "a" / "b"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    assert json.loads(cli.raw("ps", "--json").stdout)[0]["runId"] == "here"
