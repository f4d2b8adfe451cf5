"""Chaos: SIGKILL random ``smithers worker`` processes while 200 queued runs execute.

Issue 14's chaos test, against the live PostgreSQL server (the `pg_url` fixture: a fresh
schema per test). 200 runs of a 5-task workflow are submitted; 3 real worker processes
(``--concurrency 4 --stale-threshold 2s --poll 200ms``) take them. A killer SIGKILLs a
random live worker holding runs every 1-3 s (seeded: ``SMITHERS_FAULT_SEED``, as the
fault-injection suite) and starts a replacement, `KILLS` times; the survivors then
finish the work. The full ``smithers verify`` (chain and every frame re-rendered) runs
on the run taken over most.

Each task execution appends ``<run_id> <node_id> <attempt> <pid>`` to a side-effect file
before it sleeps a little, so the test sees every execution and who ran it. Checked
after, from the log (read through the store) and the side file:

- every run ends ``finished``;
- no finished task ran twice: per run and task, exactly one attempt has a NodeFinished
  (its last NodeStarted); every other attempt was closed as ``abandoned`` by a later
  activation; each attempt executed at most once, the finished one exactly once, each
  execution by the pid of the activation whose NodeStarted it follows; so the extra
  executions are exactly the abandoned attempts that had begun their side effect;
- no event lost or duplicated: per run, seqs are 1..N, one RunQueued (seq 1), one
  RunFinished (last), activations 1..k each with its own owner, the runs index agrees
  (status, last seq), the hash chain verifies (`check_chain`, what ``smithers verify``
  runs); across runs, global positions are unique and cover exactly the runs' events.

The checks are themselves tested on a synthetic log (`test_the_checks_catch`): a
finished task run twice, a lost or duplicated event, an unclosed attempt all fail them.

The figures (kills, runs, events, executions, extra executions, takeovers, time) are
reported with the suite's `figures` (tests/conftest.py): printed, and listed in the
"fault-injection figures" section at the end of the pytest report.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from smithers.engine import check_chain, submit_run
from smithers.eventstore import StoredEvent, decode_event, encode_event, open_store
from smithers.eventstore.events import (
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodeStarted,
    RunFinished,
    RunQueued,
    RunStarted,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from smithers.eventstore import EventStore

RUNS = 200
WORKERS = 3
CONCURRENCY = 4
KILLS = 12
STALE = "2s"
FINISH_S = 180.0
"""Longest wait for every run to finish once the kills are done (generous: ~30 s here)."""
NODES = ("fetch", "left", "right", "merge", "publish")

FLOW = """
    from __future__ import annotations

    import hashlib
    import os
    import time

    import msgspec
    from smithers import Parallel, Sequence, Task, workflow

    class Out(msgspec.Struct):
        value: int

    def _digest(text):
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")

    def _work(ctx, node, upstream):
        def run(task):
            # The side effect the test counts: recorded first, then the task takes a while.
            line = f"{task.run_id} {node} {task.attempt} {os.getpid()}\\n"
            with open(ctx.input["effects"], "a", encoding="utf-8") as f:
                f.write(line)
            time.sleep((250 + _digest(task.run_id + node) % 350) / 1000)
            return {"value": _digest(node + ":" + ",".join(map(str, upstream)))}

        return run

    @workflow("chaos")
    def chaos(ctx):
        fetch = ctx.output_maybe(Out, "fetch")
        stages = [Task("fetch", output=Out, run=_work(ctx, "fetch", [ctx.input["n"]]))]
        if fetch is None:
            return Sequence(*stages)
        stages.append(
            Parallel(
                Task("left", output=Out, run=_work(ctx, "left", [fetch.value])),
                Task("right", output=Out, run=_work(ctx, "right", [fetch.value + 1])),
            )
        )
        left, right = ctx.output_maybe(Out, "left"), ctx.output_maybe(Out, "right")
        if left is None or right is None:
            return Sequence(*stages)
        stages.append(Task("merge", output=Out, run=_work(ctx, "merge", [left.value, right.value])))
        merge = ctx.output_maybe(Out, "merge")
        if merge is not None:
            stages.append(Task("publish", output=Out, run=_work(ctx, "publish", [merge.value])))
        return Sequence(*stages)
"""

# ------------------------------------------------------------------ workers and the killer


@dataclass
class Fleet:
    """The worker processes of one test: started, killed, replaced; killed at teardown."""

    root: Path
    db: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    """pid -> worker name, of every worker started."""
    killed: set[int] = field(default_factory=set)
    """pids this test SIGKILLed."""
    kills_holding_runs: int = 0
    """Kills of a worker whose row showed runs in hand just before."""

    def start(self) -> subprocess.Popen[bytes]:
        name = f"w{len(self.procs) + 1}"
        env = {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}
        with (self.root / f"{name}.log").open("wb") as log:
            args = [
                "worker", "--db", self.db, "--name", name, "--concurrency", str(CONCURRENCY),
                "--stale-threshold", STALE, "--poll", "200ms",
            ]  # fmt: skip
            proc = subprocess.Popen(
                [sys.executable, "-m", "smithers", *args],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        self.names[proc.pid] = name
        return proc

    def live(self) -> list[subprocess.Popen[bytes]]:
        """The workers still running, in the order they were started."""
        return [p for p in self.procs if p.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes], holding: bool) -> None:
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)  # reaped: its pid is gone, so it is judged gone at once
        assert rc == -signal.SIGKILL, f"{self.names[proc.pid]} exited {rc} before the kill"
        self.killed.add(proc.pid)
        self.kills_holding_runs += holding

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)

    def tail(self, n: int = 3) -> str:
        """The last lines of every worker's log, for a failure message."""
        out = []
        for i in range(1, len(self.procs) + 1):
            lines = (self.root / f"w{i}.log").read_text(errors="replace").splitlines()
            out.append(f"--- w{i}: " + " | ".join(lines[-n:]))
        return "\n".join(out)


async def _submit(db: str, flow: Path, effects: Path) -> list[str]:
    store = await open_store(db)
    try:
        ids = []
        for i in range(RUNS):
            value = {"n": i, "effects": str(effects)}
            result = await submit_run(str(flow), input=value, run_id=f"c{i:04d}", store=store)
            ids.append(result.run_id)
        return ids
    finally:
        await store.close()


async def _holders(store: EventStore) -> set[str]:
    """Names of the workers whose row shows runs in hand."""
    return {w.name for w in await store.list_workers() if w.runs}


async def _unfinished(store: EventStore, ids: list[str]) -> list[str]:
    statuses = {r.run_id: r.status for r in await store.list_runs()}
    return [i for i in ids if statuses.get(i) != "finished"]


async def _kill_storm(store: EventStore, fleet: Fleet, ids: list[str], rng: random.Random) -> int:
    """SIGKILL a random live worker every 1-3 s and start a replacement, `KILLS` times.

    The victim is drawn among the live workers whose row shows runs in hand (so the
    kill lands mid-run, not on a replacement still importing), or among all live
    workers if none does. Stops early if every run finished. Returns the kills.
    """
    kills = 0
    while kills < KILLS:
        await anyio.sleep(rng.uniform(1.0, 3.0))
        if not await _unfinished(store, ids):
            break
        live = fleet.live()  # in start order: the seed picks the same names each time
        assert live, "every worker exited:\n" + fleet.tail()
        holders = await _holders(store)
        busy = [p for p in live if fleet.names[p.pid] in holders]
        victim = rng.choice(busy or live)
        fleet.kill(victim, bool(busy))
        fleet.start()
        kills += 1
    return kills


# ------------------------------------------------------------------ the invariants


def _effects(path: Path) -> list[tuple[str, str, int, int]]:
    """``(run_id, node_id, attempt, pid)`` of every execution begun."""
    rows = []
    for line in path.read_text().splitlines():
        run_id, node_id, attempt, pid = line.split(" ")
        rows.append((run_id, node_id, int(attempt), int(pid)))
    return rows


@dataclass
class RunLog:
    """What one run's log says about its activations and attempts."""

    owners: list[tuple[int, str, int | None]] = field(default_factory=list)
    """``(activation, owner_id, pid)`` of each RunStarted, in seq order."""
    started: dict[tuple[str, int], int | None] = field(default_factory=dict)
    """(node, attempt) -> pid of the activation that recorded its NodeStarted."""
    finished: Counter[str] = field(default_factory=Counter)
    finished_attempt: dict[str, int] = field(default_factory=dict)
    abandoned: set[tuple[str, int | None]] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)


def _check_seqs(run_id: str, rows: list[StoredEvent], last_seq: int | None) -> None:
    """Seqs 1..N, one RunQueued first, one RunFinished last, the index agrees."""
    seqs = [r.seq for r in rows]
    assert seqs == list(range(1, len(rows) + 1)), f"{run_id}: seqs {seqs}"
    types = [r.type for r in rows]
    assert types[0] == "RunQueued", f"{run_id}: first event {types[0]}"
    assert types.count("RunQueued") == 1, f"{run_id}: {types.count('RunQueued')} RunQueued"
    assert types.count("RunFinished") == 1, f"{run_id}: {types.count('RunFinished')} RunFinished"
    assert types[-1] == "RunFinished", f"{run_id}: events after RunFinished: {types[-4:]}"
    assert not {"RunFailed", "RunCancelled"} & set(types), f"{run_id}: {types}"
    assert last_seq == len(rows), f"{run_id}: runs index last_seq {last_seq}, log {len(rows)}"


def _fold(run_id: str, rows: list[StoredEvent]) -> RunLog:
    log = RunLog()
    pid: int | None = None
    for row in rows:
        event = decode_event(row.type, row.data)
        if isinstance(event, RunStarted):
            pid = event.pid
            log.owners.append((event.activation, event.owner_id, event.pid))
        elif isinstance(event, NodeStarted):
            key = (event.node_id, event.attempt)
            assert key not in log.started, f"{run_id}: NodeStarted {key} twice"
            assert log.owners, f"{run_id}: NodeStarted {key} before any RunStarted"
            log.started[key] = pid
        elif isinstance(event, NodeFinished):
            log.finished[event.node_id] += 1
            log.finished_attempt[event.node_id] = event.attempt
        elif isinstance(event, NodeCancelled) and event.reason == "abandoned":
            log.abandoned.add((event.node_id, event.attempt))
        elif isinstance(event, NodeFailed):
            log.failed.append(f"{event.node_id}#{event.attempt}: {event.error.message}")
    return log


def _check_owners(run_id: str, log: RunLog, fleet: Fleet) -> int:
    """Activations 1..k, each a distinct owner among our workers; returns the takeovers
    of a worker that was never killed (a live owner judged stale)."""
    activations = [a for a, _, _ in log.owners]
    assert activations == list(range(1, len(activations) + 1)), f"{run_id}: {activations}"
    owner_ids = [o for _, o, _ in log.owners]
    assert len(set(owner_ids)) == len(owner_ids), f"{run_id}: an owner claimed twice {owner_ids}"
    pids = [p for _, _, p in log.owners]
    assert all(p in fleet.names for p in pids), f"{run_id}: claimed by a stranger: {pids}"
    return sum(prev not in fleet.killed for prev in pids[:-1])


def _check_attempts(run_id: str, log: RunLog, executions: list[tuple[str, int, int]]) -> int:
    """No finished task ran twice; returns the extra executions (of abandoned attempts)."""
    assert not log.failed, f"{run_id}: failed attempts {log.failed}"
    assert log.finished == Counter(dict.fromkeys(NODES, 1)), f"{run_id}: {log.finished}"
    done = {(node, attempt) for node, attempt in log.finished_attempt.items()}
    for node, attempt in done:
        last = max(a for n, a in log.started if n == node)
        assert attempt == last, f"{run_id}/{node}: attempt {attempt} finished, {last} began"
    # Every attempt that began and did not finish was closed as abandoned, and only those.
    assert set(log.started) - done == log.abandoned, (
        f"{run_id}: began {sorted(log.started)}, finished {sorted(done)}, "
        f"abandoned {sorted(log.abandoned, key=str)}"
    )
    ran = Counter((node, attempt) for node, attempt, _ in executions)
    assert max(ran.values()) == 1, f"{run_id}: an attempt executed twice: {ran}"
    for key in done:
        assert ran[key] == 1, f"{run_id}: finished attempt {key} executed {ran[key]} times"
    extra = 0
    for node, attempt, pid in executions:
        key = (node, attempt)
        assert key in log.started, f"{run_id}: {key} executed with no NodeStarted (lost event)"
        assert pid == log.started[key], (
            f"{run_id}: {key} executed by pid {pid}, recorded by {log.started[key]}"
        )
        if key not in done:
            extra += 1
    return extra


async def _check_log(db: str, ids: list[str], fleet: Fleet, effects: Path) -> dict[str, Any]:
    """All the invariants of the module docstring; returns the figures."""
    by_run: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    lines = _effects(effects)
    for run_id, node, attempt, pid in lines:
        by_run[run_id].append((node, attempt, pid))
    assert set(by_run) == set(ids), "executions of runs that were not submitted"
    store = await open_store(db, create=False)
    try:
        index = {r.run_id: r for r in await store.list_runs()}
        events = takeovers = extra = extra_live = abandoned = stale = 0
        keys: set[tuple[str, int]] = set()
        most = (0, "")
        for run_id in ids:
            rows = await store.read(run_id)
            record = index.get(run_id)
            assert record is not None, run_id
            assert record.status == "finished", run_id
            _check_seqs(run_id, rows, record.last_seq)
            chain = await check_chain(store, run_id)
            assert chain.status == "ok", f"{run_id}: chain {chain.status}: {chain.message}"
            log = _fold(run_id, rows)
            stale += _check_owners(run_id, log, fleet)
            extra += _check_attempts(run_id, log, by_run[run_id])
            extra_live += sum(
                (node, attempt) in log.abandoned and pid not in fleet.killed
                for node, attempt, pid in by_run[run_id]
            )
            abandoned += len(log.abandoned)
            takeovers += len(log.owners) - 1
            most = max(most, (len(log.owners), run_id))
            events += len(rows)
            keys |= {(run_id, r.seq) for r in rows}
        everything = await store.read_all()
    finally:
        await store.close()
    mine = [r for r in everything if r.run_id in set(ids)]
    positions = [r.position for r in mine]
    assert positions == sorted(set(positions)), "global positions repeat or go back"
    assert len(mine) == events, f"read_all has {len(mine)} events of the runs, reads {events}"
    assert {(r.run_id, r.seq) for r in mine} == keys, "read_all and the runs' reads differ"
    # A kill abandons at most the attempts in flight in the runs in hand (2 per run: the
    # Parallel); a live owner judged stale abandons its own.
    in_flight = 2 * CONCURRENCY * len(fleet.killed)
    assert extra - extra_live <= in_flight, f"{extra} extra executions, {len(fleet.killed)} kills"
    return {
        "events": events,
        "executions": len(lines),
        "extra_executions": extra,
        "extra_executions_by_live_workers": extra_live,
        "abandoned_attempts": abandoned,
        "takeovers": takeovers,
        "takeovers_of_live_workers": stale,
        "busiest_run": most[1],
        "most_activations_of_a_run": most[0],
    }


# ------------------------------------------------------------------ the scenario


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_sigkilled_workers_lose_no_run_event_or_finished_task(
    pg_url: str,
    tmp_path: Path,
    fault_seed: int,
    figures: Callable[[dict[str, Any]], str],
) -> None:
    rng = random.Random(fault_seed)
    flow = tmp_path / "chaos.py"
    flow.write_text(textwrap.dedent(FLOW))
    effects = tmp_path / "effects.txt"
    t0 = time.monotonic()
    ids = await _submit(pg_url, flow, effects)
    fleet = Fleet(tmp_path, pg_url)
    store = await open_store(pg_url, create=False)
    try:
        t_start = time.monotonic()
        for _ in range(WORKERS):
            fleet.start()
        kills = await _kill_storm(store, fleet, ids, rng)
        t_kills = time.monotonic() - t_start
        deadline = time.monotonic() + FINISH_S
        while (left := await _unfinished(store, ids)) and time.monotonic() < deadline:
            await anyio.sleep(0.5)
        t_finish = time.monotonic() - t_start
        statuses = Counter(r.status for r in await store.list_runs() if r.run_id in set(ids))
        assert not left, f"unfinished runs {left[:10]}: {statuses}\n" + fleet.tail()
    finally:
        await store.close()
        fleet.stop_all()
    assert kills >= KILLS // 2, f"only {kills} kills before every run finished: too fast"
    found = await _check_log(pg_url, ids, fleet, effects)
    # And through the CLI, for the run taken over most: the chain, and every frame
    # re-rendered by its workflow from the state it was rendered from (no activation
    # diverged from the one before it).
    busiest = found.pop("busiest_run")
    verify = subprocess.run(
        [sys.executable, "-m", "smithers", "verify", busiest, "--db", pg_url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, f"verify {busiest}:\n{verify.stdout}\n{verify.stderr}"
    figures(
        {
            "seed": fault_seed,
            "runs": RUNS,
            "kills": kills,
            "kills_holding_runs": fleet.kills_holding_runs,
            "workers_started": len(fleet.procs),
            **found,
            "kill_phase_s": round(t_kills, 1),
            "run_s": round(t_finish, 1),
            "total_s": round(time.monotonic() - t0, 1),
        }
    )


# ------------------------------------------------------------------ the checks can fail


def _synthetic_run(run_id: str) -> tuple[list[StoredEvent], list[tuple[str, int, int]]]:
    """A run's log and executions as a clean chaos run leaves them: activation 1 (pid
    100) is killed with ``left`` in flight (executed); activation 2 (pid 200) closes it
    as abandoned and finishes everything."""
    events: list[Any] = [
        RunQueued(run_id=run_id, timestamp_ms=1, workflow_name="chaos"),
        RunStarted(run_id=run_id, timestamp_ms=2, activation=1, owner_id="a", pid=100),
        NodeStarted(run_id=run_id, timestamp_ms=3, node_id="fetch", attempt=1),
        NodeFinished(run_id=run_id, timestamp_ms=4, node_id="fetch", attempt=1),
        NodeStarted(run_id=run_id, timestamp_ms=5, node_id="left", attempt=1),
        RunStarted(run_id=run_id, timestamp_ms=6, activation=2, owner_id="b", pid=200),
        NodeCancelled(run_id=run_id, timestamp_ms=7, node_id="left", attempt=1, reason="abandoned"),
    ]
    executions = [("fetch", 1, 100), ("left", 1, 100)]
    for node in NODES[1:]:
        attempt = 2 if node == "left" else 1
        events.append(NodeStarted(run_id=run_id, timestamp_ms=8, node_id=node, attempt=attempt))
        events.append(NodeFinished(run_id=run_id, timestamp_ms=9, node_id=node, attempt=attempt))
        executions.append((node, attempt, 200))
    events.append(RunFinished(run_id=run_id, timestamp_ms=10))
    rows = [
        StoredEvent(
            position=seq,
            run_id=run_id,
            seq=seq,
            type=type(e).__name__,
            timestamp_ms=e.timestamp_ms,
            data=encode_event(e),
        )
        for seq, e in enumerate(events, start=1)
    ]
    return rows, executions


def _check_synthetic(rows: list[StoredEvent], executions: list[tuple[str, int, int]]) -> int:
    _check_seqs("r", rows, len(rows))
    log = _fold("r", rows)
    fleet = Fleet(root=None, db="")  # type: ignore[arg-type]
    fleet.names = {100: "w1", 200: "w2"}
    fleet.killed = {100}
    assert _check_owners("r", log, fleet) == 0
    return _check_attempts("r", log, executions)


def test_the_checks_pass_a_clean_log_with_one_abandoned_attempt() -> None:
    assert _check_synthetic(*_synthetic_run("r")) == 1  # left#1: one extra execution


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        ("finished task executed twice", "an attempt executed twice"),
        ("event lost", "seqs"),
        ("event duplicated", "seqs"),
        ("NodeStarted lost", "executed with no NodeStarted"),
        ("abandoned attempt not closed", "abandoned \\[\\]"),
        ("executed by another pid", "executed by pid"),
    ],
)
def test_the_checks_catch(mutation: str, message: str) -> None:
    rows, executions = _synthetic_run("r")
    if mutation == "finished task executed twice":
        executions.append(("merge", 1, 200))
    elif mutation == "event lost":
        del rows[8]
    elif mutation == "event duplicated":
        rows.insert(8, rows[8])
    elif mutation == "NodeStarted lost":
        # left#1's NodeStarted and its closing: its execution is then unaccounted for.
        rows = _renumber([r for r in rows if r.seq not in (5, 7)])
    elif mutation == "abandoned attempt not closed":
        rows = _renumber([r for r in rows if r.type != "NodeCancelled"])
    elif mutation == "executed by another pid":
        executions[0] = ("fetch", 1, 200)
    with pytest.raises(AssertionError, match=message):
        _check_synthetic(rows, executions)


def _renumber(rows: list[StoredEvent]) -> list[StoredEvent]:
    return [
        msgspec.structs.replace(r, seq=seq, position=seq) for seq, r in enumerate(rows, start=1)
    ]
