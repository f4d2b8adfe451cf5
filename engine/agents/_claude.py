"""Claude Code as an agent: ``claude -p --output-format stream-json --verbose``.

As Smithers' Claude Code agent (DESIGN §8; the fact sheet of Claude Code 2.1.x):

- spawned in the sandbox root with the prompt on stdin (`run_cli`: own process group,
  total and idle timeouts, output cap, killed whole on cancel);
- its stream-json lines become the attempt's events: ``system/init`` gives the session
  id, saved at once as the attempt's heartbeat payload (``{"engine": "claude-code",
  "sessionId": …}``) and recorded as an ``init`` agent event; each assistant or user
  message is an ``AgentEvent``; assistant text is streamed (coalesced ``NodeOutput``);
  its own tool uses (``Bash``, ``Edit``, …) and their results are ``ToolCallStarted``/
  ``ToolCallFinished``; the ``result`` line's usage is ``TokenUsageReported``; every
  line counts as a heartbeat;
- a retry, a repair turn or a resume after a crash continues the same session
  (``--resume <id>``), saying in the prompt what happened;
- success is read from the ``result`` line (``is_error``), not the exit status alone;
  failures map to codes: not logged in, bad key, unknown model → ``AGENT_CONFIG_INVALID``;
  a usage limit → ``AGENT_QUOTA_EXCEEDED``; a 429 → ``AGENT_RATE_LIMITED``; anything else
  → ``AGENT_CLI_ERROR`` with the last lines of stderr; a missing binary →
  ``PROCESS_SPAWN_FAILED``;
- structured output: the task's JSON schema goes as ``--json-schema`` (the CLI's
  ``StructuredOutput`` tool); the engine validates and repairs as for any agent.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import msgspec

from ._bridge import SERVER_NAME, ToolBridge, serve_tools
from ._cli import (
    CliAgent,
    ToolTracker,
    as_dict,
    as_list,
    as_str,
    cli_failure,
    inline_schema,
    save_session,
    text_of,
)
from ._protocol import AgentResult, AgentUsage
from .errors import AgentCliError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._protocol import AgentRequest

__all__ = ("ENGINE", "ClaudeCodeAgent")

ENGINE = "claude-code"
"""The engine name on a Claude Code attempt's events and heartbeat payload."""
INSTALL_HINT = "Install Claude Code: npm install -g @anthropic-ai/claude-code (then `claude` login)"
_BRIDGED = f"mcp__{SERVER_NAME}__"
"""Tool-use names of smithers' own tools reached over MCP."""
LOGIN_HINT = "Log in (`claude`, then /login, or set ANTHROPIC_API_KEY) and check --model."


class ClaudeCodeAgent(CliAgent):
    """Claude Code (the ``claude`` CLI) as a smithers agent.

    Args:
        model: ``--model`` (an alias such as ``"sonnet"`` or a full name); None: the
            CLI's default.
        system_prompt: Text appended to Claude Code's system prompt
            (``--append-system-prompt``).
        allowed_tools: ``--allowedTools`` rules (e.g. ``"Bash(git *)"``, ``"Edit"``).
        disallowed_tools: ``--disallowedTools`` rules.
        permission_mode: ``--permission-mode`` (``"acceptEdits"``, ``"plan"``, ...).
        extra_args: More arguments, passed as they are.
        env: Extra environment variables for the process.
        binary: The executable (default ``"claude"`` on PATH).
        idle_timeout_ms: Stop the CLI after this long without a line (default 5 min).
        cwd: The folder it works in, relative to the run's sandbox root (which it must
            stay in; e.g. a scratch git worktree an earlier task made); default: the root.
        builtin_tools: False: Claude Code's own tools are off (``--tools ""``), the
            agent has only the task's smithers tools (``Task(tools=…)``, over MCP, in the
            sandbox and the log).
        id: The agent's id (default ``"claude-code:<model or default>"``).
    """

    engine = ENGINE
    install_hint = INSTALL_HINT

    def __init__(
        self,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        allowed_tools: Sequence[str] = (),
        disallowed_tools: Sequence[str] = (),
        permission_mode: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        binary: str = "claude",
        idle_timeout_ms: int | None = 300_000,
        cwd: str | None = None,
        builtin_tools: bool = True,
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
        self.system_prompt = system_prompt
        self.allowed_tools = tuple(allowed_tools)
        self.disallowed_tools = tuple(disallowed_tools)
        self.permission_mode = permission_mode
        self.builtin_tools = builtin_tools

    def argv(
        self,
        *,
        session_id: str | None,
        schema: Mapping[str, Any] | None,
        bridge: ToolBridge | None = None,
    ) -> list[str]:
        """The command line of one call (the prompt goes on stdin).

        With a `bridge`, smithers' tools are offered as the MCP server ``smithers``
        (``--mcp-config``, ``--strict-mcp-config``) and allowed (``mcp__smithers``).
        """
        argv = [self.binary, "-p", "--output-format", "stream-json", "--verbose"]
        if self.model:
            argv += ["--model", self.model]
        if self.system_prompt:
            argv += ["--append-system-prompt", self.system_prompt]
        allowed = list(self.allowed_tools)
        if bridge is not None:
            argv += ["--mcp-config", bridge.claude_config(), "--strict-mcp-config"]
            allowed.append(f"mcp__{SERVER_NAME}")
        if not self.builtin_tools:
            argv += ["--tools", ""]
        if allowed:
            argv += ["--allowedTools", ",".join(allowed)]
        if self.disallowed_tools:
            argv += ["--disallowedTools", ",".join(self.disallowed_tools)]
        if self.permission_mode:
            argv += ["--permission-mode", self.permission_mode]
        if schema is not None:
            argv += ["--json-schema", msgspec.json.encode(schema).decode()]
        if session_id:
            argv += ["--resume", session_id]
        return [*argv, *self.extra_args]

    async def generate(self, request: AgentRequest) -> AgentResult:
        """Run one Claude Code call for `request` (see the module docstring).

        Raises:
            ProcessSpawnFailedError, ProcessTimeoutError, ProcessIdleTimeoutError: from
                the process.
            AgentConfigInvalidError, AgentQuotaExceededError, AgentRateLimitedError,
                AgentCliError: when the CLI reports a failure.
        """
        workdir, session, prompt = self.prepare(request)
        schema = inline_schema(request.output_schema) if request.output_schema else None
        stream = _Stream(request, self, workdir)
        async with serve_tools(request) as bridge:
            argv = self.argv(session_id=session, schema=schema, bridge=bridge)
            result = await self.spawn(
                request, argv, cwd=workdir, prompt=prompt, on_line=stream.line
            )
        final = stream.result
        if final is None:
            raise AgentCliError(
                f"{self.binary} exited with status {result.exit_code} without a result",
                details={
                    "agentId": self.id,
                    "exitCode": result.exit_code,
                    "stderr": result.stderr_tail[-2000:],
                },
                hint=f"Run `{self.binary} -p` by hand in the task's folder to see why.",
            )
        if final.get("is_error"):
            text = as_str(final.get("result")) or "; ".join(
                str(e) for e in as_list(final.get("errors"))
            )
            status = final.get("api_error_status")
            raise cli_failure(
                text or as_str(final.get("subtype")),
                engine=ENGINE,
                agent_id=self.id,
                model=self.model,
                status=status if isinstance(status, int) else None,
                exit_code=result.exit_code,
                stderr=result.stderr_tail,
                login_hint=LOGIN_HINT,
            )
        usage = as_dict(final.get("usage"))
        request.journal.usage(
            AgentUsage(
                model=stream.model or self.model or "",
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                cache_read_tokens=usage.get("cache_read_input_tokens") or None,
                cache_write_tokens=usage.get("cache_creation_input_tokens") or None,
            )
        )
        text = as_str(final.get("result"))
        return AgentResult(
            text=text,
            output=final.get("structured_output"),
            messages=[{"engine": ENGINE, "sessionId": stream.session_id or session}],
            finish_reason=final.get("stop_reason") or final.get("subtype"),
        )


class _Stream:
    """Parses a call's stream-json lines into the attempt's events."""

    def __init__(self, request: AgentRequest, agent: ClaudeCodeAgent, workdir: str) -> None:
        self.request = request
        self.workdir = workdir
        self.journal = request.journal
        self.agent = agent
        self.session_id: str | None = None
        self.model: str | None = None
        self.result: dict[str, Any] | None = None
        self.tools = ToolTracker(request)

    def line(self, text: str) -> None:
        self.request.heartbeat()
        if not text.startswith("{"):
            return
        try:
            msg = msgspec.json.decode(text)
        except msgspec.DecodeError:
            self.journal.event("unparsed", {"line": text[:2000]})
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == "system" and msg.get("subtype") == "init":
            self._init(msg)
        elif kind == "assistant":
            self._assistant(msg)
        elif kind == "user":
            self._user(msg)
        elif kind == "result":
            self.result = msg
            self.journal.event(
                "result",
                {
                    k: msg.get(k)
                    for k in ("subtype", "is_error", "num_turns", "duration_ms", "total_cost_usd")
                },
            )

    def _init(self, msg: dict[str, Any]) -> None:
        sid = msg.get("session_id")
        if isinstance(sid, str) and sid:
            self.session_id = sid
            save_session(
                self.request, ENGINE, sid, cwd=self.workdir
            )  # a crash from here on resumes it
        model = msg.get("model")
        self.model = model if isinstance(model, str) else None
        self.journal.event(
            "init",
            {
                "sessionId": sid,
                "model": model,
                "tools": msg.get("tools"),
                "cwd": msg.get("cwd"),
                "version": msg.get("claude_code_version"),
            },
        )

    def _assistant(self, msg: dict[str, Any]) -> None:
        content = as_list(as_dict(msg.get("message")).get("content"))
        self.journal.event(
            "message", {"role": "assistant", "content": content, "error": msg.get("error")}
        )
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                self.journal.text(block["text"])
            elif block.get("type") == "tool_use":
                name = str(block.get("name") or "tool")
                if name.startswith(_BRIDGED):
                    continue  # the bridge journals the call itself, in the sandbox
                call_id = str(block.get("id") or "")
                self.tools.started(call_id, name, block.get("input"))

    def _user(self, msg: dict[str, Any]) -> None:
        content = as_list(as_dict(msg.get("message")).get("content"))
        self.journal.event("message", {"role": "user", "content": content})
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            call_id = str(block.get("tool_use_id") or "")
            if call_id not in self.tools.open:
                continue  # a bridged call (journaled by the bridge), or one never started
            body = block.get("content")
            error = text_of(body) if block.get("is_error") else None
            self.tools.finished(call_id, body, error=error)


def claude_on_path(binary: str = "claude") -> str | None:
    """The full path of the ``claude`` executable on PATH, or None."""
    return shutil.which(binary)
