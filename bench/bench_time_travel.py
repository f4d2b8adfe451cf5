"""Benchmark: time travel on a finished N-task run (default 10,000), in-process.

Builds a finished sequential run of N no-op compute tasks, then times the engine calls
(interpreter start-up and the run itself excluded):

- ``state_at(frame=random)``: nearest checkpoint + the events after it (x --repeat);
- ``tree_at(frame=random)``: the rendered tree rebuilt from keyframe + deltas;
- ``frame_view(frame=random)``: both (what ``smithers state RUN --frame N`` does);
- ``timeline``: every frame with its finished count (one pass over the log);
- ``fork`` and ``rewind`` at a random frame (each on a fresh copy of the database);
- resume of the finished run (``run_workflow(resume=True)``).

Targets (issue): each under 50 ms; resume under 0.5 s. Also prints the same
``state_at`` timings with the checkpoint table emptied (the full fold), the database
size and how much of it checkpoints and frames take.

Run: python bench/bench_time_travel.py [--tasks 10000] [--repeat 20] [--seed N] [--json]
A benchmark, not a test: compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import msgspec
import smithers.engine as engine
from smithers.eventstore import SQLiteEventStore

from smithers import Sequence, Task, run_workflow, workflow


class Out(msgspec.Struct):
    i: int


def _noop(i: int):
    def run() -> dict[str, int]:
        return {"i": i}

    return run


def make_workflow(n: int):
    @workflow(f"bench-time-travel-{n}")
    def wf(ctx):
        return Sequence(*(Task(f"t{i}", output=Out, run=_noop(i)) for i in range(n)))

    return wf


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
        "n": len(samples),
    }


async def _timed(samples: list[float], coro_fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = await coro_fn(*args, **kwargs)
    samples.append(time.perf_counter() - t0)
    return out


async def bench(n: int, repeat: int, rng: random.Random, tmp: Path) -> dict[str, object]:
    db = tmp / "bench.db"
    wf = make_workflow(n)
    t0 = time.perf_counter()
    result = await run_workflow(wf, db=db, log_dir=None)
    run_s = time.perf_counter() - t0
    assert result.status == "finished", result
    rows: dict[str, object] = {}
    notes: list[str] = []

    store = await SQLiteEventStore.open(db)
    try:
        last = (await engine.state_at(store, result.run_id)).frames[-1].frame_no
        frames = [rng.randint(0, last) for _ in range(repeat)]
        rid = result.run_id
        for label, fn in (
            ("state_at(frame)", lambda f: engine.state_at(store, rid, frame=f)),
            ("tree_at(frame)", lambda f: engine.tree_at(rid, f, store=store)),
            (
                "state --frame (frame_view)",
                lambda f: engine.frame_view(rid, frame=f, store=store),
            ),
        ):
            samples: list[float] = []
            for f in frames:
                await _timed(samples, fn, f)
            rows[label] = _ms(samples)
        samples = []
        for _ in range(max(3, repeat // 5)):
            await _timed(samples, engine.timeline, result.run_id, store=store)
        rows["timeline"] = _ms(samples)
    finally:
        await store.close()

    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        ck_count, ck_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(length(data)), 0) FROM _smithers_checkpoints"
        ).fetchone()
        ev_count, ev_bytes = conn.execute(
            "SELECT count(*), sum(length(payload)) FROM _smithers_events"
        ).fetchone()
        fr_bytes = conn.execute(
            "SELECT sum(length(payload)) FROM _smithers_events WHERE type = 'FrameCommitted'"
        ).fetchone()[0]
    sizes = {
        "events": ev_count,
        "event_bytes": ev_bytes,
        "frame_event_bytes": fr_bytes,
        "checkpoints": ck_count,
        "checkpoint_bytes": ck_bytes,
        "db_file_bytes": db.stat().st_size,
    }

    # Mutating operations, each on its own copy of the finished run's database.
    for name in ("fork", "rewind"):
        fn = getattr(engine, name, None)
        if fn is None:
            notes.append(f"{name}: not available in this build (skipped)")
            continue
        samples = []
        for i in range(max(3, repeat // 4)):
            copy = tmp / f"{name}-{i}.db"
            shutil.copyfile(db, copy)
            store = await SQLiteEventStore.open(copy)
            try:
                await _timed(samples, fn, result.run_id, frame=rng.randint(0, last), store=store)
            finally:
                await store.close()
        rows[name] = _ms(samples)

    samples = []
    for _ in range(max(3, repeat // 4)):
        again = await _timed(samples, run_workflow, wf, run_id=result.run_id, resume=True, db=db)
        assert again.status == "finished", again
    rows["resume finished run"] = _ms(samples)

    # The same reads with no checkpoints: the whole log is folded (the fallback).
    store = await SQLiteEventStore.open(db)
    try:
        await store.delete_checkpoints()
        samples = []
        for f in frames:
            await _timed(samples, engine.state_at, store, result.run_id, frame=f)
        rows["state_at(frame), no checkpoints"] = _ms(samples)
    finally:
        await store.close()
    return {"tasks": n, "run_s": round(run_s, 2), "ops": rows, "sizes": sizes, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = anyio.run(bench, args.tasks, args.repeat, rng, Path(tmp))
    out["seed"] = seed
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"finished run of {out['tasks']} tasks built in {out['run_s']} s (seed {seed})")
    print(f"{'operation':34} {'median ms':>10} {'max ms':>10} {'n':>4}")
    for name, r in out["ops"].items():
        print(f"{name:34} {r['median_ms']:>10.2f} {r['max_ms']:>10.2f} {r['n']:>4}")
    s = out["sizes"]
    print(
        f"log: {s['events']} events, {s['event_bytes'] / 1e6:.1f} MB"
        f" (frames {s['frame_event_bytes'] / 1e6:.2f} MB);"
        f" checkpoints: {s['checkpoints']}, {s['checkpoint_bytes'] / 1e6:.1f} MB;"
        f" file {s['db_file_bytes'] / 1e6:.1f} MB"
    )
    for note in out["notes"]:
        print("note:", note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
