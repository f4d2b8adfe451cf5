"""Fault injection: SIGKILL storms, killed time travel, a full disk, 16 concurrent writers.

Every scenario drives the real CLI (``python -m smithers …``) in subprocesses on a real
SQLite file, running `fault_workflow.py` (21 tasks, 4 parallel lanes; each execution
appends ``<run_id> <node_id> <attempt> <pid>`` to a side file). Each ends with the
invariants of the log, checked from outside with ``sqlite3``:

- per run, seqs are 1..N (no gap, no duplicate), and the runs index agrees (a row per
  run, at most its last seq; "finished" only once its last activation's RunFinished is in);
- ``PRAGMA integrity_check`` is ``ok``;
- every run is resumable to its end: ``smithers up --resume RUN`` until it is finished;
- at most one extra execution per task in flight per kill: per run and task, executions
  beyond its NodeFinished events are at most the kills of that run's processes (and, where
  the run was only ever killed mid-run, its attempts closed as ``abandoned``), and in all
  at most kills x max concurrency (4);

and reports its figures (see the `figures` fixture in conftest.py). The kill schedules
are seeded (``SMITHERS_FAULT_SEED``); all tests are slow (CI runs them).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from smithers.eventstore import (
    ZERO_HASH,
    StoredEvent,
    chain_origin,
    decode_event,
    verify_chain,
)
from smithers.eventstore.events import NodeCancelled, NodeFinished, RunStarted

pytestmark = pytest.mark.slow  # runs in CI (see tests/conftest.py)

HERE = Path(__file__).resolve().parent
WORKFLOW = HERE / "fault_workflow.py"
EFFECTS_ENV = "SMITHERS_FAULT_EFFECTS"
FILL_ENV = "SMITHERS_FAULT_FILL"
FILLED_ENV = "SMITHERS_FAULT_FILLED"
TASKS = 21
MAX_CONCURRENCY = 4  # `smithers up`'s default
WAIT_S = 90.0
SAFE_CAP = 16
"""Once this many distinct tasks began, at least a lane's tail, the merge and the publish
chain are left: 4 tasks one after another, over 80 ms."""


# ------------------------------------------------------------------ processes and files


@dataclass
class Lab:
    """One database, one side file, and the `smithers` processes run on them."""

    root: Path
    reaper: list[subprocess.Popen[bytes]]
    db: Path
    spawned: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    """Kills per run id (the run the killed process was driving)."""
    kill_notes: list[str] = field(default_factory=list)
    resumes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def effects(self) -> Path:
        return self.root / "effects.txt"

    def spawn(self, *args: str, **env_extra: str) -> subprocess.Popen[bytes]:
        """Start ``python -m smithers ARGS --db DB`` with stdout/stderr in files."""
        with self.lock:
            self.spawned += 1
            n = self.spawned
        env = {**os.environ, EFFECTS_ENV: str(self.effects), **env_extra}
        env.pop("SMITHERS_DB", None)
        env.pop("SMITHERS_DEBUG", None)
        with (
            open(self.root / f"proc{n}.out", "wb") as out,
            open(self.root / f"proc{n}.err", "wb") as err,
        ):
            proc = subprocess.Popen(
                [sys.executable, "-m", "smithers", *args, "--db", str(self.db)],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        proc.number = n  # type: ignore[attr-defined]
        self.reaper.append(proc)
        return proc

    def output_of(self, proc: subprocess.Popen[bytes]) -> str:
        n = proc.number  # type: ignore[attr-defined]
        out = (self.root / f"proc{n}.out").read_text(errors="replace")
        err = (self.root / f"proc{n}.err").read_text(errors="replace")
        return f"stdout: {out[-2000:]}\nstderr: {err[-2000:]}"

    def kill(self, proc: subprocess.Popen[bytes], run_id: str, why: str) -> bool:
        """SIGKILL `proc`; False (and no kill counted) if it had exited already."""
        if proc.poll() is not None:
            return False
        os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=WAIT_S)
        if rc != -signal.SIGKILL:
            return False
        with self.lock:
            self.kills[run_id] += 1
            self.kill_notes.append(f"{run_id}: {why}")
        return True

    # -------------------------------------------------------------- reading from outside

    def effect_lines(self) -> list[tuple[str, str, int, int]]:
        """(run_id, node_id, attempt, pid) of every execution begun so far."""
        try:
            text = self.effects.read_text()
        except FileNotFoundError:
            return []
        rows = []
        for line in text.splitlines():
            run_id, node_id, attempt, pid = line.split(" ")
            rows.append((run_id, node_id, int(attempt), int(pid)))
        return rows

    def started(self, run_id: str) -> int:
        """Distinct tasks of `run_id` executed at least once so far."""
        return len({node for run, node, _, _ in self.effect_lines() if run == run_id})

    def executions(self, run_id: str) -> int:
        return sum(run == run_id for run, _, _, _ in self.effect_lines())

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, timeout=10)

    def last_seq(self, run_id: str) -> int:
        """The run's last seq as another process sees it (0 before its first event)."""
        if not self.db.exists():
            return 0
        try:
            with closing(sqlite3.connect(self.db, timeout=1)) as conn:
                row = conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?",
                    (run_id,),
                ).fetchone()
        except sqlite3.OperationalError:  # no table yet, or locked for over a second
            return 0
        return int(row[0])

    def run_ids(self) -> list[str]:
        with closing(self.connect()) as conn:
            rows = conn.execute("SELECT DISTINCT run_id FROM _smithers_events").fetchall()
        return sorted(r[0] for r in rows)

    def status(self, run_id: str) -> str | None:
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT status FROM _smithers_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def frames(self, run_id: str) -> int:
        with closing(self.connect()) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM _smithers_events WHERE run_id = ? AND type = ?",
                (run_id, "FrameCommitted"),
            ).fetchone()
        return int(row[0])

    # -------------------------------------------------------------- the invariants

    def check_log(self) -> dict[str, Any]:
        """Seqs 1..N per run, the runs index agrees, integrity ok; returns the figures."""
        with closing(self.connect()) as conn:
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            assert integrity == ["ok"], f"integrity_check: {integrity}"
            runs: dict[str, list[int]] = {}
            types: dict[str, list[str]] = {}
            for run_id, seq, type_name in conn.execute(
                "SELECT run_id, seq, type FROM _smithers_events ORDER BY run_id, seq"
            ):
                runs.setdefault(run_id, []).append(seq)
                types.setdefault(run_id, []).append(type_name)
            index = {
                run_id: (status, last_seq)
                for run_id, status, last_seq in conn.execute(
                    "SELECT run_id, status, last_seq FROM _smithers_runs"
                )
            }
        for run_id, seqs in runs.items():
            assert seqs == list(range(1, len(seqs) + 1)), f"{run_id}: seqs not 1..N: {seqs}"
            # The index row is written at the run's start and at each status change.
            assert run_id in index, f"{run_id} has events but no row in the runs index"
            status, last_seq = index[run_id]
            assert last_seq <= len(seqs), f"{run_id}: index at seq {last_seq}, log {len(seqs)}"
            if status == "finished":  # then its last activation ended with RunFinished
                kinds = types[run_id]
                ended = max(i for i, t in enumerate(kinds) if t in ("RunFinished", "RunStarted"))
                assert kinds[ended] == "RunFinished", f"{run_id}: finished, not in its log"
                assert ended + 1 <= last_seq, f"{run_id}: finished at {ended + 1}, index {last_seq}"
        self.check_chains()
        events = sum(map(len, runs.values()))
        return {"integrity": integrity[0], "runs": len(runs), "events": events}

    def check_chains(self) -> None:
        """Every run's rows verify against their hash chain, forks from their parents."""
        with closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT position, run_id, seq, type, timestamp_ms, payload, hash "
                "FROM _smithers_events ORDER BY run_id, seq"
            ).fetchall()
        runs: dict[str, list[StoredEvent]] = {}
        for position, run_id, seq, type_name, ts, payload, row_hash in rows:
            runs.setdefault(run_id, []).append(
                StoredEvent(
                    position=position,
                    run_id=run_id,
                    seq=seq,
                    type=type_name,
                    timestamp_ms=ts,
                    data=bytes(payload),
                    hash=bytes(row_hash),
                )
            )
        hashes = {(r.run_id, r.seq): r.hash for stored in runs.values() for r in stored}
        for run_id, stored in runs.items():
            origin = chain_origin(stored[0].type, stored[0].data)
            prev = hashes.get(origin, ZERO_HASH) if origin is not None else ZERO_HASH
            found = verify_chain(stored, prev=prev)
            assert found is None, f"{run_id}: hash chain broken: {found.message}"

    def resume_to_end(self, run_id: str, *extra: str) -> int:
        """``smithers up --resume RUN`` until the run is finished; returns the tries."""
        for tries in range(1, 4):
            if self.status(run_id) == "finished":
                return tries - 1
            proc = self.spawn("up", "--resume", run_id, *extra)
            rc = proc.wait(timeout=WAIT_S)
            with self.lock:
                self.resumes += 1
            if rc == 0 and self.status(run_id) == "finished":
                return tries
        raise AssertionError(
            f"{run_id} is {self.status(run_id)} after 3 resumes\n{self.output_of(proc)}"
        )

    def check_executions(self, *, abandoned_bound: bool) -> dict[str, int]:
        """At most one extra execution per task in flight per kill; returns the figures.

        An extra execution is one that never got its NodeFinished: per run and node,
        executions minus NodeFinished events. Each is at most the kills of that run; with
        `abandoned_bound` (runs only ever killed mid-run, never rewound), also at most the
        node's attempts the next activation closed as ``abandoned``. The attempts an
        activation closes as abandoned (those in flight at the kill before it) are at most
        MAX_CONCURRENCY, and every execution ran in a process that claimed its run.
        """
        lines = self.effect_lines()
        executions = Counter((run, node) for run, node, _, _ in lines)
        finished: Counter[tuple[str, str]] = Counter()
        abandoned: Counter[tuple[str, str]] = Counter()
        owners: dict[str, set[int | None]] = {}
        abandoned_by: Counter[tuple[str, int]] = Counter()
        """Attempts closed as abandoned per (run, seq of the RunStarted of the activation
        that closed them): those in flight at the kill before it."""
        with closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT run_id, seq, type, payload FROM _smithers_events "
                "WHERE type IN (?, ?, ?) ORDER BY run_id, seq",
                ("NodeFinished", "NodeCancelled", "RunStarted"),
            ).fetchall()
        activation = 0
        for run_id, seq, type_name, payload in rows:
            event = decode_event(type_name, bytes(payload))
            if isinstance(event, RunStarted):
                owners.setdefault(run_id, set()).add(event.pid)
                # Keyed by seq: after a rewind, activation numbers count from the frame.
                activation = seq
            elif isinstance(event, NodeFinished):
                finished[run_id, event.node_id] += 1
            elif isinstance(event, NodeCancelled) and event.reason == "abandoned":
                abandoned[run_id, event.node_id] += 1
                abandoned_by[run_id, activation] += 1
        in_flight = max(abandoned_by.values(), default=0)
        assert in_flight <= MAX_CONCURRENCY, f"{in_flight} attempts in flight at one kill"
        for run_id, node_id, _, pid in lines:
            assert pid in owners.get(run_id, set()), (
                f"{run_id}/{node_id} ran in pid {pid}, which never claimed the run"
            )
        extras = 0
        for key, n in executions.items():
            extra = n - finished[key]
            assert extra >= 0, f"{key}: {n} executions, {finished[key]} NodeFinished"
            assert extra <= self.kills[key[0]], (
                f"{key}: {extra} extra executions, {self.kills[key[0]]} kills of its run"
            )
            if abandoned_bound:
                assert extra <= abandoned[key], f"{key}: {extra} extra, {abandoned[key]} abandoned"
            extras += extra
        kills = sum(self.kills.values())
        assert extras <= kills * MAX_CONCURRENCY, f"{extras} extra executions, {kills} kills"
        return {
            "executions": sum(executions.values()),
            "extra_executions": extras,
            "abandoned": sum(abandoned.values()),
            "max_extra_per_task": max((n - finished[k] for k, n in executions.items()), default=0),
            "max_in_flight_at_a_kill": in_flight,
        }


def wait_for(cond: Any, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    """Poll `cond` every millisecond until it holds, `proc` exits or the deadline passes."""
    end = time.monotonic() + deadline_s
    while not cond() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.001)


# ------------------------------------------------------------------ (a) SIGKILL storm

STORM_RUNS = 4
STORM_KILLS = 4


def storm_one_run(lab: Lab, run_id: str, rng: random.Random, quota: int) -> None:
    """Start `run_id`, kill its process `quota` times at random moments, then resume it.

    Three kinds of moment: a delay after the spawn (start-up, the claim, or mid-run),
    a jitter after the cap-th distinct task began, or the m-th event appended since the
    spawn. Whatever the kind, the kill comes once `cap` distinct tasks began, so every
    kill lands while tasks remain (caps are distinct and at most SAFE_CAP).
    """
    caps = sorted(rng.sample(range(1, SAFE_CAP + 1), quota))
    kills = 0
    while kills < quota and lab.status(run_id) != "finished":
        if lab.last_seq(run_id) == 0:
            args = ["up", str(WORKFLOW), "-r", run_id, "--no-log"]
        else:
            args = ["up", "--resume", run_id, "--no-log"]
        proc = lab.spawn(*args)
        t0, seq0 = time.monotonic(), lab.last_seq(run_id)
        cap = max(caps[kills], lab.started(run_id) + 1)
        kind = rng.choice(["delay", "effects", "events"])
        if kind == "delay":
            delay = rng.uniform(0.05, 3.0)  # CLI start-up alone takes 1-1.5 s here
            param = f"{delay * 1000:.0f}ms"

            def due(t0: float = t0, delay: float = delay) -> bool:
                return time.monotonic() - t0 >= delay

            jitter = 0.0
        elif kind == "effects":
            jitter = rng.uniform(0, 0.02)
            param = f"+{jitter * 1000:.0f}ms"

            def due() -> bool:
                return False

        else:
            m = rng.randint(1, 30)
            jitter = rng.uniform(0, 0.005)
            param = f"m={m}"

            def due(seq0: int = seq0, m: int = m) -> bool:
                return lab.last_seq(run_id) - seq0 >= m

        wait_for(lambda cap=cap, due=due: lab.started(run_id) >= cap or due(), proc, WAIT_S)
        time.sleep(jitter)
        why = (
            f"{kind}({param}) cap {cap} at {(time.monotonic() - t0) * 1000:.0f}ms: "
            f"{lab.started(run_id)} tasks begun, seq {lab.last_seq(run_id)}"
        )
        if lab.kill(proc, run_id, why):
            kills += 1
        else:
            rc = proc.returncode
            assert rc == 0, f"{run_id}: exited {rc}\n{lab.output_of(proc)}"
    lab.resume_to_end(run_id, "--no-log")


@pytest.mark.timeout(180)
def test_sigkill_storm_during_runs(
    fault_seed: int, tmp_path: Path, reaper: list[subprocess.Popen[bytes]], figures: Any
) -> None:
    t0 = time.monotonic()
    lab = Lab(tmp_path, reaper, tmp_path / "storm.db")
    runs = [f"storm-{i}" for i in range(STORM_RUNS)]
    # The database and its schema first: a concurrent first open is scenario (d).
    lab.spawn("up", str(WORKFLOW), "-r", "warm-up", "--no-log").wait(timeout=WAIT_S)
    errors: list[BaseException] = []

    def drive(i: int) -> None:
        try:
            storm_one_run(lab, runs[i], random.Random(fault_seed * 100 + i), STORM_KILLS)
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(STORM_RUNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=170)
    notes = "\n".join(lab.kill_notes)
    if errors:
        raise AssertionError(f"kills so far:\n{notes}") from errors[0]

    log = lab.check_log()
    statuses = {run_id: lab.status(run_id) for run_id in lab.run_ids()}
    assert set(statuses.values()) == {"finished"}, statuses
    execs = lab.check_executions(abandoned_bound=True)
    kills = sum(lab.kills.values())
    assert kills >= STORM_RUNS, f"only {kills} kills landed:\n{notes}"
    print(notes, file=sys.stderr)
    figures(
        {
            "runs": len(runs),
            "kills": kills,
            "kills_planned": STORM_RUNS * STORM_KILLS,
            "processes": lab.spawned,
            **execs,
            **log,
            "time_s": round(time.monotonic() - t0, 1),
        }
    )


# ------------------------------------------------------------------ (b) killed time travel

TIME_TRAVEL_OPS = 10
OP_KINDS = ("rewind", "rewind-resume", "fork", "fork-run", "retry-task")
RUNS_TASKS = ("rewind-resume", "fork-run", "retry-task")


def time_travel_args(op: str, run_id: str, fork_id: str, rng: random.Random) -> list[str]:
    """The CLI arguments of `op` on `run_id` (a finished run of over 20 frames)."""
    frame = str(rng.randint(1, 10))
    if op == "rewind":
        return ["rewind", run_id, "--frame", frame, "--yes"]
    if op == "rewind-resume":
        return ["rewind", run_id, "--frame", frame, "--yes", "--resume"]
    if op == "fork":
        return ["fork", run_id, "--frame", frame, "-r", fork_id]
    if op == "fork-run":
        return ["fork", run_id, "--frame", frame, "-r", fork_id, "--run"]
    return ["retry-task", run_id, "--node", rng.choice(fault_nodes())]


def fault_nodes() -> list[str]:
    lanes = [f"lane-{lane}-{s}" for lane in range(4) for s in range(4)]
    return ["ingest-0", "ingest-1", *lanes, "merge", "publish-0", "publish-1"]


@pytest.mark.timeout(180)
def test_sigkill_during_rewind_fork_and_retry_task(
    fault_seed: int, tmp_path: Path, reaper: list[subprocess.Popen[bytes]], figures: Any
) -> None:
    t0 = time.monotonic()
    rng = random.Random(fault_seed + 1)
    lab = Lab(tmp_path, reaper, tmp_path / "timetravel.db")
    bases = ["base-0", "base-1"]
    for run_id in bases:
        proc = lab.spawn("up", str(WORKFLOW), "-r", run_id)
        assert proc.wait(timeout=WAIT_S) == 0, lab.output_of(proc)
    ops: Counter[str] = Counter()
    applied = 0
    exited_first = 0
    for i in range(TIME_TRAVEL_OPS):
        op = OP_KINDS[i % len(OP_KINDS)] if i < len(OP_KINDS) else rng.choice(OP_KINDS)
        target, fork_id = rng.choice(bases), f"fork-{i}"
        driven = fork_id if op == "fork-run" else target
        written = fork_id if op.startswith("fork") else target
        args = time_travel_args(op, target, fork_id, rng)
        seq0, execs0 = lab.last_seq(written), lab.executions(driven)
        kinds = ["delay", "write", "effects"] if op in RUNS_TASKS else ["delay", "write"]
        kind = rng.choice(kinds)
        proc = lab.spawn(*args)
        t_op = time.monotonic()
        if kind == "delay":
            delay = rng.uniform(0.3, 1.6)
            wait_for(lambda t_op=t_op, delay=delay: time.monotonic() - t_op >= delay, proc, 30)
            param = f"{delay * 1000:.0f}ms"
        elif kind == "write":
            wait_for(lambda w=written, s=seq0: lab.last_seq(w) > s, proc, 30)
            time.sleep(rng.uniform(0, 0.003))
            param = "first write"
        else:
            k = rng.randint(1, 6)
            wait_for(lambda d=driven, e=execs0, k=k: lab.executions(d) >= e + k, proc, 30)
            param = f"{k} executions"
        why = f"{' '.join(args)}: {kind}({param}) at {(time.monotonic() - t_op) * 1000:.0f}ms"
        ops[op] += 1
        if not lab.kill(proc, driven, why):
            exited_first += 1
            assert proc.wait(timeout=WAIT_S) == 0, f"{why}\n{lab.output_of(proc)}"
        if lab.last_seq(written) > seq0:
            applied += 1
        lab.check_log()
        for run_id in lab.run_ids():
            lab.resume_to_end(run_id)
        lab.check_log()

    log = lab.check_log()
    statuses = {run_id: lab.status(run_id) for run_id in lab.run_ids()}
    assert set(statuses.values()) == {"finished"}, statuses
    execs = lab.check_executions(abandoned_bound=False)
    with closing(lab.connect()) as conn:
        retries = dict(
            conn.execute(
                "SELECT type, COUNT(*) FROM _smithers_events WHERE type IN (?, ?) GROUP BY type",
                ("RetryTaskStarted", "RetryTaskFinished"),
            ).fetchall()
        )
    print("\n".join(lab.kill_notes), file=sys.stderr)
    figures(
        {
            "operations": dict(ops),
            "kills": sum(lab.kills.values()),
            "exited_before_kill": exited_first,
            "applied_before_kill": applied,
            "resumes": lab.resumes,
            "retry_task_started_finished": [
                retries.get("RetryTaskStarted", 0),
                retries.get("RetryTaskFinished", 0),
            ],
            **execs,
            **log,
            "time_s": round(time.monotonic() - t0, 1),
        }
    )


# ------------------------------------------------------------------ (c) a full file system

TMPFS_SIZE = "2m"


def mount_tmpfs(path: Path) -> None:
    """Mount a TMPFS_SIZE tmpfs on `path`, or skip the test saying why it cannot."""
    if shutil.which("mount") is None:
        pytest.skip("a full-disk scenario needs a small tmpfs: no `mount` command here")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(
            "a full-disk scenario needs a small tmpfs, and mounting one is not allowed here "
            f"(mount -t tmpfs exited {proc.returncode}: {proc.stderr.strip()})"
        )


def assert_clean_write_failure(lab: Lab, proc: subprocess.Popen[bytes], what: str) -> None:
    """`proc` ended with ``Error [DB_WRITE_FAILED]`` (exit 1) and no traceback."""
    rc = proc.wait(timeout=WAIT_S)
    output = lab.output_of(proc)
    assert rc == 1, f"{what}: exit {rc}, not the coded failure\n{output}"
    assert "Error [DB_WRITE_FAILED]" in output, f"{what}: not DB_WRITE_FAILED\n{output}"
    assert "Traceback" not in output, f"{what}: a traceback\n{output}"


@pytest.mark.timeout(120)
def test_full_disk_fails_cleanly_and_the_run_resumes_after_space_is_freed(
    tmp_path: Path, reaper: list[subprocess.Popen[bytes]], figures: Any
) -> None:
    t0 = time.monotonic()
    disk = tmp_path / "disk"
    disk.mkdir()
    mount_tmpfs(disk)
    try:
        lab = Lab(tmp_path, reaper, disk / "smithers.db")
        filler, marker = disk / "filler", tmp_path / "filled"
        fill_env = {FILL_ENV: str(filler), FILLED_ENV: str(marker)}
        logs = ["--log-dir", str(tmp_path / "logs")]  # the NDJSON mirror off the tmpfs

        # A task fills the disk mid-run: the engine's next write fails, coded.
        proc = lab.spawn("up", str(WORKFLOW), "-r", "full", *logs, **fill_env)
        assert_clean_write_failure(lab, proc, "the run that filled the disk")
        lab.kills["full"] += 1  # a fault, bounded like a kill
        assert marker.exists(), "the disk was never filled"
        free_when_full = shutil.disk_usage(disk).free  # a figure: SQLite may free some
        log_full = lab.check_log()
        seq_at_failure = lab.last_seq("full")
        assert seq_at_failure > 0, "nothing was written before the disk filled"
        assert lab.status("full") != "finished"

        # Still full: a resume and a new run fail the same way (or finish in WAL space
        # already allocated); the log stays intact either way.
        attempts = {"resume": ["--resume", "full"], "new run": [str(WORKFLOW), "-r", "new"]}
        while_full: dict[str, str] = {}
        for what, args in attempts.items():
            proc = lab.spawn("up", *args, *logs, **fill_env)
            if proc.wait(timeout=WAIT_S) == 0:
                while_full[what] = "finished"
                continue
            assert_clean_write_failure(lab, proc, f"a {what} on the full disk")
            lab.kills["full" if what == "resume" else "new"] += 1
            while_full[what] = "DB_WRITE_FAILED"
            lab.check_log()

        # Space freed: every run resumes to its end.
        filler.unlink()
        tries = {run_id: lab.resume_to_end(run_id, *logs) for run_id in lab.run_ids()}
        log = lab.check_log()
        execs = lab.check_executions(abandoned_bound=False)
    finally:
        subprocess.run(["umount", str(disk)], check=False, capture_output=True)
    figures(
        {
            "tmpfs": TMPFS_SIZE,
            "free_bytes_when_full": free_when_full,
            "seq_at_failure": seq_at_failure,
            "integrity_when_full": log_full["integrity"],
            "while_full": while_full,
            "resume_tries_after_freeing": tries,
            "faults": sum(lab.kills.values()),
            **execs,
            **log,
            "time_s": round(time.monotonic() - t0, 1),
        }
    )


# ------------------------------------------------------------------ (d) concurrent writers

WRITERS = 16


def max_runs_active_at_once(lab: Lab) -> int:
    """The most runs whose first-to-last event spans overlap, from their timestamps."""
    with closing(lab.connect()) as conn:
        spans = conn.execute(
            "SELECT MIN(timestamp_ms), MAX(timestamp_ms) FROM _smithers_events GROUP BY run_id"
        ).fetchall()
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    active = most = 0
    for _, delta in edges:
        active += delta
        most = max(most, active)
    return most


@pytest.mark.timeout(180)
def test_sixteen_concurrent_writers_on_one_new_database(
    tmp_path: Path, reaper: list[subprocess.Popen[bytes]], figures: Any
) -> None:
    t0 = time.monotonic()
    lab = Lab(tmp_path, reaper, tmp_path / "shared.db")  # created by the writers' race
    runs = [f"writer-{i:02d}" for i in range(WRITERS)]
    procs = [lab.spawn("up", str(WORKFLOW), "-r", run_id, "--no-log") for run_id in runs]
    codes = [proc.wait(timeout=WAIT_S) for proc in procs]
    elapsed = round(time.monotonic() - t0, 1)
    failed = {
        run_id: lab.output_of(proc)
        for run_id, proc, rc in zip(runs, procs, codes, strict=True)
        if rc != 0
    }
    assert not failed, f"{len(failed)} of {WRITERS} writers failed: {failed}"

    log = lab.check_log()
    assert lab.run_ids() == runs
    overlap = max_runs_active_at_once(lab)
    assert overlap >= 2, "the writers never overlapped: nothing concurrent was tested"
    tries = {run_id: lab.resume_to_end(run_id, "--no-log") for run_id in runs}
    assert set(tries.values()) == {0}, f"runs left unfinished: {tries}"
    execs = lab.check_executions(abandoned_bound=True)
    assert execs["executions"] == WRITERS * TASKS, "a task ran twice, or never, without a kill"
    figures(
        {
            "writers": WRITERS,
            "runs_finished": len(tries),
            "max_runs_active_at_once": overlap,
            **execs,
            **log,
            "all_done_s": elapsed,
            "time_s": round(time.monotonic() - t0, 1),
        }
    )
