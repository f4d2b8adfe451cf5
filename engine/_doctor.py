"""`diagnose`: what this machine gives smithers-py (``smithers doctor``).

Versions, the optional extras installed, which network enforcement the ``bash`` tool
gets here (a network namespace, or the reference's command block-list), which model
provider keys are set (never their values), and the database's state. Read-only: it
never creates or changes a database.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec

from .tools import network_mode

__all__ = ("AgentAvailability", "Check", "DoctorReport", "diagnose", "diagnose_agents")

_EXTRAS: tuple[tuple[str, str, str], ...] = (
    (
        "pydantic-ai-slim",
        "ai",
        "model agents (smithers.agents.openai/anthropic, pydantic_ai.Agent)",
    ),
    ("openai", "ai", "OpenAI provider"),
    ("anthropic", "ai", "Anthropic provider"),
)
"""Optional distributions: (distribution, extra that installs it, what it enables)."""
_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
"""Provider credentials the model-agent conveniences read from the environment."""


class Check(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One line of the report."""

    name: str
    """What was checked, e.g. ``"network"``."""
    status: str
    """``"ok"``, ``"warn"`` (works, with a limit) or ``"missing"`` (optional, absent)."""
    detail: str
    """What was found, in words."""
    hint: str | None = None
    """What to do about a ``warn``/``missing``, if anything."""


class DoctorReport(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `diagnose` found."""

    smithers_version: str
    python: str
    platform: str
    network_mode: str
    """``"namespace"`` (``bash`` runs in an empty network namespace) or ``"blocklist"``
    (known network programs are refused; a program reaching the network by itself is
    not stopped)."""
    checks: tuple[Check, ...]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _db_check(db: str | os.PathLike[str] | None) -> Check | None:
    if db is None:
        return None
    path = Path(db)
    if not path.exists():
        return Check(
            name="database",
            status="warn",
            detail=f"{path} does not exist yet",
            hint="It is created by the first `smithers up` with this --db.",
        )
    if not path.is_file():
        return Check(name="database", status="warn", detail=f"{path} is not a file")
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    size = path.stat().st_size
    return Check(
        name="database",
        status="ok" if writable else "warn",
        detail=f"{path} ({size} bytes, {'writable' if writable else 'read-only'})",
        hint=None if writable else "Runs need write access to the file and its folder.",
    )


def diagnose(db: str | os.PathLike[str] | None = None) -> DoctorReport:
    """Report what this machine gives smithers-py. Read-only; probes ``unshare`` once.

    Args:
        db: A database path to look at (not opened, never created), or None.

    Returns:
        The `DoctorReport`.
    """
    mode = network_mode(False)
    checks = [
        Check(
            name="network",
            status="ok" if mode == "namespace" else "warn",
            detail=(
                "bash runs in an empty network namespace (unshare -n) unless a run allows "
                "the network"
                if mode == "namespace"
                else "no network namespace here: bash refuses known network programs "
                "(curl, wget, ssh, git push, ...) but cannot stop others"
            ),
            hint=None
            if mode == "namespace"
            else "Install util-linux's unshare and allow unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1) for real isolation.",
        )
    ]
    for dist, extra, what in _EXTRAS:
        version = _version(dist)
        checks.append(
            Check(
                name=dist,
                status="ok" if version else "missing",
                detail=f"{version} ({what})" if version else f"not installed ({what})",
                hint=None if version else f"pip install 'smithers-py[{extra}]'",
            )
        )
    for key in _KEYS:
        present = bool(os.environ.get(key))
        checks.append(
            Check(
                name=key,
                status="ok" if present else "missing",
                detail="set" if present else "not set",
                hint=None if present else f"export {key}=… to use that provider's agents",
            )
        )
    db_check = _db_check(db)
    if db_check is not None:
        checks.append(db_check)
    return DoctorReport(
        smithers_version=_version("smithers-py") or "unknown",
        python=sys.version.split()[0],
        platform=platform.platform(),
        network_mode=mode,
        checks=tuple(checks),
    )


class AgentAvailability(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One agent smithers-py can use, and whether this machine has what it needs."""

    name: str
    """How a workflow names it, e.g. ``"ClaudeCodeAgent"``, ``"agents.openai"``."""
    kind: str
    """``"cli"`` (a coding-agent command) or ``"api"`` (a model API through Pydantic AI)."""
    available: bool
    """True if it can run here (the command is on PATH, or the extra is installed)."""
    path: str | None = None
    """The command's full path (CLI agents), None if not found."""
    version: str | None = None
    """What ``<command> --version`` printed, or the extra's version."""
    keys: dict[str, bool] = msgspec.field(default_factory=dict)
    """Environment variables with credentials it reads: set or not (never the value)."""
    install: str
    """How to install it."""


_CLI_AGENTS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("ClaudeCodeAgent", "claude", ("ANTHROPIC_API_KEY",), "@anthropic-ai/claude-code"),
    ("CodexAgent", "codex", ("OPENAI_API_KEY", "CODEX_API_KEY"), "@openai/codex"),
    ("GeminiAgent", "gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "@google/gemini-cli"),
)
"""CLI agents: (class, command, credential variables, npm package)."""
_API_AGENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("agents.openai", "openai", ("OPENAI_API_KEY",)),
    ("agents.anthropic", "anthropic", ("ANTHROPIC_API_KEY",)),
)


def _cli_version(path: str) -> str | None:
    try:
        done = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0][:200] if lines and done.returncode == 0 else None


def diagnose_agents() -> tuple[AgentAvailability, ...]:
    """List the agents smithers-py can use and what this machine has for each.

    CLI agents: the command on PATH and its ``--version`` (run with a 15 s limit);
    model API agents: the Pydantic AI extra and the provider SDK. Credentials are
    reported as set or not, never printed. Runs subprocesses; writes nothing.
    """
    out: list[AgentAvailability] = []
    for name, command, keys, package in _CLI_AGENTS:
        path = shutil.which(command)
        out.append(
            AgentAvailability(
                name=name,
                kind="cli",
                available=path is not None,
                path=path,
                version=_cli_version(path) if path else None,
                keys={k: bool(os.environ.get(k)) for k in keys},
                install=f"npm install -g {package}",
            )
        )
    pydantic = _version("pydantic-ai-slim")
    for name, sdk, keys in _API_AGENTS:
        version = _version(sdk)
        both = f"pydantic-ai-slim {pydantic}, {sdk} {version}" if pydantic and version else None
        out.append(
            AgentAvailability(
                name=name,
                kind="api",
                available=bool(pydantic and version),
                version=both,
                keys={k: bool(os.environ.get(k)) for k in keys},
                install="pip install 'smithers-py[ai]'",
            )
        )
    return tuple(out)
