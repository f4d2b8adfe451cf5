"""The stdio MCP server a CLI agent starts to reach smithers' tools (see `_bridge`).

``python -m smithers.engine.agents._mcp_server SOCKET``: an MCP server on stdin/stdout
(the official ``mcp`` package's low-level `Server`) whose ``tools/list`` and
``tools/call`` are relayed, one JSON line each, to the run's `ToolBridge` on the Unix
socket `SOCKET`. It runs no tool itself. Logs go to stderr (stdout is the protocol's).
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import msgspec

__all__ = ("main",)


class _Relay:
    """One connection to the bridge; requests are sent one at a time."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lock = anyio.Lock()
        self.buffer = b""

    async def ask(self, message: dict[str, Any]) -> Any:
        async with self.lock:
            await self.stream.send(msgspec.json.encode(message) + b"\n")
            while b"\n" not in self.buffer:
                self.buffer += await self.stream.receive()
            line, self.buffer = self.buffer.split(b"\n", 1)
            return msgspec.json.decode(line)


async def _serve(socket_path: str) -> None:
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    stream = await anyio.connect_unix(socket_path)
    relay = _Relay(stream)

    async def list_tools(_ctx: Any, _params: Any) -> types.ListToolsResult:
        listing = await relay.ask({"op": "list"})
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t["name"],
                    description=t["description"] or None,
                    input_schema=t["parameters"],
                )
                for t in listing["tools"]
            ]
        )

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        reply = await relay.ask(
            {"op": "call", "name": params.name, "arguments": params.arguments or {}}
        )
        if not reply.get("ok"):
            text = str(reply.get("error"))
            return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
        result = reply.get("result")
        text = result if isinstance(result, str) else msgspec.json.encode(result).decode()
        return types.CallToolResult(content=[types.TextContent(text=text)])

    server: Server[Any] = Server(
        "smithers", version="1", on_list_tools=list_tools, on_call_tool=call_tool
    )
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main(argv: list[str] | None = None) -> int:
    """Serve until stdin closes. Returns the exit status (2 on bad usage)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m smithers.engine.agents._mcp_server SOCKET", file=sys.stderr)
        return 2
    anyio.run(_serve, args[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
