"""CLI parity with the reference (issue 8, item 8): flags, watch modes, usage errors, help.

In-process (CliRunner) where that is enough; the watch modes run in a real
``python -m smithers`` subprocess, interrupted with SIGINT or ended by their run.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from smithers.cli import main

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------- helpers


def _start_gated(procs: Any, helpers: Any, flows: Path, run_id: str) -> subprocess.Popen[str]:
    """Run gated.py in a subprocess; return it once its task ``wait`` is running."""
    before = len(helpers.side_lines(flows / "gated.side"))
    proc: subprocess.Popen[str] = procs.smithers("up", str(flows / "gated.py"), "-r", run_id)
    helpers.wait_until(
        lambda: proc.poll() is not None or len(helpers.side_lines(flows / "gated.side")) > before,
        f"{run_id}'s task",
    )
    assert proc.poll() is None, proc.communicate()
    return proc


def _open_gate(flows: Path) -> None:
    (flows / "gate").write_text("open", encoding="utf-8")


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bogus",), "No such option '--bogus'."),
        (("nonsense",), "No such command 'nonsense'."),
        (("inspect",), "Missing argument 'RUN'."),
        (("ps", "--limit", "0"), "Invalid value for '--limit': 0 is not in the range x>=1."),
        (("ps", "-s", "sleeping"), "Invalid value for '--status': 'sleeping' is not one of"),
    ],
)
def test_usage_errors_print_error_invalid_input_then_usage(
    cli: Any, args: tuple[str, ...], message: str
) -> None:
    result = cli.raw(*args)
    assert result.exit_code == 4
    first, usage, hint, *rest = result.stderr.splitlines()
    assert first.startswith(f"Error [INVALID_INPUT]: {message}")
    assert usage.startswith("Usage: smithers")
    assert re.fullmatch(r"Try 'smithers( \w+)? --help' for help\.", hint)
    assert rest == []
    assert result.stdout == ""


def test_a_usage_error_in_a_real_process_exits_4(procs: Any) -> None:
    proc = procs.smithers("events", "r", "--group-by", "colour")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4
    assert err.startswith("Error [INVALID_INPUT]: Invalid value for '--group-by': 'colour'")
    assert out == ""


def test_no_command_still_prints_the_help(cli: Any) -> None:
    result = cli.raw()
    assert result.exit_code == 4
    assert "Usage: smithers" in result.output
    assert "Commands:" in result.output


# ---------------------------------------------------------------------- short flags


def test_short_flags_of_up_fork_replay_and_graph(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "input.json").write_text('{"start": 2}', encoding="utf-8")
    out = json.loads(cli.up("count.py", "-i", "@input.json", "-r", "short-1", "-j").stdout)
    assert (out["runId"], out["status"], out["outputs"]["second"]) == (
        "short-1",
        "finished",
        {"n": 3},
    )

    fork = cli("fork", "short-1", "--frame", "1", "-i", '{"start": 7}', "-r", "short-2", "-j")
    assert fork.exit_code == 0, fork.stderr
    assert json.loads(fork.stdout)["runId"] == "short-2"

    replay = cli("replay", "short-1", "--frame", "1", "-i", '{"start": 9}', "-r", "short-3", "-j")
    assert replay.exit_code == 0, replay.stderr
    assert json.loads(replay.stdout)["outputs"]["second"] == {"n": 10}

    graph = cli.raw("graph", str(cli.flows / "count.py"), "-i", '{"start": 1}', "-j")
    assert json.loads(graph.stdout)["tag"] == "workflow"


def test_invalid_run_id_through_r_is_named_run_id(cli: Any) -> None:
    result = cli.up("count.py", "-r", "../escaped")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [INVALID_INPUT]: Invalid --run-id '../escaped'")


def test_every_json_option_has_j(cli: Any) -> None:
    for name, command in main.commands.items():
        for param in command.params:
            if "--json" in getattr(param, "opts", ()):
                assert "-j" in param.opts, name


# ---------------------------------------------------------------------- ps


def test_ps_shows_the_newest_20_unless_limit_or_all(cli: Any) -> None:
    for i in range(21):
        assert cli.up("count.py", "-r", f"r{i:02d}", "-j").exit_code == 0
    shown = json.loads(cli("ps", "-j").stdout)
    assert [r["runId"] for r in shown] == [f"r{i:02d}" for i in range(20, 0, -1)]
    text = cli("ps").stdout
    assert "r20" in text
    assert "r00" not in text
    assert text.endswith("Newest 20 runs shown; -l N for more, -a for all.\n")

    everything = json.loads(cli("ps", "-a", "-j").stdout)
    assert len(everything) == 21
    assert "Newest" not in cli("ps", "--all").stdout
    assert [r["runId"] for r in json.loads(cli("ps", "-l", "2", "-j").stdout)] == ["r20", "r19"]
    assert json.loads(cli("ps", "-s", "failed", "-j").stdout) == []

    both = cli("ps", "-a", "-l", "3")
    assert both.exit_code == 4
    assert both.stderr.startswith("Error [INVALID_INPUT]: Use either --all or --limit")


def test_ps_watch_redraws_until_ctrl_c(cli: Any, procs: Any, helpers: Any, flows: Path) -> None:
    assert cli.up("count.py", "-r", "first-run").exit_code == 0
    watch = procs.smithers("ps", "--watch", "--interval", "100ms", "--json")
    assert watch.stdout is not None
    first = json.loads(watch.stdout.readline())  # printed (and flushed) at once
    assert [r["runId"] for r in first] == ["first-run"]

    gated = _start_gated(procs, helpers, flows, "second-run")
    second = json.loads(watch.stdout.readline())  # shown again once the list changed
    assert second[0]["runId"] == "second-run"

    watch.send_signal(signal.SIGINT)
    _, err = watch.communicate(timeout=helpers.WAIT_S)
    assert watch.returncode == 130
    assert "Traceback" not in err
    assert err.strip() == "Interrupted."
    _open_gate(flows)
    gated.communicate(timeout=helpers.WAIT_S)


def test_ps_rejects_a_bad_interval(cli: Any) -> None:
    result = cli("ps", "--watch", "--interval", "soon")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error [INVALID_INPUT]: Invalid value for --interval")


# ---------------------------------------------------------------------- inspect --watch


def test_inspect_watch_of_an_ended_run_shows_it_once(cli: Any, finished_run: str) -> None:
    result = cli("inspect", finished_run, "--watch", "--interval", "50ms", "--json")
    assert result.exit_code == 0
    [view] = _json_lines(result.stdout)
    assert view["status"] == "finished"
    plain = cli("inspect", finished_run, "-w")
    assert plain.exit_code == 0
    assert plain.stdout == cli("inspect", finished_run).stdout


def test_inspect_watch_follows_a_run_to_its_end(procs: Any, helpers: Any, flows: Path) -> None:
    gated = _start_gated(procs, helpers, flows, "watched")
    watch = procs.smithers("inspect", "watched", "--watch", "--interval", "50ms", "-j")
    assert watch.stdout is not None
    first = json.loads(watch.stdout.readline())
    assert first["status"] == "running"
    _open_gate(flows)
    out, err = watch.communicate(timeout=helpers.WAIT_S)
    assert watch.returncode == 0, err
    views = [first, *_json_lines(out)]
    assert views[-1]["status"] == "finished"
    assert len(views) >= 2
    assert gated.wait(timeout=helpers.WAIT_S) == 0


# ---------------------------------------------------------------------- events


def test_events_group_by_node_and_type(cli: Any, failed_run: str) -> None:
    text = cli("events", failed_run, "--group-by", "node").stdout
    headers = [line for line in text.splitlines() if line.startswith("== ")]
    assert headers[0].startswith("== node (the run itself): ")
    assert [h.split(":")[0] for h in headers[1:]] == ["== node first", "== node second"]

    grouped = json.loads(cli("events", failed_run, "--group-by", "type", "-j").stdout)
    assert grouped["groupBy"] == "type"
    keys = [g["key"] for g in grouped["groups"]]
    assert keys[0] == "RunStarted"
    assert "NodeFailed" in keys
    every = _json_lines(cli("events", failed_run, "--json").stdout)
    assert sum(g["count"] for g in grouped["groups"]) == len(every)
    failed = next(g for g in grouped["groups"] if g["key"] == "NodeFailed")
    assert [e["nodeId"] for e in failed["events"]] == ["second"]

    by_node = json.loads(cli("events", failed_run, "--group-by", "node", "--json").stdout)
    assert by_node["groups"][0]["key"] is None


def test_events_limit_has_l(cli: Any, finished_run: str) -> None:
    assert [e["seq"] for e in _json_lines(cli("events", finished_run, "-l", "2", "-j").stdout)] == [
        1,
        2,
    ]


def test_events_watch_prints_new_matching_events_until_the_run_ends(
    procs: Any, helpers: Any, flows: Path
) -> None:
    gated = _start_gated(procs, helpers, flows, "ev")
    watch = procs.smithers(
        "events", "ev", "--watch", "--type", "NodeFinished", "--interval", "50ms", "--json"
    )
    assert watch.stdout is not None
    assert json.loads(watch.stdout.readline())["nodeId"] == "first"  # already recorded
    _open_gate(flows)
    out, err = watch.communicate(timeout=helpers.WAIT_S)
    assert watch.returncode == 0, err
    assert [e["nodeId"] for e in _json_lines(out)] == ["wait", "after"]
    assert gated.wait(timeout=helpers.WAIT_S) == 0


def test_events_watch_stops_on_ctrl_c(procs: Any, helpers: Any, flows: Path) -> None:
    gated = _start_gated(procs, helpers, flows, "ev2")
    watch = procs.smithers("events", "ev2", "-w", "--type", "NodeStarted", "--interval", "50ms")
    assert watch.stdout is not None
    assert "NodeStarted" in watch.stdout.readline()
    watch.send_signal(signal.SIGINT)
    _, err = watch.communicate(timeout=helpers.WAIT_S)
    assert watch.returncode == 130
    assert err.strip() == "Interrupted."
    _open_gate(flows)
    gated.communicate(timeout=helpers.WAIT_S)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--watch", "--group-by", "node"), "--group-by needs every event first"),
        (("--watch", "-l", "3"), "Use either --limit or --watch"),
    ],
)
def test_events_watch_conflicts(cli: Any, args: tuple[str, ...], message: str) -> None:
    result = cli("events", "some-run", *args)
    assert result.exit_code == 4
    assert result.stderr.startswith(f"Error [INVALID_INPUT]: {message}")


# ---------------------------------------------------------------------- logs


def test_logs_tail_and_since(cli: Any, finished_run: str) -> None:
    every = _json_lines(cli("logs", finished_run).stdout)
    assert len(every) > 3
    assert _json_lines(cli("logs", finished_run, "-n", "2").stdout) == every[-2:]
    assert _json_lines(cli("logs", finished_run, "--tail", "0").stdout) == []
    assert _json_lines(cli("logs", finished_run, "--since", "3").stdout) == every[3:]
    assert _json_lines(cli("logs", finished_run, "--since", "3", "-n", "1").stdout) == every[-1:]
    assert _json_lines(cli("logs", finished_run, "--since", "1h").stdout) == every
    # -f on an ended run prints the tail and returns.
    assert _json_lines(cli("logs", finished_run, "-n", "1", "-f").stdout) == every[-1:]
    bad = cli("logs", finished_run, "--since", "yesterday")
    assert bad.exit_code == 4
    assert "smithers logs --help" in bad.stderr


def test_logs_tail_then_follow(procs: Any, helpers: Any, flows: Path) -> None:
    gated = _start_gated(procs, helpers, flows, "tailed")
    follow = procs.smithers("logs", "tailed", "-n", "1", "-f")
    assert follow.stdout is not None
    last = json.loads(follow.stdout.readline())
    _open_gate(flows)
    out, err = follow.communicate(timeout=helpers.WAIT_S)
    assert follow.returncode == 0, err
    rest = _json_lines(out)
    assert [e["seq"] for e in rest] == list(range(last["seq"] + 1, last["seq"] + 1 + len(rest)))
    assert rest[-1]["type"] == "RunFinished"
    assert gated.wait(timeout=helpers.WAIT_S) == 0


# ---------------------------------------------------------------------- output, down


def test_output_pretty(cli: Any, finished_run: str) -> None:
    assert cli("output", finished_run, "second").stdout == '{"n":6}\n'
    assert cli("output", finished_run, "second", "--pretty").stdout == '{\n  "n": 6\n}\n'
    both = cli("output", finished_run, "second", "--pretty", "-j")
    assert both.exit_code == 4
    assert both.stderr.startswith("Error [INVALID_INPUT]: Use either --json")


def test_down_force_records_the_cancellation_without_waiting(
    cli: Any, procs: Any, helpers: Any, flows: Path, log: Any
) -> None:
    gated = _start_gated(procs, helpers, flows, "forced")
    result = cli("down", "--force", "--reason", "stuck", "-j")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"runId": "forced", "status": "cancelled"}]
    assert log.status("forced") == "cancelled"
    _open_gate(flows)
    gated.communicate(timeout=helpers.WAIT_S)
    assert log.status("forced") == "cancelled"

    both = cli("down", "--force", "--wait", "1s")
    assert both.exit_code == 4
    assert both.stderr.startswith("Error [INVALID_INPUT]: Use either --force or --wait")


# ---------------------------------------------------------------------- help


_PY_PATH = re.compile(r"(?<![\w/.])((?:[\w.-]+/)*[\w.-]+\.py)(?::\w+)?")


def _examples(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("smithers ")]


def test_help_examples_name_files_that_exist(cli: Any) -> None:
    texts = {"": cli.raw("--help").stdout}
    texts |= {name: cli.raw(name, "--help").stdout for name in main.commands}
    checked = 0
    for name, text in texts.items():
        for line in _examples(text):
            for path in _PY_PATH.findall(line):
                if name == "" and path == "flows/count.py":
                    continue  # the group help's stand-in for a workflow file of yours
                assert (REPO / path).is_file(), f"smithers {name} --help: {line}"
                checked += 1
            for ref in re.findall(r"@([\w./-]+)", line):
                assert (REPO / ref).is_file(), f"smithers {name} --help: {line}"
    assert checked >= 4


def test_help_examples_of_graph_run(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    for line in _examples(cli.raw("graph", "--help").stdout):
        args = shlex.split(line.split("|")[0])[1:]
        result = cli.raw(*args)
        assert result.exit_code == 0, (line, result.stderr)


def test_python_m_smithers_help_lists_new_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "smithers", "ps", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for flag in ("-s, --status", "-l, --limit", "-a, --all", "-w, --watch", "--interval"):
        assert flag in out
