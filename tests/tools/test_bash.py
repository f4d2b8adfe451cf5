"""`bash`: argv only, process group killed on timeout and cancel, output cap, no network."""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from typing import TYPE_CHECKING

import anyio
import pytest
from smithers.engine.tools import (
    BASH,
    ToolArgumentsError,
    ToolCommandFailedError,
    ToolContext,
    ToolGitRemoteDisabledError,
    ToolNetworkDisabledError,
    bash,
    network_mode,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from smithers.eventstore.events import Event


def _gone(pid: int) -> bool:
    """True when `pid` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return False


async def test_runs_an_argv_list_in_the_root(ctx: ToolContext, root: Path) -> None:
    (root / "sub").mkdir()
    result = await bash(ctx, command=["pwd"], cwd="sub")
    assert result.exit_code == 0
    assert result.stdout.strip() == str(root / "sub")
    assert result.truncated is False


async def test_a_shell_string_is_refused(ctx: ToolContext) -> None:
    with pytest.raises(ToolArgumentsError) as info:
        await BASH.call(ctx, {"command": "echo hi && ls"})
    assert info.value.code == "INVALID_INPUT"
    with pytest.raises(ToolArgumentsError):
        await bash(ctx, command=[])


async def test_a_non_zero_exit_is_command_failed_with_its_output(ctx: ToolContext) -> None:
    with pytest.raises(ToolCommandFailedError) as info:
        await bash(ctx, command=["sh", "-c", "echo out; echo err >&2; exit 3"])
    err = info.value
    assert err.code == "TOOL_COMMAND_FAILED"
    assert (err.exit_code, err.timed_out) == (3, False)
    assert err.details["stdout"] == "out\n"
    assert err.details["stderr"] == "err\n"
    assert err.retryable


async def test_a_missing_program_is_command_failed(ctx: ToolContext) -> None:
    with pytest.raises(ToolCommandFailedError):
        await bash(ctx, command=["definitely-not-a-program-xyz"])


async def test_timeout_kills_the_whole_process_group(root: Path) -> None:
    ctx = ToolContext(root, tool_timeout_ms=500)
    script = "sleep 60 & echo $! > child.pid; wait"
    started = time.monotonic()
    with pytest.raises(ToolCommandFailedError, match="timeout of 500 ms") as info:
        await bash(ctx, command=["sh", "-c", script])
    assert info.value.timed_out
    assert time.monotonic() - started < 5
    child = int((root / "child.pid").read_text())
    assert _wait_gone(child)


async def test_a_background_child_does_not_outlive_a_finished_command(root: Path) -> None:
    ctx = ToolContext(root, tool_timeout_ms=10_000)
    started = time.monotonic()
    result = await bash(ctx, command=["sh", "-c", "sleep 60 & echo $! > child.pid"])
    assert result.exit_code == 0
    assert time.monotonic() - started < 5
    assert _wait_gone(int((root / "child.pid").read_text()))


async def test_cancellation_kills_the_process_group(ctx: ToolContext, root: Path) -> None:
    pid_file = root / "child.pid"
    with anyio.move_on_after(10) as outer:
        async with anyio.create_task_group() as tg:
            command = ["sh", "-c", "sleep 60 & echo $! > child.pid; wait"]
            tg.start_soon(functools.partial(bash, ctx, command=command))
            while not pid_file.exists() or not pid_file.read_text().strip():
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
    assert not outer.cancelled_caught
    assert _wait_gone(int(pid_file.read_text()))


async def test_cancellation_is_journaled(ctx: ToolContext, journal: list[Event]) -> None:
    with anyio.move_on_after(0.3):
        await bash(ctx, command=["sleep", "30"])
    assert [type(e).__name__ for e in journal] == ["ToolCallStarted", "ToolCallFinished"]
    assert getattr(journal[-1], "status", None) == "cancelled"


async def test_per_call_timeout_is_clamped_to_the_sandbox_limit(root: Path) -> None:
    ctx = ToolContext(root, tool_timeout_ms=300)
    with pytest.raises(ToolCommandFailedError) as info:
        await bash(ctx, command=["sleep", "30"], timeout_ms=60_000)
    assert info.value.timed_out


async def test_output_is_capped_with_a_marker(root: Path) -> None:
    ctx = ToolContext(root, max_output_bytes=1000)
    code = "import sys; sys.stdout.write('x' * 50_000); sys.stdout.flush()"
    result = await bash(ctx, command=[sys.executable, "-c", code])
    assert result.truncated
    assert result.stdout.startswith("x" * 1000)
    assert result.stdout.count("x") == 1000
    assert "output truncated: 49000 more bytes" in result.stdout


async def test_stdout_and_stderr_share_the_output_budget(root: Path) -> None:
    ctx = ToolContext(root, max_output_bytes=100)
    code = "import sys; sys.stderr.write('e' * 80); sys.stderr.flush(); print('z' * 80)"
    result = await bash(ctx, command=[sys.executable, "-c", code])
    assert len(result.stdout.replace("\n", "").rstrip(".")) + len(result.stderr) < 200
    assert result.stderr.count("e") + result.stdout.count("z") == 100


# ---------------------------------------------------------------------------- network


@pytest.fixture
def local_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (the kernel's backlog), no internet."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def _connect(port: int) -> list[str]:
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('ok')"
    return [sys.executable, "-c", code]


def test_the_network_mode_is_reported() -> None:
    assert network_mode(True) == "allowed"
    assert network_mode(False) in ("namespace", "blocklist")


async def test_with_network_allowed_the_local_port_answers(root: Path, local_port: int) -> None:
    ctx = ToolContext(root, allow_network=True)
    result = await bash(ctx, command=_connect(local_port))
    assert result.stdout.strip() == "ok"


@pytest.mark.skipif(
    network_mode(False) != "namespace", reason="no network namespace on this machine"
)
async def test_without_network_a_connection_to_a_local_port_fails(
    ctx: ToolContext, local_port: int
) -> None:
    assert not ctx.allow_network
    with pytest.raises(ToolCommandFailedError) as info:
        await bash(ctx, command=_connect(local_port))
    assert info.value.exit_code != 0
    assert "ok" not in info.value.details["stdout"]


@pytest.mark.parametrize(
    "command",
    [
        ["curl", "https://example.com"],
        ["/usr/bin/wget", "-q", "http://example.com"],
        ["sh", "-c", "echo hi && curl -s http://example.com | head"],
        ["env", "A=1", "ssh", "host"],
    ],
)
async def test_network_programs_are_refused_without_running(
    ctx: ToolContext, command: list[str], root: Path
) -> None:
    with pytest.raises(ToolNetworkDisabledError) as info:
        await bash(ctx, command=command)
    assert info.value.code == "TOOL_NETWORK_DISABLED"


@pytest.mark.parametrize(
    "command",
    [
        ["git", "push", "origin", "main"],
        ["git", "-C", "repo", "fetch"],
        ["bash", "-c", "git status; git pull --rebase"],
    ],
)
async def test_remote_git_is_refused(ctx: ToolContext, command: list[str]) -> None:
    with pytest.raises(ToolGitRemoteDisabledError) as info:
        await bash(ctx, command=command)
    assert info.value.code == "TOOL_GIT_REMOTE_DISABLED"


async def test_local_git_and_words_in_arguments_are_not_refused(
    ctx: ToolContext, root: Path
) -> None:
    (root / "notes.txt").write_text("use curl to push\n")
    result = await bash(ctx, command=["grep", "-c", "curl", "notes.txt"])
    assert result.stdout.strip() == "1"
    if os.path.exists("/usr/bin/git"):
        await bash(ctx, command=["git", "init", "-q"])
