"""``smithers submit`` and ``smithers worker``: real worker subprocesses on a real database.

PostgreSQL (the `pg_url` fixture: a fresh schema per test) and SQLite files. Each task
appends a line to a side-effect file when it executes, so a test sees what ran twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from typing import TYPE_CHECKING

import anyio
import pytest
from smithers.engine import submit_run
from smithers.eventstore import decode_event, open_store

if TYPE_CHECKING:
    from pathlib import Path

FLOW = """
    from __future__ import annotations

    import os
    import time

    import msgspec
    from smithers import Sequence, Task, workflow

    class Count(msgspec.Struct):
        n: int

    def _note(ctx, node):
        with open(ctx.input["effects"], "a") as f:
            f.write(f"{ctx.run_id} {node} {os.getpid()}\\n")

    def _second(ctx):
        _note(ctx, "second")
        time.sleep(ctx.input.get("sleep", 0))
        return {"n": ctx.input.get("start", 0) + 1}

    def _first(ctx):
        _note(ctx, "first")
        return {"n": 1}

    @workflow("count")
    def count(ctx):
        return Sequence(
            Task("first", output=Count, run=lambda: _first(ctx)),
            Task("second", output=Count, run=lambda: _second(ctx)),
        )
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SMITHERS_DB"}


def smithers(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_worker(cwd: Path, db: str, *args: str) -> subprocess.Popen[str]:
    with (cwd / f"worker-{time.monotonic_ns()}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "smithers", "worker", "--db", db, "--poll", "200ms", *args],
            cwd=cwd,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _stop(*procs: subprocess.Popen[str]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "count.py"
    path.write_text(textwrap.dedent(FLOW))
    return path


async def _submit(db: str, flow: Path, effects: Path, n: int, **input: object) -> list[str]:
    store = await open_store(db)
    try:
        ids = []
        for i in range(n):
            value = {"start": i, "effects": str(effects), **input}
            result = await submit_run(str(flow), input=value, run_id=f"q{i:04d}", store=store)
            ids.append(result.run_id)
        return ids
    finally:
        await store.close()


async def _statuses(db: str) -> dict[str, str]:
    store = await open_store(db, create=False)
    try:
        return {r.run_id: r.status for r in await store.list_runs()}
    finally:
        await store.close()


async def _types(db: str, run_id: str) -> list[str]:
    store = await open_store(db, create=False)
    try:
        return [r.type for r in await store.read(run_id)]
    finally:
        await store.close()


async def _wait_for(db: str, ids: list[str], status: str, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = await _statuses(db)
        if all(statuses.get(i) == status for i in ids) or time.monotonic() > deadline:
            return statuses
        await anyio.sleep(0.3)


async def _race(tmp_path: Path, flow: Path, db: str, n: int, timeout_s: float) -> None:
    effects = tmp_path / "effects.txt"
    ids = await _submit(db, flow, effects, n)
    assert set((await _statuses(db)).values()) == {"queued"}
    a = start_worker(tmp_path, db, "--name", "a", "--concurrency", "4")
    b = start_worker(tmp_path, db, "--name", "b", "--concurrency", "4")
    try:
        statuses = await _wait_for(db, ids, "finished", timeout_s)
        assert Counter(statuses[i] for i in ids) == Counter({"finished": n})
    finally:
        _stop(a, b)
    owners: Counter[str] = Counter()
    for run_id in ids:
        types = await _types(db, run_id)
        # Exactly one winning claim and one end in each run's log.
        assert types.count("RunQueued") == 1, run_id
        assert types.count("RunStarted") == 1, run_id
        assert types.count("RunFinished") == 1, run_id
        assert types.count("NodeStarted") == 2, run_id
    pids = set()
    for line in effects.read_text().splitlines():
        run_id, node, pid = line.split()
        owners[f"{run_id} {node}"] += 1
        pids.add(pid)
    assert len(owners) == 2 * n
    assert set(owners.values()) == {1}  # every task executed exactly once
    if n >= 200:
        assert len(pids) == 2  # both workers took a share


@pytest.mark.timeout(300)
async def test_two_workers_share_queued_runs_on_postgresql(
    pg_url: str, tmp_path: Path, flow: Path
) -> None:
    await _race(tmp_path, flow, pg_url, 200, timeout_s=240)


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_two_workers_share_1000_queued_runs_on_postgresql(
    pg_url: str, tmp_path: Path, flow: Path
) -> None:
    await _race(tmp_path, flow, pg_url, 1000, timeout_s=900)


@pytest.mark.timeout(180)
async def test_two_workers_share_queued_runs_on_sqlite(tmp_path: Path, flow: Path) -> None:
    await _race(tmp_path, flow, str(tmp_path / "runs" / "smithers.db"), 30, timeout_s=120)


async def _wait_line(path: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        await anyio.sleep(0.1)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_killed_workers_run_is_taken_over_and_only_its_attempt_in_flight_runs_again(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, flow: Path
) -> None:
    db = (
        str(request.getfixturevalue("pg_url"))
        if backend == "postgresql"
        else str(tmp_path / "runs" / "smithers.db")
    )
    effects = tmp_path / "effects.txt"
    [run_id] = await _submit(db, flow, effects, 1, sleep=3)
    a = start_worker(tmp_path, db, "--name", "a", "--concurrency", "1")
    b: subprocess.Popen[str] | None = None
    try:
        await _wait_line(effects, f"{run_id} second", 60)
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=30)
        assert (await _statuses(db))[run_id] == "running"  # its owner is gone
        b = start_worker(tmp_path, db, "--name", "b", "--stale-threshold", "1s")
        statuses = await _wait_for(db, [run_id], "finished", 60)
        assert statuses[run_id] == "finished"
    finally:
        _stop(a, *([b] if b is not None else []))
    types = await _types(db, run_id)
    assert types.count("RunStarted") == 2  # a's claim, then b's takeover
    assert types.count("RunFinished") == 1
    ran = Counter(line.split()[1] for line in effects.read_text().splitlines())
    assert ran == Counter({"first": 1, "second": 2})  # finished task not run again


@pytest.mark.timeout(180)
async def test_sigterm_drains_a_worker(pg_url: str, tmp_path: Path, flow: Path) -> None:
    effects = tmp_path / "effects.txt"
    ids = await _submit(pg_url, flow, effects, 3, sleep=4)
    worker = start_worker(tmp_path, pg_url, "--name", "a", "--concurrency", "1")
    try:
        await _wait_line(effects, f"{ids[0]} second", 60)
        listed = smithers(tmp_path, "workers", "--db", pg_url, "--json")
        assert listed.returncode == 0, listed.stderr
        [row] = json.loads(listed.stdout)
        assert (row["worker"]["name"], row["worker"]["runs"], row["alive"]) == (
            "a", [ids[0]], True,
        )  # fmt: skip
        assert row["worker"]["pid"] == worker.pid
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        _stop(worker)
    gone = smithers(tmp_path, "workers", "--db", pg_url, "--json")
    assert json.loads(gone.stdout) == []  # a drained worker deletes its row
    statuses = await _statuses(pg_url)
    # The run in hand was finished, nothing more was claimed.
    assert [statuses[i] for i in ids] == ["finished", "queued", "queued"]
    types = await _types(pg_url, ids[0])
    assert types.count("RunStarted") == 1
    assert "RunCancelled" not in types


ASYNC_FLOW = """
    from __future__ import annotations

    import os

    import anyio
    import msgspec
    from smithers import Sequence, Task, workflow

    class Count(msgspec.Struct):
        n: int

    def _note(ctx, node):
        with open(ctx.input["effects"], "a") as f:
            f.write(f"{ctx.run_id} {node} {os.getpid()}\\n")

    async def _slow(ctx):
        _note(ctx, "slow")
        await anyio.sleep(ctx.input["sleep"])
        return {"n": 2}

    async def _first(ctx):
        _note(ctx, "first")
        return {"n": 1}

    @workflow("slow")
    def slow(ctx):
        return Sequence(
            Task("first", output=Count, run=lambda: _first(ctx)),
            Task("slow", output=Count, run=lambda: _slow(ctx)),
        )
"""


@pytest.mark.timeout(180)
async def test_a_second_sigterm_hands_the_runs_back_for_another_worker(
    pg_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "slow.py"
    path.write_text(textwrap.dedent(ASYNC_FLOW))
    effects = tmp_path / "effects.txt"
    store = await open_store(pg_url)
    try:
        await submit_run(
            str(path), input={"effects": str(effects), "sleep": 2}, run_id="s1", store=store
        )
    finally:
        await store.close()
    a = start_worker(tmp_path, pg_url, "--name", "a", "--concurrency", "1")
    b: subprocess.Popen[str] | None = None
    try:
        await _wait_line(effects, "s1 slow", 60)
        a.send_signal(signal.SIGTERM)
        await anyio.sleep(0.3)
        a.send_signal(signal.SIGTERM)  # the second: stop now
        assert a.wait(timeout=30) == 128 + signal.SIGTERM
        store = await open_store(pg_url, create=False)
        try:
            assert await store.get_lease("s1") is None  # released, not left to go stale
        finally:
            await store.close()
        types = await _types(pg_url, "s1")
        assert (await _statuses(pg_url))["s1"] == "running"  # handed back, not ended
        assert "RunCancelled" not in types
        assert "NodeCancelled" not in types
        b = start_worker(tmp_path, pg_url, "--name", "b")
        assert (await _wait_for(pg_url, ["s1"], "finished", 60))["s1"] == "finished"
    finally:
        _stop(a, *([b] if b is not None else []))
    types = await _types(pg_url, "s1")
    assert types.count("RunStarted") == 2  # a's claim, b's takeover
    ran = Counter(line.split()[1] for line in effects.read_text().splitlines())
    assert ran == Counter({"first": 1, "slow": 2})  # only the attempt in flight again


def test_submit_records_a_queued_run_that_ps_lists_and_down_cancels(
    tmp_path: Path, flow: Path
) -> None:
    db = str(tmp_path / "runs" / "smithers.db")
    effects = str(tmp_path / "effects.txt")
    sub = smithers(
        tmp_path, "submit", "count.py", "--db", db, "--run-id", "q1", "--queue", "nightly",
        "--priority", "3", "--input", json.dumps({"effects": effects}), "--json",
    )  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    report = json.loads(sub.stdout)
    assert (report["runId"], report["queue"], report["priority"], report["status"]) == (
        "q1", "nightly", 3, "queued",
    )  # fmt: skip
    ps = smithers(tmp_path, "ps", "--db", db, "--json")
    assert [(r["runId"], r["status"]) for r in json.loads(ps.stdout)] == [("q1", "queued")]
    why = smithers(tmp_path, "why", "q1", "--db", db)
    assert why.returncode == 0, why.stderr
    assert "The run is queued" in why.stdout
    assert "smithers workers" in why.stdout
    sup = smithers(tmp_path, "supervise", "--once", "--db", db)
    assert sup.returncode == 0, sup.stderr
    assert anyio.run(_types, db, "q1") == ["RunQueued"]  # the supervisor leaves it alone
    down = smithers(tmp_path, "down", "--db", db)
    assert down.returncode == 0, down.stdout + down.stderr
    ps = smithers(tmp_path, "ps", "--db", db, "--json")
    assert [(r["runId"], r["status"]) for r in json.loads(ps.stdout)] == [("q1", "cancelled")]
    assert not os.path.exists(effects)  # nothing ran


def test_submit_refuses_bad_input_with_exit_4(tmp_path: Path, flow: Path) -> None:
    db = str(tmp_path / "runs" / "smithers.db")
    bad = smithers(tmp_path, "submit", "count.py", "--db", db, "--input", "[1]")
    assert bad.returncode == 4
    assert "Error [INVALID_INPUT]" in bad.stderr
    queue = smithers(tmp_path, "submit", "count.py", "--db", db, "--queue", "no/slash")
    assert queue.returncode == 4
    assert "Error [INVALID_INPUT]" in queue.stderr
    assert "Traceback" not in bad.stderr + queue.stderr
    assert not (tmp_path / "runs" / "smithers.db").exists() or anyio.run(_statuses, db) == {}


async def _intervals(db: str, ids: list[str]) -> list[tuple[int, int]]:
    store = await open_store(db, create=False)
    try:
        spans = []
        for run_id in ids:
            rows = await store.read(run_id)
            start = next(r.timestamp_ms for r in rows if r.type == "RunStarted")
            end = next(r.timestamp_ms for r in rows if r.type == "RunFinished")
            spans.append((start, end))
        return spans
    finally:
        await store.close()


def _most_at_once(spans: list[tuple[int, int]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.timeout(180)
async def test_a_queue_limit_holds_across_two_workers(
    pg_url: str, tmp_path: Path, flow: Path
) -> None:
    effects = tmp_path / "effects.txt"
    ids = await _submit(pg_url, flow, effects, 10, sleep=0.6)
    limit = ("--queue-limit", "default=2", "--concurrency", "4")
    a = start_worker(tmp_path, pg_url, "--name", "a", *limit)
    b = start_worker(tmp_path, pg_url, "--name", "b", *limit)
    try:
        statuses = await _wait_for(pg_url, ids, "finished", 120)
        assert [statuses[i] for i in ids] == ["finished"] * 10
    finally:
        _stop(a, b)
    # Never more than 2 runs of the queue between their RunStarted and RunFinished.
    assert _most_at_once(await _intervals(pg_url, ids)) <= 2


def test_a_bad_queue_limit_is_refused_with_exit_4(tmp_path: Path) -> None:
    db = str(tmp_path / "smithers.db")
    bad = smithers(tmp_path, "worker", "--db", db, "--queue-limit", "nightly")
    assert bad.returncode == 4
    assert "Error [INVALID_INPUT]" in bad.stderr
    zero = smithers(tmp_path, "worker", "--db", db, "--queue-limit", "nightly=0")
    assert zero.returncode == 4
    assert "Traceback" not in bad.stderr + zero.stderr


TIMER_FLOW = """
    from __future__ import annotations

    import msgspec
    from smithers import Sequence, Task, Timer, workflow

    class Done(msgspec.Struct):
        ok: bool

    @workflow("soak")
    def soak(ctx):
        return Sequence(
            Timer("wait", duration="1s"),
            Task("after", output=Done, value={"ok": True}),
        )
"""


@pytest.mark.timeout(120)
async def test_a_worker_wakes_a_parked_run_when_its_timer_is_due(
    pg_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "soak.py"
    path.write_text(textwrap.dedent(TIMER_FLOW))
    store = await open_store(pg_url)
    try:
        await submit_run(str(path), run_id="t1", store=store)
    finally:
        await store.close()
    worker = start_worker(tmp_path, pg_url, "--name", "a")
    try:
        statuses = await _wait_for(pg_url, ["t1"], "finished", 60)
        assert statuses["t1"] == "finished"
    finally:
        _stop(worker)
    types = await _types(pg_url, "t1")
    # Claimed, parked on the timer (the worker holds no process for it), woken when due.
    assert types.count("RunStarted") == 2
    assert types.count("TimerFired") == 1
    assert types.index("TimerFired") > types.index("RunStatusChanged", 3)


WAIT_FLOW = """
    from __future__ import annotations

    import msgspec
    from smithers import Approval, Sequence, Task, WaitForEvent, workflow

    class Done(msgspec.Struct):
        ok: bool

    @workflow("gated")
    def gated(ctx):
        return Sequence(
            WaitForEvent("ci", event="ci.done"),
            Approval("gate", request={"title": "Ship?"}),
            Task("after", output=Done, value={"ok": True}),
        )
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_a_worker_resumes_a_parked_run_when_a_signal_or_an_approval_resolves_it(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db = (
        str(request.getfixturevalue("pg_url"))
        if backend == "postgresql"
        else str(tmp_path / "runs" / "smithers.db")
    )
    path = tmp_path / "gated.py"
    path.write_text(textwrap.dedent(WAIT_FLOW))
    store = await open_store(db)
    try:
        await submit_run(str(path), run_id="g1", store=store, queue="ship")
    finally:
        await store.close()
    worker = start_worker(tmp_path, db, "--name", "a", "--queues", "ship")
    try:
        assert (await _wait_for(db, ["g1"], "waiting-event", 60))["g1"] == "waiting-event"
        sent = smithers(tmp_path, "signal", "g1", "ci.done", "--data", "{}", "--db", db, "--json")
        assert sent.returncode == 0, sent.stderr
        body = json.loads(sent.stdout)
        # Recorded here, resumed by the queue's worker, not by this command.
        assert (body["parked"], body["queue"], body["resumed"]) == (True, "ship", None)
        assert (await _wait_for(db, ["g1"], "waiting-approval", 60))["g1"] == "waiting-approval"
        approved = smithers(tmp_path, "approve", "g1", "--node", "gate", "--db", db)
        assert approved.returncode == 0, approved.stderr
        assert "submitted to queue 'ship': a worker of it resumes the run" in approved.stdout
        assert (await _wait_for(db, ["g1"], "finished", 60))["g1"] == "finished"
    finally:
        _stop(worker)
    store = await open_store(db, create=False)
    try:
        rows = await store.read("g1")
    finally:
        await store.close()
    starts = [decode_event(r.type, r.data) for r in rows if r.type == "RunStarted"]
    # The worker's claim, then one resume per resolved wait: all by the worker.
    assert len(starts) == 3
    assert {(s.actor.name, s.actor.interface) if s.actor else None for s in starts} == {
        ("a", "worker")
    }


@pytest.mark.timeout(120)
async def test_a_worker_takes_the_highest_priority_first(tmp_path: Path, flow: Path) -> None:
    db = str(tmp_path / "runs" / "smithers.db")
    effects = tmp_path / "effects.txt"
    store = await open_store(db)
    try:
        for i, priority in enumerate([0, 0, 0, 5, 1]):
            value = {"start": i, "effects": str(effects)}
            await submit_run(str(flow), input=value, run_id=f"p{i}", store=store, priority=priority)
    finally:
        await store.close()
    worker = start_worker(tmp_path, db, "--name", "a", "--concurrency", "1")
    ids = [f"p{i}" for i in range(5)]
    try:
        assert set((await _wait_for(db, ids, "finished", 90)).values()) == {"finished"}
    finally:
        _stop(worker)
    order = []
    for line in effects.read_text().splitlines():
        run_id, node, _ = line.split()
        if node == "first":
            order.append(run_id)
    # One at a time: priority 5, then 1, then the three of priority 0 in any order.
    assert order[:2] == ["p3", "p4"]
    assert sorted(order[2:]) == ["p0", "p1", "p2"]
