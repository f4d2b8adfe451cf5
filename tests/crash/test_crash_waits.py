"""Crash harness for runs that wait (issue 9, "Tests"): SIGKILL around parks and decisions.

`driver.py` runs `wait_workflow.py` (tasks, an approval, more tasks, a signal wait, a
timer the process holds on, more tasks) in a subprocess. The tests decide and signal
whenever the run parks (exit 3), as ``smithers approve``/``signal`` will, and kill the
process:

- while it holds in-process on a timer: the resume waits for the same timer (one
  `TimerCreated`, one ``firesAtMs``) and finishes;
- while parked there is no process: the log must be complete (ends with the
  ``waiting-*`` status, no attempt open, no owner, no lease), and a later resume
  finishes the run;
- at random moments of the activations that resume after a decision or a signal.

Afterwards the run finished with the outputs of an uninterrupted run; every attempt
that started ended once (in its own activation, or ``abandoned`` by the next); each
task's effect happened once plus at most once per abandoned attempt; the decision and
the signal are each recorded once and applied once; the timer was created once.
"""

from __future__ import annotations

import bisect
import functools
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

import anyio
import pytest
from smithers.eventstore import StoredEvent, decode_event, decode_json
from smithers.eventstore.events import (
    NodeCancelled,
    NodeFinished,
    NodeStarted,
    RunStarted,
    RunStatusChanged,
    TimerCreated,
    TimerFired,
)
from smithers.projections import RunState, fold_stored

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.py"
WORKFLOW_FILE = "wait_workflow.py"
TASKS = {
    *(f"ingest-{i}" for i in range(4)),
    *(f"lane-{lane}-{s}" for lane in range(3) for s in range(3)),
    *(f"publish-{i}" for i in range(3)),
    "output",
}
"""The compute tasks of `wait_workflow.py` (each leaves an effect)."""
WAIT_NODES = ("approve", "ci", "soak")
CI_PAYLOAD = {"build": 7}
WAIT_S = 60.0
SEEDED_RUNS = 4
KILLS_PER_RUN = 6
MAX_SPAWNS = 60


# ------------------------------------------------------------------ processes and files


@dataclass
class Harness:
    """One run of the waiting workflow: its database, side file and processes."""

    root: Path
    reaper: list[subprocess.Popen[bytes]]
    soak_ms: int = 800
    run_id: str = "wait-run"
    spawned: int = 0
    kills: list[str] = field(default_factory=list)
    killed_pids: list[int] = field(default_factory=list)
    parks: list[str] = field(default_factory=list)
    numbers: dict[int, int] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.root / "smithers.db"

    @property
    def effects(self) -> Path:
        return self.root / "effects.txt"

    def spawn(self) -> subprocess.Popen[bytes]:
        mode = "resume" if self.last_seq() > 0 else "start"
        self.spawned += 1
        n = self.spawned
        env = {
            **os.environ,
            "SMITHERS_CRASH_EFFECTS": str(self.effects),
            "SMITHERS_CRASH_WORKFLOW": WORKFLOW_FILE,
            "SMITHERS_CRASH_SOAK_MS": str(self.soak_ms),
        }
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

    def output_of(self, proc: subprocess.Popen[bytes]) -> str:
        n = self.numbers[proc.pid]
        out = (self.root / f"proc{n}.out").read_text(errors="replace")
        err = (self.root / f"proc{n}.err").read_text(errors="replace")
        return f"stdout: {out}\nstderr: {err}\nkills: {self.kills}"

    def effect_count(self) -> int:
        try:
            return self.effects.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def last_seq(self) -> int:
        if not self.db.exists():
            return 0
        try:
            with closing(sqlite3.connect(self.db, timeout=0.5)) as conn:
                row = conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?",
                    (self.run_id,),
                ).fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0])

    def rows(self) -> list[StoredEvent]:
        with closing(sqlite3.connect(self.db)) as conn:
            rows = conn.execute(
                "SELECT position, run_id, seq, type, timestamp_ms, payload "
                "FROM _smithers_events WHERE run_id = ? ORDER BY seq",
                (self.run_id,),
            ).fetchall()
        return [
            StoredEvent(
                position=r[0], run_id=r[1], seq=r[2], type=r[3], timestamp_ms=r[4], data=bytes(r[5])
            )
            for r in rows
        ]

    def state(self) -> RunState:
        return fold_stored(self.run_id, self.rows())

    def count(self, type_name: str) -> int:
        return sum(r.type == type_name for r in self.rows())

    def leases(self) -> list[tuple[str, int]]:
        with closing(sqlite3.connect(self.db)) as conn:
            return conn.execute(
                "SELECT owner_id, pid FROM _smithers_leases WHERE run_id = ?", (self.run_id,)
            ).fetchall()

    def kill(self, proc: subprocess.Popen[bytes], why: str) -> bool:
        """SIGKILL `proc`; False if it exited on its own first (it parked or ended in
        the instant between the last look and the signal: not a kill)."""
        os.kill(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=WAIT_S)
        if rc != -signal.SIGKILL:
            assert rc in (0, 1, 2, 3), f"{why}: the driver exited {rc}"
            return False
        self.kills.append(why)
        self.killed_pids.append(proc.pid)
        return True

    def wait_until(self, cond: Any, proc: subprocess.Popen[bytes], what: str) -> bool:
        """Poll `cond` every ms; False if `proc` exits first; fail after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while not cond():
            if proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.001)
        return True

    def settle(self, proc: subprocess.Popen[bytes], decisions: Any) -> bool:
        """Wait for `proc` to exit; if it parked, check the log and decide. True: finished."""
        rc = proc.wait(timeout=WAIT_S)
        if rc == 0:
            return True
        assert rc == 3, f"driver exited {rc}\n{self.output_of(proc)}"
        check_parked(self, proc.pid)
        decide(self, decisions)
        return False


def check_parked(h: Harness, pid: int) -> None:
    """A parked run's log is complete: nothing to lose if the machine died now."""
    rows = h.rows()
    last = decode_event(rows[-1].type, rows[-1].data)
    assert isinstance(last, RunStatusChanged), f"a parked log ends with {rows[-1].type}"
    assert last.status.startswith("waiting-")
    state = fold_stored(h.run_id, rows)
    assert state.status == last.status
    assert state.owner_id == ""  # anyone may resume it
    assert not [k for k, rec in state.nodes.items() if rec.state == "running"]
    assert state.waiting(), "parked with nothing waiting"
    assert pid not in {p for _, p in h.leases()}, "a parked process left its lease"
    h.parks.append(f"{last.status} at seq {state.seq}")


def decide(h: Harness, decisions: Any) -> None:
    """Decide and signal what the parked run waits for, once each (as a person would)."""
    state = h.state()
    for rec in state.pending_approvals():
        anyio.run(functools.partial(decisions.approve, h.run_id, rec.node_id, db=h.db))
    for rec in state.waiting():
        if rec.state == "waiting-event" and rec.wait is not None and not rec.wait.received:
            call = functools.partial(decisions.signal, h.run_id, "ci.done", CI_PAYLOAD, db=h.db)
            anyio.run(call)


def kill_soon(h: Harness, proc: subprocess.Popen[bytes], rng: random.Random) -> bool:
    """Kill `proc` at a random moment of its activation; False if it exited first.

    Right after its m-th append, once it began its k-th task, or after a delay (start-up,
    the claim, a tick, a task in flight, the hold on the timer).
    """
    seq0, eff0 = h.last_seq(), h.effect_count()
    kind = rng.choice(["appends", "effects", "delay"])
    if kind == "appends":
        m = rng.randint(1, 14)
        ok = h.wait_until(lambda: h.last_seq() >= seq0 + m, proc, f"{m} appends")
        what = f"after append {m} (seq {seq0} + {m})"
    elif kind == "effects":
        k = rng.randint(1, 6)
        ok = h.wait_until(lambda: h.effect_count() >= eff0 + k, proc, f"{k} effects")
        what = f"after task {k} began"
    else:
        delay = rng.uniform(0.05, 1.5)
        t_end = time.monotonic() + delay
        ok = h.wait_until(lambda: time.monotonic() >= t_end, proc, "the delay")
        what = f"after {delay:.2f}s"
    if not ok:
        return False
    time.sleep(rng.uniform(0, 0.01))
    if proc.poll() is not None:
        return False
    return h.kill(proc, f"{what}: seq {h.last_seq()}, {h.effect_count()} executions")


# ------------------------------------------------------------------ the checks


@dataclass
class Attempt:
    activation: int
    end: str | None = None


def check_waits_run(h: Harness, reference: dict[str, Any]) -> dict[str, int]:
    """Assert every property of a finished waiting run; return a few counts."""
    note = f"kills: {h.kills}; parks: {h.parks}"
    rows = h.rows()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), note
    events = [decode_event(r.type, r.data) for r in rows]
    assert all(e is not None for e in events), "an unknown event type in the log"
    types = [r.type for r in rows]
    assert types[-1] == "RunFinished", note
    assert types.count("RunFinished") == 1
    assert not {"RunFailed", "RunCancelled", "NodeFailed", "NodeRetrying"} & set(types), note
    state = fold_stored(h.run_id, rows)
    assert state.status == "finished"

    starts = [(r.seq, e) for r, e in zip(rows, events, strict=True) if isinstance(e, RunStarted)]
    assert [e.activation for _, e in starts] == list(range(1, len(starts) + 1)), note
    start_seqs = [seq for seq, _ in starts]
    pid_of = {e.activation: e.pid for _, e in starts}
    activation_of_pid = {pid: a for a, pid in pid_of.items()}

    # Attempts: each ends once, where it started or abandoned by the next activation.
    attempts: dict[tuple[str, int], Attempt] = {}
    finished_in: dict[str, int] = {}
    for r, event in zip(rows, events, strict=True):
        a = bisect.bisect_right(start_seqs, r.seq)
        if isinstance(event, NodeStarted):
            key = (event.node_id, event.attempt)
            assert event.node_id not in finished_in, f"{key} started after it finished; {note}"
            assert key not in attempts, f"attempt {key} started twice; {note}"
            attempts[key] = Attempt(activation=a)
        elif isinstance(event, NodeFinished):
            att = attempts[(event.node_id, event.attempt)]
            assert att.end is None, (event.node_id, note)
            assert att.activation == a, (event.node_id, note)
            att.end = "finished"
            finished_in[event.node_id] = a
        elif isinstance(event, NodeCancelled):
            assert event.reason == "abandoned", (event, note)
            att = attempts[(event.node_id, event.attempt or 0)]
            assert att.end is None, (event.node_id, note)
            assert att.activation == a - 1, (event.node_id, note)
            att.end = "abandoned"
    assert not [k for k, att in attempts.items() if att.end is None], note
    assert set(finished_in) == TASKS | set(WAIT_NODES)

    # Effects: once per task plus at most once per abandoned attempt, by its activation.
    by_node: dict[str, list[int]] = defaultdict(list)
    for line in h.effects.read_text().splitlines():
        node_id, pid = line.split(" ")
        by_node[node_id].append(int(pid))
    assert set(by_node) == TASKS
    extras = 0
    for node_id, pids in by_node.items():
        node_attempts = {att.activation: att for (n, _), att in attempts.items() if n == node_id}
        assert pids.count(pid_of[finished_in[node_id]]) == 1, (node_id, pids, note)
        for pid in pids:
            assert activation_of_pid.get(pid) in node_attempts, (node_id, pid, note)
        abandoned = sum(att.end == "abandoned" for att in node_attempts.values())
        assert len(pids) - 1 <= abandoned, (node_id, pids, note)
        extras += len(pids) - 1

    # Waits: asked once, decided once, applied once; the timer created and fired once.
    for node_id in WAIT_NODES:
        assert [k for k in attempts if k[0] == node_id] == [(node_id, 1)], (node_id, note)
    counts = Counter(types)
    assert counts["ApprovalRequested"] == 1, note
    assert counts["NodeWaitingApproval"] == 1, note
    assert counts["ApprovalGranted"] == 1, note
    assert counts["NodeWaitingEvent"] == 1, note
    assert counts["SignalReceived"] == 1, note
    assert [s.delivered_to for s in state.signals] == [("ci", 0)]
    created = [e for e in events if isinstance(e, TimerCreated)]
    fired = [e for e in events if isinstance(e, TimerFired)]
    assert len(created) == 1, f"timer created {len(created)} times; {note}"
    assert len(fired) == 1, note
    assert fired[0].fires_at_ms == created[0].fires_at_ms
    assert fired[0].fired_at_ms >= created[0].fires_at_ms
    assert counts["TimerCancelled"] == 0

    # Outputs: the compute tasks' equal the uninterrupted run's; the waits' are theirs.
    outputs = {k: decode_json(v) for k, v in state.outputs().items()}
    assert {k: outputs[k] for k in TASKS} == reference, note
    assert outputs["approve"]["approved"] is True
    assert outputs["ci"] == CI_PAYLOAD
    assert outputs["soak"] == {
        "firesAtMs": created[0].fires_at_ms,
        "firedAtMs": fired[0].fired_at_ms,
    }

    with closing(sqlite3.connect(h.db)) as conn:
        index = conn.execute(
            "SELECT status, last_seq FROM _smithers_runs WHERE run_id = ?", (h.run_id,)
        ).fetchall()
    assert index == [("finished", len(rows))]
    assert {pid for _, pid in h.leases()} <= set(h.killed_pids), f"leases left: {h.leases()}"
    return {
        "activations": len(starts),
        "abandoned": sum(att.end == "abandoned" for att in attempts.values()),
        "extra_executions": extras,
        "parks": len(h.parks),
    }


# ------------------------------------------------------------------ the reference run


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, decisions: Any) -> dict[str, Any]:
    """The compute tasks' outputs of a run with no kill, decided at each park."""
    reaper: list[subprocess.Popen[bytes]] = []
    h = Harness(tmp_path_factory.mktemp("reference"), reaper)
    try:
        for _ in range(5):
            if h.settle(h.spawn(), decisions):
                break
    finally:
        for proc in reaper:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=WAIT_S)
    assert len(h.parks) == 2, h.parks
    state = h.state()
    assert state.status == "finished"
    counts = Counter(line.split()[0] for line in h.effects.read_text().splitlines())
    assert counts == dict.fromkeys(TASKS, 1)
    outputs = {k: decode_json(v) for k, v in state.outputs().items()}
    return {k: outputs[k] for k in TASKS}


# ------------------------------------------------------------------ the tests


@pytest.mark.timeout(120)
def test_killed_while_holding_on_a_timer_resumes_on_the_same_timer(
    tmp_path: Path,
    reaper: list[subprocess.Popen[bytes]],
    decisions: Any,
    reference: dict[str, Any],
) -> None:
    h = Harness(tmp_path, reaper, soak_ms=2_500)
    assert not h.settle(h.spawn(), decisions)  # parks on the approval; approved
    assert not h.settle(h.spawn(), decisions)  # parks on the signal; signalled
    assert h.parks[0].startswith("waiting-approval")
    assert h.parks[1].startswith("waiting-event")

    proc = h.spawn()
    assert h.wait_until(lambda: h.count("TimerCreated") == 1, proc, "the timer")
    time.sleep(0.2)
    assert proc.poll() is None, "the driver should hold on a 2.5 s timer"
    assert h.kill(proc, "holding on the timer"), "the driver exited before the kill"
    state = h.state()
    assert state.status == "running"  # held, not parked: the log says so
    assert state.nodes[("soak", 0)].state == "waiting-timer"
    timer = state.nodes[("soak", 0)].timer
    assert timer is not None
    assert timer.state == "pending"

    t0 = time.time_ns() // 1_000_000
    assert h.settle(h.spawn(), decisions)

    assert time.time_ns() // 1_000_000 >= timer.fires_at_ms  # it did wait for the timer
    assert t0 < timer.fires_at_ms, "the resume began after the timer was due: raise soak_ms"
    summary = check_waits_run(h, reference)
    assert summary["activations"] == 4
    print(summary)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", range(SEEDED_RUNS))
def test_killed_at_random_moments_around_parks_and_decisions(
    case: int,
    crash_seed: int,
    tmp_path: Path,
    reaper: list[subprocess.Popen[bytes]],
    decisions: Any,
    reference: dict[str, Any],
) -> None:
    seed = crash_seed + 2000 + case
    print(f"kill schedule seed {seed}")
    rng = random.Random(seed)
    h = Harness(tmp_path, reaper)

    for _ in range(MAX_SPAWNS):
        proc = h.spawn()
        if len(h.kills) < KILLS_PER_RUN and kill_soon(h, proc, rng):
            continue
        if h.settle(proc, decisions):
            break
    else:
        raise AssertionError(f"not finished after {MAX_SPAWNS} processes: {h.kills}")

    print("\n".join(h.kills))
    summary = check_waits_run(h, reference)
    assert summary["parks"] == 2
    print(summary)
