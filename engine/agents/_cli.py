"""What the command-line coding agents share: sessions, tool tracking, failure codes.

Claude Code (`_claude`), Codex (`_codex`) and Gemini CLI (`_gemini`) differ in flags and
stream formats; around those they work alike (DESIGN §8): the session id goes into the
attempt's heartbeat payload as ``{"engine": <engine>, "sessionId": <id>}`` the moment the
CLI reports it, and a retry, a repair turn or a resume after a crash continues that
session with a note saying so; the CLI's own tool uses become ``ToolCallStarted``/
``ToolCallFinished``; a failure's text is mapped to the catalogue's codes.
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore import to_raw

from ._process import run_cli
from ._quota_reset import parse_reset_at_ms
from .errors import (
    AgentCliError,
    AgentConfigInvalidError,
    AgentQuotaExceededError,
    AgentRateLimitedError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ._process import ProcessResult
    from ._protocol import AgentRequest

__all__ = (
    "RESUME_NOTE",
    "CliAgent",
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


def save_session(
    request: AgentRequest, engine: str, session_id: str, *, cwd: str | None = None
) -> None:
    """Make `session_id` the attempt's heartbeat payload (a crash from now resumes it).

    The payload is ``{"engine", "sessionId", "cwd"}``: `cwd`, the absolute folder the
    CLI runs in, is where ``smithers hijack`` tells a person to open the session.
    """
    payload = {"engine": engine, "sessionId": session_id}
    if cwd is not None:
        payload["cwd"] = cwd
    request.heartbeat(payload)


class CliAgent:
    """What the command-line agents share: options, the call's folder, session, process.

    Args:
        model: The model flag's value; None: the CLI's default.
        extra_args: More arguments, passed as they are.
        env: Extra environment variables for the process.
        binary: The executable (default: the CLI's usual name on PATH).
        idle_timeout_ms: Stop the CLI after this long without a line (default 5 min).
        cwd: The folder it works in, relative to the run's sandbox root (which it must
            stay in; e.g. a scratch git worktree an earlier task made); default: the root.
        id: The agent's id (default ``"<engine>:<model or default>"``).
    """

    engine = ""
    """The engine name on the attempt's events and heartbeat payload."""
    install_hint = ""
    """How to install the CLI (``PROCESS_SPAWN_FAILED``'s hint)."""

    def __init__(
        self,
        *,
        model: str | None,
        extra_args: Sequence[str],
        env: Mapping[str, str] | None,
        binary: str,
        idle_timeout_ms: int | None,
        cwd: str | None,
        id: str | None,
    ) -> None:
        self.model = model
        self.extra_args = tuple(extra_args)
        self.env = dict(env or {})
        self.binary = binary
        self.idle_timeout_ms = idle_timeout_ms
        self.cwd = cwd
        self.id = id or f"{self.engine}:{model or 'default'}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"

    def prepare(self, request: AgentRequest) -> tuple[str, str | None, str]:
        """``(folder, session to continue, prompt)`` of one call.

        The prompt of a new attempt that continues an interrupted session starts with
        `RESUME_NOTE`.

        Raises:
            ToolPathEscapeError, AgentConfigInvalidError: for a bad `cwd` (`agent_cwd`).
        """
        workdir = agent_cwd(request, self.cwd)
        session = session_of(request, self.engine)
        prompt = request.prompt
        if session and request.messages is None:
            prompt = RESUME_NOTE + prompt
        return workdir, session, prompt

    async def spawn(
        self,
        request: AgentRequest,
        argv: list[str],
        *,
        cwd: str,
        prompt: str,
        on_line: Callable[[str], None],
        env: Mapping[str, str] | None = None,
    ) -> ProcessResult:
        """Run `argv` for one call (`run_cli`: the prompt on stdin, the agent's limits).

        The environment is this process's, then the agent's `env`, then `env`.
        """
        return await run_cli(
            argv,
            cwd=cwd,
            stdin_text=prompt,
            on_line=on_line,
            env={**os.environ, **self.env, **(env or {})},
            timeout_ms=request.timeout_ms,
            idle_timeout_ms=self.idle_timeout_ms,
            max_output_bytes=max(request.max_output_bytes, 10_000_000),
            install_hint=self.install_hint,
        )


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
    now_ms: int | None = None,
) -> Exception:
    """The catalogue error a CLI's failure text means.

    A usage limit, quota or billing message → ``AGENT_QUOTA_EXCEEDED``, with
    ``quotaResetAtMs`` when the text (or stderr) says when the limit resets
    (`parse_reset_at_ms`, counted from `now_ms`, default now): the run parks until
    then; a 429 or a rate
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
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        reset = parse_reset_at_ms(text, now_ms=now)
        if reset is None and stderr:
            reset = parse_reset_at_ms(stderr[-2000:], now_ms=now)
        quota = {**details, "resetHint": text[:500]}
        if reset is not None:
            quota["quotaResetAtMs"] = reset
        return AgentQuotaExceededError(
            summary,
            details=quota,
            hint="The run waits until the limit resets, then goes on (or raise the plan)."
            if reset is not None
            else "Wait for the usage limit to reset (or raise the plan), then resume the run.",
        )
    if status == 429 or _RATE.search(text):
        return AgentRateLimitedError(summary, details=details)
    if status in (401, 403, 404) or _CONFIG.search(text):
        return AgentConfigInvalidError(summary, details=details, hint=login_hint)
    return AgentCliError(summary, details={**details, "stderr": stderr[-2000:]})
