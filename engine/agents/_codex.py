"""OpenAI Codex CLI as an agent: ``codex exec --json`` (JSONL events on stdout).

As Smithers' Codex agent (DESIGN §8; the fact sheet of codex-cli 0.171):

- ``codex exec --json --skip-git-repo-check -C <root> [-m M] [-s SANDBOX] [-c k=v]
  [--output-schema FILE] [resume <thread id>]`` with the prompt on stdin;
- ``thread.started`` gives the thread id, saved at once as the heartbeat payload
  (``{"engine": "codex", "sessionId": …}``); a retry, a repair turn or a resume after a
  crash runs ``codex exec … resume <id>``;
- ``command_execution``, ``file_change`` and ``mcp_tool_call`` items are tool calls
  (``ToolCallStarted`` at ``item.started``, ``ToolCallFinished`` at ``item.completed``);
  ``agent_message`` items are the reply (streamed as ``NodeOutput``); ``reasoning`` and
  non-fatal ``error`` lines are agent events; ``turn.completed``'s usage is
  ``TokenUsageReported``; ``turn.failed`` is the failure;
- the task's schema goes as ``--output-schema`` (a file, made strict as OpenAI's
  structured outputs require: every object closed, every property required, optional
  ones nullable).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ._bridge import SERVER_NAME, ToolBridge, serve_tools
from ._cli import (
    CliAgent,
    ToolTracker,
    as_dict,
    as_str,
    cli_failure,
    inline_schema,
    save_session,
)
from ._protocol import AgentResult, AgentUsage
from .errors import AgentCliError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._protocol import AgentRequest

__all__ = ("ENGINE", "CodexAgent", "strict_schema")

ENGINE = "codex"
"""The engine name on a Codex attempt's events and heartbeat payload."""
INSTALL_HINT = "Install Codex: npm install -g @openai/codex (then `codex login`)"
LOGIN_HINT = "Log in (`codex login`, or set OPENAI_API_KEY/CODEX_API_KEY) and check --model."
_TOOL_ITEMS = frozenset({"command_execution", "file_change", "mcp_tool_call"})


def strict_schema(schema: Any) -> Any:
    """`schema` as OpenAI strict structured outputs accept it (a copy).

    Every object gets ``additionalProperties: false`` and lists all its properties as
    required; a property that was optional becomes nullable (``anyOf [it, null]``).
    """
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    props = out.get("properties")
    if isinstance(props, dict):
        required = set(schema.get("required") or ())
        out["properties"] = {
            k: v if k in required else {"anyOf": [v, {"type": "null"}]} for k, v in props.items()
        }
        out["required"] = list(props)
        out["additionalProperties"] = False
    return out


class CodexAgent(CliAgent):
    """OpenAI Codex (the ``codex`` CLI) as a smithers agent.

    Args:
        model: ``-m`` (e.g. ``"gpt-5-codex"``); None: the CLI's default.
        sandbox: ``-s`` (``"read-only"``, ``"workspace-write"``, ``"danger-full-access"``);
            default ``"workspace-write"``.
        config: ``-c key=value`` overrides (values as TOML text).
        extra_args: More arguments, passed before ``resume``.
        env: Extra environment variables (e.g. ``CODEX_HOME``).
        binary: The executable (default ``"codex"`` on PATH).
        idle_timeout_ms: Stop the CLI after this long without a line (default 5 min).
        cwd: The folder it works in, relative to the run's sandbox root (which it must
            stay in; e.g. a scratch git worktree an earlier task made); default: the root.
        id: The agent's id (default ``"codex:<model or default>"``).
    """

    engine = ENGINE
    install_hint = INSTALL_HINT

    def __init__(
        self,
        *,
        model: str | None = None,
        sandbox: str | None = "workspace-write",
        config: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        binary: str = "codex",
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
        self.sandbox = sandbox
        self.config = dict(config or {})

    def argv(
        self,
        *,
        root: str,
        session_id: str | None,
        schema_file: str | None,
        bridge: ToolBridge | None = None,
    ) -> list[str]:
        """The command line of one call (the prompt goes on stdin).

        With a `bridge`, smithers' tools are the MCP server ``smithers``, approved
        (``-c mcp_servers.smithers={…, default_tools_approval_mode="approve"}``).
        """
        argv = [self.binary, "exec", "--json", "--skip-git-repo-check", "-C", root]
        if self.model:
            argv += ["-m", self.model]
        if self.sandbox:
            argv += ["-s", self.sandbox]
        for key, value in self.config.items():
            argv += ["-c", f"{key}={value}"]
        if bridge is not None:
            argv += ["-c", f"mcp_servers.{SERVER_NAME}={bridge.codex_config()}"]
        if schema_file:
            argv += ["--output-schema", schema_file]
        argv += self.extra_args
        if session_id:
            argv += ["resume", session_id]
        return argv

    async def generate(self, request: AgentRequest) -> AgentResult:
        """Run one ``codex exec`` call for `request` (see the module docstring).

        Raises:
            ProcessSpawnFailedError, ProcessTimeoutError, ProcessIdleTimeoutError: from
                the process.
            AgentConfigInvalidError, AgentQuotaExceededError, AgentRateLimitedError,
                AgentCliError: when the CLI reports a failure.
        """
        workdir, session, prompt = self.prepare(request)
        stream = _Stream(request, workdir)
        with tempfile.TemporaryDirectory(prefix="smithers-codex-") as tmp:
            schema_file = None
            if request.output_schema:
                schema_file = str(Path(tmp) / "output-schema.json")
                strict = strict_schema(inline_schema(request.output_schema))
                await anyio.Path(schema_file).write_bytes(msgspec.json.encode(strict))
            async with serve_tools(request) as bridge:
                argv = self.argv(
                    root=workdir, session_id=session, schema_file=schema_file, bridge=bridge
                )
                result = await self.spawn(
                    request, argv, cwd=workdir, prompt=prompt, on_line=stream.line
                )
        if stream.failed is not None or not stream.completed:
            text = stream.failed or stream.last_error or result.stderr_tail.strip()[-500:]
            if stream.failed is None and not text:
                raise AgentCliError(
                    f"{self.binary} exec exited with status {result.exit_code} without "
                    "finishing its turn",
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
        if stream.usage is not None:
            request.journal.usage(
                AgentUsage(
                    model=self.model or "",
                    input_tokens=int(stream.usage.get("input_tokens") or 0),
                    output_tokens=int(stream.usage.get("output_tokens") or 0),
                    cache_read_tokens=stream.usage.get("cached_input_tokens") or None,
                    cache_write_tokens=stream.usage.get("cache_write_input_tokens") or None,
                    reasoning_tokens=stream.usage.get("reasoning_output_tokens") or None,
                )
            )
        return AgentResult(
            text=stream.message,
            messages=[{"engine": ENGINE, "sessionId": stream.session_id or session}],
            finish_reason="completed",
        )


class _Stream:
    """Parses ``codex exec --json`` lines into the attempt's events."""

    def __init__(self, request: AgentRequest, workdir: str) -> None:
        self.request = request
        self.workdir = workdir
        self.journal = request.journal
        self.tools = ToolTracker(request)
        self.session_id: str | None = None
        self.message = ""
        self.usage: dict[str, Any] | None = None
        self.completed = False
        self.failed: str | None = None
        self.last_error: str | None = None

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
        if kind == "thread.started":
            sid = as_str(msg.get("thread_id"))
            if sid:
                self.session_id = sid
                save_session(self.request, ENGINE, sid, cwd=self.workdir)
            self.journal.event("init", {"sessionId": sid or None})
        elif kind in ("item.started", "item.completed"):
            self._item(as_dict(msg.get("item")), done=kind == "item.completed")
        elif kind == "turn.completed":
            self.completed = True
            self.usage = as_dict(msg.get("usage"))
            self.journal.event("turn", {"status": "completed", "usage": self.usage})
        elif kind == "turn.failed":
            self.failed = as_str(as_dict(msg.get("error")).get("message")) or "turn failed"
            self.journal.event("turn", {"status": "failed", "error": self.failed})
        elif kind == "error":
            self.last_error = as_str(msg.get("message"))
            self.journal.event("error", {"message": self.last_error})

    def _item(self, item: dict[str, Any], *, done: bool) -> None:
        kind = as_str(item.get("type"))
        call_id = as_str(item.get("id"))
        if kind == "mcp_tool_call" and item.get("server") == SERVER_NAME:
            return  # smithers' own tool: the bridge journals the call itself
        if kind in _TOOL_ITEMS:
            name, arguments = _tool_of(kind, item)
            if not done:
                self.tools.started(call_id, name, arguments)
                return
            failed = item.get("status") in ("failed", "declined")
            error = as_dict(item.get("error")).get("message") if failed else None
            if failed and not error:
                error = f"{kind} {item.get('status')}"
            self.tools.finished(
                call_id,
                _result_of(kind, item),
                error=str(error) if error else None,
                name=name,
                arguments=arguments,
            )
        elif kind == "agent_message" and done:
            self.message = as_str(item.get("text"))
            self.journal.text(self.message)
        elif done:
            self.journal.event(kind or "item", {"text": item.get("text") or item.get("message")})


def _tool_of(kind: str, item: dict[str, Any]) -> tuple[str, Any]:
    if kind == "command_execution":
        return "shell", {"command": item.get("command")}
    if kind == "file_change":
        return "file_change", {"changes": item.get("changes")}
    return f"mcp:{item.get('server')}.{item.get('tool')}", item.get("arguments")


def _result_of(kind: str, item: dict[str, Any]) -> Any:
    if kind == "command_execution":
        return {"output": item.get("aggregated_output"), "exitCode": item.get("exit_code")}
    if kind == "file_change":
        return {"changes": item.get("changes")}
    return item.get("result")
