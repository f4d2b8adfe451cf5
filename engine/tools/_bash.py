"""The `bash` tool: an argv list (no shell string), in its own process group.

Without network unless allowed; killed with its group on timeout or cancellation.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
from typing import TYPE_CHECKING, Literal

import anyio
import msgspec

from ._context import resolve_path
from ._errors import (
    ToolArgumentsError,
    ToolCommandFailedError,
    ToolGitRemoteDisabledError,
    ToolNetworkDisabledError,
    ToolPathInvalidError,
)

if TYPE_CHECKING:
    from anyio.abc import ByteReceiveStream

    from ._context import ToolContext

__all__ = ("BashArgs", "CommandResult", "NetworkMode", "network_mode", "run_command")

NetworkMode = Literal["allowed", "namespace", "blocklist"]
"""How `bash` keeps the network out: not at all (``allowed``), a fresh network namespace
with only a down loopback (``namespace``, via ``unshare``), or the reference's command
block-list (``blocklist``, where namespaces are not available)."""

# The reference's idea: refuse well-known network programs by name. With a namespace
# it still applies, so the error names the cause instead of a DNS failure.
_NETWORK_PROGRAMS = frozenset(
    {
        "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync",
        "telnet", "ftp", "http", "https", "ping", "dig", "nslookup", "aria2c", "lynx",
    }
)  # fmt: skip
_GIT_REMOTE = frozenset(
    {"push", "pull", "fetch", "clone", "ls-remote", "remote", "submodule", "request-pull"}
)
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "fish"})


class BashArgs(msgspec.Struct, forbid_unknown_fields=True):
    """Arguments of `bash`."""

    command: list[str]
    """The program and its arguments (argv); never a shell string."""
    cwd: str = "."
    """Working folder, relative to the sandbox root."""
    timeout_ms: int | None = None
    """Wall-clock limit in milliseconds; None uses the sandbox's ``tool_timeout_ms``
    (a larger value is clamped to it)."""


class CommandResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What a `bash` call returns when the command exits 0."""

    exit_code: int
    """The exit status (0)."""
    stdout: str
    """Standard output, capped (with a truncation marker) at ``max_output_bytes``."""
    stderr: str
    """Standard error, capped likewise (stdout and stderr share the budget)."""
    truncated: bool
    """True if some output was cut."""


@functools.cache
def _namespace_prefix() -> tuple[str, ...] | None:
    """The ``unshare`` argv that gives a process no network here, or None (probed once)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for flags in ("-n", "-rn"):
        try:
            probe = subprocess.run(
                [unshare, flags, "--", "true"], capture_output=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return (unshare, flags, "--")
    return None


def network_mode(allow_network: bool) -> NetworkMode:
    """Which network enforcement `bash` uses on this machine (probes once, cached).

    Returns:
        ``"allowed"`` if `allow_network`; else ``"namespace"`` when ``unshare -n`` (or
        ``unshare -rn`` for a non-root user) works here, ``"blocklist"`` otherwise.
    """
    if allow_network:
        return "allowed"
    return "namespace" if _namespace_prefix() is not None else "blocklist"


def _commands_of(command: list[str]) -> list[list[str]]:
    """The simple commands `command` runs: itself, or each one of a ``sh -c`` script."""
    if os.path.basename(command[0]) in _SHELLS and "-c" in command[1:-1]:
        script = command[command.index("-c", 1) + 1]
        for sep in ("&&", "||", ";", "|", "&", "\n", "$(", "(", ")", "`"):
            script = script.replace(sep, "\0")
        return [part.split() for part in script.split("\0") if part.split()]
    return [command]


def _check_blocklist(command: list[str]) -> None:
    """Refuse known network programs and remote git operations (the reference's list)."""
    for words in _commands_of(command):
        while words and (
            words[0] in ("env", "exec", "command", "nohup", "time") or "=" in words[0]
        ):
            words = words[1:]
        if not words:
            continue
        program = os.path.basename(words[0])
        if program in _SHELLS and "-c" in words:
            _check_blocklist(words)
        if program in _NETWORK_PROGRAMS:
            raise ToolNetworkDisabledError(command, program)
        if program == "git":
            rest = iter(words[1:])
            for sub in rest:
                if sub in ("-C", "-c", "--git-dir", "--work-tree"):
                    next(rest, None)
                    continue
                if sub.startswith("-"):
                    continue
                if sub in _GIT_REMOTE:
                    raise ToolGitRemoteDisabledError(command, sub)
                break


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_command(ctx: ToolContext, args: BashArgs) -> CommandResult:
    """Run `args.command` in the sandbox.

    The command starts in a new session (its own process group) with `cwd` inside the
    root and stdin closed. When the command exits, what it left running in its group is
    killed; on timeout or cancellation the whole group is killed at once. Without
    `ctx.allow_network`, network programs are refused by name and, where the machine
    allows it (`network_mode`), the command runs in an empty network namespace.

    Returns:
        The `CommandResult` of a command that exited 0.

    Raises:
        ToolArgumentsError: if the command is empty.
        ToolPathInvalidError, ToolPathEscapeError: for a bad or outside `cwd`.
        ToolNetworkDisabledError, ToolGitRemoteDisabledError: for a refused command.
        ToolCommandFailedError: on a non-zero exit, a timeout or a command that cannot
            start (output in its details).
    """
    command = list(args.command)
    if not command or not all(isinstance(a, str) and "\x00" not in a for a in command):
        raise ToolArgumentsError("bash", "command must be a non-empty list of strings")
    cwd = resolve_path(ctx, args.cwd)
    if not cwd.is_dir():
        raise ToolPathInvalidError(args.cwd, "the working folder does not exist")
    argv = command
    if not ctx.allow_network:
        _check_blocklist(command)
        prefix = _namespace_prefix()
        if prefix is not None:
            argv = [*prefix, *command]
    timeout_ms = min(args.timeout_ms or ctx.tool_timeout_ms, ctx.tool_timeout_ms)
    budget = [ctx.max_output_bytes]
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    omitted = [0]

    async def pump(stream: ByteReceiveStream | None, name: str) -> None:
        if stream is None:
            return
        async for data in stream:
            keep = data[: budget[0]]
            budget[0] -= len(keep)
            omitted[0] += len(data) - len(keep)
            if keep:
                chunks[name].append(keep)

    try:
        process = await anyio.open_process(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as e:
        raise ToolCommandFailedError(command, exit_code=None, reason=str(e)) from e
    timed_out = False
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, process.stdout, "stdout")
            tg.start_soon(pump, process.stderr, "stderr")
            with anyio.move_on_after(timeout_ms / 1000) as scope:
                await process.wait()
            timed_out = scope.cancelled_caught
            # Exit or timeout: nothing of the command outlives the call (this also
            # closes pipes a background child still held, so the pumps end).
            _kill_group(process.pid)
    finally:
        if process.returncode is None:
            _kill_group(process.pid)
            with anyio.CancelScope(shield=True):
                await process.wait()
        await process.aclose()
    marker = f"\n[... output truncated: {omitted[0]} more bytes ...]" if omitted[0] else ""
    stdout = b"".join(chunks["stdout"]).decode("utf-8", errors="replace")
    stderr = b"".join(chunks["stderr"]).decode("utf-8", errors="replace")
    stdout += marker
    if timed_out or process.returncode != 0:
        raise ToolCommandFailedError(
            command,
            exit_code=None if timed_out else process.returncode,
            timed_out=timed_out,
            stdout=stdout,
            stderr=stderr,
            timeout_ms=timeout_ms,
        )
    return CommandResult(exit_code=0, stdout=stdout, stderr=stderr, truncated=bool(omitted[0]))
