"""Who holds a SQLite file's write lock: a best-effort lookup in ``/proc/locks`` (Linux).

SQLite locks with POSIX advisory locks (``fcntl``): in WAL mode the write lock is a
byte of the ``-shm`` file, with a rollback journal a range of the database file. The
kernel lists every such lock in ``/proc/locks`` with the holder's pid and the file's
device and inode, so a writer that gave up waiting can name the process in its way.
Never raises: where ``/proc`` is missing or unreadable, or no lock is found, the answer
is None.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ("LockHolder", "find_lock_holder")

_WAL_WRITE_LOCK = 120
"""Offset of the WAL write lock in the ``-shm`` file (SQLite's ``WALINDEX_LOCK_OFFSET``)."""
_MAX_COMMAND = 200
"""Most characters of the holder's command line kept."""


class LockHolder(msgspec.Struct, frozen=True, kw_only=True):
    """A process holding a write lock on a database's files."""

    pid: int
    """Its process id (on this host)."""
    command: str
    """Its command line (arguments joined by spaces, cut at 200 characters); empty if
    unknown."""


def find_lock_holder(db_path: Path, *, exclude_pid: int | None = None) -> LockHolder | None:
    """Return a process holding a write lock on `db_path` or its -wal/-shm, if found.

    Blocking I/O (reads ``/proc``), a few ms: call it in a thread. Never raises.

    Args:
        db_path: The database file.
        exclude_pid: A pid not to report (default: this process's).

    Returns:
        The holder (the WAL write lock's first), or None if none is found or ``/proc``
        cannot tell.
    """
    me = os.getpid() if exclude_pid is None else exclude_pid
    try:
        files = {}
        for suffix in ("", "-shm", "-wal"):
            try:
                st = os.stat(str(db_path) + suffix)
            except OSError:
                continue
            files[st.st_ino] = (suffix, f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}")
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found: list[tuple[int, int]] = []  # (rank, pid): lower rank first
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "->":  # "->": a waiter, not a holder
            continue
        _, _, _, kind, pid_s, where, start_s = fields[:7]
        if kind != "WRITE":
            continue
        dev, _, ino_s = where.rpartition(":")
        try:
            pid, ino = int(pid_s), int(ino_s)
        except ValueError:
            continue
        if pid <= 0 or pid == me or ino not in files:
            continue
        suffix, want_dev = files[ino]
        rank = 0 if suffix == "-shm" and start_s == str(_WAL_WRITE_LOCK) else 1
        rank += 0 if dev == want_dev else 2  # another device's inode of that number
        found.append((rank, pid))
    if not found:
        return None
    pid = min(found)[1]
    return LockHolder(pid=pid, command=_command(pid))


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ""
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return text[:_MAX_COMMAND]
