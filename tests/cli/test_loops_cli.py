"""Loops and continue-as-new through the CLI, in real subprocesses (issue 9).

``up`` runs loops to the end (and reports the last run of a continue-as-new chain);
``inspect``, ``timeline``, ``state --frame`` and ``events`` show passes;
``retry-task --iteration`` re-runs a pass; a SIGKILL mid-loop loses nothing.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

LOOP = """
    import os
    import msgspec
    from smithers import Loop, Sequence, Task, workflow

    class Review(msgspec.Struct):
        ok: bool

    SIDE = os.path.join(os.path.dirname(__file__), "side.txt")
    GATE = os.path.join(os.path.dirname(__file__), "gate")

    def work(it):
        def run():
            with open(SIDE, "a") as f:
                f.write(f"draft {it}\\n")
            if it == int(os.environ.get("GATE_PASS", "-1")):
                import time
                while not os.path.exists(GATE):
                    time.sleep(0.02)
            return {"it": it}
        return run

    @workflow("loop")
    def loop(ctx):
        last = ctx.latest(Review, "review")
        return Sequence(
            Loop(
                "refine",
                Task("draft", output=dict, run=work(ctx.iteration)),
                Task("review", output=Review, value={"ok": ctx.iteration >= 2}),
                until=bool(last and last.ok),
                max_iterations=int(os.environ.get("MAX_PASSES", "5")),
                on_max_reached=os.environ.get("ON_MAX", "return-last"),
            ),
            Task("output", output=dict, value={"passes": ctx.iteration_count(Review, "review")}),
        )
"""

NESTED = """
    from smithers import Loop, Task, workflow

    @workflow("nested")
    def nested(ctx):
        return Loop("outer", Loop("inner", Task("t", output=dict, value={})))
"""

COUNTING = """
    import msgspec
    from smithers import Loop, Sequence, Task, workflow

    class Step(msgspec.Struct):
        n: int

    @workflow("counting")
    def counting(ctx):
        last = ctx.latest(Step, "step")
        total = last.n if last else 0
        return Sequence(
            Loop(
                "count",
                Task("step", output=Step, value={"n": total + 1}),
                max_iterations=7,
                continue_as_new_every=3,
            ),
            Task("output", output=dict, value={"total": total}),
        )
"""


def write(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def run(procs: Any, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    if env is not None:
        procs.env.update(env)
    proc = procs.smithers(*args)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_up_runs_the_loop_and_read_commands_show_passes(tmp_path: Path, procs: Any) -> None:
    flow = write(tmp_path, "loop.py", LOOP)
    code, out, err = run(procs, "up", flow, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "finished"
    run_id = result["runId"]

    code, out, err = run(procs, "inspect", run_id, "--json")
    assert code == 0, err
    nodes = {(n["nodeId"], n["iteration"]): n["state"] for n in json.loads(out)["nodes"]}
    assert nodes == {
        **{("draft", i): "finished" for i in range(3)},
        **{("review", i): "finished" for i in range(3)},
        ("output", 0): "finished",
    }

    code, out, err = run(procs, "timeline", run_id, "--json")
    assert code == 0, err
    frames = json.loads(out)["frames"]
    assert {f["iterations"].get("refine") for f in frames} >= {0, 1, 2}

    code, out, err = run(procs, "events", run_id, "--json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    passes = [e["iteration"] for e in events if e["type"] == "LoopIterationStarted"]
    assert passes == [0, 1, 2]
    (finished,) = [e for e in events if e["type"] == "LoopFinished"]
    assert (finished["loopId"], finished["reason"]) == ("refine", "until")

    frame = next(f["frameNo"] for f in frames if f["iterations"].get("refine") == 1)
    code, out, err = run(procs, "state", run_id, "--frame", str(frame))
    assert code == 0, err
    assert "loop refine (pass 1, max 5)" in out
    assert "task draft#1" in out


def test_max_iterations_fail_exits_1_with_ralph_max_reached(tmp_path: Path, procs: Any) -> None:
    flow = write(tmp_path, "loop.py", LOOP)
    code, out, err = run(procs, "up", flow, "--json", env={"MAX_PASSES": "2", "ON_MAX": "fail"})
    assert code == 1, err
    result = json.loads(out)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "RALPH_MAX_REACHED"
    assert result["error"]["details"] == {"ralphId": "refine", "maxIterations": 2}


def test_a_loop_directly_in_a_loop_fails_with_nested_loop(tmp_path: Path, procs: Any) -> None:
    flow = write(tmp_path, "nested.py", NESTED)
    code, out, err = run(procs, "up", flow, "--json")
    assert code == 1, err
    assert json.loads(out)["error"]["code"] == "NESTED_LOOP"


def test_retry_task_iteration_reruns_that_pass_and_later_ones(tmp_path: Path, procs: Any) -> None:
    flow = write(tmp_path, "loop.py", LOOP)
    code, out, _ = run(procs, "up", flow, "--json")
    run_id = json.loads(out)["runId"]
    side = tmp_path / "side.txt"
    side.write_text("")
    code, out, err = run(procs, "retry-task", run_id, "--node", "draft", "--iteration", "1")
    assert code == 0, err
    assert side.read_text().splitlines() == ["draft 1", "draft 2"]
    code, out, err = run(procs, "events", run_id, "--json", "--type", "LoopRewound")
    assert code == 0, err
    (rewound,) = [json.loads(line) for line in out.splitlines()]
    assert (rewound["loopId"], rewound["iteration"]) == ("refine", 1)


def test_a_sigkill_mid_loop_resumes_at_the_same_pass(
    tmp_path: Path, procs: Any, helpers: Any
) -> None:
    flow = write(tmp_path, "loop.py", LOOP)
    side = tmp_path / "side.txt"
    procs.env["GATE_PASS"] = "1"
    proc = procs.smithers("up", flow, "--json", "--run-id", "crashy")
    helpers.wait_until(lambda: "draft 1" in helpers.side_lines(side), "pass 1 to start")
    procs.kill(proc)
    (tmp_path / "gate").write_text("open")
    code, out, err = run(procs, "up", "--resume", "crashy", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "finished"
    # Pass 0 never ran again; pass 1's draft ran again (its attempt was abandoned).
    assert side.read_text().splitlines() == ["draft 0", "draft 1", "draft 1", "draft 2"]


def test_continue_as_new_up_reports_the_last_run_and_timeline_follows_ancestry(
    tmp_path: Path, procs: Any
) -> None:
    flow = write(tmp_path, "counting.py", COUNTING)
    code, out, err = run(procs, "up", flow, "--json", "--run-id", "chain")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "finished"
    assert result["runId"].startswith("chain:cont:2:")
    assert result["outputs"]["output"] == {"total": 7}
    last = result["runId"]

    code, out, err = run(procs, "timeline", last, "--follow-ancestry", "--json")
    assert code == 0, err
    root = json.loads(out)
    assert (root["runId"], root["status"]) == ("chain", "continued")
    (child,) = root["children"]
    assert child["kind"] == "continuation"
    (grandchild,) = child["children"]
    assert (grandchild["runId"], grandchild["status"]) == (last, "finished")

    code, out, err = run(procs, "up", "--resume", "chain")
    assert code != 0
    assert "RUN_NOT_RESUMABLE" in err
    assert child["runId"] in err
