"""Smithers' tools for CLI agents, over MCP: one sandbox and one journal for every agent.

A CLI agent (Claude Code, Codex, Gemini CLI) gets the task's tools (``Task(tools=…)``) as an MCP
server it starts itself over stdio (`_mcp_server`, the official ``mcp`` package). That
server holds no tool: it relays each ``tools/list`` and ``tools/call`` over a Unix
socket to this `ToolBridge`, which lives in the run's process and answers through
`AgentRequest.call_tool` — the same sandbox (root, limits, network), the same
``ToolCallStarted``/``ToolCallFinished`` journal as a model agent's tool calls.

The relay protocol is one JSON object per line each way:
``{"op": "list"}`` → ``{"tools": [{"name", "description", "parameters"}]}``;
``{"op": "call", "name", "arguments"}`` → ``{"ok": true, "result": …}`` or
``{"ok": false, "error": "CODE: message"}``. The socket lives in a private temporary
folder (mode 0700) for the length of one agent call.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from ..tools import ToolError
from .errors import AgentConfigInvalidError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import SocketStream

    from ._protocol import AgentRequest

__all__ = ("SERVER_NAME", "ToolBridge", "serve_tools")

SERVER_NAME = "smithers"
"""The MCP server's name in the CLIs' configs: tools appear as ``mcp__smithers__read``
(Claude Code), ``smithers`` + ``read`` (Codex) or ``mcp_smithers_read`` (Gemini CLI)."""
_MAX_LINE_BYTES = 64 * 1024 * 1024
"""Longest relay line accepted, in bytes (a tool's result is capped well below)."""


class ToolBridge(msgspec.Struct, frozen=True, kw_only=True):
    """A running bridge: how a CLI starts the MCP server that reaches it."""

    socket_path: str
    """The Unix socket the MCP server connects to."""
    command: str
    """The MCP server's executable (this Python)."""
    args: list[str]
    """Its arguments (``-m smithers.engine.agents._mcp_server <socket>``)."""

    def claude_config(self) -> str:
        """The ``--mcp-config`` JSON for Claude Code."""
        server = {"type": "stdio", "command": self.command, "args": self.args}
        return msgspec.json.encode({"mcpServers": {SERVER_NAME: server}}).decode()

    def gemini_servers(self) -> dict[str, Any]:
        """The ``mcpServers`` entry for Gemini CLI's settings.json, trusted.

        ``"trust": true``: headless Gemini CLI does not offer an untrusted server's
        tools to the model at all (no prompt to approve them).
        """
        return {SERVER_NAME: {"command": self.command, "args": self.args, "trust": True}}

    def codex_config(self) -> str:
        """The ``-c mcp_servers.smithers=…`` value (TOML) for Codex, approving calls."""
        args = ", ".join(msgspec.json.encode(a).decode() for a in self.args)
        command = msgspec.json.encode(self.command).decode()
        return f'{{command={command}, args=[{args}], default_tools_approval_mode="approve"}}'


async def _handle(request: AgentRequest, stream: SocketStream, counter: list[int]) -> None:
    buffer = b""
    async with stream:
        while True:
            try:
                chunk = await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            buffer += chunk
            if len(buffer) > _MAX_LINE_BYTES:
                return
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                reply = await _answer(request, line, counter)
                await stream.send(msgspec.json.encode(reply) + b"\n")


async def _answer(request: AgentRequest, line: bytes, counter: list[int]) -> dict[str, Any]:
    try:
        msg = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return {"ok": False, "error": "INVALID_INPUT: the relay line is not JSON"}
    if not isinstance(msg, dict):
        return {"ok": False, "error": "INVALID_INPUT: the relay line is not an object"}
    if msg.get("op") == "list":
        return {
            "tools": [
                {"name": t.name, "description": t.description, "parameters": t.parameters}
                for t in request.tools
            ]
        }
    if msg.get("op") != "call":
        return {"ok": False, "error": f"INVALID_INPUT: unknown op {msg.get('op')!r}"}
    counter[0] += 1
    try:
        result = await request.call_tool(
            str(msg.get("name")), msg.get("arguments") or {}, call_id=f"mcp-{counter[0]}"
        )
    except ToolError as e:
        return {"ok": False, "error": f"{e.code}: {e.summary}"}
    except Exception as e:  # the CLI's model sees the failure; the run goes on
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "result": msgspec.to_builtins(result)}


@contextlib.asynccontextmanager
async def serve_tools(request: AgentRequest) -> AsyncIterator[ToolBridge | None]:
    """Serve `request`'s tools on a Unix socket for one CLI call; None if it has none.

    Yields:
        The `ToolBridge` (its configs go on the CLI's command line), or None when the
        task gives the agent no tool.

    Raises:
        AgentConfigInvalidError: if the ``mcp`` package is not installed.
    """
    if not request.tools:
        yield None
        return
    if importlib.util.find_spec("mcp") is None:
        raise AgentConfigInvalidError(
            "Giving tools to a CLI agent needs the official MCP package, not installed here",
            details={"agentId": request.journal.agent_id},
            hint="pip install 'smithers-py[mcp]'",
        )
    with tempfile.TemporaryDirectory(prefix="smithers-mcp-") as folder:
        os.chmod(folder, 0o700)
        path = os.path.join(folder, "tools.sock")
        listener = await anyio.create_unix_listener(path)
        counter = [0]

        async def accept() -> None:
            async with listener:
                await listener.serve(lambda stream: _handle(request, stream, counter))

        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            try:
                yield ToolBridge(
                    socket_path=path,
                    command=sys.executable,
                    args=["-m", "smithers.engine.agents._mcp_server", path],
                )
            finally:
                tg.cancel_scope.cancel()
