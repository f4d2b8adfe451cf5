"""Gemini CLI as an agent: ``gemini --output-format stream-json`` (headless).

As Smithers' Gemini agent (DESIGN §8; the fact sheet of gemini-cli 0.61):

- ``gemini --output-format stream-json --skip-trust [-m M] [--approval-mode MODE]
  [--resume <session id>]`` with the prompt on stdin (headless, since stdin is not a
  terminal); ``--skip-trust`` so the approval mode is honoured in the sandbox root;
- ``init`` gives the session id, saved at once as the heartbeat payload
  (``{"engine": "gemini", "sessionId": …}``); a retry, a repair turn or a resume after a
  crash passes ``--resume <id>``;
- assistant ``message`` deltas are the reply (streamed as ``NodeOutput``); ``tool_use``/
  ``tool_result`` are tool calls; ``error`` lines are agent events (they are not fatal);
  the ``result`` line's ``stats`` are ``TokenUsageReported``, its ``status`` the outcome;
- exit 41 (no or bad auth) and an unknown model are ``AGENT_CONFIG_INVALID``.
- Structured output goes by the prompt contract (Gemini CLI has no schema flag).
- the task's smithers tools (``Task(tools=…)``) are the MCP server ``smithers``, added
  to the user's settings in a per-call ``GEMINI_CLI_HOME`` (`_gemini_home`), trusted,
  and the only server allowed (``--allowed-mcp-server-names smithers``); the model
  calls them as ``mcp_smithers_<tool>``, journaled by the bridge in the sandbox.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import msgspec

from ._bridge import SERVER_NAME, ToolBridge, serve_tools
from ._cli import (
    CliAgent,
    ToolTracker,
    as_dict,
    as_str,
    cli_failure,
    save_session,
    text_of,
)
from ._gemini_home import gemini_home
from ._protocol import AgentResult, AgentUsage
from .errors import AgentCliError, AgentConfigInvalidError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._protocol import AgentRequest

__all__ = ("ENGINE", "GeminiAgent")

ENGINE = "gemini"
"""The engine name on a Gemini attempt's events and heartbeat payload."""
INSTALL_HINT = "Install Gemini CLI: npm install -g @google/gemini-cli"
LOGIN_HINT = "Set GEMINI_API_KEY (or log in with `gemini`) and check --model."
_AUTH_EXIT = 41
"""Gemini CLI's exit status for a missing or rejected authentication method."""
_BRIDGED = f"mcp_{SERVER_NAME}_"
"""Tool-use names of smithers' own tools reached over MCP."""


class GeminiAgent(CliAgent):
    """Google's Gemini CLI (the ``gemini`` command) as a smithers agent.

    Args:
        model: ``-m`` (e.g. ``"gemini-2.5-pro"``); None: the CLI's default.
        approval_mode: ``--approval-mode`` (``"default"``, ``"auto_edit"``, ``"yolo"``,
            ``"plan"``); default ``"yolo"``: in headless mode anything less offers the
            model read-only tools only.
        extra_args: More arguments, passed as they are.
        env: Extra environment variables (e.g. ``GEMINI_CLI_HOME``).
        binary: The executable (default ``"gemini"`` on PATH).
        idle_timeout_ms: Stop the CLI after this long without a line (default 5 min).
        cwd: The folder it works in, relative to the run's sandbox root (which it must
            stay in; e.g. a scratch git worktree an earlier task made); default: the root.
        id: The agent's id (default ``"gemini:<model or default>"``).
    """

    engine = ENGINE
    install_hint = INSTALL_HINT

    def __init__(
        self,
        *,
        model: str | None = None,
        approval_mode: str | None = "yolo",
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        binary: str = "gemini",
        idle_timeout_ms: int | None = 300_000,
        cwd: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(
            model=model,
            extra_args=extra_args,
            env=env,
            binary=binary,
            idle_timeout_ms=idle_timeout_ms,
            cwd=cwd,
            id=id,
        )
        self.approval_mode = approval_mode

    def argv(self, *, session_id: str | None, bridge: ToolBridge | None = None) -> list[str]:
        """The command line of one call (the prompt goes on stdin).

        With a `bridge`, only the MCP server ``smithers`` is allowed (its entry is in
        the call's settings, see `_gemini_home`).
        """
        argv = [self.binary, "--output-format", "stream-json", "--skip-trust"]
        if self.model:
            argv += ["-m", self.model]
        if self.approval_mode:
            argv += ["--approval-mode", self.approval_mode]
        if bridge is not None:
            argv += ["--allowed-mcp-server-names", SERVER_NAME]
        if session_id:
            argv += ["--resume", session_id]
        return [*argv, *self.extra_args]

    async def generate(self, request: AgentRequest) -> AgentResult:
        """Run one Gemini CLI call for `request` (see the module docstring).

        Raises:
            ProcessSpawnFailedError, ProcessTimeoutError, ProcessIdleTimeoutError: from
                the process.
            AgentConfigInvalidError, AgentQuotaExceededError, AgentRateLimitedError,
                AgentCliError: when the CLI reports a failure.
        """
        workdir, session, prompt = self.prepare(request)
        if request.messages is None and request.output_schema is not None:
            prompt = f"{prompt}\n\n{request.instructions}"
        stream = _Stream(request, workdir)
        async with serve_tools(request) as bridge:
            argv = self.argv(session_id=session, bridge=bridge)
            if bridge is None:
                result = await self.spawn(
                    request, argv, cwd=workdir, prompt=prompt, on_line=stream.line
                )
            else:
                with gemini_home(bridge.gemini_servers(), {**os.environ, **self.env}) as home:
                    result = await self.spawn(
                        request,
                        argv,
                        cwd=workdir,
                        prompt=prompt,
                        on_line=stream.line,
                        env={"GEMINI_CLI_HOME": home},
                    )
        final = stream.result
        if final is None or final.get("status") != "success":
            error = as_dict(final.get("error")) if final else {}
            text = as_str(error.get("message")) or result.stderr_tail.strip()[-500:]
            if result.exit_code == _AUTH_EXIT:
                raise AgentConfigInvalidError(
                    f"gemini refused its authentication: {text}",
                    details={"agentId": self.id, "agentEngine": ENGINE, "exitCode": _AUTH_EXIT},
                    hint=LOGIN_HINT,
                )
            if not text:
                raise AgentCliError(
                    f"{self.binary} exited with status {result.exit_code} without a result",
                    details={"agentId": self.id, "exitCode": result.exit_code},
                )
            raise cli_failure(
                text,
                engine=ENGINE,
                agent_id=self.id,
                model=self.model,
                exit_code=result.exit_code,
                stderr=result.stderr_tail,
                login_hint=LOGIN_HINT,
            )
        stats = as_dict(final.get("stats"))
        models = list(as_dict(stats.get("models")))
        request.journal.usage(
            AgentUsage(
                model=models[0] if len(models) == 1 else (stream.model or self.model or ""),
                input_tokens=int(stats.get("input_tokens") or 0),
                output_tokens=int(stats.get("output_tokens") or 0),
                cache_read_tokens=stats.get("cached") or None,
            )
        )
        return AgentResult(
            text=stream.text,
            messages=[{"engine": ENGINE, "sessionId": stream.session_id or session}],
            finish_reason="success",
        )


class _Stream:
    """Parses ``gemini --output-format stream-json`` lines into the attempt's events."""

    def __init__(self, request: AgentRequest, workdir: str) -> None:
        self.request = request
        self.workdir = workdir
        self.journal = request.journal
        self.tools = ToolTracker(request)
        self.session_id: str | None = None
        self.model: str | None = None
        self.parts: list[str] = []
        self.result: dict[str, Any] | None = None
        self.names: dict[str, str] = {}
        self.bridged: set[str] = set()
        """Call ids of smithers' own tools (journaled by the bridge, not here)."""

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def line(self, text: str) -> None:
        self.request.heartbeat()
        if not text.startswith("{"):
            return
        try:
            msg = as_dict(msgspec.json.decode(text))
        except msgspec.DecodeError:
            self.journal.event("unparsed", {"line": text[:2000]})
            return
        kind = msg.get("type")
        if kind == "init":
            sid = as_str(msg.get("session_id"))
            self.model = as_str(msg.get("model")) or None
            if sid:
                self.session_id = sid
                save_session(self.request, ENGINE, sid, cwd=self.workdir)
            self.journal.event("init", {"sessionId": sid or None, "model": self.model})
        elif kind == "message" and msg.get("role") == "assistant":
            chunk = as_str(msg.get("content"))
            self.parts.append(chunk)
            self.journal.text(chunk)
        elif kind == "tool_use":
            call_id = as_str(msg.get("tool_id"))
            name = as_str(msg.get("tool_name")) or "tool"
            if name.startswith(_BRIDGED):
                self.bridged.add(call_id)
                return
            self.names[call_id] = name
            self.tools.started(call_id, name, msg.get("parameters"))
        elif kind == "tool_result":
            call_id = as_str(msg.get("tool_id"))
            if call_id in self.bridged:
                return
            error = None
            if msg.get("status") != "success":
                error = text_of(as_dict(msg.get("error")).get("message") or msg.get("status"))
            self.tools.finished(
                call_id, msg.get("output"), error=error, name=self.names.get(call_id, "tool")
            )
        elif kind == "error":
            self.journal.event(
                "error", {"severity": msg.get("severity"), "message": msg.get("message")}
            )
        elif kind == "result":
            self.result = msg
            self.journal.event("result", {"status": msg.get("status"), "error": msg.get("error")})
