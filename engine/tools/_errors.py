"""Errors the built-in tools raise, one class per `TOOL_*` code of Smithers' catalogue."""

from __future__ import annotations

from typing import Any

from smithers.engine.errors import EngineError

__all__ = (
    "ToolError",
    "ToolArgumentsError",
    "ToolPathInvalidError",
    "ToolPathEscapeError",
    "ToolFileTooLargeError",
    "ToolContentTooLargeError",
    "ToolPatchTooLargeError",
    "ToolPatchFailedError",
    "ToolNetworkDisabledError",
    "ToolGitRemoteDisabledError",
    "ToolCommandFailedError",
    "ToolGrepFailedError",
)


class ToolError(EngineError):
    """Base class of errors raised by a tool call (built-in or `define_tool`)."""

    default_code = "INTERNAL_ERROR"


class ToolArgumentsError(ToolError, ValueError):
    """A tool was called with arguments its schema rejects (INVALID_INPUT, not retryable).

    Details: `tool`, `errors`.
    """

    default_code = "INVALID_INPUT"

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(
            f"Tool {tool!r} got invalid arguments: {reason}.",
            details={"tool": tool, "errors": reason},
            hint="Call the tool with arguments matching its schema.",
        )


class ToolPathInvalidError(ToolError, ValueError):
    """A path is not a non-empty string, or names nothing usable.

    Also raised for a missing file or a folder where a file is needed. Details: `path`,
    `reason`.
    """

    default_code = "TOOL_PATH_INVALID"

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(
            f"Invalid tool path {path!r}: {reason}.",
            details={"path": path if isinstance(path, str) else repr(path), "reason": reason},
            hint="Pass a path (a string) relative to the sandbox root.",
        )


class ToolPathEscapeError(ToolError, PermissionError):
    """A path resolves outside `root_dir`.

    Through ``..``, an absolute path or a symlink (also one an earlier tool call
    created). Details: `path`, `resolved`, `rootDir`.
    """

    default_code = "TOOL_PATH_ESCAPE"

    def __init__(self, path: str, resolved: str, root_dir: str) -> None:
        super().__init__(
            f"Path {path!r} resolves to {resolved!r}, outside the sandbox root {root_dir!r}.",
            details={"path": path, "resolved": resolved, "rootDir": root_dir},
            hint="Use a path inside the sandbox root (symlinks are followed before the check).",
        )


class _SizeError(ToolError, ValueError):
    what = "content"

    def __init__(self, path: str, size_bytes: int, max_bytes: int) -> None:
        super().__init__(
            f"The {self.what} of {path!r} is {size_bytes} bytes, over the limit of "
            f"{max_bytes} bytes.",
            details={"path": path, "sizeBytes": size_bytes, "maxBytes": max_bytes},
            hint="Work on a smaller piece, or raise the sandbox's limit.",
        )


class ToolFileTooLargeError(_SizeError):
    """`read` or `edit` met a file over `max_file_bytes`.

    Details: `path`, `sizeBytes`, `maxBytes`.
    """

    default_code = "TOOL_FILE_TOO_LARGE"
    what = "file"


class ToolContentTooLargeError(_SizeError):
    """`write` got content over `max_content_bytes`.

    Details: `path`, `sizeBytes`, `maxBytes`.
    """

    default_code = "TOOL_CONTENT_TOO_LARGE"
    what = "content to write"


class ToolPatchTooLargeError(_SizeError):
    """`edit` got a patch over `max_patch_bytes`. Details: `path`, `sizeBytes`, `maxBytes`."""

    default_code = "TOOL_PATCH_TOO_LARGE"
    what = "patch for"


class ToolPatchFailedError(ToolError, ValueError):
    """A unified diff does not apply to the file; the file is left unchanged.

    The diff does not parse, or a hunk's context or removed lines are not found.
    Details: `path`, `hunk` (1-based, 0 when the diff does not parse), `reason`.
    """

    default_code = "TOOL_PATCH_FAILED"

    def __init__(self, path: str, hunk: int, reason: str) -> None:
        where = f"hunk {hunk}" if hunk else "the patch"
        super().__init__(
            f"Cannot apply {where} to {path!r}: {reason}.",
            details={"path": path, "hunk": hunk, "reason": reason},
            hint="Read the file again and make a unified diff against its current content.",
        )


class ToolNetworkDisabledError(ToolError, PermissionError):
    """`bash` ran a network command (curl, wget, ssh, …) while `allow_network` is False.

    Raised by the block-list, before anything runs. Details: `command`.
    """

    default_code = "TOOL_NETWORK_DISABLED"

    def __init__(self, command: list[str], program: str) -> None:
        super().__init__(
            f"Network access is disabled: {program!r} is not allowed in the sandbox.",
            details={"command": command},
            hint="Run without network, or start the run with allow_network=True.",
        )


class ToolGitRemoteDisabledError(ToolError, PermissionError):
    """`bash` ran a remote git operation (push, pull, fetch, …) without network access.

    Raised by the block-list when `allow_network` is False. Details: `command`.
    """

    default_code = "TOOL_GIT_REMOTE_DISABLED"

    def __init__(self, command: list[str], subcommand: str) -> None:
        super().__init__(
            f"Network access is disabled: 'git {subcommand}' reaches a remote.",
            details={"command": command},
            hint="Use local git operations, or start the run with allow_network=True.",
        )


class ToolCommandFailedError(ToolError):
    """A `bash` command exited non-zero, could not start, or ran past its timeout.

    On timeout its process group was killed and `timedOut` is True. Retryable.

    Details: `command`, `exitCode` (None if it did not start), `timedOut`, `stdout`,
    `stderr` (capped like a result).
    """

    default_code = "TOOL_COMMAND_FAILED"

    def __init__(
        self,
        command: list[str],
        *,
        exit_code: int | None,
        timed_out: bool = False,
        stdout: str = "",
        stderr: str = "",
        reason: str | None = None,
        timeout_ms: int | None = None,
    ) -> None:
        if timed_out:
            summary = f"Command {command!r} ran past its timeout of {timeout_ms} ms and was killed."
        elif reason:
            summary = f"Command {command!r} could not run: {reason}."
        else:
            summary = f"Command {command!r} exited with status {exit_code}."
        details: dict[str, Any] = {
            "command": command,
            "exitCode": exit_code,
            "timedOut": timed_out,
            "stdout": stdout,
            "stderr": stderr,
        }
        super().__init__(summary, details=details, hint="Read stdout/stderr in the details.")
        self.exit_code = exit_code
        self.timed_out = timed_out
        self.stdout = stdout
        self.stderr = stderr


class ToolGrepFailedError(ToolError):
    """The grep tool could not search (an invalid regular expression).

    Details: `pattern`, `reason`.
    """

    default_code = "TOOL_GREP_FAILED"

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(
            f"grep failed for pattern {pattern!r}: {reason}.",
            details={"pattern": pattern, "reason": reason},
            hint="Check the pattern (Python regular-expression syntax).",
        )
