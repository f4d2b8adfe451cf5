"""The heuristics shared by ``smithers why`` and the offline classifier.

Which error codes and exception class names come and go (a retry may pass), which ones
mean a bug (the same input fails the same way), and the environment signals read from
an error's name, message and traceback: a missing program, a missing environment
variable, permission denied, a full disk, a locked database, an unreachable network, a
refused credential. Pure data and pure functions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._evidence import ErrorFact

__all__ = (
    "BUG_EXCEPTIONS",
    "FLAKE_CODES",
    "TRANSIENT_CODES",
    "TRANSIENT_EXCEPTIONS",
    "EnvironmentSignal",
    "environment_signal",
)

FLAKE_CODES = frozenset(
    {
        "AGENT_RATE_LIMITED",
        "AGENT_PROVIDER_ERROR",
        "AGENT_QUOTA_EXCEEDED",
        "AGENT_CLI_ERROR",
        "AGENT_DIAGNOSTIC_TIMEOUT",
        "PROCESS_TIMEOUT",
        "PROCESS_IDLE_TIMEOUT",
        "PROCESS_ABORTED",
        "TASK_TIMEOUT",
        "TASK_HEARTBEAT_TIMEOUT",
        "TASK_ABORTED",
    }
)
"""Codes of a provider or a process that faltered (rate limit, 5xx, timeout): agent-flake."""

TRANSIENT_CODES = FLAKE_CODES | frozenset({"DB_WRITE_FAILED", "DB_QUERY_FAILED"})
"""Codes of failures that come and go (a provider, a process, the disk): a retry may pass."""

TRANSIENT_EXCEPTIONS = frozenset(
    {
        "ConnectionError",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "TimeoutError",
        "ReadTimeout",
        "ConnectTimeout",
        "RemoteProtocolError",
        "ServiceUnavailableError",
        "RateLimitError",
        "APIConnectionError",
        "APITimeoutError",
        "InternalServerError",
    }
)
"""Exception class names (from user code or a library) that usually pass on a retry."""

BUG_EXCEPTIONS = frozenset(
    {
        "ValueError",
        "TypeError",
        "KeyError",
        "IndexError",
        "AttributeError",
        "NameError",
        "UnboundLocalError",
        "AssertionError",
        "ZeroDivisionError",
        "NotImplementedError",
        "ImportError",
        "ModuleNotFoundError",
        "SyntaxError",
        "RecursionError",
    }
)
"""Exception class names that usually mean a bug: the same code and input fail again."""


class EnvironmentSignal(msgspec.Struct, frozen=True, kw_only=True):
    """A sign that the machine, not the workflow, is at fault."""

    kind: str
    """``missing-binary``, ``missing-file``, ``missing-env``, ``permission``,
    ``disk-full``, ``db-locked``, ``network`` or ``auth``."""
    what: str
    """What is wrong, in a sentence."""
    fix: str
    """The fix, in a sentence."""
    strong: bool
    """True when the signal alone is convincing (high confidence)."""


_QUOTED = re.compile(r"""['"`]([^'"`]+)['"`]""")
_ENV_MESSAGE = re.compile(
    r"(?:environment variable|env var)\s+['\"`$]?([A-Za-z_][A-Za-z0-9_]*)"
    r"|\b([A-Z][A-Z0-9_]{2,})\b\s+(?:is\s+)?(?:not set|unset|missing)",
    re.IGNORECASE,
)
_NETWORK = (
    "network is unreachable",
    "no route to host",
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "getaddrinfo failed",
    "connection refused",
    "could not resolve host",
)
_AUTH = (
    "401 unauthorized",
    "invalid api key",
    "incorrect api key",
    "invalid x-api-key",
    "authentication failed",
    "not logged in",
    "please run /login",
)


def _chain(error: ErrorFact) -> Iterator[ErrorFact]:
    current: ErrorFact | None = error
    while current is not None:
        yield current
        current = current.cause


def _quoted(message: str) -> str | None:
    m = _QUOTED.search(message)
    return m.group(1) if m else None


def environment_signal(error: ErrorFact) -> EnvironmentSignal | None:
    """Return the environment problem `error` (or its cause) shows, or None. Pure.

    Args:
        error: A task's or the run's error.

    Returns:
        The first signal found: missing program (``PROCESS_SPAWN_FAILED``, a
        `FileNotFoundError` raised starting a process), missing environment variable (a
        `KeyError` on ``os.environ``, a message naming an unset variable), permission
        denied, disk full, database locked, network unreachable, refused credential,
        missing file; else None.
    """
    for err in _chain(error):
        text = f"{err.name}: {err.message}\n{err.stack or ''}"
        low = text.lower()
        if err.code == "PROCESS_SPAWN_FAILED" or (
            err.name == "FileNotFoundError"
            and any(s in (err.stack or "") for s in ("subprocess", "Popen", "exec"))
        ):
            prog = _quoted(err.message) or "a program"
            return EnvironmentSignal(
                kind="missing-binary",
                what=f"The program {prog} is not installed (or not on PATH).",
                fix=f"Install {prog} (or put it on PATH), then run the task again.",
                strong=True,
            )
        if err.name == "KeyError" and "environ" in (err.stack or ""):
            var = (_quoted(err.message) or err.message).strip("'\"")
            return EnvironmentSignal(
                kind="missing-env",
                what=f"The environment variable {var} is not set.",
                fix=f"Set it (export {var}=...) in the shell that runs smithers, then run "
                "the task again.",
                strong=True,
            )
        m = _ENV_MESSAGE.search(err.message)
        if m:
            var = m.group(1) or m.group(2)
            return EnvironmentSignal(
                kind="missing-env",
                what=f"The environment variable {var} is not set.",
                fix=f"Set it (export {var}=...), then run the task again.",
                strong=False,
            )
        if "no space left on device" in low or "disk quota exceeded" in low or "enospc" in low:
            return EnvironmentSignal(
                kind="disk-full",
                what="The disk is full.",
                fix="Free space on the disk (or point the run elsewhere), then run the task again.",
                strong=True,
            )
        if err.name == "PermissionError" or "permission denied" in low or "eacces" in low:
            path = _quoted(err.message)
            on = f" on {path}" if path else ""
            return EnvironmentSignal(
                kind="permission",
                what=f"Permission denied{on}.",
                fix=f"Give the user running smithers access{on}, then run the task again.",
                strong=True,
            )
        if err.code == "SQLITE_BUSY" or "database is locked" in low:
            return EnvironmentSignal(
                kind="db-locked",
                what="A SQLite database was locked by another process.",
                fix="Stop the other process holding the database (`smithers ps`), then run "
                "the task again.",
                strong=False,
            )
        if any(s in low for s in _NETWORK):
            return EnvironmentSignal(
                kind="network",
                what="The network or the service it calls is unreachable from this machine.",
                fix="Check the network, DNS and that the service is up, then run the task again.",
                strong=False,
            )
        if any(s in low for s in _AUTH):
            return EnvironmentSignal(
                kind="auth",
                what="A credential was refused (not logged in, or a bad API key).",
                fix="Log in or set a valid API key, then run the task again.",
                strong=True,
            )
        if err.name == "FileNotFoundError":
            path = _quoted(err.message) or "a file"
            return EnvironmentSignal(
                kind="missing-file",
                what=f"The file {path} does not exist on this machine.",
                fix=f"Create {path} (or fix the path the workflow reads), then run the task again.",
                strong=False,
            )
    return None
