"""Benchmark: the peer workload against the floors of one append per step, in one process.

Measures, with the same Python in the same process, two floors and then the engine:

- floor "hop": one append of two events per step (``BEGIN IMMEDIATE``, insert,
  ``COMMIT``; WAL, ``synchronous=NORMAL``) done through one worker-thread hop;
- floor "inline": the same append done on the event loop's own thread;
- N sequential no-op tasks (async, returning a 45-byte dict) at N = 100, 1,000, 10,000,
  and sync ones at N = 1,000 (ms per task);
- a fanout (``Parallel``) of 100 async no-op tasks under the default run-wide cap of 4,
  and uncapped (ms per branch); also the marginal cost of a branch, from fanouts of
  100 and 1,000 (what a branch costs beyond the run's fixed cost of opening and
  closing the database);
- the state after 500 of 1,000 tasks (``state_at`` at that frame, store open);
- the history list of a 1,000-task run (``read_events``, as ``smithers events`` does);
- a fork at 500 of 1,000 tasks run to the end (``fork`` + ``run_workflow(resume=True)``);
- database bytes per task, the N = 10,000 / N = 100 per-task ratio, and the worst
  event-loop stall (a watcher sleeping 1 ms records its largest lateness; the longest
  single loop callbacks are listed in ``--json`` to say where it came from).

Every run is timed whole (``run_workflow``: opening and closing the store included) in a
database created beforehand, untimed (creating a file costs 5-50 ms of fsyncs here,
once per project). Each figure is the median of 3 runs. The floors are measured right
before each run of a per-step figure, and its ratios are the median of the 3 run/floor
ratios: a burst of load from elsewhere moves both, not one.

Run: python bench/bench_peer.py [--json] [--ci]
``--ci``: a short version that exits 1 if async sequential per-task time (the best of 15
runs, as a ratio to the floor sampled before each) exceeds 5x the
inline floor measured in the same process (a ratio, so machine noise does not flake it).
A benchmark, not a test: compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import traceback
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import smithers.engine as engine
from peer_workflows import make_workflow
from smithers.eventstore import SQLiteEventStore

from smithers import run_workflow

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

CI_MAX_RATIO = 5.0
"""`--ci` fails if async sequential ms per task exceeds this many inline floors.

A regression it exists for stays far above it: a thread hop per step alone adds the
hop floor, ~3x the inline floor here. It was 4x until session 6: the same code (the
same Python calls per task) then measured a best of 3.2-4.4x on this machine kind,
against 2.1-3.9x before, so 4x failed about one run in three without a change."""
CI_RUNS = 15
"""Runs the `--ci` gate takes the best ratio of: on this 2-core VM a run/floor ratio
swings by ~1.3x between runs of the same code, and each run costs ~0.4 s."""

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
"""The issue's targets (issue 7, item 6), in each figure's unit, on a machine where the
floors were 0.145 ms (hop) and 0.03 ms (inline): compare ratios on another one."""

ISSUE_FLOORS = {"hop": 0.145, "inline": 0.03}
"""The floors the targets were set against (ms per step)."""

FLOOR_STEPS = 500
"""Steps per floor sample (each floor sample takes ~0.1 s)."""


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


class Floors:
    """Floor samples (ms per step), each taken in a database of its own."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.hop: list[float] = []
        self.inline: list[float] = []

    async def sample(self) -> tuple[float, float]:
        """Measure both floors once; return (hop, inline) ms per step."""
        n = len(self.hop)
        conn = _floor_conn(self.tmp / f"floor-hop-{n}.db")
        t0 = time.perf_counter()
        for i in range(FLOOR_STEPS):
            await anyio.to_thread.run_sync(_floor_step, conn, 2 * i + 1)
        self.hop.append((time.perf_counter() - t0) * 1000 / FLOOR_STEPS)
        conn.close()
        conn = _floor_conn(self.tmp / f"floor-inline-{n}.db")
        t0 = time.perf_counter()
        for i in range(FLOOR_STEPS):
            _floor_step(conn, 2 * i + 1)
            await anyio.lowlevel.checkpoint()
        self.inline.append((time.perf_counter() - t0) * 1000 / FLOOR_STEPS)
        conn.close()
        return self.hop[-1], self.inline[-1]


# ---------------------------------------------------------------------- helpers


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


def _copy_db(src: Path, dst: Path) -> None:
    for a, b in zip(_files(src), _files(dst), strict=True):
        if a.exists():
            shutil.copyfile(a, b)


async def create_db(db: Path) -> int:
    """Create an empty database at `db` (untimed); return its size in bytes."""
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


async def median_ms(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


# ---------------------------------------------------------------------- stalls


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


class SlowCallbacks:
    """Records the event loop's longest callbacks while installed.

    Wraps ``asyncio.Handle._run`` for the duration: each callback's wall time and the
    loop thread's CPU time in it (wall much above CPU: the thread waited, for I/O,
    the GIL or a CPU taken by another process; this machine's 2 cores are shared).
    A sampling thread notes the loop thread's stack once a callback has run for 2 ms,
    to say where it was. `worst` holds ``(wall ms, cpu ms, where)``, longest first;
    `worst_cpu_ms` the most CPU one callback took: the loop blocked by our own work.
    """

    def __init__(self, keep: int = 5) -> None:
        self.keep = keep
        self.worst: list[tuple[float, float, str]] = []
        self.worst_cpu_ms = 0.0

    @contextmanager
    def installed(self) -> Iterator[None]:
        original = asyncio.Handle._run
        worst = self.worst
        loop_thread = threading.get_ident()
        running: list[float | None] = [None]
        seen: list[str] = [""]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.0005):
                started = running[0]
                if started is None or seen[0] or time.perf_counter() - started < 0.002:
                    continue
                frame = sys._current_frames().get(loop_thread)
                stack = traceback.extract_stack(frame)[-12:] if frame is not None else []
                seen[0] = " < ".join(
                    f"{Path(f.filename).name}:{f.lineno} {f.name}"
                    for f in reversed(stack)
                    if "asyncio" not in f.filename
                )

        def timed(handle: asyncio.Handle) -> None:
            seen[0] = ""
            c0 = time.thread_time()
            running[0] = t0 = time.perf_counter()
            try:
                original(handle)
            finally:
                running[0] = None
            ms = (time.perf_counter() - t0) * 1000
            cpu_ms = (time.thread_time() - c0) * 1000
            self.worst_cpu_ms = max(self.worst_cpu_ms, cpu_ms)
            if ms > 2.0:
                where = seen[0][:400] or repr(handle)[:200]
                worst.append((round(ms, 2), round(cpu_ms, 2), where))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        asyncio.Handle._run = timed  # type: ignore[method-assign]
        try:
            yield
        finally:
            asyncio.Handle._run = original  # type: ignore[method-assign]
            stop.set()
            sampler.join()
            worst.sort(reverse=True)
            del worst[self.keep :]


async def watched(fn: Callable[[], Awaitable[Any]], slow: SlowCallbacks) -> float:
    """Await `fn()` beside a `StallWatch`; return the worst stall (ms)."""
    watch = StallWatch()
    with slow.installed():
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch.watch)
            await anyio.sleep(0.002)
            await fn()
            tg.cancel_scope.cancel()
    return watch.worst_ms


# ---------------------------------------------------------------------- workloads


async def per_step(
    tmp: Path, floors: Floors, n: int, shape: str, kind: str, reps: int = 3, **kwargs: Any
) -> dict[str, float]:
    """`reps` runs of N tasks, each in a new database right after a floor sample.

    Returns the median ms per task, the medians of the per-run ratios to the floors
    sampled just before, and the database bytes per task of the last run.
    """
    times: list[float] = []
    x_hop: list[float] = []
    x_inline: list[float] = []
    size = 0
    for rep in range(reps):
        db = tmp / f"{shape}-{kind}-{n}-{rep}.db"
        empty = await create_db(db)
        hop, inline = await floors.sample()
        _, elapsed = await run_timed(make_workflow(n, shape, kind), db, **kwargs)
        ms = elapsed * 1000 / n
        times.append(ms)
        x_hop.append(ms / hop)
        x_inline.append(ms / inline)
        size = db_bytes(db) - empty
        _remove(db)
    return {
        "ms": statistics.median(times),
        "x_hop": statistics.median(x_hop),
        "x_inline": statistics.median(x_inline),
        "x_inline_best": min(x_inline),
        "db_bytes_per_task": size / n,
    }


async def stall(tmp: Path, slow: SlowCallbacks, n: int, shape: str, kind: str) -> float:
    """The worst event-loop stall (ms) during one run of the workload."""
    db = tmp / f"stall-{shape}-{kind}-{n}.db"
    await create_db(db)
    wf = make_workflow(n, shape, kind)
    worst = await watched(lambda: run_timed(wf, db), slow)
    _remove(db)
    return worst


async def history_ops(
    tmp: Path, slow: SlowCallbacks, repeat: int
) -> tuple[dict[str, float], float]:
    """state_at after 500 of 1,000; history list; fork at 500 run to the end.

    Returns the figures and the worst event-loop stall (ms) over all of them.
    """
    db = tmp / "history.db"
    await create_db(db)
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
        stalls.append(await watched(state_500, slow))
    finally:
        await store.close()

    async def history() -> None:
        rows = await engine.read_events(rid, db=db)
        assert len(rows) > 3000

    out["history_1000_ms"] = await median_ms(history, repeat)
    stalls.append(await watched(history, slow))

    forks: list[float] = []
    for i in range(3):
        copy = tmp / f"fork-{i}.db"
        _copy_db(db, copy)

        async def fork_and_run(copy: Path = copy) -> None:
            child = await engine.fork(rid, frame=frame, db=copy)
            again = await run_workflow(wf, run_id=child, resume=True, db=copy, log_dir=None)
            assert again.status == "finished", again

        t0 = time.perf_counter()
        stalls.append(await watched(fork_and_run, slow))
        forks.append((time.perf_counter() - t0) * 1000)
        _remove(copy)
    out["fork_500_run_ms"] = statistics.median(forks)
    return out, max(stalls)


# ---------------------------------------------------------------------- driver


async def bench(tmp: Path, ci: bool) -> dict[str, Any]:
    floors = Floors(tmp)
    await floors.sample()  # warm up: threads, imports, page cache
    steps: dict[str, dict[str, float]] = {}
    figures: dict[str, float] = {}
    notes: dict[str, Any] = {}
    if ci:
        steps["seq_async_1000_ms"] = await per_step(
            tmp, floors, 1000, "sequential", "async", CI_RUNS
        )
    else:
        for n in (100, 1000, 10_000):
            steps[f"seq_async_{n}_ms"] = await per_step(tmp, floors, n, "sequential", "async")
        steps["seq_sync_1000_ms"] = await per_step(tmp, floors, 1000, "sequential", "sync")
        steps["fanout_100_ms_per_branch"] = await per_step(tmp, floors, 100, "parallel", "async")
        steps["fanout_100_uncapped_ms_per_branch"] = await per_step(
            tmp, floors, 100, "parallel", "async", max_concurrency=100
        )
        fan_1000 = await per_step(tmp, floors, 1000, "parallel", "async")
        figures["fanout_marginal_ms_per_branch"] = (
            fan_1000["ms"] * 1000 - steps["fanout_100_ms_per_branch"]["ms"] * 100
        ) / 900
        figures["ratio_10000_vs_100"] = (
            steps["seq_async_10000_ms"]["ms"] / steps["seq_async_100_ms"]["ms"]
        )
        slow = SlowCallbacks()
        ops, ops_stall = await history_ops(tmp, slow, 15)
        figures.update(ops)
        figures["db_bytes_per_task"] = steps["seq_async_1000_ms"]["db_bytes_per_task"]
        figures["worst_stall_ms"] = max(
            await stall(tmp, slow, 1000, "sequential", "async"),
            await stall(tmp, slow, 1000, "sequential", "sync"),
            await stall(tmp, slow, 100, "parallel", "async"),
            ops_stall,
        )
        notes["slowest_callbacks_n1000"] = list(slow.worst)
        big = SlowCallbacks()
        figures["worst_stall_10000_ms"] = await stall(tmp, big, 10_000, "sequential", "async")
        notes["slowest_callbacks_n10000"] = list(big.worst)
    return {
        "floor_hop_ms": statistics.median(floors.hop),
        "floor_inline_ms": statistics.median(floors.inline),
        "floor_samples": {"hop": floors.hop, "inline": floors.inline},
        "per_step": steps,
        "figures": {**{k: v["ms"] for k, v in steps.items()}, **figures},
        "ratios": {k: {"x_hop": v["x_hop"], "x_inline": v["x_inline"]} for k, v in steps.items()},
        "targets": TARGETS,
        "issue_floors": ISSUE_FLOORS,
        "notes": notes,
    }


_LABELS = {
    "seq_async_100_ms": "sequential async, ms/task, N=100",
    "seq_async_1000_ms": "sequential async, ms/task, N=1,000",
    "seq_async_10000_ms": "sequential async, ms/task, N=10,000",
    "seq_sync_1000_ms": "sequential sync, ms/task, N=1,000",
    "fanout_100_ms_per_branch": "fanout of 100 (cap 4), ms/branch",
    "fanout_100_uncapped_ms_per_branch": "fanout of 100 (uncapped), ms/branch",
    "fanout_marginal_ms_per_branch": "fanout, marginal ms/branch (100->1,000)",
    "ratio_10000_vs_100": "per-task cost N=10,000 / N=100",
    "state_at_500_ms": "state after 500 of 1,000, ms",
    "history_1000_ms": "history list of 1,000 tasks, ms",
    "fork_500_run_ms": "fork at 500 run to the end, ms",
    "db_bytes_per_task": "database bytes per task",
    "worst_stall_ms": "worst loop stall (N<=1,000), ms",
    "worst_stall_10000_ms": "worst loop stall (N=10,000), ms",
}


def _target_ratio(name: str) -> str:
    """The target as a ratio to the issue's inline floor, for per-step figures."""
    target = TARGETS.get(name)
    return f"{target / ISSUE_FLOORS['inline']:>6.2f}" if target is not None else f"{'':>6}"


def report(out: dict[str, Any]) -> None:
    hop, inline = out["floor_hop_ms"], out["floor_inline_ms"]
    print(f"floor, 2-event append per step via one thread hop: {hop:.4f} ms (issue: 0.145)")
    print(f"floor, 2-event append per step inline on the loop:  {inline:.4f} ms (issue: 0.03)")
    head = f"{'figure':42} {'value':>10} {'x hop':>7} {'x inline':>9} {'target':>8} {'(x inl)':>7}"
    print(head + "  met")
    for name, value in out["figures"].items():
        target = TARGETS.get(name)
        ratio = out["ratios"].get(name)
        if ratio is not None:
            shown = f"{ratio['x_hop']:>7.2f} {ratio['x_inline']:>9.2f}"
            met_by = ratio["x_inline"] <= target / ISSUE_FLOORS["inline"] if target else None
        else:
            shown = f"{'':>7} {'':>9}"
            met_by = value <= target if target is not None else None
        target_s = f"{target:>8g}" if target is not None else f"{'':>8}"
        met = "" if met_by is None else ("yes" if met_by else "NO")
        label = _LABELS.get(name, name)
        print(f"{label:42} {value:>10.4f} {shown} {target_s} {_target_ratio(name)}  {met}")
    print("(per-step figures: met = ratio to the inline floor within the target's ratio)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--ci", action="store_true", help="short run; fail above 5x inline floor")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("SMITHERS_BENCH_TMP")) as tmp:
        out = anyio.run(bench, Path(tmp), args.ci)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        report(out)
    if not args.ci:
        return 0
    seq = out["per_step"]["seq_async_1000_ms"]
    # The gate reads the best of CI_RUNS run/floor ratios: load on a shared machine only ever
    # slows a run down, so the best run is the one least disturbed, while a real
    # regression (a thread hop, more work per step) slows every run.
    if seq["x_inline_best"] > CI_MAX_RATIO:
        print(
            f"FAIL: sequential async tasks took {seq['x_inline_best']:.2f}x the inline floor "
            f"measured right before each run in this process at best (median "
            f"{seq['x_inline']:.2f}x, {seq['ms']:.4f} ms per task, {CI_RUNS} runs; limit "
            f"{CI_MAX_RATIO:g}x): the hot path regressed (a thread hop or more work per "
            "step). Profile with bench/bench_peer.py and see the README's Benchmarks.",
            file=sys.stderr,
        )
        return 1
    print(
        f"ok: sequential async is {seq['x_inline_best']:.2f}x the inline floor at best, "
        f"{seq['x_inline']:.2f}x median of {CI_RUNS} runs (limit {CI_MAX_RATIO:g}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
