"""The server's settings and the checks of what a request names (paths, ids)."""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InvalidRequestError, WorkflowPathOutsideRootError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = (
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_BODY_BYTES",
    "ServerConfig",
    "check_node_id",
    "is_loopback",
    "resolve_workflow_spec",
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7331
MAX_BODY_BYTES = 1024 * 1024
"""Largest request body (bytes): 1 MiB."""

MAX_NODE_ID_LENGTH = 512
"""Longest node id a route accepts (characters)."""


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """What `create_app` serves.

    Attributes:
        db: The run database (absolute path); created at start-up if missing.
        root: Folder workflow files must lie under (absolute, symlinks resolved).
        auth_token: Token every route but ``/health`` requires, or None for none.
        max_body_bytes: Largest request body (bytes).
        max_json_depth: Deepest nesting of a JSON body.
        sse_ping_s: Seconds between keep-alive comments on an event stream.
        sse_poll_interval_s: Seconds between looks at the log when a stream is idle.
        resume_on_start: Resume, at start-up, the runs a previous server process
            drove whose process is gone (see `create_app`).
        keep_runs_on_exit: At shutdown, leave the runs this server drives as they are
            (status ``running``, owner gone) for the next start to resume, instead of
            cancelling them. `smithers serve` sets it; tests leave it off.
    """

    db: Path
    root: Path
    auth_token: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    max_json_depth: int = 32
    sse_ping_s: float = 15.0
    sse_poll_interval_s: float = 0.1
    resume_on_start: bool = True
    keep_runs_on_exit: bool = False


def is_loopback(host: str) -> bool:
    """Return True if `host` names only this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_workflow_spec(spec: str, root: Path) -> str:
    """Return the ``path[:name]`` spec of a workflow file under `root`, path made absolute.

    The path is taken relative to `root` (an absolute path is allowed if it lies under
    it) and resolved with symlinks followed before the check, so neither ``..`` nor a
    link can leave the root.

    Args:
        spec: ``path/to/file.py`` or ``path/to/file.py:name``, as the request sent it.
        root: The server root (resolved).

    Returns:
        ``"<absolute path>[:name]"`` for `load_workflow`.

    Raises:
        InvalidRequestError: if `spec` is empty or has control characters.
        WorkflowPathOutsideRootError: if the path resolves outside `root`.
    """
    if not spec.strip() or any(unicodedata.category(c)[0] == "C" for c in spec):
        raise InvalidRequestError("workflowPath", "must be a non-empty path of printable text")
    raw, sep, name = spec.rpartition(":")
    if not (sep and raw and name and not any(c in name for c in "/\\.")):
        raw, name = spec, ""
    path = (root / raw).resolve()
    if not path.is_relative_to(root):
        raise WorkflowPathOutsideRootError(spec, str(root))
    return f"{path}:{name}" if name else str(path)


def check_node_id(node_id: str) -> str:
    """Return `node_id` if it can be a node id (printable, 1 to 512 characters).

    Raises:
        InvalidRequestError: otherwise (field ``nodeId``).
    """
    if not node_id or len(node_id) > MAX_NODE_ID_LENGTH:
        raise InvalidRequestError("nodeId", f"must be 1 to {MAX_NODE_ID_LENGTH} characters")
    if any(unicodedata.category(c)[0] == "C" for c in node_id):
        raise InvalidRequestError("nodeId", "has control characters")
    return node_id
