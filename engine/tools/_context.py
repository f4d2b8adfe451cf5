"""The sandbox a tool call runs in: root, limits, network, and the journal callback."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from smithers.eventstore.errors import InvalidArgumentError

from ._errors import ToolPathEscapeError, ToolPathInvalidError

if TYPE_CHECKING:
    from collections.abc import Callable

    from smithers.eventstore.events import Event

__all__ = (
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_TOOL_TIMEOUT_MS",
    "ToolContext",
    "resolve_path",
)

DEFAULT_MAX_OUTPUT_BYTES = 200_000
"""Default cap on one tool call's output, in bytes (Smithers' ``maxOutputBytes``)."""
DEFAULT_TOOL_TIMEOUT_MS = 60_000
"""Default wall-clock limit of one tool call, in milliseconds (Smithers' ``toolTimeoutMs``)."""


def _system_now_ms() -> int:
    return time.time_ns() // 1_000_000


class ToolContext:
    """The sandbox and journal of the tool calls of one attempt.

    As Smithers' tool sandbox (``rootDir``, ``allowNetwork``, ``maxOutputBytes``,
    ``toolTimeoutMs``): every filesystem tool is confined to `root_dir` (symlinks
    resolved), `bash` runs without network unless `allow_network`, and every call is
    journaled: `journal` receives a `ToolCallStarted` before the tool acts and a
    `ToolCallFinished` after, numbered by `seq` from 1 within the attempt.

    Args:
        root_dir: The sandbox root; resolved (symlinks followed) once, here. It must be
            an existing folder.
        allow_network: Whether `bash` may reach the network (default False).
        max_output_bytes: Cap on a call's returned text, in bytes; beyond it the text is
            cut and a truncation marker added.
        tool_timeout_ms: Wall-clock limit of one `bash` call, in milliseconds; past it
            the command's process group is killed.
        max_file_bytes: Largest file `read` or `edit` accept, in bytes.
        max_content_bytes: Largest content `write` accepts, in bytes.
        max_patch_bytes: Largest diff `edit` accepts, in bytes.
        journal: Called with each `ToolCallStarted`/`ToolCallFinished` event (synchronously,
            in the calling task); None records nothing.
        run_id, node_id, iteration, attempt: Where the events belong.
        idempotency_key: The attempt's idempotency key, for user tools with side effects.
        now_ms: Clock of the journal's timestamps, Unix epoch milliseconds.

    Raises:
        ToolPathInvalidError: if `root_dir` is not an existing folder.
    """

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        *,
        allow_network: bool = False,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        tool_timeout_ms: int = DEFAULT_TOOL_TIMEOUT_MS,
        max_file_bytes: int = 10_000_000,
        max_content_bytes: int = 10_000_000,
        max_patch_bytes: int = 1_000_000,
        journal: Callable[[Event], None] | None = None,
        run_id: str = "",
        node_id: str = "",
        iteration: int = 0,
        attempt: int = 1,
        idempotency_key: str | None = None,
        now_ms: Callable[[], int] = _system_now_ms,
    ) -> None:
        root = Path(os.path.realpath(os.fspath(root_dir)))
        if not root.is_dir():
            raise ToolPathInvalidError(os.fspath(root_dir), "the sandbox root is not a folder")
        if max_output_bytes < 1 or tool_timeout_ms < 1:
            raise InvalidArgumentError("max_output_bytes and tool_timeout_ms must be positive")
        self.root_dir = root
        self.allow_network = allow_network
        self.max_output_bytes = max_output_bytes
        self.tool_timeout_ms = tool_timeout_ms
        self.max_file_bytes = max_file_bytes
        self.max_content_bytes = max_content_bytes
        self.max_patch_bytes = max_patch_bytes
        self.journal = journal
        self.run_id = run_id
        self.node_id = node_id
        self.iteration = iteration
        self.attempt = attempt
        self.idempotency_key = idempotency_key
        self.now_ms = now_ms
        self._seq = 0

    def next_seq(self) -> int:
        """Return the next tool-call number of this attempt (1, 2, …)."""
        self._seq += 1
        return self._seq

    def __repr__(self) -> str:
        return (
            f"ToolContext(root_dir={str(self.root_dir)!r}, allow_network={self.allow_network}, "
            f"max_output_bytes={self.max_output_bytes}, tool_timeout_ms={self.tool_timeout_ms})"
        )


def resolve_path(ctx: ToolContext, path: object) -> Path:
    """Resolve `path` inside the sandbox, following every symlink, and refuse escapes.

    Relative paths are taken from `ctx.root_dir`. The check runs on the fully resolved
    path (`os.path.realpath`), so ``..``, absolute paths and symlinks (also dangling
    ones, and ones an earlier tool call created) that lead outside are refused. The path
    need not exist. Does no I/O beyond reading links.

    Returns:
        The resolved absolute path, inside `ctx.root_dir`.

    Raises:
        ToolPathInvalidError: if `path` is not a non-empty string or contains a NUL byte.
        ToolPathEscapeError: if the resolved path is outside `ctx.root_dir`.
    """
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ToolPathInvalidError(path, "expected a non-empty string without NUL bytes")
    resolved = Path(os.path.realpath(ctx.root_dir / path))
    if resolved != ctx.root_dir and not resolved.is_relative_to(ctx.root_dir):
        raise ToolPathEscapeError(path, str(resolved), str(ctx.root_dir))
    return resolved


def relative(ctx: ToolContext, path: Path) -> str:
    """`path` relative to the sandbox root, with ``/`` separators (``.`` for the root)."""
    return path.relative_to(ctx.root_dir).as_posix() or "."


def cap_text(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_bytes` UTF-8 bytes plus a truncation marker.

    Returns:
        ``(text, truncated)``.
    """
    data = text.encode("utf-8", errors="replace")
    if len(data) <= max_bytes:
        return text, False
    kept = data[:max_bytes].decode("utf-8", errors="ignore")
    omitted = len(data) - len(kept.encode("utf-8"))
    return f"{kept}\n[... output truncated: {omitted} more bytes ...]", True
