"""``smithers audit`` answers "who rewound this run, when, and why" from the log alone;
``inspect`` shows a run's last operations.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def history(smithers: Any, flow: Path) -> Any:
    """Run r1: started by alice, approved by bob, rewound by erin; forked by frank as f1."""
    assert smithers("up", str(flow), "--run-id", "r1", "--by", "alice").returncode == 3
    assert smithers("approve", "r1", "--by", "bob", "--no-resume").returncode == 0
    rewound = smithers(
        "rewind", "r1", "--frame", "1", "--yes", "--by", "erin", "--reason", "bad deploy at 2"
    )
    assert rewound.returncode == 0, rewound.stderr
    assert smithers("fork", "r1", "--frame", "1", "--run-id", "f1", "--by", "frank").returncode == 0
    assert smithers("up", str(flow), "--run-id", "other", "--by", "zed").returncode == 3
    return smithers


def test_audit_says_who_rewound_the_run_when_and_why(history: Any) -> None:
    done = history("audit", "r1", "--type", "RunRewound")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["WHEN", "RUN", "WHO", "FROM", "WHAT", "WHY"]
    (row,) = lines[1:]
    assert "erin" in row
    assert "rewound to frame 1" in row
    assert "bad deploy at 2" in row
    assert "cli" in row


def test_audit_json_lists_the_run_and_its_fork_newest_first(history: Any) -> None:
    ops = history.json("audit", "r1")
    assert [(o["runId"], o["type"], o["actor"]["name"]) for o in ops] == [
        ("f1", "RunForked", "frank"),
        ("r1", "RunRewound", "erin"),
        ("r1", "ApprovalGranted", "bob"),
        ("r1", "RunStarted", "alice"),
    ]
    fork, rewind, approval, start = ops
    assert set(rewind) == {
        "runId", "seq", "stream", "type", "timestampMs", "actor", "what", "params",
    }  # fmt: skip
    assert rewind["params"]["toFrameNo"] == 1
    assert rewind["actor"]["reason"] == "bad deploy at 2"
    assert rewind["actor"]["interface"] == "cli"
    assert isinstance(rewind["actor"]["pid"], int)
    assert fork["params"]["parentRunId"] == "r1"
    assert fork["params"]["parentFrameNo"] == 1
    assert approval["params"]["nodeId"] == "deploy-approval"
    assert approval["params"]["decidedBy"] == "bob"
    assert start["params"]["activation"] == 1
    assert len(start["params"]["inputHash"]) == 64
    times = [o["timestampMs"] for o in ops]
    assert times == sorted(times, reverse=True)


def test_audit_filters_by_actor_type_time_and_count(history: Any) -> None:
    everyone = history.json("audit")
    assert {o["actor"]["name"] for o in everyone} == {"alice", "bob", "erin", "frank", "zed"}
    assert [o["runId"] for o in history.json("audit", "--actor", "zed")] == ["other"]
    both = history.json("audit", "--type", "RunStarted,RunForked")
    assert {o["type"] for o in both} == {"RunStarted", "RunForked"}
    assert len(history.json("audit", "--since", "1d")) == len(everyone)
    assert history.json("audit", "--since", "2999-01-01") == []
    (newest,) = history.json("audit", "--limit", "1")
    assert newest["actor"]["name"] == "zed"
    empty = history("audit", "r1", "--actor", "nobody")
    assert empty.returncode == 0
    assert "No operations recorded for run r1" in empty.stdout


def test_audit_refuses_bad_input_with_exit_4(history: Any) -> None:
    for args in (
        ("audit", "--type", "NodeFinished"),
        ("audit", "--since", "last tuesday"),
        ("audit", "no-such-run"),
        ("audit", "--limit", "0"),
    ):
        done = history(*args)
        assert done.returncode == 4, (args, done.stdout, done.stderr)
        assert "Error [" in done.stderr
        assert "Traceback" not in done.stderr


def test_inspect_shows_the_last_operations(history: Any) -> None:
    out = history.json("inspect", "r1")
    assert [o["type"] for o in out["operations"]] == ["RunRewound", "ApprovalGranted", "RunStarted"]
    text = history("inspect", "r1").stdout
    tail = text[text.index("Last operations") :]
    assert "smithers audit r1" in tail
    assert "erin" in tail
    assert "bad deploy at 2" in tail


def test_the_supervisors_start_is_an_operation_of_the_database_not_of_a_run(
    history: Any,
) -> None:
    assert history("supervise", "--once").returncode == 0
    (sup,) = history.json("audit", "--type", "SupervisorStarted")
    assert sup["runId"] == "supervisor"
    assert sup["actor"]["interface"] == "supervisor"
    assert sup["actor"]["name"] == getpass.getuser()
    assert all(o["type"] != "SupervisorStarted" for o in history.json("audit", "r1"))
