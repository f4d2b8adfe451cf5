"""One ownership verdict: alive / stale / gone / none for a run's owner (`judge_owner`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from smithers.engine import RunOwnerAliveError, RunStillRunningError
from smithers.engine.lifecycle import (
    DEFAULT_STALE_THRESHOLD_MS,
    OwnerVerdict,
    judge_owner,
    owner_verdict,
    pid_alive,
    refuse_if_owned,
)
from smithers.eventstore import Lease, MemoryEventStore
from smithers.eventstore.events import (
    RetryTaskStarted,
    RunFinished,
    RunStarted,
    RunStatusChanged,
)
from smithers.projections import RunState, fold

if TYPE_CHECKING:
    from collections.abc import Iterator

    from smithers.eventstore.events import Event

NOW = 1_700_000_000_000
HERE = "this-host"
ELSEWHERE = "other-host"
STALE = DEFAULT_STALE_THRESHOLD_MS
DEAD_PID = 2**22 + 7
"""Above the kernel's largest pid: certainly no process."""

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")


def started(*, host: str, pid: int, age_ms: int, owner_id: str | None = None) -> list[Event]:
    """The events of a run claimed by (host, pid) `age_ms` before NOW."""
    at = NOW - age_ms
    return [
        RunStarted(
            run_id="r",
            timestamp_ms=at,
            owner_id=owner_id or f"{host}:{pid}:x",
            pid=pid,
            host=host,
        ),
        RunStatusChanged(run_id="r", timestamp_ms=at, status="running"),
    ]


def state_of(*events: Event) -> RunState:
    return fold("r", enumerate(events, start=1))


def lease_of(state: RunState, *, age_ms: int, owner_id: str | None = None) -> Lease:
    """The lease of `state`'s owner (or of `owner_id`), renewed `age_ms` before NOW."""
    return Lease(
        run_id="r",
        owner_id=owner_id or state.owner_id,
        pid=state.pid or 0,
        host=state.host or "",
        acquired_at_ms=NOW - age_ms,
        heartbeat_at_ms=NOW - age_ms,
    )


def judge(state: RunState, lease: Lease | None, **kw: Any) -> OwnerVerdict:
    return judge_owner(state, lease, now_ms=NOW, host=HERE, pid=os.getpid(), **kw)


@pytest.fixture
def live_pid() -> Iterator[int]:
    """Pid of a live process on this host (not a smithers owner)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------- this host


@posix_only
def test_a_live_pid_on_this_host_with_a_fresh_lease_is_alive(live_pid: int) -> None:
    state = state_of(*started(host=HERE, pid=live_pid, age_ms=5_000))
    verdict = judge(state, lease_of(state, age_ms=500))

    assert (verdict.kind, verdict.local, verdict.pid_alive) == ("alive", True, True)
    assert (verdict.pid, verdict.host, verdict.owner_id) == (live_pid, HERE, state.owner_id)
    assert verdict.heartbeat_at_ms == NOW - 500
    assert verdict.silent_ms == 500
    with pytest.raises(RunOwnerAliveError, match=f"live process {live_pid}"):
        refuse_if_owned(verdict, force=True)  # never taken over, even with force


@posix_only
def test_a_live_pid_on_this_host_whose_lease_is_old_is_stale_and_taken_over_with_force(
    live_pid: int,
) -> None:
    # Issue 15: a stopped (SIGSTOP) or hung owner must not block its run forever.
    state = state_of(*started(host=HERE, pid=live_pid, age_ms=STALE * 3))
    verdict = judge(state, lease_of(state, age_ms=STALE * 2))

    assert (verdict.kind, verdict.pid_alive, verdict.lives_here) == ("stale", True, True)
    assert not verdict.protected
    assert verdict.silent_ms == STALE * 2
    assert f"process {live_pid} is alive" in verdict.reason
    with pytest.raises(RunOwnerAliveError, match="has not renewed its lease"):
        refuse_if_owned(verdict)
    refuse_if_owned(verdict, force=True)  # fine: taken over


def test_a_live_pid_on_this_host_with_a_fresh_lease_is_never_taken_over(live_pid: int) -> None:
    state = state_of(*started(host=HERE, pid=live_pid, age_ms=STALE * 3))
    verdict = judge(state, lease_of(state, age_ms=0))

    assert (verdict.kind, verdict.protected) == ("alive", True)
    with pytest.raises(RunOwnerAliveError, match="still owned by live process"):
        refuse_if_owned(verdict, force=True)


@pytest.mark.parametrize("lease_age_ms", [0, STALE * 2, None])
def test_a_dead_pid_on_this_host_is_gone_at_once(lease_age_ms: int | None) -> None:
    state = state_of(*started(host=HERE, pid=DEAD_PID, age_ms=1_000))
    lease = lease_of(state, age_ms=lease_age_ms) if lease_age_ms is not None else None
    verdict = judge(state, lease)

    assert (verdict.kind, verdict.pid_alive) == ("gone", False)
    assert "no longer alive" in verdict.reason
    refuse_if_owned(verdict)  # fine: nothing to refuse


@posix_only
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_zombie_on_this_host_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not reaped (no wait/poll): once it has exited it stays a zombie.
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/stat").read_bytes().rsplit(b")", 1)[1][1:2] != b"Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert not pid_alive(proc.pid)
        state = state_of(*started(host=HERE, pid=proc.pid, age_ms=100))
        verdict = judge(state, lease_of(state, age_ms=100))
        assert (verdict.kind, verdict.pid_alive) == ("gone", False)
    finally:
        proc.wait()


def test_this_process_is_alive_only_while_its_lease_is_fresh() -> None:
    me = os.getpid()
    state = state_of(*started(host=HERE, pid=me, age_ms=1_000))

    driving = judge(state, lease_of(state, age_ms=200))
    assert (driving.kind, driving.this_process, driving.pid_alive) == ("alive", True, None)
    with pytest.raises(RunStillRunningError):
        refuse_if_owned(driving)
    refuse_if_owned(driving, force=True)

    # No lease (a copy of a crashed run's log), or a stale one: this process is alive,
    # but it does not drive the run.
    assert judge(state, None).kind == "gone"
    assert judge(state, lease_of(state, age_ms=STALE)).kind == "gone"


# ---------------------------------------------------------------------- another host


@pytest.mark.parametrize(
    ("lease_age_ms", "kind"),
    [(0, "alive"), (STALE - 1, "alive"), (STALE, "stale"), (STALE * 10, "stale")],
)
def test_a_lease_on_another_host_is_judged_by_its_age(lease_age_ms: int, kind: str) -> None:
    state = state_of(*started(host=ELSEWHERE, pid=1234, age_ms=STALE * 20))
    verdict = judge(state, lease_of(state, age_ms=lease_age_ms))

    assert (verdict.kind, verdict.local, verdict.pid_alive) == (kind, False, None)
    assert verdict.silent_ms == lease_age_ms
    assert ELSEWHERE in verdict.reason
    if kind == "alive":
        with pytest.raises(RunStillRunningError, match="looks active"):
            refuse_if_owned(verdict)
    else:
        refuse_if_owned(verdict)
    refuse_if_owned(verdict, force=True)


def test_the_threshold_is_a_parameter() -> None:
    state = state_of(*started(host=ELSEWHERE, pid=1234, age_ms=STALE * 20))
    lease = lease_of(state, age_ms=20_000)
    assert judge(state, lease).kind == "alive"
    assert judge(state, lease, stale_threshold_ms=15_000).kind == "stale"


@pytest.mark.parametrize(("activation_age_ms", "kind"), [(1_000, "alive"), (STALE, "stale")])
def test_an_owner_elsewhere_without_a_lease_is_judged_by_its_activation(
    activation_age_ms: int, kind: str
) -> None:
    # Between its claim and its first lease row (or after its lease was lost).
    state = state_of(*started(host=ELSEWHERE, pid=1234, age_ms=activation_age_ms))
    verdict = judge(state, None)

    assert (verdict.kind, verdict.heartbeat_at_ms) == (kind, None)
    assert verdict.silent_ms == activation_age_ms


@posix_only
def test_a_live_pid_on_this_host_without_a_lease_is_alive(live_pid: int) -> None:
    state = state_of(*started(host=HERE, pid=live_pid, age_ms=100))
    assert judge(state, None).kind == "alive"


# ---------------------------------------------------------------------- the log decides


def test_a_lease_of_an_earlier_owner_says_nothing_about_the_current_one() -> None:
    # An earlier activation, killed before it released its lease, left a fresh-looking
    # lease; the log's latest RunStarted names another owner, silent for long.
    first = started(host=ELSEWHERE, pid=1, age_ms=STALE * 5, owner_id="old")
    second = started(host=ELSEWHERE, pid=2, age_ms=STALE * 2, owner_id="new")
    state = state_of(*first, *second)
    foreign = lease_of(state, age_ms=10, owner_id="old")

    verdict = judge(state, foreign)

    assert (verdict.kind, verdict.owner_id, verdict.pid) == ("stale", "new", 2)
    assert verdict.heartbeat_at_ms is None
    assert verdict.silent_ms == STALE * 2
    refuse_if_owned(verdict)


@posix_only
def test_a_live_leaseholder_that_is_no_longer_the_owner_is_not_alive(live_pid: int) -> None:
    state = state_of(
        *started(host=HERE, pid=live_pid, age_ms=9_000, owner_id="old"),
        *started(host=HERE, pid=DEAD_PID, age_ms=5_000, owner_id="new"),
    )
    old_lease = Lease(
        run_id="r",
        owner_id="old",
        pid=live_pid,
        host=HERE,
        acquired_at_ms=NOW - 9_000,
        heartbeat_at_ms=NOW - 10,
    )
    assert judge(state, old_lease).kind == "gone"


def test_a_run_nobody_owns_is_none() -> None:
    running = started(host=ELSEWHERE, pid=1, age_ms=5_000)
    ended = state_of(
        *running,
        RunStatusChanged(run_id="r", timestamp_ms=NOW - 4_000, status="finished"),
        RunFinished(run_id="r", timestamp_ms=NOW - 4_000),
    )
    verdict = judge(ended, None)
    assert (verdict.kind, verdict.silent_ms, verdict.owner_id) == ("none", None, "")

    # A retry-task (or rewind) clears the owner until the next RunStarted: the run is
    # running with nobody driving it, for as long as its last event is old.
    retried = state_of(
        *running,
        RetryTaskStarted(
            run_id="r",
            timestamp_ms=NOW - 3_000,
            node_id="a",
            iteration=0,
            reset_dependents=True,
            reset_nodes=("a",),
        ),
    )
    verdict = judge(retried, None)
    assert (verdict.kind, verdict.silent_ms) == ("none", 3_000)
    refuse_if_owned(verdict)


async def test_owner_verdict_reads_the_lease_from_the_store() -> None:
    store = MemoryEventStore()
    events = started(host=ELSEWHERE, pid=1234, age_ms=STALE * 2)
    await store.append("r", events, expected_seq=0)
    state = state_of(*events)

    assert (await owner_verdict(store, state, now_ms=NOW)).kind == "stale"
    await store.put_lease(lease_of(state, age_ms=100))
    verdict = await owner_verdict(store, state, now_ms=NOW)
    assert (verdict.kind, verdict.heartbeat_at_ms) == ("alive", NOW - 100)


def test_the_one_default_threshold_is_a_minute() -> None:
    assert DEFAULT_STALE_THRESHOLD_MS == 60_000
