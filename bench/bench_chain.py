"""Benchmark: what the log's hash chain (issue 16) costs, in-process.

- ``chain_hash`` per event (µs) for payloads of 100 B, 1 KB and 10 KB;
- the append transaction of two small events (the engine's write per task) on one
  connection, with the chain and with main's transaction before it (no hash
  computed, an empty hash stored), interleaved, CPU µs per append (``thread_time``:
  other processes' load does not count);
- ``verify_chain`` over a 10,000-row run (ms);
- the migration of a schema-2 database of 100,000 rows (s).

Run: python bench/bench_chain.py [--json]
A benchmark, not a test: compare the two appends, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
import timeit
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
from smithers.eventstore import (
    ZERO_HASH,
    StoredEvent,
    chain_hash,
    encode_event,
    verify_chain,
)
from smithers.eventstore._sqlite_chain import add_chain_column
from smithers.eventstore._sqlite_sql import _SCHEMA, _append_tx, _rows
from smithers.eventstore.events import Event, NodeFinished, NodeStarted

_MAIN_INSERT = (
    "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload, hash) "
    "VALUES (?, ?, ?, ?, ?, X'')"
)


def _main_append_tx(conn: sqlite3.Connection, run_id: str, rows: list[Any], expected: int) -> None:
    """Main's append before the chain: the seq check, the inserts, no hash."""
    conn.execute("BEGIN IMMEDIATE")
    actual = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?", (run_id,)
    ).fetchone()[0]
    assert actual == expected
    conn.executemany(_MAIN_INSERT, rows)
    conn.execute("COMMIT")


def _task_events(i: int) -> list[Event]:
    output = msgspec.Raw(b'{"ok":true,"n":1234567,"text":"hello world"}')
    return [
        NodeFinished(run_id="r", timestamp_ms=i, node_id=f"t{i}", attempt=1, output=output),
        NodeStarted(run_id="r", timestamp_ms=i, node_id=f"t{i + 1}", attempt=1),
    ]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in _SCHEMA:
        conn.execute(statement)
    return conn


def bench_hash() -> dict[str, float]:
    out = {}
    for size in (100, 1_000, 10_000):
        payload = b"x" * size
        best = min(
            timeit.repeat(
                lambda p=payload: chain_hash(ZERO_HASH, 5, "NodeFinished", p),
                number=20_000,
                repeat=5,
            )
        )
        out[f"chain_hash_us_{size}B"] = best / 20_000 * 1e6
    return out


def bench_append(tmp: Path, n: int = 3_000, rounds: int = 6) -> dict[str, float]:
    batches = [_rows("r", _task_events(i), 2 * i) for i in range(n)]
    results: dict[str, list[float]] = {"main": [], "chain": [], "chain_known": []}
    kinds = list(results)
    for r in range(rounds):
        order = kinds[r % 3 :] + kinds[: r % 3]
        for kind in order:
            with closing(_connect(tmp / f"{kind}-{r}.db")) as conn:
                known = None
                t = time.thread_time()
                for i, rows in enumerate(batches):
                    if kind == "main":
                        _main_append_tx(conn, "r", rows, 2 * i)
                    elif kind == "chain":
                        _append_tx(conn, "r", rows, 2 * i, None, None)
                    else:  # as the store does: the previous append's (seq, hash) known
                        known = _append_tx(conn, "r", rows, 2 * i, None, None, known)
                results[kind].append((time.thread_time() - t) / n * 1e6)
    main, chain = statistics.median(results["main"]), statistics.median(results["chain"])
    known_us = statistics.median(results["chain_known"])
    return {
        "append2_cpu_us_main": main,
        "append2_cpu_us_chain": chain,
        "append2_cpu_us_chain_known": known_us,
        "append2_cpu_us_added": chain - main,
        "append2_cpu_us_added_known": known_us - main,
    }


def bench_verify(n: int = 10_000) -> dict[str, float]:
    rows: list[StoredEvent] = []
    prev = ZERO_HASH
    for seq in range(1, n + 1):
        data = encode_event(_task_events(seq)[0])
        prev = chain_hash(prev, seq, "NodeFinished", data)
        rows.append(
            StoredEvent(
                position=seq,
                run_id="r",
                seq=seq,
                type="NodeFinished",
                timestamp_ms=seq,
                data=data,
                hash=prev,
            )
        )
    t = time.perf_counter()
    assert verify_chain(rows) is None
    return {"verify_chain_ms_10k_rows": (time.perf_counter() - t) * 1e3}


def bench_migration(tmp: Path, runs: int = 100, per_run: int = 1_000) -> dict[str, float]:
    path = tmp / "v2.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(
            "CREATE TABLE _smithers_events (position INTEGER PRIMARY KEY, run_id TEXT NOT NULL, "
            "seq INTEGER NOT NULL, type TEXT NOT NULL, timestamp_ms INTEGER NOT NULL, "
            "payload BLOB NOT NULL, UNIQUE (run_id, seq))"
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for r in range(runs):
            conn.executemany(
                "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (f"run-{r}", s, "NodeFinished", s, encode_event(_task_events(s)[0]))
                    for s in range(1, per_run + 1)
                ],
            )
        conn.execute("COMMIT")
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        add_chain_column(conn)
        conn.execute("COMMIT")
        took = time.perf_counter() - t
    return {"migration_s_100k_rows": took}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as d:
        tmp = Path(d)
        out = {**bench_hash(), **bench_append(tmp), **bench_verify(), **bench_migration(tmp)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key:32} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
