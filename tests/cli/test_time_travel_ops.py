"""``rewind``, ``fork``, ``replay``, ``retry-task`` and ``--follow-ancestry`` (DESIGN §7, §9)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from smithers.eventstore import decode_json
from smithers.eventstore.events import (
    NodeStarted,
    ReplayStarted,
    RetryTaskFinished,
    RetryTaskStarted,
    RunForked,
    RunRewound,
    RunStatusChanged,
)

if TYPE_CHECKING:
    import pytest


def frames_of(log: Any, run_id: str) -> list[tuple[int, int]]:
    return [(f.frame_no, f.seq) for f in log.state(run_id).frames]


def started(events: list[Any]) -> list[str]:
    return [e.node_id for e in events if isinstance(e, NodeStarted)]


# ---------------------------------------------------------------------------- fork


def test_fork_json_prints_the_new_run_id_and_leaves_the_parent_alone(
    cli: Any, finished_run: str, log: Any
) -> None:
    parent = log.events(finished_run)

    result = cli(
        "fork",
        finished_run,
        "--frame",
        "1",
        "--reset-node",
        "first",
        "--input",
        '{"start": 7}',
        "--label",
        "try-7",
        "--json",
    )

    assert result.exit_code == 0, result.output
    child = json.loads(result.stdout)["runId"]
    assert child != finished_run
    assert log.events(finished_run) == parent
    (forked,) = log.events(child)
    assert isinstance(forked, RunForked)
    assert (forked.parent_run_id, forked.parent_frame_no) == (finished_run, 1)
    assert forked.reset_nodes == ("first",)
    assert forked.branch_label == "try-7"
    assert decode_json(forked.input) == {"start": 7}
    state = log.state(child)
    assert state.status == "pending"
    assert state.node("first").state == "pending"
    assert log.status(child) == "pending"


def test_fork_then_up_resume_runs_it_with_its_input(cli: Any, finished_run: str, log: Any) -> None:
    out = cli("fork", finished_run, "--frame", "0", "--input", '{"start": 7}')
    assert out.exit_code == 0, out.output
    assert "Forked run" in out.stdout
    child = out.stdout.split(" as ")[1].split(".")[0].strip()
    assert f"smithers up --resume {child}" in out.stdout

    result = cli("up", "--resume", child, "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["outputs"] == {"first": {"n": 1}, "second": {"n": 8}, "third": {"n": 11}}


def test_fork_run_runs_the_fork_now(cli: Any, finished_run: str, log: Any) -> None:
    result = cli("fork", finished_run, "--frame", "1", "--run", "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status"] == "finished"
    assert body["outputs"]["second"] == {"n": 6}
    child = body["runId"]
    # At frame 1 "first" had finished: only what had not runs in the fork.
    assert started(log.events(child)) == ["second", "third"]


def test_fork_at_a_missing_frame_is_snapshot_not_found(cli: Any, finished_run: str) -> None:
    last = cli("inspect", finished_run, "--json")
    assert last.exit_code == 0

    result = cli("fork", finished_run, "--frame", "99")

    assert result.exit_code == 4
    assert result.stderr.startswith("Error [SNAPSHOT_NOT_FOUND]: ")
    assert "has no frame 99: its frames are 0 to " in result.stderr
    assert f"smithers timeline {finished_run}" in result.stderr


def test_fork_of_an_unknown_node_or_run(cli: Any, finished_run: str) -> None:
    result = cli("fork", finished_run, "--frame", "1", "--reset-node", "nope")
    assert result.exit_code == 4
    assert "Error [NODE_NOT_FOUND]" in result.stderr

    result = cli("fork", "run-none", "--frame", "0")
    assert result.exit_code == 4
    assert "Error [RUN_NOT_FOUND]" in result.stderr


def test_fork_needs_a_frame(cli: Any, finished_run: str) -> None:
    result = cli("fork", finished_run)
    assert result.exit_code == 4
    assert "--frame" in result.stderr


# ---------------------------------------------------------------------------- replay


def test_replay_forks_and_runs_now_with_a_new_input(cli: Any, finished_run: str, log: Any) -> None:
    result = cli("replay", finished_run, "--frame", "0", "--input", '{"start": 9}', "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["runId"] != finished_run
    assert body["status"] == "finished"
    assert body["outputs"]["second"] == {"n": 10}
    first, second = log.events(body["runId"])[:2]
    assert isinstance(first, RunForked)
    assert isinstance(second, ReplayStarted)
    assert (second.parent_run_id, second.parent_frame_no) == (finished_run, 0)


def test_replay_of_a_failed_run_fails_again_with_exit_1(cli: Any, failed_run: str) -> None:
    result = cli("replay", failed_run, "--frame", "0")

    assert result.exit_code == 1
    assert "failed" in result.stdout
    assert "ValueError" in result.stderr


# ---------------------------------------------------------------------------- rewind


def test_rewind_appends_run_rewound_and_the_run_resumes(
    cli: Any, finished_run: str, log: Any
) -> None:
    before = log.events(finished_run)
    seq1 = dict(frames_of(log, finished_run))[1]

    result = cli("rewind", finished_run, "--frame", "1", "--json")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body == {
        "runId": finished_run,
        "toFrameNo": 1,
        "toSeq": seq1,
        "status": "waiting-resume",
    }
    events = log.events(finished_run)
    assert events[: len(before)] == before
    # Issue 8: running at the frame, so it now waits for a person (not "running").
    (rewound, status) = events[len(before) :]
    assert isinstance(rewound, RunRewound)
    assert (rewound.to_frame_no, rewound.to_seq) == (1, seq1)
    assert isinstance(status, RunStatusChanged)
    assert status.status == "waiting-resume"
    assert log.status(finished_run) == "waiting-resume"

    resumed = cli("up", "--resume", finished_run, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["outputs"]["third"] == {"n": 11}
    assert started(log.events(finished_run)[len(before) :]) == ["second", "third"]


def test_rewind_resume_does_both_in_one_go(cli: Any, finished_run: str, log: Any) -> None:
    n = len(log.events(finished_run))

    result = cli("rewind", finished_run, "--frame", "0", "--yes", "--resume")

    assert result.exit_code == 0, result.output
    assert f"Run {finished_run} rewound to frame 0" in result.stdout
    assert f"Run {finished_run} finished" in result.stdout
    assert started(log.events(finished_run)[n:]) == ["first", "second", "third"]


def test_rewind_text_output_says_how_to_resume(cli: Any, finished_run: str) -> None:
    result = cli("rewind", finished_run, "--frame", "1")

    assert result.exit_code == 0, result.output
    assert "rewound to frame 1" in result.stdout
    assert f"smithers up --resume {finished_run}" in result.stdout


def test_rewind_asks_on_a_terminal(
    cli: Any, finished_run: str, log: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smithers.cli import _time_travel_ops

    monkeypatch.setattr(_time_travel_ops, "_stdin_is_tty", lambda: True)
    n = len(log.events(finished_run))

    refused = cli.runner.invoke(
        cli_main(), ["rewind", finished_run, "--frame", "1", "--db", str(cli.db)], input="n\n"
    )
    assert refused.exit_code == 1
    assert "Rewind run" in refused.output
    assert len(log.events(finished_run)) == n

    agreed = cli.runner.invoke(
        cli_main(), ["rewind", finished_run, "--frame", "1", "--db", str(cli.db)], input="y\n"
    )
    assert agreed.exit_code == 0, agreed.output
    assert len(log.events(finished_run)) == n + 2  # RunRewound, RunStatusChanged (issue 8)

    yes = cli("rewind", finished_run, "--frame", "1", "--yes")
    assert yes.exit_code == 0
    assert "Rewind run" not in yes.output


def cli_main() -> Any:
    from smithers.cli import main

    return main


def test_rewind_to_a_missing_frame(cli: Any, finished_run: str, log: Any) -> None:
    n = len(log.events(finished_run))

    result = cli("rewind", finished_run, "--frame", "50")

    assert result.exit_code == 4
    assert "Error [SNAPSHOT_NOT_FOUND]" in result.stderr
    assert "its frames are 0 to" in result.stderr
    assert len(log.events(finished_run)) == n


# ---------------------------------------------------------------------------- retry-task


def test_retry_task_reruns_the_node_and_its_dependents(
    cli: Any, finished_run: str, log: Any
) -> None:
    n = len(log.events(finished_run))

    result = cli("retry-task", finished_run, "--node", "second")

    assert result.exit_code == 0, result.output
    assert "Reset: second, third." in result.stdout
    assert f"Run {finished_run} finished" in result.stdout
    new = log.events(finished_run)[n:]
    assert isinstance(new[0], RetryTaskStarted)
    assert new[0].reset_nodes == ("second", "third")
    assert started(new) == ["second", "third"]
    (done,) = [e for e in new if isinstance(e, RetryTaskFinished)]
    assert done.success is True
    assert new.index(done) < len(new) - 1  # recorded by the run's end, before RunFinished


def test_retry_task_no_deps_and_json(cli: Any, finished_run: str, log: Any) -> None:
    n = len(log.events(finished_run))

    result = cli("retry-task", finished_run, "--node", "first", "--no-deps", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "finished"
    assert started(log.events(finished_run)[n:]) == ["first"]


def test_retry_task_of_an_unknown_node(cli: Any, finished_run: str) -> None:
    result = cli("retry-task", finished_run, "--node", "nope")

    assert result.exit_code == 4
    assert result.stderr.startswith("Error [NODE_NOT_FOUND]: ")
    assert "first, second, third" in result.stderr


def test_retry_task_of_a_node_that_fails_again_exits_1(cli: Any, failed_run: str, log: Any) -> None:
    result = cli("retry-task", failed_run, "--node", "second")

    assert result.exit_code == 1
    (done,) = [e for e in log.events(failed_run) if isinstance(e, RetryTaskFinished)]
    assert done.success is False


# ---------------------------------------------------------------------------- ancestry


def test_events_and_logs_follow_a_forks_ancestry(cli: Any, finished_run: str, log: Any) -> None:
    seq1 = dict(frames_of(log, finished_run))[1]
    child = json.loads(cli("fork", finished_run, "--frame", "1", "--run", "--json").stdout)["runId"]

    result = cli("events", child, "--follow-ancestry", "--json")

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(b["runId"], b["seq"]) for b in lines] == [
        *((finished_run, s) for s in range(1, seq1 + 1)),
        *((child, s) for s in range(1, log.last_seq(child) + 1)),
    ]
    text = cli("events", child, "--follow-ancestry")
    assert text.stdout.splitlines()[0] == f"-- run {finished_run}"
    assert f"-- run {child}" in text.stdout.splitlines()
    own = cli("events", child, "--json")
    assert {json.loads(line)["runId"] for line in own.stdout.splitlines()} == {child}

    logs = cli("logs", child, "--follow-ancestry")
    assert logs.exit_code == 0
    assert logs.stdout == result.stdout
    followed = cli("logs", child, "-f", "--follow-ancestry")
    assert followed.exit_code == 0
    assert followed.stdout == result.stdout
