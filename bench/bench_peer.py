"""Benchmark: the peer workload against the floors of one append per step, in one process.

Measures, with the same Python in the same process, two floors and then the engine:

- floor "hop": one append of two events per step (``BEGIN IMMEDIATE``, insert,
  ``COMMIT``; WAL, ``synchronous=NORMAL``) done through one worker-thread hop;
- floor "inline": the same append done on the event loop's own thread;
- N sequential no-op tasks (async, returning a 45-byte dict) at N = 100, 1,000, 10,000,
  and sync ones at N = 1,000 (ms per task);
- a fanout (``Parallel``) of 100 async no-op tasks (ms per branch);
- the state after 500 of 1,000 tasks (``state_at`` at that frame, store open);
- the history list of a 1,000-task run (``read_events``, as ``smithers events`` does);
- a fork at 500 of 1,000 tasks run to the end (``fork`` + ``run_workflow(resume=True)``);
- database bytes per task, the N = 10,000 / N = 100 per-task ratio, and the worst
  event-loop stall (a watcher sleeping 1 ms records its largest lateness).

Each figure is the median of 3 and is printed beside the floors and as a ratio to them.
Run: python bench/bench_peer.py [--json] [--ci]
``--ci``: a short version that exits 1 if async sequential per-task time exceeds 4x the
inline floor measured in the same process (a ratio, so machine noise does not flake it).
A benchmark, not a test: compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import smithers.engine as engine
from peer_workflows import make_workflow
from smithers.eventstore import SQLiteEventStore

from smithers import run_workflow

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

CI_MAX_RATIO = 4.0
"""`--ci` fails if async sequential ms per task exceeds this many inline floors."""

TARGETS = {
    "seq_async_1000_ms": 0.12,
    "seq_sync_1000_ms": 0.25,
    "fanout_100_ms_per_branch": 0.06,
    "state_at_500_ms": 1.5,
    "history_1000_ms": 6.0,
    "ratio_10000_vs_100": 1.2,
    "db_bytes_per_task": 700,
    "worst_stall_ms": 5.0,
}
"""The issue's targets (issue 7, item 6), in each figure's unit."""


# ---------------------------------------------------------------------- floors

_FLOOR_SCHEMA = """CREATE TABLE IF NOT EXISTS ev (
    position INTEGER PRIMARY KEY, run_id TEXT NOT NULL, seq INTEGER NOT NULL,
    type TEXT NOT NULL, timestamp_ms INTEGER NOT NULL, payload BLOB NOT NULL,
    UNIQUE (run_id, seq))"""
_PAYLOAD = b'{"type":"NodeFinished","runId":"run-floor","nodeId":"t00001","iteration":0,' + (
    b'"attempt":1,"output":{"task":"t00001","ok":true,"note":"noop-ok!"},"timestampMs":0}'
)


def _floor_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(_FLOOR_SCHEMA)
    return conn


def _floor_step(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO ev (run_id, seq, type, timestamp_ms, payload) VALUES (?, ?, ?, ?, ?)",
        [
            ("run-floor", seq, "NodeFinished", 0, _PAYLOAD),
            ("run-floor", seq + 1, "NodeStarted", 0, _PAYLOAD),
        ],
    )
    conn.execute("COMMIT")


async def floors(tmp: Path, steps: int, tag: str) -> tuple[list[float], list[float]]:
    """Return (hop, inline) ms per step of a 2-event append, 3 samples of each."""
    hop: list[float] = []
    inline: list[float] = []
    for rep in range(3):
        conn = _floor_conn(tmp / f"floor-hop-{tag}{rep}.db")
        t0 = time.perf_counter()
        for i in range(steps):
            await anyio.to_thread.run_sync(_floor_step, conn, 2 * i + 1)
        hop.append((time.perf_counter() - t0) * 1000 / steps)
        conn.close()
        conn = _floor_conn(tmp / f"floor-inline-{tag}{rep}.db")
        t0 = time.perf_counter()
        for i in range(steps):
            _floor_step(conn, 2 * i + 1)
            await anyio.lowlevel.checkpoint()
        inline.append((time.perf_counter() - t0) * 1000 / steps)
        conn.close()
    return hop, inline


# ---------------------------------------------------------------------- workflows


def db_bytes(path: Path) -> int:
    """The database's size once its WAL is checkpointed into it (the data's, not the WAL's)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in _files(path) if p.exists())


def _files(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]


def _remove(path: Path) -> None:
    for p in _files(path):
        p.unlink(missing_ok=True)


class StallWatch:
    """A task sleeping 1 ms at a time that records its largest lateness (ms)."""

    def __init__(self) -> None:
        self.worst_ms = 0.0

    async def watch(self) -> None:
        while True:
            t0 = time.perf_counter()
            await anyio.sleep(0.001)
            late = (time.perf_counter() - t0) * 1000 - 1.0
            self.worst_ms = max(self.worst_ms, late)


async def watched(fn: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """Await `fn()` beside a `StallWatch`; return its result and the worst stall (ms)."""
    watch = StallWatch()
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch.watch)
        await anyio.sleep(0.002)
        result = await fn()
        tg.cancel_scope.cancel()
    return result, watch.worst_ms


async def create_db(db: Path) -> int:
    """Create an empty database at `db` (not timed: creating a file costs 5-50 ms of
    fsyncs here, once per project); return its size in bytes."""
    await (await SQLiteEventStore.open(db)).close()
    return db_bytes(db)


async def run_timed(wf: Any, db: Path, **kwargs: Any) -> tuple[Any, float]:
    """Run `wf` to its end in the database `db`; return (result, seconds).

    Timed: the whole `run_workflow` call, opening and closing the store included.
    """
    t0 = time.perf_counter()
    result = await run_workflow(wf, db=db, log_dir=None, **kwargs)
    elapsed = time.perf_counter() - t0
    assert result.status == "finished", result
    return result, elapsed


async def per_task(
    tmp: Path, n: int, shape: str, kind: str, reps: int = 3, **kwargs: Any
) -> dict[str, float]:
    """Median ms per task of `reps` runs, each in a new database, and bytes per task."""
    times: list[float] = []
    size = 0
    for rep in range(reps):
        db = tmp / f"{shape}-{kind}-{n}-{rep}.db"
        empty = await create_db(db)
        _, elapsed = await run_timed(make_workflow(n, shape, kind), db, **kwargs)
        times.append(elapsed * 1000 / n)
        size = db_bytes(db) - empty
        _remove(db)
    return {"ms": statistics.median(times), "db_bytes_per_task": size / n}


async def stall(tmp: Path, n: int, shape: str, kind: str, **kwargs: Any) -> float:
    """The worst event-loop stall (ms) during one run of the workload."""
    db = tmp / f"stall-{shape}-{kind}-{n}.db"
    await create_db(db)
    wf = make_workflow(n, shape, kind)
    _, worst = await watched(lambda: run_timed(wf, db, **kwargs))
    _remove(db)
    return worst


async def median_ms(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def _copy_db(src: Path, dst: Path) -> None:
    for a, b in zip(_files(src), _files(dst), strict=True):
        if a.exists():
            shutil.copyfile(a, b)


async def history_ops(tmp: Path, repeat: int) -> tuple[dict[str, float], float]:
    """state_at after 500 of 1,000; history list; fork at 500 run to the end.

    Returns the figures and the worst event-loop stall (ms) over all of them.
    """
    db = tmp / "history.db"
    wf = make_workflow(1000, "sequential", "async")
    result, _ = await run_timed(wf, db)
    rid = result.run_id
    out: dict[str, float] = {}
    stalls: list[float] = []
    store = await SQLiteEventStore.open(db)
    try:
        # The frame committed right after the 500th task finished.
        done = 0
        frame = None
        for row in await store.read(rid):
            if row.type == "NodeFinished":
                done += 1
            elif row.type == "FrameCommitted" and done >= 500:
                frame = int(engine.event_to_json(row)["frameNo"])
                break
        assert frame is not None
        state = await engine.state_at(store, rid, frame=frame)
        assert state.counts().get("finished") == 500, state.counts()

        async def state_500() -> None:
            await engine.state_at(store, rid, frame=frame)

        out["state_at_500_ms"] = await median_ms(state_500, repeat)
        stalls.append((await watched(state_500))[1])
    finally:
        await store.close()

    async def history() -> None:
        rows = await engine.read_events(rid, db=db)
        assert len(rows) > 3000

    out["history_1000_ms"] = await median_ms(history, repeat)
    stalls.append((await watched(history))[1])

    forks: list[float] = []
    for i in range(3):
        copy = tmp / f"fork-{i}.db"
        _copy_db(db, copy)

        async def fork_and_run(copy: Path = copy) -> None:
            child = await engine.fork(rid, frame=frame, db=copy)
            again = await run_workflow(wf, run_id=child, resume=True, db=copy, log_dir=None)
            assert again.status == "finished", again

        t0 = time.perf_counter()
        _, worst = await watched(fork_and_run)
        forks.append((time.perf_counter() - t0) * 1000)
        stalls.append(worst)
        _remove(copy)
    out["fork_500_run_ms"] = statistics.median(forks)
    return out, max(stalls)


async def bench(tmp: Path, ci: bool) -> dict[str, Any]:
    # Floors before and after the workloads: the median of the six samples.
    hop, inline = await floors(tmp, 1000, "before")
    figures: dict[str, float] = {}
    if ci:
        r = await per_task(tmp, 1000, "sequential", "async")
        figures["seq_async_1000_ms"] = r["ms"]
    else:
        seq = {n: await per_task(tmp, n, "sequential", "async") for n in (100, 1000, 10_000)}
        figures["seq_async_100_ms"] = seq[100]["ms"]
        figures["seq_async_1000_ms"] = seq[1000]["ms"]
        figures["seq_async_10000_ms"] = seq[10_000]["ms"]
        figures["ratio_10000_vs_100"] = seq[10_000]["ms"] / seq[100]["ms"]
        figures["seq_sync_1000_ms"] = (await per_task(tmp, 1000, "sequential", "sync"))["ms"]
        figures["fanout_100_ms_per_branch"] = (await per_task(tmp, 100, "parallel", "async"))["ms"]
        figures["fanout_100_unbounded_ms_per_branch"] = (
            await per_task(tmp, 100, "parallel", "async", max_concurrency=100)
        )["ms"]
        ops, ops_stall = await history_ops(tmp, 15)
        figures.update(ops)
        figures["db_bytes_per_task"] = seq[1000]["db_bytes_per_task"]
        figures["worst_stall_ms"] = max(
            await stall(tmp, 1000, "sequential", "async"),
            await stall(tmp, 1000, "sequential", "sync"),
            await stall(tmp, 100, "parallel", "async"),
            ops_stall,
        )
        figures["worst_stall_10000_ms"] = await stall(tmp, 10_000, "sequential", "async")
    hop2, inline2 = await floors(tmp, 1000, "after")
    return {
        "floor_hop_ms": statistics.median(hop + hop2),
        "floor_inline_ms": statistics.median(inline + inline2),
        "floor_samples": {"hop": hop + hop2, "inline": inline + inline2},
        "figures": figures,
    }


_PER_STEP = {
    "seq_async_100_ms",
    "seq_async_1000_ms",
    "seq_async_10000_ms",
    "seq_sync_1000_ms",
    "fanout_100_ms_per_branch",
    "fanout_100_unbounded_ms_per_branch",
}
"""Figures in ms per task or branch: printed as ratios to the floors."""

_LABELS = {
    "seq_async_100_ms": "sequential async, ms/task, N=100",
    "seq_async_1000_ms": "sequential async, ms/task, N=1,000",
    "seq_async_10000_ms": "sequential async, ms/task, N=10,000",
    "ratio_10000_vs_100": "per-task cost N=10,000 / N=100",
    "seq_sync_1000_ms": "sequential sync, ms/task, N=1,000",
    "fanout_100_ms_per_branch": "fanout of 100 (cap 4), ms/branch",
    "fanout_100_unbounded_ms_per_branch": "fanout of 100 (cap 100), ms/branch",
    "state_at_500_ms": "state after 500 of 1,000, ms",
    "history_1000_ms": "history list of 1,000 tasks, ms",
    "fork_500_run_ms": "fork at 500 run to the end, ms",
    "db_bytes_per_task": "database bytes per task",
    "worst_stall_ms": "worst loop stall (N<=1,000), ms",
    "worst_stall_10000_ms": "worst loop stall (N=10,000), ms",
}


def report(out: dict[str, Any]) -> None:
    hop, inline = out["floor_hop_ms"], out["floor_inline_ms"]
    print(f"floor, 2-event append per step via one thread hop: {hop:.4f} ms")
    print(f"floor, 2-event append per step inline on the loop:  {inline:.4f} ms")
    print(f"{'figure':38} {'value':>10} {'x hop':>7} {'x inline':>9} {'target':>8}  met")
    for name, value in out["figures"].items():
        target = TARGETS.get(name)
        ratios = (
            f"{value / hop:>7.2f} {value / inline:>9.2f}"
            if name in _PER_STEP
            else f"{'':>7} {'':>9}"
        )
        met = "" if target is None else ("yes" if value <= target else "NO")
        shown = f"{target:>8g}" if target is not None else f"{'':>8}"
        print(f"{_LABELS.get(name, name):38} {value:>10.4f} {ratios} {shown}  {met}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--ci", action="store_true", help="short run; fail above 4x inline floor")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("SMITHERS_BENCH_TMP")) as tmp:
        out = anyio.run(bench, Path(tmp), args.ci)
    hop, inline = out["floor_hop_ms"], out["floor_inline_ms"]
    out["ratios"] = {
        name: {"x_hop": round(v / hop, 3), "x_inline": round(v / inline, 3)}
        for name, v in out["figures"].items()
        if name in _PER_STEP
    }
    out["targets"] = TARGETS
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        report(out)
    if not args.ci:
        return 0
    seq = out["figures"]["seq_async_1000_ms"]
    if seq > CI_MAX_RATIO * inline:
        print(
            f"FAIL: sequential async tasks took {seq:.4f} ms each, {seq / inline:.1f}x the "
            f"inline floor of {inline:.4f} ms measured in this process (limit "
            f"{CI_MAX_RATIO:g}x): the hot path regressed (a thread hop or more work per "
            "step). Profile with bench/bench_peer.py and see the README's Benchmarks.",
            file=sys.stderr,
        )
        return 1
    print(f"ok: sequential async is {seq / inline:.2f}x the inline floor (limit {CI_MAX_RATIO:g}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
