"""Benchmark: a Loop of 100,000 passes with continue_as_new_every=1000 (issue 9, item 5).

One trivial compute task per pass. Prints the per-iteration cost (ms) over the first
and the last 1,000 iterations, the resident memory (RSS) after the first and the last
chunk, and the peak RSS: flat cost and flat memory are what continue-as-new is for
(each run of the chain folds, renders and checkpoints at most 1,000 passes).
Run: python bench/bench_continue_as_new.py [--quick] [--iterations N] [--every N] [--json]
A benchmark, not a test: compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
from smithers.eventstore.events import Event, NodeFinished

from smithers import Loop, Task, run_workflow, workflow


class Step(msgspec.Struct):
    n: int


def make_workflow(iterations: int, every: int) -> Any:
    @workflow("bench-continue-as-new")
    def wf(ctx: Any) -> Any:
        it = ctx.iteration
        return Loop(
            "count",
            Task("step", output=Step, run=lambda: {"n": it}),
            max_iterations=iterations,
            continue_as_new_every=every,
        )

    return wf


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def db_size_mb(folder: Path) -> float:
    """Size of the database files in `folder`, in MB."""
    return sum(p.stat().st_size for p in folder.glob("smithers.db*")) / 1e6


async def bench(iterations: int, every: int, window: int) -> dict[str, Any]:
    stamps: list[float] = []
    rss_marks: dict[int, float] = {}

    def on_progress(event: Event) -> None:
        if type(event) is NodeFinished:
            stamps.append(time.perf_counter())
            done = len(stamps)
            if done in (window, iterations):
                rss_marks[done] = rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "smithers.db"
        start = time.perf_counter()
        result = await run_workflow(
            make_workflow(iterations, every), db=db, on_progress=on_progress, log_dir=None
        )
        total_s = time.perf_counter() - start
        db_mb = db_size_mb(Path(tmp))
    assert result.status == "finished", result.error
    assert result.outputs["step"] == {"n": iterations - 1}
    assert len(stamps) == iterations
    first_ms = (stamps[window - 1] - start) / window * 1e3
    last_ms = (stamps[-1] - stamps[-window - 1]) / window * 1e3
    return {
        "iterations": iterations,
        "continueAsNewEvery": every,
        "runs": iterations // every,
        "lastRunId": result.run_id,
        "totalS": round(total_s, 2),
        "firstWindowMsPerIteration": round(first_ms, 4),
        "lastWindowMsPerIteration": round(last_ms, 4),
        "costRatioLastOverFirst": round(last_ms / first_ms, 3),
        "rssAfterFirstWindowMb": round(rss_marks.get(window, 0.0), 1),
        "rssAtEndMb": round(rss_marks.get(iterations, 0.0), 1),
        "peakRssMb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
        "dbMb": round(db_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1_000)
    parser.add_argument("--quick", action="store_true", help="5,000 iterations (a sanity run)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    iterations = 5_000 if args.quick else args.iterations
    window = min(1_000, iterations // 2)
    out = anyio.run(bench, iterations, args.every, window)
    if args.json:
        print(json.dumps(out))
        return
    w = f"{window:,}"
    print(f"{out['iterations']:,} iterations, continue_as_new_every={out['continueAsNewEvery']:,}")
    print(f"  runs in the chain              {out['runs']:,}")
    print(f"  total                          {out['totalS']} s")
    print(f"  first {w} iterations        {out['firstWindowMsPerIteration']} ms/iteration")
    print(f"  last {w} iterations         {out['lastWindowMsPerIteration']} ms/iteration")
    print(f"  cost ratio last/first          {out['costRatioLastOverFirst']}")
    print(f"  RSS after the first {w}     {out['rssAfterFirstWindowMb']} MB")
    print(f"  RSS at the end                 {out['rssAtEndMb']} MB")
    print(f"  peak RSS                       {out['peakRssMb']} MB")
    print(f"  database                       {out['dbMb']} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
