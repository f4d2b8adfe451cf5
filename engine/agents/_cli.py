"""What the command-line coding agents share: sessions, tool tracking, failure codes.

Claude Code (`_claude`), Codex (`_codex`) and Gemini CLI (`_gemini`) differ in flags and
stream formats; around those they work alike (DESIGN §8): the session id goes into the
attempt's heartbeat payload as ``{"engine": <engine>, "sessionId": <id>}`` the moment the
CLI reports it, and a retry, a repair turn or a resume after a crash continues that
session with a note saying so; the CLI's own tool uses become ``ToolCallStarted``/
``ToolCallFinished``; a failure's text is mapped to the catalogue's codes.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore import to_raw

from .errors import (
    AgentCliError,
    AgentConfigInvalidError,
    AgentQuotaExceededError,
    AgentRateLimitedError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._protocol import AgentRequest

__all__ = (
    "RESUME_NOTE",
    "ToolTracker",
    "as_dict",
    "as_list",
    "agent_cwd",
    "as_str",
    "cli_failure",
    "inline_schema",
    "save_session",
    "session_of",
)

RESUME_NOTE = (
    "(This continues an earlier attempt of this task that was interrupted before it "
    "finished: check what was already done, then go on.)\n\n"
)
"""Put before the prompt when a new attempt continues an interrupted session."""

_QUOTA = re.compile(
    r"hit your limit|usage limit|quota|billing|credit balance|insufficient_quota", re.I
)
_CONFIG = re.compile(
    r"not logged in|/login|log in|invalid api key|api key|unauthori[sz]ed|authentication|"
    r"auth method|selected model|permission denied|"
    r"models?\b.{0,60}(?:not (?:be )?found|does not exist|not supported)",
    re.I | re.S,
)
_RATE = re.compile(r"rate.?limit|too many requests|\b429\b", re.I)


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a dict, else an empty one (for lines of unknown shape)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    """`value` if it is a str, else ``""``."""
    return value if isinstance(value, str) else ""


def inline_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Msgspec's ``{"$ref": "#/$defs/X", "$defs": …}`` with ``X`` inlined at the top."""
    ref = schema.get("$ref")
    defs = schema.get("$defs")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, dict):
        name = ref.removeprefix("#/$defs/")
        body = dict(defs[name])
        rest = {k: v for k, v in defs.items() if k != name}
        if rest:
            body["$defs"] = rest
        return body
    return dict(schema)


def session_of(request: AgentRequest, engine: str) -> str | None:
    """The session to continue: a repair turn's, else the node's last heartbeat's."""
    for source in (request.messages or [], [request.last_heartbeat]):
        for item in source:
            if isinstance(item, dict) and item.get("engine") == engine:
                sid = item.get("sessionId")
                if isinstance(sid, str) and sid:
                    return sid
    return None


def agent_cwd(request: AgentRequest, cwd: str | None) -> str:
    """The folder a CLI agent works in: `cwd` resolved inside the sandbox root, or the root.

    Raises:
        ToolPathEscapeError: if `cwd` leads outside the sandbox root.
        AgentConfigInvalidError: if it is not an existing folder.
    """
    if cwd is None:
        return request.root_dir
    from ..tools import resolve_path

    path = resolve_path(request.tool_context, cwd)
    if not path.is_dir():
        raise AgentConfigInvalidError(
            f"The agent's working folder {cwd!r} does not exist under {request.root_dir}",
            details={"cwd": cwd, "rootDir": request.root_dir},
            hint="Create it first (e.g. in an earlier task), or fix the agent's cwd=.",
        )
    return str(path)


def save_session(request: AgentRequest, engine: str, session_id: str) -> None:
    """Make `session_id` the attempt's heartbeat payload (a crash from now resumes it)."""
    request.heartbeat({"engine": engine, "sessionId": session_id})


class ToolTracker:
    """The CLI's own tool calls of one call, as ``ToolCallStarted``/``ToolCallFinished``."""

    def __init__(self, request: AgentRequest) -> None:
        self.request = request
        self.open: dict[str, tuple[int, str, float]] = {}
        """Call id -> (seq, name, monotonic start)."""

    def started(self, call_id: str, name: str, arguments: Any) -> None:
        """A tool use began (recorded once per call id)."""
        if call_id in self.open:
            return
        seq = self.request.tool_context.next_seq()
        self.open[call_id] = (seq, name, time.monotonic())
        self.request.journal.tool_started(seq, name, arguments, call_id or None)

    def finished(
        self,
        call_id: str,
        result: Any,
        *,
        error: str | None = None,
        name: str = "tool",
        arguments: Any = None,
    ) -> None:
        """A tool use ended; one never seen starting is recorded as started now."""
        if call_id not in self.open:
            self.started(call_id, name, arguments)
        seq, tool, began = self.open.pop(call_id)
        self.request.journal.tool_finished(
            seq,
            tool,
            call_id or None,
            result=result,
            error=error,
            duration_ms=int((time.monotonic() - began) * 1000),
        )


def text_of(value: Any) -> str:
    """A tool result or error as text (JSON for anything but a str)."""
    if isinstance(value, str):
        return value
    try:
        return bytes(to_raw(value)).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)


def cli_failure(
    text: str,
    *,
    engine: str,
    agent_id: str,
    model: str | None,
    status: int | None = None,
    exit_code: int | None = None,
    stderr: str = "",
    login_hint: str,
) -> Exception:
    """The catalogue error a CLI's failure text means.

    A usage limit, quota or billing message → ``AGENT_QUOTA_EXCEEDED``; a 429 or a rate
    limit → ``AGENT_RATE_LIMITED``; not logged in, a bad key, an unknown model (or HTTP
    401/403/404) → ``AGENT_CONFIG_INVALID`` (not retried); anything else →
    ``AGENT_CLI_ERROR`` with the last lines of stderr.
    """
    details: dict[str, Any] = {
        "agentId": agent_id,
        "agentEngine": engine,
        "agentModel": model,
        "status": status,
        "exitCode": exit_code,
    }
    details = {k: v for k, v in details.items() if v is not None}
    summary = f"{engine} failed: {text or 'error'}"
    if _QUOTA.search(text):
        return AgentQuotaExceededError(
            summary,
            details={**details, "resetHint": text[:500]},
            hint="Wait for the usage limit to reset (or raise the plan), then resume the run.",
        )
    if status == 429 or _RATE.search(text):
        return AgentRateLimitedError(summary, details=details)
    if status in (401, 403, 404) or _CONFIG.search(text):
        return AgentConfigInvalidError(summary, details=details, hint=login_hint)
    return AgentCliError(summary, details={**details, "stderr": stderr[-2000:]})
