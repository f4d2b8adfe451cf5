"""The built-in tools as `Tool` values and as one-line async calls for compute tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ._bash import BashArgs, CommandResult, run_command
from ._files import (
    EditArgs,
    GrepArgs,
    ReadArgs,
    WriteArgs,
    edit_file,
    grep_files,
    read_file,
    write_file,
)
from ._registry import Tool

if TYPE_CHECKING:
    from ._context import ToolContext

__all__ = (
    "BASH",
    "BUILTIN_TOOLS",
    "EDIT",
    "GREP",
    "READ",
    "WRITE",
    "bash",
    "edit",
    "grep",
    "read",
    "write",
)


async def _read(ctx: ToolContext, args: ReadArgs) -> str:
    return await anyio.to_thread.run_sync(read_file, ctx, args)


async def _write(ctx: ToolContext, args: WriteArgs) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(write_file, ctx, args)


async def _edit(ctx: ToolContext, args: EditArgs) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(edit_file, ctx, args)


async def _grep(ctx: ToolContext, args: GrepArgs) -> str:
    return await anyio.to_thread.run_sync(grep_files, ctx, args)


READ = Tool(
    "read",
    ReadArgs,
    _read,
    description="Read a UTF-8 text file inside the sandbox root.",
    idempotent=True,
)
"""Built-in `read`: a file's text (capped at ``max_output_bytes``)."""
WRITE = Tool(
    "write",
    WriteArgs,
    _write,
    description="Create or overwrite a file inside the sandbox root with the given content.",
    side_effect=True,
    idempotent=True,
)
"""Built-in `write`: replaces a file's content, creating folders as needed."""
EDIT = Tool(
    "edit",
    EditArgs,
    _edit,
    description="Apply a unified diff (@@ hunks) to a file inside the sandbox root.",
    side_effect=True,
)
"""Built-in `edit`: applies a unified diff, all hunks or none."""
GREP = Tool(
    "grep",
    GrepArgs,
    _grep,
    description="Search files under a path for lines matching a regular expression.",
    idempotent=True,
)
"""Built-in `grep`: ``path:line:text`` lines matching a regular expression."""
BASH = Tool(
    "bash",
    BashArgs,
    run_command,
    description=(
        "Run a program (argv list, no shell string) in the sandbox root; no network unless allowed."
    ),
    side_effect=True,
)
"""Built-in `bash`: runs an argv list in its own process group, sandboxed."""

BUILTIN_TOOLS: tuple[Tool, ...] = (READ, WRITE, EDIT, GREP, BASH)
"""The built-in tools, in the reference's order."""


async def read(ctx: ToolContext, *, path: str) -> str:
    """Read a file in the sandbox, journaled (see `READ`, `read_file`)."""
    result: str = await READ.call(ctx, {"path": path})
    return result


async def write(ctx: ToolContext, *, path: str, content: str) -> dict[str, Any]:
    """Write a file in the sandbox, journaled; returns ``{"path", "bytesWritten"}``."""
    result: dict[str, Any] = await WRITE.call(ctx, {"path": path, "content": content})
    return result


async def edit(ctx: ToolContext, *, path: str, patch: str) -> dict[str, Any]:
    """Apply a unified diff to a sandbox file, journaled.

    Returns ``{"path", "hunksApplied", "bytesWritten"}``; raises `ToolPatchFailedError`
    if it does not apply (the file is unchanged).
    """
    result: dict[str, Any] = await EDIT.call(ctx, {"path": path, "patch": patch})
    return result


async def grep(
    ctx: ToolContext, *, pattern: str, path: str = ".", ignore_case: bool = False
) -> str:
    """Search sandbox files, journaled; returns ``path:line:text`` lines (see `grep_files`)."""
    args = {"pattern": pattern, "path": path, "ignore_case": ignore_case}
    result: str = await GREP.call(ctx, args)
    return result


async def bash(
    ctx: ToolContext, *, command: list[str], cwd: str = ".", timeout_ms: int | None = None
) -> CommandResult:
    """Run an argv list in the sandbox, journaled (see `run_command` for the rules).

    Raises:
        ToolCommandFailedError: on a non-zero exit or a timeout (group killed).
        ToolNetworkDisabledError, ToolGitRemoteDisabledError: when refused.
    """
    args = {"command": command, "cwd": cwd, "timeout_ms": timeout_ms}
    result: CommandResult = await BASH.call(ctx, args)
    return result
