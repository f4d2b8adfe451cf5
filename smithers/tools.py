"""The built-in tools for compute tasks: ``await smithers.tools.read(ctx, path=…)``.

The same sandbox and journal as agent tools (DESIGN §8, Smithers' tool sandbox): paths
are confined to the run's root (``run_workflow(root_dir=…)``, ``smithers up --root``;
default: the workflow file's folder), `bash` runs an argv list without network unless
the run allows it, outputs are capped, and every call is recorded in the run's log as
``ToolCallStarted``/``ToolCallFinished`` of the calling attempt::

    import smithers

    async def fix(ctx: smithers.TaskContext) -> dict:
        text = await smithers.tools.read(ctx, path="notes.txt")
        await smithers.tools.write(ctx, path="out/notes.txt", content=text.upper())
        return {"bytes": len(text)}

`ctx` is the task's `TaskContext` (its ``ctx.tools`` is used) or a `ToolContext`
built by hand (e.g. outside a run). A tool's failure is raised as its ``TOOL_*`` error
(e.g. `ToolPathEscapeError`) and, unless caught, fails the attempt with that code.
"""

from __future__ import annotations

import typing

from smithers.engine import tools as _tools
from smithers.engine.authoring import TaskContext
from smithers.engine.tools import CommandResult, ToolContext, ToolError, define_tool
from smithers.eventstore import errors as _errors

__all__ = (
    "CommandResult",
    "TaskContext",
    "ToolContext",
    "ToolError",
    "bash",
    "define_tool",
    "edit",
    "grep",
    "read",
    "write",
)


def _tool_context(ctx: TaskContext | ToolContext) -> ToolContext:
    if isinstance(ctx, ToolContext):
        return ctx
    if isinstance(ctx, TaskContext):
        tools = ctx.tools
        assert isinstance(tools, ToolContext)
        return tools
    raise _errors.InvalidArgumentTypeError(
        f"expected a TaskContext or a ToolContext, got {type(ctx).__name__}"
    )


async def read(ctx: TaskContext | ToolContext, *, path: str) -> str:
    """Return the text of the UTF-8 file `path` (relative to the sandbox root).

    The text is capped at the run's ``max_output_bytes`` (a truncation marker is added).

    Raises:
        ToolPathEscapeError: if `path` resolves outside the root (``..``, absolute
            paths, symlinks).
        ToolPathInvalidError, ToolFileTooLargeError: for a bad path or a too large file.
        TypeError: if `ctx` is neither a `TaskContext` nor a `ToolContext`.
    """
    return await _tools.read(_tool_context(ctx), path=path)


async def write(
    ctx: TaskContext | ToolContext, *, path: str, content: str
) -> dict[str, typing.Any]:
    """Create or replace the file `path` with `content`, creating folders as needed.

    Returns:
        ``{"path": <relative path>, "bytesWritten": <int>}``.

    Raises:
        ToolPathEscapeError: if `path` resolves outside the root.
        ToolContentTooLargeError: if `content` is too large.
    """
    return await _tools.write(_tool_context(ctx), path=path, content=content)


async def edit(ctx: TaskContext | ToolContext, *, path: str, patch: str) -> dict[str, typing.Any]:
    """Apply the unified diff `patch` to the file `path`: every hunk, or none.

    Returns:
        ``{"path", "hunksApplied", "bytesWritten"}``.

    Raises:
        ToolPatchFailedError: if a hunk does not apply (the file is unchanged).
        ToolPathEscapeError: if `path` resolves outside the root.
    """
    return await _tools.edit(_tool_context(ctx), path=path, patch=patch)


async def grep(
    ctx: TaskContext | ToolContext, *, pattern: str, path: str = ".", ignore_case: bool = False
) -> str:
    """Search the files under `path` for the regular expression `pattern`.

    Returns:
        ``path:line:text`` lines, capped at ``max_output_bytes``.

    Raises:
        ToolGrepFailedError: for an invalid pattern.
        ToolPathEscapeError: if `path` resolves outside the root.
    """
    tctx = _tool_context(ctx)
    return await _tools.grep(tctx, pattern=pattern, path=path, ignore_case=ignore_case)


async def bash(
    ctx: TaskContext | ToolContext,
    *,
    command: list[str],
    cwd: str = ".",
    timeout_ms: int | None = None,
) -> CommandResult:
    """Run the argv list `command` (no shell string) in the sandbox, in `cwd`.

    Without network unless the run allows it; killed with its process group after
    `timeout_ms` (default: the run's ``tool_timeout_ms``) or on cancellation.

    Raises:
        ToolCommandFailedError: on a non-zero exit or a timeout.
        ToolNetworkDisabledError, ToolGitRemoteDisabledError: when the command is refused.
        ToolPathEscapeError: if `cwd` resolves outside the root.
    """
    return await _tools.bash(_tool_context(ctx), command=command, cwd=cwd, timeout_ms=timeout_ms)
