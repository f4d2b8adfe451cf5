"""The peer workload's workflows, in a file of their own as a user's would be.

Each run hashes its workflow's file (resume refuses changed code), so the file is kept
as small as a typical workflow file: `bench_peer.py` imports it.
"""

from __future__ import annotations

from typing import Any

from smithers import Parallel, Sequence, Task, workflow


def value(i: int) -> dict[str, Any]:
    """Task `i`'s output: 45 bytes of JSON, ``{"task":"t00001","ok":true,"note":"noop-ok!"}``."""
    return {"task": f"t{i:05d}", "ok": True, "note": "noop-ok!"}


def _async_task(i: int) -> Task:
    async def run() -> dict[str, Any]:
        return value(i)

    return Task(f"t{i}", output=dict, run=run)


def _sync_task(i: int) -> Task:
    def run() -> dict[str, Any]:
        return value(i)

    return Task(f"t{i}", output=dict, run=run)


def make_workflow(n: int, shape: str, kind: str) -> Any:
    """N no-op tasks, ``"sequential"`` or ``"parallel"``, ``"async"`` or ``"sync"``."""
    make = _async_task if kind == "async" else _sync_task

    @workflow(f"peer-{shape}-{kind}-{n}")
    def wf(ctx: Any) -> Any:
        tasks = [make(i) for i in range(n)]
        return Sequence(*tasks) if shape == "sequential" else Parallel(*tasks)

    return wf
