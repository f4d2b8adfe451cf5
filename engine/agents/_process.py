"""Run a command-line agent: spawn, stream its stdout lines, bound it, kill it whole.

As Smithers' CLI agents (DESIGN §8): the process is spawned with `anyio.open_process`
in the task's sandbox root, in a session of its own (so its whole process group can
be killed: no orphan survives a timeout, a cancel or the run's end), with the prompt
on stdin. Its stdout is read line by line and handed to a callback (each line is a
sign of life); stderr is kept as a tail for error messages. A total timeout
(``PROCESS_TIMEOUT``) and an idle timeout (``PROCESS_IDLE_TIMEOUT``: no stdout line
for that long) stop it; a missing binary is ``PROCESS_SPAWN_FAILED`` with an install
hint. Output beyond `max_output_bytes` is not kept (the line callback still sees each
line, cut to that size).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from typing import TYPE_CHECKING

import anyio
import msgspec
from smithers.engine.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = (
    "ProcessAbortedError",
    "ProcessIdleTimeoutError",
    "ProcessResult",
    "ProcessSpawnFailedError",
    "ProcessTimeoutError",
    "run_cli",
)

_STDERR_TAIL_LINES = 40
"""Lines of stderr kept for error messages."""
_SIGNALS = frozenset(int(s) for s in signal.Signals)
_KILL_GRACE_S = 2.0
"""Seconds between SIGTERM and SIGKILL of the process group."""


class ProcessSpawnFailedError(EngineError, FileNotFoundError):
    """The CLI could not be started (not installed, not executable). Not retryable.

    Details: `command`, `args`, `cwd`.
    """

    default_code = "PROCESS_SPAWN_FAILED"


class ProcessTimeoutError(EngineError, TimeoutError):
    """The CLI ran longer than its total timeout. Retryable. Details: `timeoutMs`, ..."""

    default_code = "PROCESS_TIMEOUT"


class ProcessIdleTimeoutError(EngineError, TimeoutError):
    """The CLI printed nothing for longer than its idle timeout. Retryable.

    Details: `idleTimeoutMs`, `command`, `args`, `cwd`.
    """

    default_code = "PROCESS_IDLE_TIMEOUT"


class ProcessAbortedError(EngineError):
    """The CLI was killed by a signal it did not ask for. Retryable."""

    default_code = "PROCESS_ABORTED"


class ProcessResult(msgspec.Struct, frozen=True, kw_only=True):
    """How a CLI process ended."""

    exit_code: int
    """The exit status (negative: killed by that signal)."""
    stderr_tail: str
    """The last lines of stderr."""
    stdout_bytes: int
    """Bytes read from stdout."""
    duration_ms: int
    """Wall-clock time, in ms."""


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def run_cli(
    argv: Sequence[str],
    *,
    cwd: str,
    stdin_text: str | None,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    timeout_ms: int | None = None,
    idle_timeout_ms: int | None = None,
    max_output_bytes: int = 10_000_000,
    install_hint: str | None = None,
) -> ProcessResult:
    """Run `argv` in `cwd`, feeding `stdin_text`, calling `on_line` for each stdout line.

    The process runs in its own session; on return, timeout, error or cancellation its
    whole process group is sent SIGTERM, then SIGKILL after 2 s, and reaped.

    Args:
        argv: The command and its arguments (no shell).
        cwd: Working directory (the sandbox root).
        stdin_text: Written to stdin, which is then closed; None: stdin is /dev/null.
        on_line: Called with each stdout line (without its newline), in order.
        env: The environment (default: this process's).
        timeout_ms: Total limit in ms, or None.
        idle_timeout_ms: Limit in ms between two stdout lines, or None.
        max_output_bytes: Stdout bytes handed to `on_line` at most; beyond, lines are
            dropped (the count goes on).
        install_hint: How to install the CLI, for ``PROCESS_SPAWN_FAILED``.

    Returns:
        The `ProcessResult` (any exit status: the caller decides what it means).

    Raises:
        ProcessSpawnFailedError: if the program cannot be started.
        ProcessTimeoutError: past `timeout_ms`.
        ProcessIdleTimeoutError: past `idle_timeout_ms` without a stdout line.
        ProcessAbortedError: if a signal from outside killed the program.
    """
    details = {"command": argv[0], "args": list(argv[1:]), "cwd": cwd}
    started = time.monotonic()
    try:
        proc = await anyio.open_process(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
        raise ProcessSpawnFailedError(
            f"Cannot start {argv[0]!r}: {e.strerror or e}",
            details=details,
            hint=install_hint or f"Install {argv[0]} and make sure it is on PATH.",
        ) from e
    stderr: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
    seen = 0
    last_line = time.monotonic()
    why: str | None = None

    async def feed() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await proc.stdin.send((stdin_text or "").encode())
        await proc.stdin.aclose()

    async def read_stdout() -> None:
        nonlocal seen, last_line
        assert proc.stdout is not None
        buffer = b""
        async for chunk in proc.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                last_line = time.monotonic()
                seen += len(raw) + 1
                if seen <= max_output_bytes:
                    on_line(raw.decode("utf-8", errors="replace").rstrip("\r"))
        if buffer:
            seen += len(buffer)
            if seen <= max_output_bytes:
                on_line(buffer.decode("utf-8", errors="replace"))

    async def read_stderr() -> None:
        assert proc.stderr is not None
        buffer = b""
        async for chunk in proc.stderr:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            stderr.extend(line.decode("utf-8", errors="replace") for line in lines)
        if buffer:
            stderr.append(buffer.decode("utf-8", errors="replace"))

    async def watch(tg_scope: anyio.CancelScope) -> None:
        nonlocal why
        while True:
            await anyio.sleep(0.05)
            now = time.monotonic()
            if timeout_ms is not None and (now - started) * 1000 >= timeout_ms:
                why = "timeout"
            elif idle_timeout_ms is not None and (now - last_line) * 1000 >= idle_timeout_ms:
                why = "idle"
            if why is not None:
                tg_scope.cancel()
                return

    try:
        async with anyio.create_task_group() as tg:
            if stdin_text is not None:
                tg.start_soon(feed)
            tg.start_soon(read_stderr)
            tg.start_soon(watch, tg.cancel_scope)
            await read_stdout()
            await proc.wait()
            tg.cancel_scope.cancel()
    finally:
        if proc.returncode is None:
            with anyio.CancelScope(shield=True):
                _kill_group(proc.pid, signal.SIGTERM)
                with anyio.move_on_after(_KILL_GRACE_S):
                    await proc.wait()
                if proc.returncode is None:
                    _kill_group(proc.pid, signal.SIGKILL)
                    await proc.wait()
        else:
            _kill_group(proc.pid, signal.SIGKILL)  # children it left behind
        with anyio.CancelScope(shield=True):
            await proc.aclose()
    if why == "timeout":
        raise ProcessTimeoutError(
            f"{argv[0]} ran longer than {timeout_ms} ms",
            details={**details, "timeoutMs": timeout_ms},
            hint="Raise the agent's timeout, or split the task.",
        )
    if why == "idle":
        raise ProcessIdleTimeoutError(
            f"{argv[0]} printed nothing for {idle_timeout_ms} ms",
            details={**details, "idleTimeoutMs": idle_timeout_ms},
            hint="The CLI may be waiting for input or stuck; raise idle_timeout_ms if it "
            "legitimately thinks that long.",
        )
    if proc.returncode is not None and proc.returncode < 0:
        signame = signal.Signals(-proc.returncode).name if -proc.returncode in _SIGNALS else ""
        raise ProcessAbortedError(
            f"{argv[0]} was killed by signal {-proc.returncode} {signame}".rstrip(),
            details=details,
            hint="Something outside the run killed the CLI (out of memory? a person?); "
            "the task's retry runs it again.",
        )
    return ProcessResult(
        exit_code=proc.returncode if proc.returncode is not None else -1,
        stderr_tail="\n".join(stderr),
        stdout_bytes=seen,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
