"""A CLI's usage-limit text names its reset time: the failure carries it, the run parks.

The texts are the fact sheets' (../shared/reference): Claude Code's ``You've hit your
limit · resets 5pm (UTC)`` / ``It resets …``, its older ``…limit reached|<epoch>``,
Codex's ``try again in …`` and a retry delay in seconds; the parking test runs the
Claude Code double as a real subprocess.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from smithers.engine import read_events
from smithers.engine.agents import parse_reset_at_ms
from smithers.engine.agents._cli import cli_failure
from smithers.eventstore import decode_json
from smithers.eventstore.events import NodeFailed, NodeRetrying

from smithers import Task, run_workflow, workflow
from smithers.agents import ClaudeCodeAgent

DOUBLE = Path(__file__).with_name("doubles") / "claude"
NOW = dt.datetime(2026, 11, 30, 11, 10, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def _at(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("You've hit your limit · resets 5pm (UTC)", _at(2026, 11, 30, 17)),
        ("You've hit your limit · resets 9am (UTC)", _at(2026, 12, 1, 9)),  # tomorrow's
        ("You've hit your limit · resets 5pm (Europe/Paris)", _at(2026, 11, 30, 16)),
        ("You've hit your usage limit. It resets Dec 3, 5:30pm (UTC).", _at(2026, 12, 3, 17, 30)),
        ("You've hit your limit · resets 17:05 (UTC)", _at(2026, 11, 30, 17, 5)),
        ("Claude AI usage limit reached|1796040000", 1_796_040_000_000),
        (
            "You've hit your usage limit. Upgrade to Pro or try again in 4 days 2 hours "
            "30 minutes.",
            NOW_MS + ((4 * 24 + 2) * 60 + 30) * 60_000,
        ),
        ("Quota exceeded. Please retry in 39.5s.", NOW_MS + 39_500),
        ("usage limit; resets at 2026-12-01T08:00:00Z", _at(2026, 12, 1, 8)),
    ],
)
def test_reset_times_are_read_from_the_text(text: str, expected: int) -> None:
    assert parse_reset_at_ms(text, now_ms=NOW_MS) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Quota exceeded. Check your plan and billing details.",
        "You've hit your limit",
        "usage limit: retry 3 times",
        "You've hit your limit · resets 13pm (UTC)",
    ],
)
def test_no_reset_time_is_made_up(text: str) -> None:
    assert parse_reset_at_ms(text, now_ms=NOW_MS) is None


def test_the_quota_failure_carries_the_reset_time() -> None:
    err = cli_failure(
        "You've hit your limit · resets 5pm (UTC)",
        engine="claude-code",
        agent_id="claude-code:default",
        model=None,
        status=429,
        login_hint="",
        now_ms=NOW_MS,
    )
    assert err.code == "AGENT_QUOTA_EXCEEDED"  # type: ignore[attr-defined]
    details = err.details  # type: ignore[attr-defined]
    assert details["quotaResetAtMs"] == _at(2026, 11, 30, 17)
    assert details["resetHint"] == "You've hit your limit · resets 5pm (UTC)"
    silent = cli_failure(
        "Quota exceeded. Check your plan and billing details.",
        engine="codex",
        agent_id="codex:default",
        model=None,
        login_hint="",
        now_ms=NOW_MS,
    )
    assert "quotaResetAtMs" not in silent.details  # type: ignore[attr-defined]


class Summary(msgspec.Struct):
    files: int
    note: str


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_usage_limit_with_a_reset_time_parks_the_run_until_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reset a few minutes from now, in the double's words ("resets 11:14am (UTC)").
    reset = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=3)
    hour = reset.hour % 12 or 12
    said = f"{hour}:{reset.minute:02d}{'pm' if reset.hour >= 12 else 'am'} (UTC)"
    monkeypatch.setenv("CLAUDE_DOUBLE_SCENARIO", "usage-limit")
    monkeypatch.setenv("CLAUDE_DOUBLE_RESET", said)
    root = tmp_path / "root"
    root.mkdir()

    @workflow("limited")
    def flow(ctx: Any) -> Any:
        agent = ClaudeCodeAgent(binary=str(DOUBLE))
        return Task("work", output=Summary, agent=agent, prompt="Count the files.", retries=0)

    db = tmp_path / "runs.db"
    with anyio.fail_after(30):
        result = await run_workflow(flow, db=db, root_dir=root)

    assert result.status == "waiting-timer"  # parked: the supervisor wakes it at the reset
    events = [e for _, e in await read_events(result.run_id, db=db)]
    (failed,) = [e for e in events if isinstance(e, NodeFailed)]
    assert failed.error.code == "AGENT_QUOTA_EXCEEDED"
    reset_ms = int(reset.timestamp() * 1000)
    assert decode_json(failed.error.details)["quotaResetAtMs"] == reset_ms
    (retrying,) = [e for e in events if isinstance(e, NodeRetrying)]
    assert abs(retrying.timestamp_ms + retrying.delay_ms - reset_ms) < 1_000
    assert retrying.timestamp_ms < time.time() * 1000 < reset_ms
