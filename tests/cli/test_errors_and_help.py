"""The error handler, exit codes, ``--help`` and ``--version``."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from smithers.engine import SMITHERS_VERSION

COMMANDS = ("up", "ps", "inspect", "events", "output", "logs", "cancel", "down", "supervise")


def test_version(cli: Any) -> None:
    result = cli.raw("--version")
    assert result.exit_code == 0
    assert result.stdout == f"smithers {SMITHERS_VERSION}\n"


def test_group_help_lists_commands_and_an_example(cli: Any) -> None:
    result = cli.raw("--help")
    assert result.exit_code == 0
    assert "Durable workflows for AI agents" in result.stdout
    lines = result.stdout.splitlines()
    assert "      smithers up flows/count.py --input '{\"start\": 5}'" in lines
    assert "      smithers ps" in lines
    assert "\\b" not in result.stdout
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_db(cli: Any, command: str) -> None:
    result = cli.raw(command, "--help")
    assert result.exit_code == 0
    assert f"smithers {command} " in result.stdout.split("Options:")[0]
    assert "--db PATH" in result.stdout


def test_up_help_lists_exit_codes(cli: Any) -> None:
    text = cli.raw("up", "--help").stdout
    assert "Exit codes:" in text
    lines = [line.strip() for line in text.splitlines()]
    assert "0    the run finished" in lines
    assert "1    the run failed (or an unexpected error)" in lines
    assert "2    the run was cancelled" in lines
    assert "3    the run is waiting (approval, event or timer)" in lines
    assert any(line.startswith("4    bad arguments or input") for line in lines)
    assert any(line.startswith("130  interrupted") for line in lines)


@pytest.mark.parametrize(
    "args",
    [("nonsense",), ("--bogus",), ("inspect",), ("output", "run-only"), ("ps", "--limit", "0")],
)
def test_usage_errors_exit_4_with_clicks_message(cli: Any, args: tuple[str, ...]) -> None:
    result = cli.raw(*args)
    assert result.exit_code == 4
    assert "Usage: smithers" in result.stderr
    assert "Error [INVALID_INPUT]: " in result.stderr


def _break_load_run(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    engine = importlib.import_module("smithers.engine")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise exc

    # The first thing `inspect` does with its client (before the database is opened).
    monkeypatch.setattr(engine.Client, "get_run", broken)


def test_unexpected_error_is_internal_error_without_traceback(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_load_run(monkeypatch, RuntimeError("the bug"))
    result = cli("inspect", "r")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error [INTERNAL_ERROR]: RuntimeError: the bug\nSet SMITHERS_DEBUG=1 for a traceback.\n"
    )


def test_smithers_debug_prints_the_traceback(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _break_load_run(monkeypatch, RuntimeError("the bug"))
    result = cli("inspect", "r", env={"SMITHERS_DEBUG": "1"})
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "Error [INTERNAL_ERROR]: RuntimeError: the bug" in result.stderr


def test_errors_inside_an_exception_group_are_unwrapped(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smithers.engine import RunNotFoundError

    _break_load_run(monkeypatch, ExceptionGroup("task group", [RunNotFoundError("r")]))
    result = cli("inspect", "r")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RUN_NOT_FOUND]:")


def test_operational_smithers_error_exits_1(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from smithers.eventstore import DatabaseQueryError

    _break_load_run(monkeypatch, DatabaseQueryError("Could not read the database x."))
    result = cli("inspect", "r")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error [DB_QUERY_FAILED]: Could not read the database x.")


def test_interrupt_in_a_read_command_exits_130(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _break_load_run(monkeypatch, KeyboardInterrupt())
    result = cli("inspect", "r")
    assert result.exit_code == 130
    assert result.stderr == "Interrupted.\n"


def test_a_file_that_is_not_a_database_is_db_query_failed(cli: Any) -> None:
    cli.db.parent.mkdir(parents=True)
    cli.db.write_bytes(b"this is not sqlite" * 100)
    result = cli("ps")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error [DB_QUERY_FAILED]:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("finished", 0),
        ("continued", 0),
        ("failed", 1),
        ("cancelled", 2),
        ("waiting-approval", 3),
        ("waiting-event", 3),
        ("waiting-timer", 3),
    ],
)
def test_exit_code_for_each_run_status(status: str, code: int) -> None:
    errors = importlib.import_module("smithers.cli._errors")
    assert errors.exit_code_for_status(status) == code
