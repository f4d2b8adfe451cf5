"""Who owns a run, and whether that owner lives: one verdict (DESIGN §6).

Resume, cancel, the supervisor and time travel all ask the same question before they
touch a run from outside, and all get their answer here (`judge_owner`,
`owner_verdict`); what each then does with it is its own policy.

The log decides who owns a run: the latest `RunStarted` (owner id, pid, host), unless
a later `RunRewound` or `RetryTaskStarted` cleared it, and only while the run's status
is ``"running"`` (`RunState.owner_id`, `pid`, `host`, `activated_at_ms`). The lease row
only carries that owner's heartbeat: a lease naming another owner (an earlier
activation that was killed, so never released it) says nothing about the current one.

An owner on this host is judged by its pid (a zombie is dead), because that is
certain, and by its heartbeat: a live pid whose lease heartbeat is older than the stale
threshold is ``"stale"`` (stopped with SIGSTOP, hung, or its pid reused), which
``--force`` and the supervisor take over; only a live pid with a fresh heartbeat is
never taken over (`OwnerVerdict.protected`). For an owner on another host (or with no
pid) the heartbeat alone decides, and for this very process (whose pid is alive by
definition, so only a fresh lease shows that it still drives the run). An owner taken
over finds, when it runs again, another activation in the log and stops without
writing (`OwnershipLostError`).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Literal

import msgspec

from ..errors import RunOwnerAliveError, RunStillRunningError

if TYPE_CHECKING:
    from smithers.eventstore import EventStore, Lease
    from smithers.projections import RunState

__all__ = (
    "DEFAULT_STALE_THRESHOLD_MS",
    "OwnerKind",
    "OwnerVerdict",
    "judge_owner",
    "owner_verdict",
    "pid_alive",
    "refuse_if_owned",
)

DEFAULT_STALE_THRESHOLD_MS = 60_000
"""How long (ms) an owner may go without a sign of life before it counts as stale.

The one default of resume, cancel, supervise and time travel. A live owner renews its
lease every `HEARTBEAT_INTERVAL_MS` (1 s), so 60 s is 60 missed beats: enough to ride
out what delays a heartbeat without killing the owner (a long synchronous task or
render holding the event loop, a database locked by other writers, a suspended VM or
laptop, GC pauses) and the clock skew between two hosts (the lease's time is written by
the owner's clock and read by the judge's). Erring that way is cheap: the threshold
decides only for owners on another host (an owner on this host is judged by its pid at
once), so a dead remote owner is taken over at most a minute late, whereas a live owner
judged dead too early would be raced by a second one and its running tasks' side
effects repeated. It is also the supervisor's long-standing default
(``smithers supervise --stale-threshold 60s``).
"""

OwnerKind = Literal["alive", "stale", "gone", "none"]
"""The verdict on a run's owner.

- ``"alive"``: it gave a sign of life within the stale threshold (a lease heartbeat, or
  its `RunStarted` while it has no lease yet) and, on this host, its pid lives.
- ``"stale"``: no sign of life within the threshold, but not provably dead: it is on
  another host, or a process with its pid still exists on this host (stopped, hung, or
  the pid was reused). `OwnerVerdict.pid_alive` tells the two apart. Either is taken
  over by ``--force`` and by the supervisor.
- ``"gone"``: provably dead: its pid on this host does not exist or is a zombie; or it
  is this very process, which holds no fresh lease, so does not drive the run.
- ``"none"``: nobody owns the run: its status is not ``"running"`` (ended, parked, a
  fork not started yet) or no activation has claimed it since a rewind or retry-task.
"""


class OwnerVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """Who owns a run and whether it lives, as `judge_owner` decides."""

    run_id: str
    """The run judged."""
    kind: OwnerKind
    """``"alive"``, ``"stale"``, ``"gone"`` or ``"none"`` (see `OwnerKind`)."""
    reason: str
    """Why, in a sentence naming the pid, host and ages (for messages and logs)."""
    owner_id: str = ""
    """The owner's id from the log's latest `RunStarted`; empty with no owner."""
    pid: int | None = None
    """The owner's process id on `host`; None with no owner."""
    host: str | None = None
    """The owner's host name; None with no owner."""
    local: bool = False
    """Whether `host` is this host."""
    this_process: bool = False
    """Whether the owner is the process that asks (same host and pid)."""
    pid_alive: bool | None = None
    """On this host (and not this process): whether a live process has the owner's pid
    (zombies excluded). None when that cannot be known (another host) or says nothing
    (this process, or no owner)."""
    heartbeat_at_ms: int | None = None
    """Unix epoch ms of the owner's last lease heartbeat; None if it holds no lease."""
    silent_ms: int | None = None
    """How long (ms, >= 0) the owner has given no sign of life: since its heartbeat, or
    since its `RunStarted` if it holds no lease. With no owner, for a ``"running"`` run:
    since the run's last event (how long nobody has driven it); else None."""

    @property
    def lives_here(self) -> bool:
        """True if another live process on this host owns the run (fresh or stale)."""
        return bool(self.pid_alive)

    @property
    def protected(self) -> bool:
        """True if a live process on this host owns the run and its heartbeat is fresh.

        Such an owner is never taken over, not even with ``--force``. A live process
        whose heartbeat is stale (stopped, hung) is not protected: ``--force`` and the
        supervisor take it over.
        """
        return self.lives_here and self.kind == "alive"


def pid_alive(pid: int) -> bool:
    """Return True if a live process with `pid` exists on this host.

    A zombie (a process that exited but was not reaped, as happens to orphans in
    containers whose init does not reap) is not alive. Does not block.

    Args:
        pid: A process id; 0 or negative is never alive.

    Returns:
        Whether the process exists and has not exited.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """True if /proc says `pid` has exited (state ``Z`` or ``X``); False where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # ``pid (comm) state ...``: comm may hold spaces and parentheses, so split at the last ")".
    end = stat.rfind(b")")
    return stat[end + 2 : end + 3] in (b"Z", b"X")


def _owns(lease: Lease, state: RunState) -> bool:
    """Whether `lease` is the heartbeat of the owner the log names."""
    if state.owner_id:
        return lease.owner_id == state.owner_id
    return (lease.pid, lease.host) == (state.pid, state.host)  # a log without owner ids


def judge_owner(
    state: RunState,
    lease: Lease | None,
    *,
    now_ms: int,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    host: str | None = None,
    pid: int | None = None,
) -> OwnerVerdict:
    """Decide whether the owner of `state`'s run is alive, stale or gone.

    Pure but for the pid check (`pid_alive`, which reads ``/proc``); does not block.

    Args:
        state: The run's folded state: its status and owner (latest `RunStarted`).
        lease: The run's lease row, or None if it has none. A lease of another owner
            than the log's is ignored.
        now_ms: Now, Unix epoch ms.
        stale_threshold_ms: How long (ms) an owner may give no sign of life before it
            counts as stale (default `DEFAULT_STALE_THRESHOLD_MS`).
        host: This host's name (default: `socket.gethostname()`; tests pass another).
        pid: This process's id (default: `os.getpid()`).

    Returns:
        The `OwnerVerdict`.
    """
    here = host if host is not None else socket.gethostname()
    me = pid if pid is not None else os.getpid()
    rid = state.run_id
    if state.status != "running" or not (state.owner_id or state.pid or state.host):
        silent = None
        if state.status == "running" and state.updated_at_ms is not None:
            silent = max(now_ms - state.updated_at_ms, 0)
        why = (
            f"the run is {state.status}, so no process drives it"
            if state.status != "running"
            else "no activation has claimed the run since it was last changed from outside"
        )
        return OwnerVerdict(run_id=rid, kind="none", reason=why, silent_ms=silent)

    mine = lease if lease is not None and _owns(lease, state) else None
    heartbeat = mine.heartbeat_at_ms if mine is not None else None
    seen = heartbeat if heartbeat is not None else state.activated_at_ms
    silent = max(now_ms - (seen if seen is not None else state.updated_at_ms or 0), 0)
    fresh = silent < stale_threshold_ms
    signal = (
        f"its lease was renewed {silent} ms ago"
        if heartbeat is not None
        else f"it has held no lease since it claimed the run {silent} ms ago"
    )
    local = state.host == here
    this_process = local and state.pid == me
    alive: bool | None = None
    kind: OwnerKind
    if this_process:
        kind = "alive" if fresh and mine is not None else "gone"
        why = (
            f"this process drives it ({signal})"
            if kind == "alive"
            else f"this process does not drive it ({signal})"
        )
    elif local and state.pid:
        alive = pid_alive(state.pid)
        if not alive:
            kind, why = "gone", f"its process {state.pid} is no longer alive on this host"
        elif fresh:
            kind, why = "alive", f"its process {state.pid} is alive on this host"
        else:
            kind = "stale"
            why = (
                f"its process {state.pid} is alive on this host, but {signal} "
                f"(stale after {stale_threshold_ms} ms)"
            )
    else:
        where = f"on host {state.host}" if state.host else "on an unknown host"
        kind = "alive" if fresh else "stale"
        why = f"it runs {where}, and {signal} (stale after {stale_threshold_ms} ms)"
    return OwnerVerdict(
        run_id=rid,
        kind=kind,
        reason=why,
        owner_id=state.owner_id,
        pid=state.pid,
        host=state.host,
        local=local,
        this_process=this_process,
        pid_alive=alive,
        heartbeat_at_ms=heartbeat,
        silent_ms=silent,
    )


async def owner_verdict(
    store: EventStore,
    state: RunState,
    *,
    now_ms: int,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
) -> OwnerVerdict:
    """`judge_owner` with the run's lease read from `store`. Awaits one read at most.

    Args:
        store: The open store.
        state: The run's folded state.
        now_ms: Now, Unix epoch ms.
        stale_threshold_ms: As `judge_owner`.

    Returns:
        The `OwnerVerdict`.

    Raises:
        DatabaseQueryError: if the lease cannot be read.
    """
    lease = None
    if state.status == "running" and (state.owner_id or state.pid or state.host):
        lease = await store.get_lease(state.run_id)
    return judge_owner(state, lease, now_ms=now_ms, stale_threshold_ms=stale_threshold_ms)


def refuse_if_owned(verdict: OwnerVerdict, *, force: bool = False) -> None:
    """Raise if taking over the judged run from outside is unsafe (resume, time travel).

    A live process on this host with a fresh heartbeat is never taken over
    (`OwnerVerdict.protected`); one whose heartbeat is stale (stopped, hung) only with
    `force`; an owner that only looks alive (a fresh heartbeat from another host, or a
    run this process still drives) only with `force`. Stale owners elsewhere, gone
    owners and no owner are fine. Does not block.

    Args:
        verdict: The run's `OwnerVerdict`.
        force: Take over an owner that only looks alive, or a stale live process here.

    Raises:
        RunOwnerAliveError: if a live process on this host owns the run: with a fresh
            heartbeat (even with `force`), or a stale one (not with `force`).
        RunStillRunningError: if the owner is ``"alive"`` by its heartbeat; not with
            `force`.
    """
    if verdict.protected:
        raise RunOwnerAliveError(verdict.run_id, verdict.owner_id, verdict.pid or 0)
    if verdict.lives_here and not force:
        raise RunOwnerAliveError(
            verdict.run_id, verdict.owner_id, verdict.pid or 0, silent_ms=verdict.silent_ms
        )
    if verdict.kind == "alive" and not force:
        raise RunStillRunningError(verdict.run_id, verdict.silent_ms or 0)
