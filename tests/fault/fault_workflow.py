"""The fault suite's workflow: 21 compute tasks with parallel lanes that record each execution.

Not a test module (pytest collects ``test_*.py`` only): the tests run it with ``smithers up``
in subprocesses, kill them with SIGKILL, fill their disk and run 16 of them at once.

Shape (21 tasks), a Sequence of stages:

- ``ingest-0``, ``ingest-1``: a chain.
- ``lane-<l>-<s>``: a Parallel of 4 lanes of 4 steps; step ``s`` of a lane is mounted once
  step ``s-1`` of the same lane has an output (``ingest-1`` for step 0).
- ``merge``: mounted once every lane's last step has an output.
- ``publish-0``, ``publish-1``: a chain after the merge.

Each execution appends ``<run_id> <node_id> <attempt> <pid>`` to the file named by
``SMITHERS_FAULT_EFFECTS`` (flushed and fsynced) before it sleeps 20-60 ms and returns a
value derived from the node id and its upstream values: the effect the tests count.

With ``SMITHERS_FAULT_FILL`` naming a file, ``lane-0-1`` fills the file system holding that
file (a disk made full under the engine, mid-run) unless ``SMITHERS_FAULT_FILLED`` (a marker
file elsewhere) exists; it creates the marker, so a resumed run does not fill it again.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from typing import Any

import msgspec

from smithers import Parallel, Sequence, Task, workflow

EFFECTS_ENV = "SMITHERS_FAULT_EFFECTS"
FILL_ENV = "SMITHERS_FAULT_FILL"
FILLED_ENV = "SMITHERS_FAULT_FILLED"
FILL_NODE = "lane-0-1"
LANES = 4
LANE_STEPS = 4
NODES = (
    ["ingest-0", "ingest-1"]
    + [f"lane-{lane}-{s}" for lane in range(LANES) for s in range(LANE_STEPS)]
    + ["merge", "publish-0", "publish-1"]
)


class Out(msgspec.Struct):
    """Every task's output: a value derived from the node id and its upstream values."""

    value: int


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")


def _fill_disk(path: str, marker: str) -> None:
    """Write `path` until its file system has no space left; create `marker` first."""
    with open(marker, "w", encoding="utf-8") as m:
        m.write("filled\n")
    chunk = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    finally:
        os.close(fd)


def _work(node_id: str, upstream: list[int]) -> Any:
    """The task body: record the execution, take a little time, return a pure output."""

    def run(task: Any) -> Out:
        line = f"{task.run_id} {node_id} {task.attempt} {os.getpid()}\n"
        with open(os.environ[EFFECTS_ENV], "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        fill, filled = os.environ.get(FILL_ENV), os.environ.get(FILLED_ENV)
        if node_id == FILL_NODE and fill and filled and not os.path.exists(filled):
            _fill_disk(fill, filled)
        time.sleep((20 + _digest("sleep:" + node_id) % 41) / 1000)
        return Out(value=_digest(node_id + ":" + ",".join(map(str, upstream))))

    return run


def _chain(ctx: Any, ids: list[str], first_upstream: list[int] | None) -> list[Task]:
    """Mount each task of `ids` once its predecessor has an output."""
    tasks: list[Task] = []
    upstream = first_upstream
    for node_id in ids:
        if upstream is None:
            break
        tasks.append(Task(node_id, output=Out, run=_work(node_id, upstream), label=node_id))
        out = ctx.output_maybe(Out, node_id)
        upstream = [out.value] if out is not None else None
    return tasks


@workflow("fault-lanes")
def fault_lanes(ctx: Any) -> Any:
    """The 21-task workflow described in the module docstring."""
    ingest = _chain(ctx, ["ingest-0", "ingest-1"], [0])
    seed = ctx.output_maybe(Out, "ingest-1")
    if seed is None:
        return Sequence(*ingest)
    lanes = [
        Sequence(*_chain(ctx, [f"lane-{lane}-{s}" for s in range(LANE_STEPS)], [seed.value]))
        for lane in range(LANES)
    ]
    stages: list[Any] = [Sequence(*ingest), Parallel(*lanes)]
    tails = [ctx.output_maybe(Out, f"lane-{lane}-{LANE_STEPS - 1}") for lane in range(LANES)]
    if all(t is not None for t in tails):
        publish = ["merge", "publish-0", "publish-1"]
        stages.append(Sequence(*_chain(ctx, publish, [t.value for t in tails if t is not None])))
    return Sequence(*stages)
