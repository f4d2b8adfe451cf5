"""Benchmark: sequential ms per task on PostgreSQL next to SQLite, against the floors.

Measures, in one process, on a fresh PostgreSQL schema (``?options=-csearch_path%3D…``,
as the tests' ``pg_url`` fixture makes one; dropped at the end) and new SQLite files:

- floors, each sampled right before each run and as the median of its samples:
  ``rt``: one ``SELECT 1`` round trip over psycopg's async connection;
  ``commit``: a one-row ``INSERT`` in autocommit (a round trip plus the server's WAL
  flush at commit: the least a durable append can cost); ``commit_noflush``: the
  same with ``synchronous_commit = off`` on that session (the commit does not wait
  for the flush: the difference is what the disk's flush costs here);
  ``append``: one `PostgresEventStore.append` of 2 events (what the engine does per
  task); and the same append on SQLite (`SQLiteEventStore`);
- N sequential no-op async tasks (the peer workload's, `peer_workflows`) run with
  `run_workflow` on a ``postgresql://`` URL and on a SQLite file, at N = 100 and
  1,000: ms per task (the whole call, opening and closing the store included, median
  of 3 runs), and its ratio to each floor sampled before the run; and at the largest
  N on PostgreSQL with ``-csynchronous_commit=off`` added to the URL's ``options``
  (commits do not wait for the WAL flush: what the flush costs a run; a server crash
  can lose the last commits, so not a setting to recommend, a measurement);
- 4 runs of 200 sequential tasks at once, each on a store (connection) of its own
  vs all on one store (a `smithers.connect` client, as a worker drives its runs):
  ms per task overall;
- where a PostgreSQL append's time goes (``--profile``, on by default): the
  statements one task sends (counted on psycopg's connection during one run) and
  the store's append (one statement in autocommit: lock, insert of the rows from
  arrays, notify in one ``WITH``; the run's last ``(seq, hash)`` known from its own
  previous append) timed beside the shapes it replaced, on the same tables: a read
  of the last row then a transaction in pipeline mode (lock, inserts, runs-index
  update, notify); the same statements without pipeline mode; the pipeline with the
  last row known; and the bare one-statement shape without the store around it (its
  encoding, hashing and cancel guard). Wall and CPU ms of this process per append.

Run: python bench/bench_pg.py [--db URL] [--json] [--no-profile]
``--db`` defaults to ``$SMITHERS_TEST_POSTGRES_URL``, else
``postgresql://root@127.0.0.1:5432/test``. About a minute with the defaults.
A benchmark, not a test: compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from bench_workers import DEFAULT_PG, pg_schema
from peer_workflows import make_workflow
from smithers.eventstore import PostgresEventStore, SQLiteEventStore
from smithers.eventstore.events import RunCancelRequested

import smithers
from smithers import run_workflow

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


TARGETS = {"pg_seq_ms_per_task": 1.5, "sqlite_seq_ms_per_task": 0.12}
"""Issue 14's target for PostgreSQL (ms per sequential task on a 2-core machine) and
issue 7's for SQLite (N = 1,000), for reference."""

FLOOR_STEPS = 200
"""Operations per floor sample."""

_CHANNEL = "'smithers_' || current_schema()"
_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '._smithers_events'))"
_INSERT = (
    "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload, hash) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
_LAST = "SELECT seq, hash FROM _smithers_events WHERE run_id = %s ORDER BY seq DESC LIMIT 1"
_UPDATE = "UPDATE _smithers_runs SET last_seq = %s, updated_at_ms = %s WHERE run_id = %s"
_NOTIFY = f"SELECT pg_notify({_CHANNEL}, %s)"
_ONE_STATEMENT = f"""WITH l AS ({_LOCK} AS locked),
ins AS (
    INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload, hash)
    SELECT %(run)s, u.seq, u.type, u.ts, u.payload, u.hash FROM l,
        unnest(%(seqs)s::bigint[], %(types)s::text[], %(tss)s::bigint[],
               %(payloads)s::bytea[], %(hashes)s::bytea[]) AS u(seq, type, ts, payload, hash)
    RETURNING seq),
upd AS (UPDATE _smithers_runs SET last_seq = %(last)s, updated_at_ms = %(ts)s
        WHERE run_id = %(run)s),
n AS (SELECT pg_notify({_CHANNEL}, %(run)s) AS sent)
SELECT (SELECT max(seq) FROM ins), (SELECT count(*) FROM n)"""
"""The 2-event append as one statement (its own transaction in autocommit): one round
trip. The lock CTE is read by the insert, so it is taken before the first row."""

_PAYLOAD = (
    b'{"type":"NodeFinished","runId":"run-floor","nodeId":"t00001","iteration":0,'
    b'"attempt":1,"output":{"task":"t00001","ok":true,"note":"noop-ok!"},"timestampMs":0}'
)
_HASH = bytes(32)


# ---------------------------------------------------------------------- floors


def _two_events(run_id: str, i: int) -> list[RunCancelRequested]:
    return [
        RunCancelRequested(run_id=run_id, timestamp_ms=i, source="api", reason="bench floor"),
        RunCancelRequested(run_id=run_id, timestamp_ms=i, source="api", reason="bench floor"),
    ]


class Floors:
    """Floor samples (ms per operation) on one PostgreSQL schema and SQLite files."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.samples: dict[str, list[float]] = collections.defaultdict(list)
        self.cpu: dict[str, list[float]] = collections.defaultdict(list)
        self.conn: Any = None
        self.noflush: Any = None
        self.pg: PostgresEventStore | None = None
        self.n = 0

    async def open(self) -> None:
        import psycopg

        self.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await self.conn.execute("CREATE TABLE IF NOT EXISTS bench_rows (id BIGINT, p BYTEA)")
        self.noflush = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await self.noflush.execute("SET synchronous_commit = off")
        self.pg = await PostgresEventStore.open(self.url)

    async def close(self) -> None:
        await self.conn.close()
        await self.noflush.close()
        assert self.pg is not None
        await self.pg.close()

    async def _time(self, name: str, step: Callable[[int], Awaitable[Any]]) -> float:
        for i in range(5):
            await step(-1 - i)
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(FLOOR_STEPS):
            await step(i)
        ms = (time.perf_counter() - t0) * 1000 / FLOOR_STEPS
        self.samples[name].append(ms)
        self.cpu[name].append((time.process_time() - c0) * 1000 / FLOOR_STEPS)
        return ms

    async def sample(self) -> dict[str, float]:
        """Sample every floor once; return ms per operation by name."""
        conn, pg = self.conn, self.pg
        assert pg is not None
        self.n += 1

        async def rt(i: int) -> None:
            await (await conn.execute("SELECT 1")).fetchone()

        async def commit(i: int) -> None:
            await conn.execute("INSERT INTO bench_rows (id, p) VALUES (%s, %s)", (i, _PAYLOAD))

        async def commit_noflush(i: int) -> None:
            await self.noflush.execute(
                "INSERT INTO bench_rows (id, p) VALUES (%s, %s)", (i, _PAYLOAD)
            )

        run = f"floor-{self.n}"
        seq = [0]

        async def append(i: int) -> None:
            seq[0] = await pg.append(run, _two_events(run, i), expected_seq=seq[0])

        sq = await SQLiteEventStore.open(self.tmp / f"floor-{self.n}.db")
        sq_seq = [0]

        async def sqlite_append(i: int) -> None:
            sq_seq[0] = await sq.append(run, _two_events(run, i), expected_seq=sq_seq[0])

        try:
            return {
                "rt": await self._time("rt", rt),
                "commit": await self._time("commit", commit),
                "commit_noflush": await self._time("commit_noflush", commit_noflush),
                "append": await self._time("append", append),
                "sqlite_append": await self._time("sqlite_append", sqlite_append),
            }
        finally:
            await sq.close()

    def medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.samples.items()}


# ---------------------------------------------------------------------- sequential runs


async def sequential(
    floors: Floors, db: Callable[[int], str], n: int, reps: int
) -> dict[str, float]:
    """`reps` runs of N sequential no-op tasks; median ms/task and ratios to the floors."""
    times: list[float] = []
    ratios: dict[str, list[float]] = collections.defaultdict(list)
    for rep in range(reps):
        floor = await floors.sample()
        wf = make_workflow(n, "sequential", "async")
        t0 = time.perf_counter()
        result = await run_workflow(wf, db=db(rep), log_dir=None)
        ms = (time.perf_counter() - t0) * 1000 / n
        assert result.status == "finished", result
        times.append(ms)
        for k, v in floor.items():
            ratios[k].append(ms / v)
    return {
        "ms": statistics.median(times),
        **{f"x_{k}": statistics.median(v) for k, v in ratios.items()},
    }


async def concurrent(url: str, n: int, k: int, reps: int) -> dict[str, float]:
    """`k` runs of N sequential tasks at once: a store (connection) each vs one shared.

    A store each: `k` `run_workflow` calls, each opening its own store. Shared: one
    `smithers.connect` client running the `k` runs, as a worker drives its runs on one
    store. Returns the median ms per task over all k*N tasks (wall / (k*N)).
    """
    wf = make_workflow(n, "sequential", "async")
    own: list[float] = []
    shared: list[float] = []

    async def one() -> None:
        result = await run_workflow(wf, db=url, log_dir=None)
        assert result.status == "finished", result

    for _ in range(reps):
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(k):
                tg.start_soon(one)
        own.append((time.perf_counter() - t0) * 1000 / (n * k))
        t0 = time.perf_counter()
        async with smithers.connect(url) as client:

            async def on_client() -> None:
                result = await client.run(wf)
                assert result.status == "finished", result

            async with anyio.create_task_group() as tg:
                for _ in range(k):
                    tg.start_soon(on_client)
        shared.append((time.perf_counter() - t0) * 1000 / (n * k))
    return {"store_each_ms": statistics.median(own), "shared_store_ms": statistics.median(shared)}


# ---------------------------------------------------------------------- profile


async def count_statements(url: str, n: int) -> dict[str, float]:
    """Statements per task sent during one run of N tasks (psycopg calls counted).

    Counts `AsyncConnection.execute` and `AsyncCursor.executemany` calls of this
    process, by the statement's first words, for the duration of one run (restored
    after). ``executemany`` in pipeline mode sends one statement per row.
    """
    import psycopg

    counts: collections.Counter[str] = collections.Counter()
    execute, executemany = psycopg.AsyncConnection.execute, psycopg.AsyncCursor.executemany

    async def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        counts[" ".join(str(query).split()[:6])] += 1
        return await execute(self, query, *args, **kwargs)

    async def counted_many(self: Any, query: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
        params = list(params)
        counts[" ".join(str(query).split()[:4]) + " (executemany)"] += len(params)
        return await executemany(self, query, params, *args, **kwargs)

    psycopg.AsyncConnection.execute = counted_execute  # type: ignore[method-assign]
    psycopg.AsyncCursor.executemany = counted_many  # type: ignore[method-assign,assignment]
    try:
        result = await run_workflow(make_workflow(n, "sequential", "async"), db=url, log_dir=None)
        assert result.status == "finished", result
    finally:
        psycopg.AsyncConnection.execute = execute  # type: ignore[method-assign]
        psycopg.AsyncCursor.executemany = executemany  # type: ignore[method-assign]
    return {k: v / n for k, v in counts.most_common()}


async def append_shapes(url: str, rounds: int) -> dict[str, dict[str, float]]:
    """Wall and CPU ms per 2-event append, for the store's append and other shapes."""
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    store = await PostgresEventStore.open(url)
    seqs: dict[str, int] = collections.defaultdict(int)

    def rows(run: str, i: int) -> list[tuple[Any, ...]]:
        s = seqs[run]
        seqs[run] = s + 2
        return [(run, s + k, "NodeFinished", i, _PAYLOAD, _HASH) for k in (1, 2)]

    async def new_run(run: str) -> None:
        await conn.execute(
            "INSERT INTO _smithers_runs (run_id, created_at_ms, updated_at_ms, last_seq) "
            "VALUES (%s, 0, 0, 0)",
            (run,),
        )

    async def store_append(run: str, i: int) -> None:
        seqs[run] = await store.append(run, _two_events(run, i), expected_seq=seqs[run])

    async def plain(run: str, i: int) -> None:
        batch = rows(run, i)
        await (await conn.execute(_LAST, (run,))).fetchone()
        async with conn.transaction():
            await conn.execute(_LOCK)
            async with conn.cursor() as c:
                await c.executemany(_INSERT, batch)
            await conn.execute(_UPDATE, (batch[-1][1], i, run))
            await conn.execute(_NOTIFY, (run,))

    async def pipeline_after_read(run: str, i: int) -> None:
        await (await conn.execute(_LAST, (run,))).fetchone()
        await pipeline_known_last(run, i)

    async def pipeline_known_last(run: str, i: int) -> None:
        batch = rows(run, i)
        async with conn.pipeline(), conn.transaction():
            await conn.execute(_LOCK)
            async with conn.cursor() as c:
                await c.executemany(_INSERT, batch)
            await conn.execute(_UPDATE, (batch[-1][1], i, run))
            await conn.execute(_NOTIFY, (run,))

    async def one_statement(run: str, i: int) -> None:
        batch = rows(run, i)
        params = {
            "run": run,
            "seqs": [r[1] for r in batch],
            "types": [r[2] for r in batch],
            "tss": [r[3] for r in batch],
            "payloads": [r[4] for r in batch],
            "hashes": [r[5] for r in batch],
            "last": batch[-1][1],
            "ts": i,
        }
        row = await (await conn.execute(_ONE_STATEMENT, params)).fetchone()
        assert row is not None
        assert row[0] == batch[-1][1], row

    shapes: dict[str, Callable[[str, int], Awaitable[None]]] = {
        "store append (one statement, last row known from its own append)": store_append,
        "read last, then pipeline: lock, 2 inserts, update, notify": pipeline_after_read,
        "same statements, no pipeline (6 round trips + commit)": plain,
        "pipeline, last (seq, hash) known: no read first": pipeline_known_last,
        "the bare statement (WITH lock, insert unnest, update, notify), last known": one_statement,
    }
    wall: dict[str, list[float]] = collections.defaultdict(list)
    cpu: dict[str, list[float]] = collections.defaultdict(list)
    try:
        for r in range(rounds):  # interleaved, so load from elsewhere hits all alike
            for j, (name, step) in enumerate(shapes.items()):
                run = f"shape-{j}-{r}"
                if step is not store_append:
                    await new_run(run)
                else:
                    seqs[run] = 0
                c0, t0 = time.process_time(), time.perf_counter()
                for i in range(FLOOR_STEPS):
                    await step(run, i)
                wall[name].append((time.perf_counter() - t0) * 1000 / FLOOR_STEPS)
                cpu[name].append((time.process_time() - c0) * 1000 / FLOOR_STEPS)
    finally:
        await store.close()
        await conn.close()
    return {
        k: {"wall_ms": statistics.median(wall[k]), "cpu_ms": statistics.median(cpu[k])}
        for k in shapes
    }


# ---------------------------------------------------------------------- driver


async def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"cpus": os.cpu_count(), "sequential": {}}
    with pg_schema(args.db) as url:
        floors = Floors(url, tmp)
        await floors.open()
        try:
            await floors.sample()  # warm up: connections, page cache
            for n in args.sizes:

                def pg_db(rep: int) -> str:
                    return url  # one schema: each run has a run id of its own

                def sqlite_db(rep: int, n: int = n) -> str:
                    return str(tmp / f"seq-{n}-{rep}.db")  # a new file per run

                out["sequential"][f"pg_{n}"] = await sequential(floors, pg_db, n, args.reps)
                if n == max(args.sizes):  # what the WAL flush at each commit costs a run

                    def noflush_db(rep: int) -> str:
                        return url + urllib.parse.quote(" -csynchronous_commit=off", safe="-")

                    out["sequential"][f"pgnoflush_{n}"] = await sequential(
                        floors, noflush_db, n, args.reps
                    )
                out["sequential"][f"sqlite_{n}"] = await sequential(floors, sqlite_db, n, args.reps)
        finally:
            await floors.close()
        out["floors_ms"] = floors.medians()
        out["floor_cpu_ms"] = {k: statistics.median(v) for k, v in floors.cpu.items()}
        out["floor_samples_ms"] = dict(floors.samples)
        out["concurrent_4x200"] = await concurrent(url, 200, 4, 2)
        if args.profile:
            out["statements_per_task"] = await count_statements(url, 200)
            out["append_shapes"] = await append_shapes(url, 3)
    out["targets"] = TARGETS
    return out


_FLOOR_LABELS = {
    "rt": "SELECT 1 round trip (psycopg async)",
    "commit": "one-row INSERT, autocommit (round trip+flush)",
    "commit_noflush": "the same, synchronous_commit=off (no wait)",
    "append": "PostgresEventStore.append of 2 events",
    "sqlite_append": "SQLiteEventStore.append of 2 events",
}


def report(out: dict[str, Any]) -> None:
    f, cpu = out["floors_ms"], out["floor_cpu_ms"]
    print(f"floors (median of samples; {out['cpus']} CPUs), ms per operation, wall / CPU here:")
    for key, label in _FLOOR_LABELS.items():
        print(f"  {label:46} {f[key]:>6.3f} / {cpu[key]:.3f}")
    print(
        f"{'sequential no-op tasks':33} {'ms/task':>8} {'x rt':>6} {'x commit':>8} "
        f"{'x append':>8} {'target':>6}  met"
    )
    for name, r in out["sequential"].items():
        backend, n = name.split("_")
        target = TARGETS["sqlite_seq_ms_per_task" if backend == "sqlite" else "pg_seq_ms_per_task"]
        met = "yes" if r["ms"] <= target else "NO"
        if backend.startswith("pg"):
            label = f"PostgreSQL, N={int(n):,}" + (", no flush wait" if backend != "pg" else "")
            ratios = f"{r['x_rt']:>6.1f} {r['x_commit']:>8.2f} {r['x_append']:>8.2f}"
        else:  # SQLite's own floor: its store's append
            label = f"SQLite, N={int(n):,}"
            ratios = f"{'':>6} {'':>8} {r['x_sqlite_append']:>8.2f}"
        print(f"{label:33} {r['ms']:>8.3f} {ratios} {target:>6g}  {met}")
    print(
        "(x: ratio to the floor sampled before each run; SQLite's x append: its own store's; "
        "no flush wait: synchronous_commit=off in the URL's options, not durable on a "
        "server crash)"
    )
    c = out["concurrent_4x200"]
    print(
        f"4 runs of 200 tasks at once on PostgreSQL, ms per task overall: a store each "
        f"{c['store_each_ms']:.3f}, one shared store (a Client, as a worker) "
        f"{c['shared_store_ms']:.3f}"
    )
    if "statements_per_task" in out:
        print("statements per task on PostgreSQL (N=200 run, psycopg calls):")
        for k, v in out["statements_per_task"].items():
            if v >= 0.01:
                print(f"  {v:6.2f}  {k}")
        print("2-event append shapes on PostgreSQL, ms per append (median of 3 x 200):")
        print(f"  {'wall':>6} {'cpu':>6}  shape")
        for k, v in out["append_shapes"].items():
            print(f"  {v['wall_ms']:>6.3f} {v['cpu_ms']:>6.3f}  {k}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--db",
        default=os.environ.get("SMITHERS_TEST_POSTGRES_URL") or DEFAULT_PG,
        help="postgresql:// URL of a database to make a fresh schema in",
    )
    ap.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 1000],
        help="N of the sequential runs, comma-separated",
    )
    ap.add_argument("--reps", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
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
