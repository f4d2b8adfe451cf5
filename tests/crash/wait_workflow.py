"""The crash harness's waiting workflow: tasks around an approval, a signal and a timer.

Not a test module: `driver.py` loads it (``SMITHERS_CRASH_WORKFLOW``) in a subprocess
that the tests kill with SIGKILL. Shape, a Sequence:

- ``ingest-0`` … ``ingest-3``: a chain of compute tasks;
- ``approve``: an `Approval` (the run parks ``waiting-approval``);
- ``lane-<l>-<s>``: a Parallel of 3 lanes of 3 steps, mounted once ``approve`` has an
  output (so a resume after the decision has work to be killed in);
- ``ci``: a `WaitForEvent` for ``ci.done`` (the run parks ``waiting-event``);
- ``soak``: a `Timer` of ``SMITHERS_CRASH_SOAK_MS`` ms (default 800): shorter than the
  engine's hold, so the process keeps the run and sleeps (it can be killed there);
- ``publish-0`` … ``publish-2`` and ``output``: a chain reading ``ci``'s payload.

Every compute task appends ``<node_id> <pid>`` to ``SMITHERS_CRASH_EFFECTS`` (fsynced)
before it sleeps 5-30 ms and returns a pure output, as in `crash_workflow.py`.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import msgspec

from smithers import Approval, Parallel, Sequence, Task, Timer, WaitForEvent, workflow

EFFECTS_ENV = "SMITHERS_CRASH_EFFECTS"
SOAK_ENV = "SMITHERS_CRASH_SOAK_MS"
INGEST = 4
LANES = 3
LANE_STEPS = 3
PUBLISH = 3
WAIT_NODES = ("approve", "ci", "soak")
TASKS = [
    *(f"ingest-{i}" for i in range(INGEST)),
    *(f"lane-{lane}-{s}" for lane in range(LANES) for s in range(LANE_STEPS)),
    *(f"publish-{i}" for i in range(PUBLISH)),
    "output",
]
"""The compute tasks (each leaves an effect), in no particular order."""


class Out(msgspec.Struct):
    """Every compute task's output: a value derived from the node id and its upstream."""

    value: int


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")


def _task(node_id: str, upstream: list[int]) -> Task:
    def run() -> Out:
        with open(os.environ[EFFECTS_ENV], "a", encoding="utf-8") as f:
            f.write(f"{node_id} {os.getpid()}\n")
            f.flush()
            os.fsync(f.fileno())
        time.sleep((5 + _digest("sleep:" + node_id) % 26) / 1000)
        return Out(value=_digest(node_id + ":" + ",".join(map(str, upstream))))

    return Task(node_id, output=Out, run=run)


def _chain(ctx: Any, ids: list[str], upstream: list[int] | None) -> list[Task]:
    tasks: list[Task] = []
    for node_id in ids:
        if upstream is None:
            break
        tasks.append(_task(node_id, upstream))
        out = ctx.output_maybe(Out, node_id)
        upstream = [out.value] if out is not None else None
    return tasks


@workflow("crash-waits")
def crash_waits(ctx: Any) -> Any:
    """The workflow described in the module docstring."""
    stages: list[Any] = [Sequence(*_chain(ctx, [f"ingest-{i}" for i in range(INGEST)], [0]))]
    seed = ctx.output_maybe(Out, f"ingest-{INGEST - 1}")
    if seed is None:
        return Sequence(*stages)
    stages.append(Approval("approve", request={"title": "Go on?"}))
    if ctx.output_maybe(dict, "approve") is None:
        return Sequence(*stages)
    lanes = [
        Sequence(*_chain(ctx, [f"lane-{lane}-{s}" for s in range(LANE_STEPS)], [seed.value]))
        for lane in range(LANES)
    ]
    stages.append(Parallel(*lanes))
    tails = [ctx.output_maybe(Out, f"lane-{lane}-{LANE_STEPS - 1}") for lane in range(LANES)]
    if any(t is None for t in tails):
        return Sequence(*stages)
    stages.append(WaitForEvent("ci", event="ci.done", output=dict))
    stages.append(Timer("soak", duration=int(os.environ.get(SOAK_ENV, "800"))))
    ci = ctx.output_maybe(dict, "ci")
    soaked = ctx.output_maybe(dict, "soak")
    if ci is not None and soaked is not None:
        upstream = [t.value for t in tails if t is not None] + [int(ci["build"])]
        publish = [f"publish-{i}" for i in range(PUBLISH)] + ["output"]
        stages.append(Sequence(*_chain(ctx, publish, upstream)))
    return Sequence(*stages)
