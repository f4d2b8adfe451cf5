"""Benchmark: sequential and parallel workflows of N no-op compute tasks.

Prints ms per task, events per task, database bytes per task and peak RSS.
Run: python bench/bench_engine.py [--sizes 100,1000,10000] [--json]
A benchmark, not a test: compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import anyio
import msgspec

from smithers import Parallel, Sequence, Task, run_workflow, workflow


class Out(msgspec.Struct):
    i: int


def _noop_factory(i: int):
    def noop() -> dict[str, int]:
        return {"i": i}

    return noop


async def _anoop_factory_async(i: int) -> dict[str, int]:
    return {"i": i}


def make_workflow(n: int, shape: str, kind: str):
    def task(i: int) -> Task:
        if kind == "static":
            return Task(f"t{i}", output=Out, value={"i": i})
        if kind == "async":

            async def run(i: int = i) -> dict[str, int]:
                return {"i": i}

            return Task(f"t{i}", output=Out, run=run)
        return Task(f"t{i}", output=Out, run=_noop_factory(i))

    @workflow(f"bench-{shape}-{kind}-{n}")
    def wf(ctx):
        tasks = [task(i) for i in range(n)]
        return Sequence(*tasks) if shape == "sequential" else Parallel(*tasks)

    return wf


def db_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            total += p.stat().st_size
    return total


def measure(n: int, shape: str, kind: str) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        wf = make_workflow(n, shape, kind)

        async def go():
            t0 = time.perf_counter()
            result = await run_workflow(wf, db=db, log_dir=None)
            return result, time.perf_counter() - t0

        result, elapsed = anyio.run(go)
        assert result.status == "finished", result
        # Checkpoint the WAL into the main file so the size is the data's, not the WAL's.
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            events = conn.execute("SELECT count(*) FROM _smithers_events").fetchone()[0]
        size = db_bytes(db)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "shape": shape,
        "kind": kind,
        "n": n,
        "ms_per_task": round(elapsed * 1000 / n, 4),
        "events_per_task": round(events / n, 2),
        "db_bytes_per_task": round(size / n),
        "peak_rss_mb": round(rss_kb / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--shapes", default="sequential,parallel")
    ap.add_argument("--kinds", default="compute")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for kind in args.kinds.split(","):
        for shape in args.shapes.split(","):
            for n in (int(s) for s in args.sizes.split(",")):
                rows.append(measure(n, shape, kind))
                if not args.json:
                    r = rows[-1]
                    print(
                        f"{r['kind']:8} {r['shape']:10} N={r['n']:>6}"
                        f"  {r['ms_per_task']:8.4f} ms/task"
                        f"  {r['events_per_task']:5.2f} ev/task  {r['db_bytes_per_task']:6} B/task"
                        f"  peak RSS {r['peak_rss_mb']} MB",
                        flush=True,
                    )
    by = {(r["kind"], r["shape"], r["n"]): r for r in rows}
    ratios = {}
    for kind in args.kinds.split(","):
        for shape in args.shapes.split(","):
            lo, hi = by.get((kind, shape, 100)), by.get((kind, shape, 10000))
            if lo and hi:
                ratios[f"{kind}/{shape}"] = round(hi["ms_per_task"] / lo["ms_per_task"], 2)
    if args.json:
        print(json.dumps({"rows": rows, "ratio_10000_vs_100": ratios}, indent=2))
    else:
        for k, v in ratios.items():
            print(f"per-task cost ratio N=10000 / N=100 ({k}): {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
