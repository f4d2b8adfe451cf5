"""The crash harness's workflow: 50 compute tasks that record each execution.

Not a test module (pytest collects ``test_*.py`` only): `driver.py` loads it with
`load_workflow`, in a subprocess that the tests kill with SIGKILL.

Shape (50 tasks), a Sequence of stages:

- ``ingest-0`` … ``ingest-5``: a chain; each is mounted once the previous has an output.
- ``lane-<l>-<s>``: a Parallel fan-out of 6 lanes of 5 steps each; lane step ``s`` is
  mounted once step ``s-1`` of the same lane has an output (``ingest-5`` for step 0).
- ``merge``: mounted once every lane's last step has an output; sums them.
- ``check-0`` … ``check-3``: a Parallel of 4, each derived from ``merge``.
- ``publish-0`` … ``publish-7``: a chain after the checks.
- ``output``: the final task.

Every task's output depends on its upstream outputs, read with ``ctx.output_maybe``, so
the tree is re-rendered on almost every completion. Each execution appends
``<node_id> <pid>`` to the file named by ``SMITHERS_CRASH_EFFECTS`` (flushed and fsynced
before the task sleeps 5-30 ms and returns), the effect the tests count.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import msgspec

from smithers import Parallel, Sequence, Task, workflow

EFFECTS_ENV = "SMITHERS_CRASH_EFFECTS"
INGEST = 6
LANES = 6
LANE_STEPS = 5
CHECKS = 4
PUBLISH = 8


class Out(msgspec.Struct):
    """Every task's output: a value derived from the node id and its upstream values."""

    value: int


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")


def _sleep_ms(node_id: str) -> int:
    """A per-node task duration, 5-30 ms, the same in every process."""
    return 5 + _digest("sleep:" + node_id) % 26


def _work(node_id: str, upstream: list[int]) -> Any:
    """The task body: record the execution, take a little time, return a pure output."""

    def run() -> Out:
        line = f"{node_id} {os.getpid()}\n"
        with open(os.environ[EFFECTS_ENV], "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        time.sleep(_sleep_ms(node_id) / 1000)
        return Out(value=_digest(node_id + ":" + ",".join(map(str, upstream))))

    return run


def _task(node_id: str, upstream: list[int]) -> Task:
    return Task(node_id, output=Out, run=_work(node_id, upstream), label=node_id)


def _chain(ctx: Any, ids: list[str], first_upstream: list[int] | None) -> list[Task]:
    """Mount each task of `ids` once its predecessor has an output."""
    tasks: list[Task] = []
    upstream = first_upstream
    for node_id in ids:
        if upstream is None:
            break
        tasks.append(_task(node_id, upstream))
        out = ctx.output_maybe(Out, node_id)
        upstream = [out.value] if out is not None else None
    return tasks


@workflow("crash-fifty")
def crash_fifty(ctx: Any) -> Any:
    """The 50-task workflow described in the module docstring."""
    ingest = _chain(ctx, [f"ingest-{i}" for i in range(INGEST)], [0])
    seed = ctx.output_maybe(Out, f"ingest-{INGEST - 1}")
    if seed is None:
        return Sequence(*ingest)
    lanes = [
        Sequence(*_chain(ctx, [f"lane-{lane}-{s}" for s in range(LANE_STEPS)], [seed.value]))
        for lane in range(LANES)
    ]
    tails = [ctx.output_maybe(Out, f"lane-{lane}-{LANE_STEPS - 1}") for lane in range(LANES)]
    stages: list[Any] = [Sequence(*ingest), Parallel(*lanes)]
    if all(t is not None for t in tails):
        stages.append(_task("merge", [t.value for t in tails if t is not None]))
        merged = ctx.output_maybe(Out, "merge")
        if merged is not None:
            checks = [f"check-{i}" for i in range(CHECKS)]
            stages.append(Parallel(*(_task(c, [merged.value]) for c in checks)))
            outs = [ctx.output_maybe(Out, c) for c in checks]
            if all(o is not None for o in outs):
                upstream = [o.value for o in outs if o is not None]
                publish = [f"publish-{i}" for i in range(PUBLISH)] + ["output"]
                stages.append(Sequence(*_chain(ctx, publish, upstream)))
    return Sequence(*stages)
