"""Who takes an operation: the `Actor` an operation event records (the audit trail).

`resolve_actor` builds it where an operation enters (the CLI, the Python API, the
supervisor), validating what the user typed (``--by``, ``--reason``) before anything is
opened or recorded.
"""

from __future__ import annotations

import getpass
import os
import socket
import unicodedata

from smithers.eventstore.events import Actor

from .errors import InvalidInputError

__all__ = ("ACTOR_ENV", "INTERFACES", "MAX_ACTOR_LENGTH", "MAX_REASON_LENGTH", "resolve_actor")

ACTOR_ENV = "SMITHERS_ACTOR"
"""Environment variable naming the actor of operations taken without ``--by``."""

INTERFACES = frozenset({"cli", "api", "http", "supervisor", "worker"})
"""The interfaces an `Actor` may name."""

MAX_ACTOR_LENGTH = 200
"""Longest actor name (characters)."""

MAX_REASON_LENGTH = 2_000
"""Longest reason (characters)."""


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        return "unknown"


def _checked(value: str, *, what: str, limit: int, multiline: bool) -> str:
    text = value.strip()
    reason: str | None = None
    if not text:
        reason = "is empty"
    elif len(text) > limit:
        reason = f"is {len(text)} characters long (at most {limit})"
    else:
        allowed = {"\n", "\t"} if multiline else set()
        if any(unicodedata.category(c)[0] == "C" and c not in allowed for c in text):
            reason = "has control characters"
    if reason is None:
        return text
    raise InvalidInputError(
        f"Invalid {what} {value[:80]!r}: it {reason}.",
        details={"field": what, "reason": reason},
        hint=f"Give a {what} of printable text, at most {limit} characters.",
    )


def resolve_actor(interface: str, *, by: str | None = None, reason: str | None = None) -> Actor:
    """Return the `Actor` of an operation taken now, in this process.

    The name is `by`, else ``$SMITHERS_ACTOR``, else the OS user; host and pid are this
    process's. Pure apart from reading the environment: call it where the operation
    enters, before anything is recorded.

    Args:
        interface: One of `INTERFACES` (``"cli"``, ``"api"``, ``"http"``,
            ``"supervisor"``, ``"worker"``).
        by: Who, as the user gave it (``--by NAME``), or None.
        reason: Why (``--reason TEXT``), or None.

    Returns:
        The actor, names stripped of surrounding blanks.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `by` or `reason` is empty once
            stripped, too long (`MAX_ACTOR_LENGTH`, `MAX_REASON_LENGTH` characters) or
            has control characters (a reason may span lines), or `interface` is unknown.

    Example:
        >>> resolve_actor("cli", by="alice", reason="bad input").name
        'alice'
    """
    if interface not in INTERFACES:
        raise InvalidInputError(
            f"Unknown interface {interface!r}.",
            details={"field": "interface", "reason": "unknown"},
            hint="Use one of: " + ", ".join(sorted(INTERFACES)) + ".",
        )
    if by is not None:
        name = _checked(by, what="actor", limit=MAX_ACTOR_LENGTH, multiline=False)
    else:
        env = os.environ.get(ACTOR_ENV, "").strip()
        name = env[:MAX_ACTOR_LENGTH] if env else _os_user()
    why = None
    if reason is not None:
        why = _checked(reason, what="reason", limit=MAX_REASON_LENGTH, multiline=True)
    return Actor(
        name=name, host=socket.gethostname(), pid=os.getpid(), interface=interface, reason=why
    )
