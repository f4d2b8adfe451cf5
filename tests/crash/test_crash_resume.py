"""Crash harness: a 50-task workflow in a real subprocess, killed with SIGKILL and resumed.

`driver.py` runs `crash_workflow.py` (each task appends ``<node_id> <pid>`` to a side
file). The tests kill it at seeded random moments, resume it until it finishes, then
check the log and the side file against an uninterrupted reference run:

- the run finished; seqs are 1..N; activations count 1, 2, 3, …;
- every attempt that started ended exactly once: finished in its own activation, or
  closed as ``abandoned`` by the very next activation; no NodeStarted after NodeFinished;
- each task's effect is recorded once, plus at most one per abandoned attempt, and only
  by the processes whose activations started those attempts;
- the outputs equal the reference run's; the runs index agrees; no lease is left.

Also: a process killed while blocked on the database lock (held by this test); two
resumers started at the same moment (exactly one wins); and the same race forced into
the interleaving where the loser checks the run between the winner's claim and its
lease write (``SMITHERS_CRASH_LEASE_DELAY_MS``, see `driver.py`).
"""

from __future__ import annotations

import bisect
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from smithers.eventstore import StoredEvent, decode_event, decode_json
from smithers.eventstore.events import NodeCancelled, NodeFinished, NodeStarted, RunStarted
from smithers.projections import fold_stored

pytestmark = pytest.mark.slow  # runs in CI (see tests/conftest.py)

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.py"
EFFECTS_ENV = "SMITHERS_CRASH_EFFECTS"
TASKS = 50
MAX_CONCURRENCY = 4  # run_workflow's default, used by the driver
SEEDED_RUNS = 6
KILLS_PER_RUN = 6
SAFE_CAP = 46
"""Once this many distinct tasks began, only ``publish-5`` … ``output`` are left: a chain
of 4+ tasks that sleep 74 ms in all, longer than MAX_JITTER_S."""
MAX_JITTER_S = 0.03
WAIT_S = 60.0
LOSER_CODES = ("RUN_RESUME_CLAIM_FAILED", "RUN_OWNER_ALIVE")


# ------------------------------------------------------------------ processes and files


@dataclass
class Harness:
    """One run of the crash workflow: its database, side file and processes."""

    root: Path
    reaper: list[subprocess.Popen[bytes]]
    run_id: str = "crash-run"
    spawned: int = 0
    kills: list[str] = field(default_factory=list)
    killed_pids: list[int] = field(default_factory=list)
    numbers: dict[int, int] = field(default_factory=dict)
    """Spawn number of each process, by pid: names its ``procN.out``/``procN.err`` files."""

    @property
    def db(self) -> Path:
        return self.root / "smithers.db"

    @property
    def effects(self) -> Path:
        return self.root / "effects.txt"

    def spawn(self, mode: str | None = None, **env_extra: str) -> subprocess.Popen[bytes]:
        """Start the driver; `mode` defaults to resume once the run has events."""
        if mode is None:
            mode = "resume" if self.last_seq() > 0 else "start"
        self.spawned += 1
        n = self.spawned
        env = {**os.environ, EFFECTS_ENV: str(self.effects), **env_extra}
        env.pop("SMITHERS_DB", None)
        with (
            open(self.root / f"proc{n}.out", "wb") as out,
            open(self.root / f"proc{n}.err", "wb") as err,
        ):
            proc = subprocess.Popen(
                [sys.executable, str(DRIVER), mode, str(self.db), self.run_id],
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=err,
            )
        self.numbers[proc.pid] = n
        self.reaper.append(proc)
        return proc

    def output_of(self, proc: subprocess.Popen[bytes]) -> tuple[str, str]:
        n = self.numbers[proc.pid]
        out = (self.root / f"proc{n}.out").read_text(errors="replace")
        err = (self.root / f"proc{n}.err").read_text(errors="replace")
        return out, err

    def wait_ok(self, proc: subprocess.Popen[bytes]) -> None:
        rc = proc.wait(timeout=WAIT_S)
        out, err = self.output_of(proc)
        assert rc == 0, f"driver exited {rc}\nstdout: {out}\nstderr: {err}\nkills: {self.kills}"

    def effect_count(self) -> int:
        """Lines in the side file: task executions begun so far."""
        try:
            return self.effects.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def started_count(self) -> int:
        """Distinct tasks in the side file: tasks executed at least once so far."""
        try:
            lines = self.effects.read_bytes().splitlines()
        except FileNotFoundError:
            return 0
        return len({line.split(b" ")[0] for line in lines})

    def last_seq(self) -> int:
        """The run's last seq as another process sees it (0 before the first append)."""
        if not self.db.exists():
            return 0
        try:
            with closing(sqlite3.connect(self.db, timeout=0.5)) as conn:
                row = conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?",
                    (self.run_id,),
                ).fetchone()
        except sqlite3.OperationalError:  # no table yet, or the schema is being created
            return 0
        return int(row[0])

    def wait_until(self, cond: Any, proc: subprocess.Popen[bytes], what: str) -> None:
        """Poll `cond` every millisecond; fail if `proc` exits or WAIT_S pass first."""
        deadline = time.monotonic() + WAIT_S
        while not cond():
            if proc.poll() is not None:
                out, err = self.output_of(proc)
                raise AssertionError(
                    f"the driver exited ({proc.returncode}) before {what}\n"
                    f"stdout: {out}\nstderr: {err}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.001)

    def kill(self, proc: subprocess.Popen[bytes], why: str) -> None:
        os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=WAIT_S)
        assert rc == -signal.SIGKILL, f"{why}: the driver exited {rc} before the kill"
        self.kills.append(why)
        self.killed_pids.append(proc.pid)


def kill_at_random(h: Harness, proc: subprocess.Popen[bytes], rng: random.Random, cap: int) -> bool:
    """Kill `proc` at a moment drawn from `rng`; return False if it exited first.

    Three kinds of moment: a delay after the spawn (often during start-up or the claim),
    a jitter after the `cap`-th distinct task began (a task is in flight, or between
    ticks), or the m-th event appended since the spawn (right after an append: the
    claim, a tick). Whatever the kind, the kill comes once `cap` distinct tasks began.
    """
    t0 = time.monotonic()
    seq0 = h.last_seq()
    kind = rng.choice(["delay", "effects", "events"])
    if kind == "delay":
        delay = rng.uniform(0.02, 0.4)
        param, jitter = f"{delay * 1000:.0f}ms", 0.0

        def due() -> bool:
            return time.monotonic() - t0 >= delay

    elif kind == "effects":
        # Past SAFE_CAP the rest of the run may take less than the jitter.
        jitter = rng.uniform(0, MAX_JITTER_S) if cap <= SAFE_CAP else 0.0
        param = f"+{jitter * 1000:.0f}ms"

        def due() -> bool:
            return False

    else:
        m = rng.randint(1, 40)
        param, jitter = f"m={m}", rng.uniform(0, 0.005)

        def due() -> bool:
            return h.last_seq() - seq0 >= m

    while True:
        if proc.poll() is not None:
            return False
        if h.started_count() >= cap:
            break
        if due():
            break
        time.sleep(0.001)
    time.sleep(jitter)
    elapsed = (time.monotonic() - t0) * 1000
    why = (
        f"{kind}({param}) cap {cap}: at {elapsed:.0f}ms, {h.started_count()} tasks begun, "
        f"{h.effect_count()} executions, seq {h.last_seq()}"
    )
    if proc.poll() is not None:
        return False
    h.kill(proc, why)
    return True


def crash_until_finished(h: Harness, rng: random.Random, quota: int) -> None:
    """Start the run, kill it `quota` times at random moments, then let it finish.

    Each kill comes at the latest when its cap of distinct tasks have begun: `quota`
    distinct caps up to `SAFE_CAP`, so kills spread over the whole workflow and all come
    while tasks remain (the last ones run one after another, for over 100 ms).
    """
    caps = sorted(rng.sample(range(1, SAFE_CAP + 1), quota))
    while True:
        proc = h.spawn()
        if len(h.kills) < quota:
            cap = max(caps[len(h.kills)], h.started_count() + 1)
            if kill_at_random(h, proc, rng, cap):
                continue
        h.wait_ok(proc)
        return


# ------------------------------------------------------------------ reading the results


def read_rows(db: Path, run_id: str) -> list[StoredEvent]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT position, run_id, seq, type, timestamp_ms, payload FROM _smithers_events "
            "WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
    return [
        StoredEvent(
            position=r[0], run_id=r[1], seq=r[2], type=r[3], timestamp_ms=r[4], data=bytes(r[5])
        )
        for r in rows
    ]


def read_effects(path: Path) -> dict[str, list[int]]:
    """Pids that executed each node, in the order the executions began."""
    by_node: dict[str, list[int]] = defaultdict(list)
    for line in path.read_text().splitlines():
        node_id, pid = line.split(" ")
        by_node[node_id].append(int(pid))
    return dict(by_node)


def count_type(db: Path, run_id: str, type_name: str) -> int:
    return sum(r.type == type_name for r in read_rows(db, run_id))


@dataclass
class Attempt:
    activation: int
    end: str | None = None
    end_activation: int | None = None


def check_run(h: Harness, reference: dict[str, Any]) -> dict[str, int]:
    """Assert every property of a finished crash run; return a few counts."""
    note = f"kills: {h.kills}"
    rows = read_rows(h.db, h.run_id)
    seqs = [r.seq for r in rows]
    assert seqs == list(range(1, len(rows) + 1)), f"seqs not 1..N: {seqs}; {note}"
    events = [decode_event(r.type, r.data) for r in rows]
    assert all(e is not None for e in events), "an unknown event type in the log"
    types = [r.type for r in rows]

    # Activations: one RunStarted per claim, numbered 1, 2, 3, …
    starts = [(r.seq, e) for r, e in zip(rows, events, strict=True) if isinstance(e, RunStarted)]
    assert starts[0][0] == 1, "the log does not begin with RunStarted"
    assert [e.activation for _, e in starts] == list(range(1, len(starts) + 1)), note
    start_seqs = [seq for seq, _ in starts]
    pid_of = {e.activation: e.pid for _, e in starts}
    activation_of_pid = {pid: a for a, pid in pid_of.items()}
    assert len(activation_of_pid) == len(pid_of), f"two activations with one pid: {pid_of}"

    def activation_at(seq: int) -> int:
        return bisect.bisect_right(start_seqs, seq)

    # The end: finished once, nothing failed or cancelled by a crash.
    assert types[-1] == "RunFinished", f"last event {types[-1]}; {note}"
    assert types.count("RunFinished") == 1
    assert not {"RunFailed", "RunCancelled", "NodeFailed", "NodeRetrying"} & set(types), note
    state = fold_stored(h.run_id, rows)
    assert state.status == "finished"
    assert state.activation == len(starts)
    outputs = {k: decode_json(v) for k, v in state.outputs().items()}
    assert outputs == reference, f"outputs differ from the uninterrupted run; {note}"

    # Attempts: each started attempt ends once, finished where it started or abandoned
    # by the next activation; nothing starts again once finished.
    attempts: dict[tuple[str, int | None], Attempt] = {}
    finished_in: dict[str, int] = {}
    for seq, event in zip(seqs, events, strict=True):
        a = activation_at(seq)
        if isinstance(event, NodeStarted):
            key = (event.node_id, event.attempt)
            assert event.node_id not in finished_in, f"NodeStarted after NodeFinished: {key}"
            assert key not in attempts, f"attempt {key} started twice"
            attempts[key] = Attempt(activation=a)
        elif isinstance(event, NodeFinished):
            att = attempts.get((event.node_id, event.attempt))
            assert att is not None, f"{event.node_id}: NodeFinished without NodeStarted"
            assert att.end is None, f"{event.node_id}: attempt {event.attempt} ended twice"
            assert att.activation == a, f"{event.node_id} finished by another activation"
            att.end, att.end_activation = "finished", a
            finished_in[event.node_id] = a
        elif isinstance(event, NodeCancelled):
            key = (event.node_id, event.attempt)
            assert event.reason == "abandoned", f"{key} cancelled: {event.reason}"
            att = attempts.get(key)
            assert att is not None, f"{key}: abandoned but never started"
            assert att.end is None, f"{key}: abandoned after it ended"
            assert att.activation == a - 1, f"{key} started in {att.activation}, closed in {a}"
            att.end, att.end_activation = "abandoned", a
    still_open = [key for key, att in attempts.items() if att.end is None]
    assert not still_open, f"attempts never ended: {still_open}"
    assert set(finished_in) == set(reference)

    # Effects: once per task, plus at most one per abandoned attempt, each by a process
    # whose activation started that attempt.
    effects = read_effects(h.effects)
    assert set(effects) == set(reference), "a task never ran, or an unknown one did"
    extras = 0
    for node_id, pids in effects.items():
        node_attempts = {att.activation: att for (n, _), att in attempts.items() if n == node_id}
        assert len(pids) == len(set(pids)), f"{node_id} ran twice in one process: {pids}"
        assert pids.count(pid_of[finished_in[node_id]]) == 1, f"{node_id}: {pids}; {pid_of}"
        for pid in pids:
            a = activation_of_pid.get(pid)
            assert a is not None, f"{node_id} ran in pid {pid}, which never claimed the run"
            att = node_attempts.get(a)
            assert att is not None, f"{node_id} ran in activation {a} without NodeStarted"
            assert att.end in ("finished", "abandoned")
        abandoned = sum(att.end == "abandoned" for att in node_attempts.values())
        assert len(pids) - 1 <= abandoned, f"{node_id}: {len(pids)} runs, {abandoned} abandoned"
        extras += len(pids) - 1
    assert extras <= len(h.kills) * MAX_CONCURRENCY, f"{extras} extra executions; {note}"

    # The operational tables agree with the log.
    with closing(sqlite3.connect(h.db)) as conn:
        index = conn.execute(
            "SELECT status, last_seq FROM _smithers_runs WHERE run_id = ?", (h.run_id,)
        ).fetchall()
        leases = conn.execute(
            "SELECT owner_id, pid FROM _smithers_leases WHERE run_id = ?", (h.run_id,)
        ).fetchall()
    assert index == [("finished", len(rows))]
    # The finishing process released its lease (only a killed one may leave one behind).
    assert {pid for _, pid in leases} <= set(h.killed_pids), f"leases left: {leases}"
    return {
        "activations": len(starts),
        "abandoned": sum(att.end == "abandoned" for att in attempts.values()),
        "extra_executions": extras,
    }


# ------------------------------------------------------------------ the reference run


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Outputs of an uninterrupted run, in a database of its own."""
    reaper: list[subprocess.Popen[bytes]] = []
    h = Harness(tmp_path_factory.mktemp("reference"), reaper)
    try:
        h.wait_ok(h.spawn("start"))
    finally:
        for proc in reaper:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=WAIT_S)
    rows = read_rows(h.db, h.run_id)
    state = fold_stored(h.run_id, rows)
    assert state.status == "finished"
    outputs = {k: decode_json(v) for k, v in state.outputs().items()}
    assert len(outputs) == TASKS
    counts = Counter(line.split()[0] for line in h.effects.read_text().splitlines())
    assert counts == dict.fromkeys(outputs, 1), "a task ran twice in an uninterrupted run"
    return outputs


# ------------------------------------------------------------------ the tests


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", range(SEEDED_RUNS))
def test_killed_at_random_moments_and_resumed_until_finished(
    case: int,
    crash_seed: int,
    tmp_path: Path,
    reaper: list[subprocess.Popen[bytes]],
    reference: dict[str, Any],
) -> None:
    seed = crash_seed + case
    print(f"kill schedule seed {seed}")
    h = Harness(tmp_path, reaper)

    crash_until_finished(h, random.Random(seed), KILLS_PER_RUN)

    print("\n".join(h.kills))
    assert len(h.kills) == KILLS_PER_RUN, f"seed {seed}: the run finished before its kills"
    summary = check_run(h, reference)
    print(summary)


@pytest.mark.timeout(120)
def test_killed_while_waiting_on_the_database_lock(
    tmp_path: Path, reaper: list[subprocess.Popen[bytes]], reference: dict[str, Any]
) -> None:
    h = Harness(tmp_path, reaper)
    proc = h.spawn("start")
    h.wait_until(lambda: h.effect_count() >= 8, proc, "8 tasks began")

    # Running: hold the write lock until the engine blocks on its next append.
    with closing(sqlite3.connect(h.db, timeout=10, isolation_level=None)) as lock:
        lock.execute("BEGIN EXCLUSIVE")
        seq_locked = h.last_seq()  # readers still read in WAL mode
        time.sleep(0.2)  # tasks in flight end; nothing new can start without an append
        effects_locked = h.effect_count()
        time.sleep(0.3)
        assert proc.poll() is None, "the driver gave up on the lock too early"
        assert h.effect_count() == effects_locked, "a task began while the log was locked"
        assert h.last_seq() == seq_locked
        h.kill(proc, f"blocked on the lock at seq {seq_locked}")
        assert h.last_seq() == seq_locked
        lock.execute("ROLLBACK")

    # Resuming: the claim itself waits on the lock.
    with closing(sqlite3.connect(h.db, timeout=10, isolation_level=None)) as lock:
        lock.execute("BEGIN EXCLUSIVE")
        proc = h.spawn("resume")
        time.sleep(1.0)  # start-up, fold, lease check: then the claim blocks
        assert proc.poll() is None, "the resumer gave up on the lock too early"
        assert h.effect_count() == effects_locked, "a task began before the claim"
        h.kill(proc, f"resume blocked on the lock at seq {seq_locked}")
        assert h.last_seq() == seq_locked
        lock.execute("ROLLBACK")

    assert count_type(h.db, h.run_id, "RunStarted") == 1
    h.wait_ok(h.spawn("resume"))

    summary = check_run(h, reference)
    assert summary["activations"] == 2
    print(summary)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", range(3))
def test_two_concurrent_resumers_one_wins(
    case: int,
    crash_seed: int,
    tmp_path: Path,
    reaper: list[subprocess.Popen[bytes]],
    reference: dict[str, Any],
) -> None:
    seed = crash_seed + 1000 + case
    rng = random.Random(seed)
    print(f"seed {seed}")
    h = Harness(tmp_path, reaper)
    proc = h.spawn("start")
    k = rng.randint(5, 25)
    h.wait_until(lambda: h.effect_count() >= k, proc, f"{k} tasks began")
    time.sleep(rng.uniform(0, 0.02))
    h.kill(proc, f"after {k} effects")
    before = count_type(h.db, h.run_id, "RunStarted")

    a, b = h.spawn("resume"), h.spawn("resume")
    codes = [p.wait(timeout=WAIT_S) for p in (a, b)]

    outputs = [h.output_of(p) for p in (a, b)]
    assert sorted(codes) == [0, 2], f"exit codes {codes}: {outputs}"
    loser_err = outputs[codes.index(2)][1]
    assert any(f"SMITHERS_ERROR {code}" in loser_err for code in LOSER_CODES), loser_err
    assert count_type(h.db, h.run_id, "RunStarted") == before + 1, "both resumers claimed"
    summary = check_run(h, reference)
    print(summary)


@pytest.mark.timeout(120)
def test_resumer_refused_while_the_claimant_has_not_written_its_lease(
    tmp_path: Path, reaper: list[subprocess.Popen[bytes]], reference: dict[str, Any]
) -> None:
    """The two resumers again, in the one interleaving the random timing rarely hits.

    A appends its claim, then pauses 600 ms before it writes its lease (a process
    descheduled between two transactions; under its 1 s heartbeat). B checks the run in
    that pause: the log names A, alive, as the owner; the lease still names the killed
    process. B must be refused, as when A's lease is there.
    """
    h = Harness(tmp_path, reaper)
    proc = h.spawn("start")
    h.wait_until(lambda: h.effect_count() >= 10, proc, "10 tasks began")
    h.kill(proc, "after 10 effects")
    before = count_type(h.db, h.run_id, "RunStarted")

    go = tmp_path / "go"
    b = h.spawn("resume", SMITHERS_CRASH_GO_FILE=str(go))  # loads, then waits for `go`
    a = h.spawn("resume", SMITHERS_CRASH_LEASE_DELAY_MS="600")

    def claimed() -> bool:
        return count_type(h.db, h.run_id, "RunStarted") > before

    h.wait_until(claimed, a, "A's claim")
    go.touch()
    codes = {"A": a.wait(timeout=WAIT_S), "B": b.wait(timeout=WAIT_S)}

    (_, a_err), (_, b_err) = h.output_of(a), h.output_of(b)
    activations = count_type(h.db, h.run_id, "RunStarted") - before
    finishes = count_type(h.db, h.run_id, "RunFinished")
    effects = Counter(line.split()[0] for line in h.effects.read_text().splitlines())
    dupes = sorted(node for node, n in effects.items() if n > 2)
    assert activations == 1, (
        f"B claimed the run while A (alive, claim in the log, lease not yet written) "
        f"owned it: {activations} activations added, exit codes {codes}, "
        f"{finishes} RunFinished, run 3 times: {dupes}; B stderr: {b_err!r}"
    )
    assert codes == {"A": 0, "B": 2}, f"exit codes {codes}; A: {a_err!r}; B: {b_err!r}"
    assert any(f"SMITHERS_ERROR {code}" in b_err for code in LOSER_CODES), b_err
    check_run(h, reference)
