"""State that tells the truth (issue 8, item 7), through ``python -m smithers``.

- ``rewind`` without ``--resume`` leaves the run ``waiting-resume``: ``ps`` and
  ``inspect`` say so, ``supervise`` does not restart it, ``up --resume`` continues it.
- ``fork --input`` and ``replay --input`` refuse an input the workflow's input type
  rejects (``INVALID_INPUT``, exit 4) before anything is recorded.
- ``ps``/``inspect`` durations: the run's wall time (first to last event); a node's, its
  attempts' time summed.
- ``inspect`` counts frames as ``timeline`` does, shows a fork's or replay's parent,
  frame and label, and lists nodes in tree order.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest

pytestmark = pytest.mark.slow  # runs in CI (see tests/conftest.py)

if TYPE_CHECKING:
    from pathlib import Path

TYPED = """
    import time

    import msgspec
    from smithers import Sequence, Task, workflow

    class Start(msgspec.Struct):
        start: int

    class Count(msgspec.Struct):
        n: int

    def second(ctx):
        time.sleep(0.05)
        return {"n": ctx.input.start + 1}

    @workflow("typed", input=Start)
    def typed(ctx):
        first = ctx.output_maybe(Count, "first")
        return Sequence(
            Task("first", output=Count, value={"n": 1}),
            Task("second", output=Count, run=lambda: second(ctx)),
            first and Task("third", output=Count, value={"n": first.n + 10}),
        )
"""

# "late" is mounted after "p1", "p2" and "z" (only once "a" has an output), but comes
# second in the tree.
LATE = """
    from smithers import Parallel, Sequence, Task, workflow

    @workflow("late")
    def late(ctx):
        a = ctx.output_maybe(dict, "a")
        return Sequence(
            Task("a", output=dict, value={"n": 1}),
            a and Task("late", output=dict, value={"n": 2}),
            Parallel(Task("p1", output=dict, value={}), Task("p2", output=dict, value={})),
            Task("z", output=dict, value={"n": 3}),
        )
"""


class Sh:
    """``python -m smithers ARGS --db DB`` in a subprocess, in the test's directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "runs" / "smithers.db"
        (root / "typed.py").write_text(textwrap.dedent(TYPED), encoding="utf-8")
        (root / "late.py").write_text(textwrap.dedent(LATE), encoding="utf-8")
        self.env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "COLUMNS")}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smithers", *args, "--db", str(self.db)],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def json(self, *args: str, code: int = 0) -> Any:
        done = self(*args, "--json")
        assert done.returncode == code, (done.stdout, done.stderr)
        return json.loads(done.stdout)

    def run_ids(self) -> list[str]:
        return [r["runId"] for r in self.json("ps")]

    def events(self, run_id: str) -> list[dict[str, Any]]:
        done = self("events", run_id, "--json")
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def sh(tmp_path: Path) -> Sh:
    return Sh(tmp_path)


@pytest.fixture
def finished(sh: Sh) -> str:
    out = sh.json("up", "typed.py", "--input", '{"start": 5}', "--run-id", "r1")
    assert out["status"] == "finished"
    return "r1"


# ---------------------------------------------------------------------- rewind


def test_a_rewound_run_waits_for_a_person(sh: Sh, finished: str) -> None:
    done = sh("rewind", finished, "--frame", "1", "--yes")
    assert done.returncode == 0, done.stderr
    assert "status: waiting-resume" in done.stdout
    assert f"smithers up --resume {finished}" in done.stdout

    assert [(r["runId"], r["status"]) for r in sh.json("ps")] == [(finished, "waiting-resume")]
    assert sh.json("inspect", finished)["status"] == "waiting-resume"
    table = sh("ps")
    assert "waiting-resume" in table.stdout
    assert sh.json("ps", "--status", "waiting-resume")[0]["runId"] == finished
    types = [e["type"] for e in sh.events(finished)]
    assert types[-2:] == ["RunRewound", "RunStatusChanged"]
    assert sh.events(finished)[-1]["status"] == "waiting-resume"

    # Nobody claimed it, for far longer than the threshold: a "running" run would be
    # resumed; a waiting one is not even looked at.
    time.sleep(0.01)
    sup = sh("supervise", "--once", "--stale-threshold", "1ms", "--json")
    assert sup.returncode == 0, sup.stderr
    decided = [json.loads(line) for line in sup.stdout.splitlines()]
    assert not [e for e in decided if e["type"].startswith("RunAuto")], decided
    assert [e["type"] for e in sh.events(finished)] == types

    resumed = sh.json("up", "--resume", finished)
    assert resumed["status"] == "finished"
    assert resumed["outputs"]["third"] == {"n": 11}
    assert sh.json("ps")[0]["status"] == "finished"


def test_rewind_resume_still_runs_it_at_once(sh: Sh, finished: str) -> None:
    done = sh("rewind", finished, "--frame", "1", "--yes", "--resume")
    assert done.returncode == 0, done.stderr
    assert sh.json("ps")[0]["status"] == "finished"


# ---------------------------------------------------------------------- fork/replay input


@pytest.mark.parametrize("verb", ["fork", "replay"])
@pytest.mark.parametrize("bad", ['{"start": "x"}', "{}", '{"start": 1.5}'])
def test_a_bad_fork_or_replay_input_is_refused_before_recording(
    sh: Sh, finished: str, verb: str, bad: str
) -> None:
    done = sh(verb, finished, "--frame", "1", "--input", bad)

    assert done.returncode == 4, (done.stdout, done.stderr)
    assert "Error [INVALID_INPUT]" in done.stderr
    assert "$.start" in done.stderr or "start" in done.stderr
    assert "--resume" not in done.stderr  # no hint about a flag resume does not have
    assert sh.run_ids() == [finished]


def test_a_good_fork_input_is_kept_and_runs(sh: Sh, finished: str) -> None:
    out = sh.json("fork", finished, "--frame", "1", "--input", '{"start": 7}', "--run-id", "f")
    assert out == {"runId": "f"}
    ran = sh.json("up", "--resume", "f")
    assert (ran["status"], ran["outputs"]["second"]) == ("finished", {"n": 8})


# ---------------------------------------------------------------------- durations


def test_durations_are_wall_time_and_summed_attempts(sh: Sh, finished: str) -> None:
    time.sleep(0.4)  # the retry starts well after the first attempt ended
    retried = sh("retry-task", finished, "--node", "second", "--no-deps")
    assert retried.returncode == 0, retried.stderr

    body = sh.json("inspect", finished)
    events = sh.events(finished)
    wall = events[-1]["timestampMs"] - events[0]["timestampMs"]
    assert body["durationMs"] == wall == body["updatedAtMs"] - body["createdAtMs"]
    assert wall >= 400
    (ps,) = sh.json("ps")
    assert ps["updatedAtMs"] - ps["createdAtMs"] == wall
    shown = f"{wall}ms" if wall < 1000 else f"{wall / 1000:.2f}s"
    assert shown in sh("ps").stdout
    assert f"Duration  {shown}" in sh("inspect", finished).stdout

    (second,) = [n for n in body["nodes"] if n["nodeId"] == "second"]
    attempts = second["attempts"]
    assert len(attempts) == 2
    assert second["durationMs"] == sum(a["durationMs"] for a in attempts)
    span = attempts[-1]["finishedAtMs"] - attempts[0]["startedAtMs"]
    assert span >= 400 > second["durationMs"]

    text = sh("inspect", finished).stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("second "))
    assert line.split()[4] == f"{second['durationMs']}ms"  # under a second: not the span


# ---------------------------------------------------------------------- frames, parent, order


def _timeline_frames(sh: Sh, run_id: str) -> int:
    return len(sh.json("timeline", run_id)["frames"])


def test_inspect_counts_frames_as_timeline(sh: Sh, finished: str) -> None:
    assert sh("rewind", finished, "--frame", "1", "--yes", "--resume").returncode == 0
    sh.json("fork", finished, "--frame", "1", "--run-id", "f", "--label", "fix")
    sh.json("replay", finished, "--frame", "0", "--run-id", "rp")

    for rid in (finished, "f", "rp"):
        body = sh.json("inspect", rid)
        assert body["frames"] == _timeline_frames(sh, rid), rid
    body = sh.json("inspect", finished)
    assert body["discardedFrames"] == 2  # frames 2 and 3 of the first activation
    text = sh("inspect", finished).stdout
    frames = body["frames"]
    assert f"Frames    {frames} (0-{frames - 1}), 2 discarded by a rewind" in text
    assert "Frames    0" in sh("inspect", "f").stdout


def test_inspect_shows_a_forks_parent_frame_and_label(sh: Sh, finished: str) -> None:
    sh.json("fork", finished, "--frame", "1", "--run-id", "f", "--label", "[/]fix")
    sh.json("replay", finished, "--frame", "0", "--run-id", "rp")

    fork = sh.json("inspect", "f")
    assert (fork["kind"], fork["parentRunId"], fork["parentFrameNo"], fork["branchLabel"]) == (
        "fork",
        finished,
        1,
        "[/]fix",
    )
    assert f"Parent    {finished} at frame 1 (fork, label [/]fix)" in sh("inspect", "f").stdout
    replay = sh.json("inspect", "rp")
    assert (replay["kind"], replay["parentRunId"], replay["parentFrameNo"]) == (
        "replay",
        finished,
        0,
    )
    assert f"Parent    {finished} at frame 0 (replay)" in sh("inspect", "rp").stdout
    plain = sh.json("inspect", finished)
    assert (plain["kind"], plain["parentRunId"], plain["branchLabel"]) == ("run", None, None)
    assert "Parent" not in sh("inspect", finished).stdout


def test_inspect_lists_nodes_in_tree_order(sh: Sh) -> None:
    assert sh.json("up", "late.py", "--run-id", "l1")["status"] == "finished"
    mounted = [e["nodeId"] for e in sh.events("l1") if e["type"] == "NodePending"]
    assert mounted.index("late") > mounted.index("z")  # mount order differs

    order = ["a", "late", "p1", "p2", "z"]
    assert [n["nodeId"] for n in sh.json("inspect", "l1")["nodes"]] == order
    text = sh("inspect", "l1").stdout.splitlines()
    head = text.index(next(ln for ln in text if ln.startswith("NODE")))
    table = list(itertools.takewhile(str.strip, text[head + 1 :]))  # up to the blank line
    assert [ln.split()[0] for ln in table] == order

    # A fork that has not rendered yet: the parent's tree at the fork's frame.
    last = sh.json("timeline", "l1")["frames"][-1]["frameNo"]
    sh.json("fork", "l1", "--frame", str(last), "--run-id", "lf", "--reset-node", "z")
    assert [n["nodeId"] for n in sh.json("inspect", "lf")["nodes"]] == order


# ---------------------------------------------------------------------- a terminal


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
def test_inspect_on_a_terminal_shows_a_hostile_label_and_status(sh: Sh, finished: str) -> None:
    import fcntl
    import select
    import struct
    import termios

    sh.json("fork", finished, "--frame", "1", "--run-id", "f", "--label", "[/] [bold]x[/bold]")
    assert sh("rewind", finished, "--frame", "1", "--yes").returncode == 0
    shown: dict[str, str] = {}
    for rid in ("f", finished):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        proc = subprocess.Popen(
            [sys.executable, "-m", "smithers", "inspect", rid, "--db", str(sh.db)],
            cwd=sh.root,
            env={**sh.env, "TERM": "xterm-256color"},
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        out = bytearray()
        try:
            while True:
                ready, _, _ = select.select([master], [], [], 30)
                if not ready:
                    break
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            assert proc.stderr is not None
            err = proc.stderr.read().decode()
            assert proc.wait(timeout=30) == 0, err
        finally:
            os.close(master)
            if proc.poll() is None:  # pragma: no cover - only when the test failed
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                if proc.stderr is not None:
                    proc.stderr.close()
        assert "MarkupError" not in err, err
        assert "Traceback" not in err, err
        shown[rid] = out.decode(errors="replace").replace("\r", "")
    assert "\x1b[" in shown["f"]  # the terminal path: styled
    assert "(fork, label [/] [bold]x[/bold])" in shown["f"]
    assert "waiting-resume" in shown[finished]
