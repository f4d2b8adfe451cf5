"""Rough edges a new user hits (issue 8, items 7 and 8), through the CLI.

``events --node nosuch`` is ``NODE_NOT_FOUND``; ``graph`` on a builder that raises
names the builder's error; ``supervise --dry-run`` does not say "resumed"; ``--input``
takes ``@file.json`` and ``-`` (standard input) wherever it is taken.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from smithers.cli import main

if TYPE_CHECKING:
    from pathlib import Path

RAISING_BUILDER = """
from smithers import Task, workflow


@workflow("raising")
def raising(ctx):
    raise RuntimeError("builder exploded")
"""


def _json(cli: Any, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------------- events --node


def test_events_of_an_unknown_node_is_node_not_found(cli: Any, finished_run: str) -> None:
    result = cli("events", finished_run, "--node", "nosuch")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [NODE_NOT_FOUND]: ")
    assert "first, second, third" in result.stderr  # the hint lists the run's nodes


def test_events_of_a_known_node_filtered_to_nothing_is_not_an_error(
    cli: Any, finished_run: str
) -> None:
    result = cli("events", finished_run, "--node", "second", "--type", "RunStarted")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "No matching events."
    shown = cli("events", finished_run, "--node", "second", "--json")
    assert {json.loads(line)["nodeId"] for line in shown.stdout.splitlines()} == {"second"}


def test_events_of_a_parents_node_in_a_fork_is_not_an_error(cli: Any, finished_run: str) -> None:
    fork = _json(cli, "fork", finished_run, "--frame", "1")["runId"]
    result = cli("events", fork, "--node", "first")
    assert result.exit_code == 0, result.output  # the fork has it, from its parent's state


# ---------------------------------------------------------------------- graph


def test_graph_of_a_raising_builder_gives_the_builders_error(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "raising.py").write_text(RAISING_BUILDER, encoding="utf-8")
    result = cli.raw("graph", str(tmp_path / "raising.py"))
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error [WORKFLOW_EXECUTION_FAILED]: The builder of workflow 'raising' raised "
        "RuntimeError: builder exploded"
    )
    assert f"Raised at {tmp_path / 'raising.py'}:7." in result.stderr
    assert "INTERNAL_ERROR" not in result.stderr


# ---------------------------------------------------------------------- supervise


def test_supervise_dry_run_never_says_resumed(cli: Any, finished_run: str) -> None:
    result = cli("supervise", "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "poll: 0 stale, 0 would resume, 0 skipped" in result.stdout
    assert "resumed" not in result.stdout


# ---------------------------------------------------------------------- --input


def test_up_input_from_a_file(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "input.json").write_text('{"start": 41}', encoding="utf-8")
    up = cli.up_json("count.py", "--input", "@input.json")
    assert up["outputs"]["second"] == {"n": 42}


def test_up_input_from_stdin(cli: Any) -> None:
    result = cli.runner.invoke(
        main,
        ["up", str(cli.flows / "count.py"), "--input", "-", "--json", "--db", str(cli.db)],
        input='{"start": 9}',
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outputs"]["second"] == {"n": 10}


@pytest.mark.parametrize(
    ("value", "stdin", "message"),
    [
        ("@missing.json", None, "--input @missing.json: cannot read 'missing.json'"),
        ("@bad.json", None, "--input @bad.json is not valid JSON"),
        ("-", "[1, 2]", "--input - must be a JSON object, got list."),
        ("-", "", "--input - is not valid JSON"),
    ],
)
def test_bad_input_sources_are_invalid_input(
    cli: Any, tmp_path: Path, value: str, stdin: str | None, message: str
) -> None:
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    result = cli.runner.invoke(
        main,
        ["up", str(cli.flows / "count.py"), "--input", value, "--db", str(cli.db)],
        input=stdin,
    )
    assert result.exit_code == 4
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {message}")
    assert "@input.json" in result.stderr  # the hint shows every form


def test_graph_fork_and_replay_take_input_files(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "seven.json").write_text('{"start": 7}', encoding="utf-8")
    graph = cli.raw("graph", str(cli.flows / "count.py"), "--input", "@seven.json", "--json")
    assert graph.exit_code == 0, graph.output
    parent = cli.up_json("count.py", "--input", '{"start": 1}')["runId"]
    fork = _json(cli, "fork", parent, "--frame", "0", "--input", "@seven.json", "--run")
    assert _json(cli, "inspect", fork["runId"])["input"] == {"start": 7}
    replay = cli("replay", parent, "--frame", "0", "--input", "@seven.json", "--json")
    assert replay.exit_code == 0, replay.output
    assert json.loads(replay.stdout)["outputs"]["second"] == {"n": 8}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX sessions")
def test_detached_up_with_input_from_stdin(cli: Any, tmp_path: Path, db: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "SMITHERS_DEBUG")}
    args = ["up", str(cli.flows / "count.py"), "--input", "-", "--detach", "--json"]
    started = subprocess.run(
        [sys.executable, "-m", "smithers", *args, "--db", str(db)],
        cwd=tmp_path,
        env=env,
        input='{"start": 20}',
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["runId"]
    # Started means its first events are in: the input the child got is recorded.
    assert _json(cli, "inspect", run_id)["input"] == {"start": 20}
