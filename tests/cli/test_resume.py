"""``smithers up --resume RUN_ID``: resume by id alone; ownership and identity checks."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pytest
from smithers.eventstore.events import NodeCancelled, NodeFinished, RunStarted


def start_and_kill(procs: Any, helpers: Any, flows: Any, run_id: str, after_lines: int) -> None:
    """Run steps.py in a subprocess and SIGKILL it once `after_lines` tasks have begun."""
    side = flows / "steps.side"
    proc = procs.smithers("up", str(flows / "steps.py"), "--run-id", run_id)
    helpers.wait_until(
        lambda: proc.poll() is not None or len(helpers.side_lines(side)) >= after_lines,
        f"{after_lines} tasks of {run_id}",
    )
    assert proc.poll() is None, proc.communicate()
    procs.kill(proc)


def test_resume_of_a_killed_run_finishes_without_rerunning_finished_tasks(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    start_and_kill(procs, helpers, flows, "crashed", after_lines=3)
    before = log.state("crashed")
    assert before.status == "running"
    done_before = {e.node_id for e in log.events("crashed") if isinstance(e, NodeFinished)}
    assert done_before, "the kill came before any task finished"

    result = cli("up", "--resume", "crashed")

    assert result.exit_code == 0, result.output
    assert "Run crashed finished" in result.stdout
    after = log.state("crashed")
    assert after.status == "finished"
    assert after.activation == 2
    runs = Counter(line.split()[0] for line in helpers.side_lines(flows / "steps.side"))
    assert set(runs) == {f"s{i}" for i in range(8)}
    for node_id in done_before:
        assert runs[node_id] == 1, f"{node_id} ran again: {runs}"
    # Only the task the kill interrupted may have run twice; it was closed as abandoned.
    assert all(n == 1 for node, n in runs.items() if node not in done_before) or any(
        isinstance(e, NodeCancelled) and e.reason == "abandoned" for e in log.events("crashed")
    )
    assert log.leases() == []


def test_resume_takes_input_and_config_from_the_log(cli: Any, flows: Any, log: Any) -> None:
    out = cli.up_json("count.py", "--input", '{"start": 5}', "-c", "3", "--run-id", "r")
    assert out["status"] == "finished"
    # Finished: nothing to do, so the log is unchanged.
    seq = log.last_seq("r")
    result = cli("up", "--resume", "r")
    assert result.exit_code == 0
    assert result.stdout.startswith("Run r already finished; nothing to resume.")
    assert log.last_seq("r") == seq


def test_resume_of_a_finished_run_json(cli: Any, finished_run: str, log: Any) -> None:
    seq = log.last_seq(finished_run)
    result = cli("up", "--resume", finished_run, "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["status"] == "finished"
    assert out["outputs"]["second"] == {"n": 6}
    assert log.last_seq(finished_run) == seq


def test_resume_reuses_the_recorded_input_and_concurrency(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    proc = procs.smithers(
        "up", str(flows / "steps.py"), "--run-id", "cfg", "--input", '{"k": 1}', "-c", "2"
    )
    helpers.wait_until(lambda: len(helpers.side_lines(flows / "steps.side")) >= 2, "two tasks")
    procs.kill(proc)
    assert cli("up", "--resume", "cfg").exit_code == 0
    starts = [e for e in log.events("cfg") if isinstance(e, RunStarted)]
    assert len(starts) == 2
    # The input is stored once (issue 15): the resume's RunStarted refers to it.
    assert json.loads(bytes(starts[0].input)) == {"k": 1}
    assert json.loads(bytes(starts[1].input)) is None
    assert starts[1].input_ref == "cfg"
    assert starts[1].input_hash == hashlib.sha256(bytes(starts[0].input)).hexdigest()
    assert json.loads(bytes(starts[1].config))["maxConcurrency"] == 2
    assert starts[1].workflow_path == str(flows / "steps.py")


def test_resume_with_an_edited_workflow_is_resume_metadata_mismatch(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    start_and_kill(procs, helpers, flows, "edited", after_lines=2)
    seq = log.last_seq("edited")
    with (flows / "steps.py").open("a", encoding="utf-8") as f:
        f.write("\n# an edit\n")

    result = cli("up", "--resume", "edited")

    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RESUME_METADATA_MISMATCH]:")
    assert "steps.py" in result.stderr
    assert "fork" in result.stderr  # the next step
    assert log.last_seq("edited") == seq


def test_resume_while_the_owner_is_alive_is_run_owner_alive(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    out = json.loads(cli.up("gated.py", "--detach", "--json", "--run-id", "busy").stdout)
    procs.track(out["pid"])
    helpers.wait_until(lambda: helpers.side_lines(flows / "gated.side"), "the gated task")
    seq = log.last_seq("busy")

    result = cli("up", "--resume", "busy")

    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RUN_OWNER_ALIVE]:")
    assert f"live process {out['pid']}" in result.stderr
    assert "smithers cancel busy" in result.stderr  # the hint
    assert log.last_seq("busy") in (seq, seq + 1, seq + 2)  # only the owner's own frames
    assert log.state("busy").pid == out["pid"]
    (flows / "gate").touch()
    helpers.wait_until(lambda: log.status("busy") == "finished", "the run to finish")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("up", "flows/count.py", "--resume", "r"), "Give either FILE or --resume RUN_ID"),
        (("up", "--resume", "r", "--input", "{}"), "cannot be used with --resume"),
        (("up", "--resume", "r", "--run-id", "x"), "cannot be used with --resume"),
        (("up", "flows/count.py", "--force"), "--force only applies to --resume"),
        (("up",), "Missing argument 'FILE[:NAME]' (or --resume RUN_ID)"),
    ],
)
def test_resume_usage_errors_exit_4(cli: Any, args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 4
    assert message in result.stderr


def test_resume_of_an_unknown_run_is_run_not_found(cli: Any, finished_run: str) -> None:
    result = cli("up", "--resume", "nope")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RUN_NOT_FOUND]:")


def test_resume_of_a_cancelled_run_is_not_resumable(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    start_and_kill(procs, helpers, flows, "gone", after_lines=1)
    assert cli("cancel", "gone").exit_code == 0
    result = cli("up", "--resume", "gone")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RUN_NOT_RESUMABLE]: Run 'gone' (cancelled)")


def test_resume_of_a_run_whose_workflow_file_is_gone_is_not_resumable(
    cli: Any, procs: Any, helpers: Any, flows: Any
) -> None:
    start_and_kill(procs, helpers, flows, "lost", after_lines=1)
    (flows / "steps.py").unlink()
    result = cli("up", "--resume", "lost")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [RUN_NOT_RESUMABLE]:")
    assert "no longer exists" in result.stderr


def test_supervisor_is_not_a_run_id(cli: Any) -> None:
    result = cli.up("count.py", "--run-id", "supervisor")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [INVALID_INPUT]: 'supervisor' is reserved")


def test_resume_json_refused_prints_the_error_as_json_and_exits_4(
    cli: Any, procs: Any, helpers: Any, flows: Any, log: Any
) -> None:
    start_and_kill(procs, helpers, flows, "edited", after_lines=2)
    with (flows / "steps.py").open("a", encoding="utf-8") as f:
        f.write("\n# an edit\n")

    result = cli("up", "--resume", "edited", "--json")

    assert result.exit_code == 4
    out = json.loads(result.stdout)
    assert (out["runId"], out["status"], out["outputs"]) == ("edited", None, {})
    assert out["error"]["code"] == "RESUME_METADATA_MISMATCH"
    assert out["error"]["name"] == "ResumeMetadataMismatchError"
    assert "steps.py" in out["error"]["message"]
    assert result.stderr.startswith("Error [RESUME_METADATA_MISMATCH]:")  # as without --json
    assert log.state("edited").status == "running"


def test_resume_json_of_an_unknown_run_prints_run_not_found(cli: Any, finished_run: str) -> None:
    result = cli("up", "--resume", "nope", "--json")
    assert result.exit_code == 4
    out = json.loads(result.stdout)
    assert (out["runId"], out["status"]) == ("nope", None)
    assert out["error"]["code"] == "RUN_NOT_FOUND"


def test_up_json_usage_errors_print_no_json(cli: Any) -> None:
    result = cli("up", "--resume", "r", "--input", "{}", "--json")
    assert result.exit_code == 4
    assert result.stdout == ""
