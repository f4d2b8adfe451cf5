"""Benchmark: `smithers worker` processes on one shared database (issue 14, item 6).

Two measurements, each on a fresh database: with ``--db postgresql://…`` a new schema
(``?options=-csearch_path%3D<schema>``, as the tests' ``pg_url`` fixture makes one),
dropped at the end; with a file path, a new SQLite file in a temporary directory.

- throughput: R queued runs of a workflow of 10 sequential no-op tasks, recorded with
  `submit_run` (what ``smithers submit`` calls; in this process, so recording the
  runs is not timed), then 1, 2 and 4 ``smithers worker`` processes (``-c 4`` each)
  take them. Each worker is the real CLI (``smithers.cli.main(["worker", ...])`` in a
  process of its own) started behind a gate: the process imports smithers, then waits
  on stdin, so the workers start claiming within a millisecond of each other and an
  import (~0.5 s here) does not count. Runs/s and tasks/s are counted from the first
  claim (the earliest first `RunStarted`) to the last finish (the latest
  `RunFinished`), both read from the log. Checked for each run: one `RunStarted`, one
  `RunFinished`, status ``finished``; the runs each worker drove come from the
  `RunStarted` actor. The workers' CPU time (user + system, from ``wait4``) per task
  says what a task costs a worker; on 2 cores, throughput grows with workers until the
  cores (shared with the PostgreSQL server and this process) are saturated.
- wake-up (needs workers that resume a parked run once a signal resolves its wait):
  K runs that park on ``WaitForEvent("go")``, one worker running; for each run in
  turn, `signal` records a ``SignalReceived`` from this process (which does not resume
  the run) and the time until the worker's next `RunStarted` of that run is read from
  the log (both timestamps written on this host, ms resolution). On PostgreSQL the
  worker is woken by LISTEN/NOTIFY; on SQLite by its poll (``--poll``, default 1 s, as
  ``smithers worker``'s). Both backends are measured: the ``--db`` given (if
  PostgreSQL) and a SQLite file.

Run: python bench/bench_workers.py [--db URL] [--runs R] [--workers 1,2,4] [--json]
``--db`` defaults to ``$SMITHERS_TEST_POSTGRES_URL``, else
``postgresql://root@127.0.0.1:5432/test``. About 1-2 minutes with the defaults.
A benchmark, not a test: compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal as os_signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from smithers.engine import signal, submit_run
from smithers.eventstore import decode_event, is_postgres_url, open_store
from smithers.eventstore.events import RunFinished, RunStarted

if TYPE_CHECKING:
    from collections.abc import Iterator

    from smithers.eventstore import EventStore

DEFAULT_PG = "postgresql://root@127.0.0.1:5432/test"
TASKS_PER_RUN = 10
QUEUE = "bench"
TARGETS = {"wake_ms": 50.0}
"""The issue's target: a signal wakes a parked run within 50 ms (issue 14, item 6)."""

_TERMINAL = ("finished", "failed", "cancelled")

_WORKFLOWS = '''\
"""The workflows bench/bench_workers.py submits (a file of their own, as a user's)."""

from smithers import Sequence, Task, WaitForEvent, workflow


def _noop(i):
    async def run():
        return {"task": f"t{i:05d}", "ok": True, "note": "noop-ok!"}

    return Task(f"t{i}", output=dict, run=run)


@workflow("bench-noop-10")
def noop10(ctx):
    return Sequence(*[_noop(i) for i in range(10)])


@workflow("bench-wait")
def wait(ctx):
    return Sequence(WaitForEvent("go", event="go"), _noop(0))
'''

_GATE = textwrap.dedent(
    """\
    import sys
    import time
    from smithers.cli import main
    print("ready", time.process_time(), flush=True)
    sys.stdin.readline()
    main(args=sys.argv[1:], prog_name="smithers")
    """
)
"""A worker process: import everything, say "ready" and the CPU seconds that took, wait
for a line, run the CLI."""


# ---------------------------------------------------------------------- databases


@contextmanager
def pg_schema(base: str) -> Iterator[str]:
    """A fresh schema in `base`'s database; yields a URL scoped to it; drops it after."""
    import psycopg

    schema = f"bench_{secrets.token_hex(5)}"
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in base else "?"
        options = urllib.parse.quote(f"-csearch_path={schema}", safe="-")
        try:
            yield f"{base}{sep}options={options}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def fresh_db(db: str, tmp: Path, label: str) -> Iterator[str]:
    """A new empty database like `db`: a PostgreSQL schema or a SQLite file in `tmp`."""
    if is_postgres_url(db):
        with pg_schema(db) as url:
            yield url
    else:
        yield str(tmp / f"{label}-{secrets.token_hex(3)}.db")


# ---------------------------------------------------------------------- workers


class Workers:
    """`n` gated ``smithers worker`` processes on `db`; `go()` starts them all at once."""

    def __init__(self, db: str, n: int, *, concurrency: int, poll: str, tmp: Path) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.names = [f"w{i + 1}" for i in range(n)]
        self.cpu_s = 0.0
        """User + system CPU seconds of the workers after their gate, set by `stop`."""
        self.codes: list[int] = []
        self.logs = [tmp / f"worker-{secrets.token_hex(3)}-{name}.log" for name in self.names]
        for name, log in zip(self.names, self.logs, strict=True):
            args = [sys.executable, "-c", _GATE, "worker", "--db", db, "--queues", QUEUE]
            args += ["--concurrency", str(concurrency), "--name", name, "--poll", poll]
            with log.open("w") as err:
                proc = subprocess.Popen(
                    args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
                )
            self.procs.append(proc)
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            if not line or line[0] != "ready":
                self.stop()
                raise RuntimeError(f"worker did not start: {line!r}; see {self.logs}")
            self.cpu_s -= float(line[1])  # the imports before the gate do not count

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def stop(self) -> None:
        """SIGTERM (drain) every worker, wait for each, add up their CPU time."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(os_signal.SIGTERM)
        for proc in self.procs:
            if proc.returncode is not None:
                continue
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except ChildProcessError:
                proc.wait()
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.cpu_s += usage.ru_utime + usage.ru_stime
        self.codes = [p.returncode for p in self.procs]

    def count_in_logs(self, text: str) -> int:
        """Lines of the workers' stderr containing `text` (e.g. a lost claim race)."""
        return sum(line.count(text) for p in self.logs for line in p.read_text().splitlines())

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in self.logs)


async def wait_registered(store: EventStore, names: list[str], timeout_s: float = 30) -> None:
    """Until each worker in `names` has its row in the workers table."""
    with anyio.fail_after(timeout_s):
        while {w.name for w in await store.list_workers()} < set(names):  # noqa: ASYNC110
            await anyio.sleep(0.01)  # another process's row: no event to wait on


async def wait_all_ended(
    store: EventStore, run_ids: set[str], timeout_s: float, every_s: float = 0.02
) -> None:
    """Until every run in `run_ids` has a terminal status in the runs index.

    Looks every `every_s` seconds (a look reads the runs index: load on the server).
    """
    with anyio.fail_after(timeout_s):
        while True:
            ended = {r.run_id for r in await store.list_runs() if r.status in _TERMINAL}
            if run_ids <= ended:
                return
            await anyio.sleep(every_s)


# ---------------------------------------------------------------------- throughput


async def submit_many(store: EventStore, spec: str, n: int) -> list[str]:
    """Record `n` queued runs of `spec` (``submit_run``, one open store)."""
    out = []
    for _ in range(n):
        result = await submit_run(spec, store=store, queue=QUEUE, by="bench")
        out.append(result.run_id)
    return out


async def throughput(
    db: str, tmp: Path, spec: str, n_workers: int, runs: int, concurrency: int
) -> dict[str, Any]:
    """One throughput measurement with `n_workers` workers (see the module docstring)."""
    with fresh_db(db, tmp, f"tp{n_workers}") as url:
        store = await open_store(url, create=True)
        try:
            run_ids = await submit_many(store, spec, runs)
            workers = Workers(url, n_workers, concurrency=concurrency, poll="1s", tmp=tmp)
            try:
                t0 = time.perf_counter()
                workers.go()
                # Rarely: the span is read from the log, and each look loads the server.
                await wait_all_ended(store, set(run_ids), timeout_s=300, every_s=0.2)
                wall_s = time.perf_counter() - t0
            finally:
                workers.stop()
            first_claim, last_finish = None, None
            by_worker: dict[str, int] = {}
            bad: list[str] = []
            for rid in run_ids:
                starts, finishes = [], []
                for row in await store.read(rid):
                    if row.type == "RunStarted":
                        ev = decode_event(row.type, row.data)
                        assert isinstance(ev, RunStarted)
                        starts.append(ev)
                    elif row.type == "RunFinished":
                        fin = decode_event(row.type, row.data)
                        assert isinstance(fin, RunFinished)
                        finishes.append(fin)
                if len(starts) != 1 or len(finishes) != 1:
                    bad.append(f"{rid}: {len(starts)} RunStarted, {len(finishes)} RunFinished")
                    continue
                who = starts[0].actor.name if starts[0].actor is not None else "?"
                by_worker[who] = by_worker.get(who, 0) + 1
                t_start, t_end = starts[0].timestamp_ms, finishes[0].timestamp_ms
                first_claim = t_start if first_claim is None else min(first_claim, t_start)
                last_finish = t_end if last_finish is None else max(last_finish, t_end)
            statuses = [r.status for r in await store.list_runs() if r.run_id in set(run_ids)]
        finally:
            await store.close()
    if bad or any(s != "finished" for s in statuses) or first_claim is None:
        raise RuntimeError(f"runs did not each finish once: {bad[:5]}\n{workers.log_text()}")
    assert last_finish is not None
    span_s = max(last_finish - first_claim, 1) / 1000
    tasks = runs * TASKS_PER_RUN
    return {
        "workers": n_workers,
        "concurrency": concurrency,
        "runs": runs,
        "tasks": tasks,
        "span_s": span_s,
        "wall_s": wall_s,
        "runs_per_s": runs / span_s,
        "tasks_per_s": tasks / span_s,
        "ms_per_task": span_s * 1000 / tasks,
        "worker_cpu_ms_per_task": workers.cpu_s * 1000 / tasks,
        "runs_by_worker": dict(sorted(by_worker.items())),
        "lost_races": workers.count_in_logs("taken elsewhere"),
        "exit_codes": workers.codes,
    }


# ---------------------------------------------------------------------- wake-up


async def wake(
    db: str, tmp: Path, spec: str, parked: int, samples: int, poll_s: float, seed: int
) -> dict[str, Any]:
    """Signal-to-`RunStarted` latency with `parked` runs parked at once, one worker.

    Batches of `parked` runs are submitted and left to park on their wait; then each
    run of the batch in turn gets its signal after a random pause (uniform in 50-150
    ms on PostgreSQL; in 50 ms + one poll interval on SQLite, so the signal lands at
    a random point of the worker's poll), and the run is awaited to its end. Until
    `samples` signals were sent, after one more as a warm-up (the worker's first
    resume imports the workflow file; reported apart, as ``warmup_ms``). The other
    parked runs of the batch are what a worker's look for work goes through on each
    wake-up.
    """
    rng = random.Random(seed)
    pg = is_postgres_url(db)
    stamped: list[float] = []
    committed: list[float] = []
    with fresh_db(db, tmp, "wake") as url:
        store = await open_store(url, create=True)
        workers = Workers(url, 1, concurrency=4, poll=f"{round(poll_s * 1000)}ms", tmp=tmp)
        try:
            workers.go()
            await wait_registered(store, workers.names)
            while len(stamped) < samples + 1:  # the first is a warm-up: not counted
                batch = [
                    (await submit_run(spec, store=store, queue=QUEUE, by="bench")).run_id
                    for _ in range(parked)
                ]
                await wait_status(store, batch, "waiting-event", timeout_s=60)
                for rid in batch:
                    if len(stamped) > samples:
                        break  # enough: the batch's other runs stay parked
                    await anyio.sleep(0.05 + rng.random() * (0.1 if pg else poll_s))
                    before = await store.last_seq(rid)
                    await signal(store, rid, "go", {"n": 1})
                    returned_ms = time.time() * 1000
                    await wait_all_ended(store, {rid}, timeout_s=30)
                    sig_ms, woke_ms = None, None
                    for row in await store.read(rid, after_seq=before):
                        if row.type == "SignalReceived":
                            sig_ms = row.timestamp_ms  # the event's own stamp, as stored
                        elif row.type == "RunStarted" and sig_ms is not None and woke_ms is None:
                            woke_ms = row.timestamp_ms
                    if sig_ms is None or woke_ms is None:
                        raise RuntimeError(f"{rid}: no SignalReceived then RunStarted")
                    stamped.append(woke_ms - sig_ms)
                    committed.append(woke_ms - returned_ms)
        except BaseException:
            workers.stop()
            print(workers.log_text(), file=sys.stderr)
            raise
        finally:
            workers.stop()
            await store.close()
    return {
        "backend": "postgres" if pg else "sqlite",
        "wakes_by": "LISTEN/NOTIFY" if pg else f"poll {poll_s:g}s",
        "parked": parked,
        "runs": samples,
        "warmup_ms": stamped.pop(0),
        "wake_ms_median": statistics.median(stamped),
        "wake_ms_p90": _quantile(stamped, 0.9),
        "wake_ms_max": max(stamped),
        "wake_after_commit_ms_median": statistics.median(committed[1:]),
        "samples_ms": stamped,
    }


async def wait_status(store: EventStore, run_ids: list[str], status: str, timeout_s: float) -> None:
    """Until every run in `run_ids` has `status` in the runs index."""
    with anyio.fail_after(timeout_s):
        while True:
            now = {r.run_id: r.status for r in await store.list_runs()}
            if all(now.get(rid) == status for rid in run_ids):
                return
            await anyio.sleep(0.02)


def _quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


# ---------------------------------------------------------------------- driver


async def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    wf_file = tmp / "bench_worker_workflows.py"
    wf_file.write_text(_WORKFLOWS)
    out: dict[str, Any] = {
        "db": "postgres" if is_postgres_url(args.db) else "sqlite",
        "cpus": os.cpu_count(),
        "throughput": [],
        "wake": [],
    }
    if not args.skip_throughput:
        for n in args.workers:
            row = await throughput(
                args.db, tmp, f"{wf_file}:noop10", n, args.runs, args.concurrency
            )
            out["throughput"].append(row)
    if not args.skip_wake:
        backends = [args.db] if is_postgres_url(args.db) else []
        backends.append(str(tmp / "wake-sqlite.db"))
        for db in backends:
            for parked in args.wake_parked:
                row = await wake(
                    db, tmp, f"{wf_file}:wait", parked, args.wake_samples, args.poll, args.seed
                )
                out["wake"].append(row)
    return out


def report(out: dict[str, Any]) -> None:
    rows = out["throughput"]
    if rows:
        print(
            f"throughput: queued runs of {TASKS_PER_RUN} sequential no-op tasks, "
            f"{out['db']}, {out['cpus']} CPUs"
        )
        print(
            f"{'workers':>7} {'runs':>5} {'span s':>7} {'runs/s':>7} {'tasks/s':>8} "
            f"{'ms/task':>8} {'x 1 worker':>10} {'cpu ms/task':>11} {'lost':>4}  runs by worker"
        )
        base = rows[0]["tasks_per_s"]
        for r in rows:
            print(
                f"{r['workers']:>7} {r['runs']:>5} {r['span_s']:>7.2f} {r['runs_per_s']:>7.1f} "
                f"{r['tasks_per_s']:>8.1f} {r['ms_per_task']:>8.3f} "
                f"{r['tasks_per_s'] / base:>10.2f} {r['worker_cpu_ms_per_task']:>11.3f} "
                f"{r['lost_races']:>4}  "
                + " ".join(f"{k}={v}" for k, v in r["runs_by_worker"].items())
            )
        print(
            "(span: first claim to last finish, from the log; cpu: the workers' user+sys; "
            "lost: claims lost to another worker)"
        )
    if out["wake"]:
        print("wake-up: SignalReceived -> the worker's RunStarted of the parked run, 1 worker")
        print(
            f"{'backend':<9} {'wakes by':<14} {'parked':>6} {'runs':>4} {'median ms':>9} "
            f"{'p90 ms':>7} {'max ms':>7} {'after commit':>12} {'target':>6}  met"
        )
        for w in out["wake"]:
            met = "yes" if w["wake_ms_median"] <= TARGETS["wake_ms"] else "NO"
            print(
                f"{w['backend']:<9} {w['wakes_by']:<14} {w['parked']:>6} {w['runs']:>4} "
                f"{w['wake_ms_median']:>9.1f} {w['wake_ms_p90']:>7.1f} {w['wake_ms_max']:>7.1f} "
                f"{w['wake_after_commit_ms_median']:>12.1f} {TARGETS['wake_ms']:>6g}  {met}"
            )
        print(
            "(parked: runs parked at once when each signal is sent; after commit: from "
            "signal() returning here; ms-resolution stamps)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--db",
        default=os.environ.get("SMITHERS_TEST_POSTGRES_URL") or DEFAULT_PG,
        help="postgresql:// URL (a fresh schema per measurement) or a SQLite path (unused: "
        "a fresh file in a temporary directory is made)",
    )
    ap.add_argument("--runs", type=int, default=100, help="queued runs per throughput figure")
    ap.add_argument(
        "--workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 4],
        help="worker counts, comma-separated",
    )
    ap.add_argument("--concurrency", type=int, default=4, help="each worker's -c")
    ap.add_argument("--wake-samples", type=int, default=10, help="signals per wake-up figure")
    ap.add_argument(
        "--wake-parked",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 10],
        help="runs parked at once in the wake-up test, comma-separated",
    )
    ap.add_argument(
        "--poll", type=float, default=1.0, help="the workers' --poll in seconds (wake-up test)"
    )
    ap.add_argument("--seed", type=int, default=14, help="seed of the pauses before signals")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-wake", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("SMITHERS_BENCH_TMP")) as tmp:
        out = anyio.run(bench, args, Path(tmp))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
