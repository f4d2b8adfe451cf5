"""Every command opens the database once: one client per command (``ctx.obj``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from smithers.eventstore import SQLiteEventStore


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every `SQLiteEventStore.open` call's path, in order (clear it before a command)."""
    calls: list[Any] = []
    real = SQLiteEventStore.open.__func__  # type: ignore[attr-defined]

    async def counting(cls: type[SQLiteEventStore], path: Any, **kwargs: Any) -> Any:
        calls.append(path)
        return await real(cls, path, **kwargs)

    monkeypatch.setattr(SQLiteEventStore, "open", classmethod(counting))
    return calls


def test_up_resume_opens_the_database_once(cli: Any, finished_run: str, opens: list[Any]) -> None:
    assert cli("rewind", finished_run, "--frame", "1", "--yes").exit_code == 0
    opens.clear()

    result = cli("up", "--resume", finished_run, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "finished"
    assert opens == [cli.db]


def test_up_resume_of_a_finished_run_opens_the_database_once(
    cli: Any, finished_run: str, opens: list[Any]
) -> None:
    opens.clear()
    result = cli("up", "--resume", finished_run)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Run {finished_run} already finished; nothing to resume.")
    assert opens == [cli.db]


@pytest.mark.parametrize(
    "command",
    [
        ("ps",),
        ("inspect", "{run}"),
        ("events", "{run}", "--type", "NodeFinished"),
        ("output", "{run}", "second"),
        ("logs", "{run}"),
        ("logs", "{run}", "-f"),
        ("timeline", "{run}"),
        ("state", "{run}", "--frame", "1"),
        ("cancel", "{run}"),
        ("down",),
        ("rewind", "{run}", "--frame", "1", "--yes", "--resume"),
        ("fork", "{run}", "--frame", "1", "--run"),
        ("replay", "{run}", "--frame", "1"),
        ("retry-task", "{run}", "--node", "second"),
    ],
)
def test_each_command_opens_the_database_once(
    cli: Any, finished_run: str, opens: list[Any], command: tuple[str, ...]
) -> None:
    opens.clear()
    result = cli(*(arg.format(run=finished_run) for arg in command))
    assert result.exit_code == 0, result.output
    assert opens == [cli.db]


def test_up_opens_the_database_once(cli: Any, opens: list[Any]) -> None:
    assert cli.up_json("count.py", "--input", '{"start": 5}')["status"] == "finished"
    assert opens == [cli.db]
