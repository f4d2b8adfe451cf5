"""Tools as values: a name, a JSON schema, a function, and a journaled `call`."""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import to_raw
from smithers.eventstore.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    error_info_of,
)
from smithers.eventstore.events import NULL_RAW, ErrorInfo, ToolCallFinished, ToolCallStarted

from ._errors import ToolArgumentsError, ToolPathInvalidError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._context import ToolContext

__all__ = ("Tool", "define_tool", "tool_error_info")

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class Tool:
    """A tool an agent (or a compute task) can call: name, JSON schema, function, flags.

    Build user tools with `define_tool`; the built-ins are `READ`, `WRITE`, `EDIT`,
    `GREP`, `BASH`. Call one with `await tool.call(ctx, arguments)`.

    Attributes:
        name: The tool's name as a model sees it.
        description: What it does, for the model.
        parameters: JSON schema of the arguments object.
        side_effect: True if the call changes something outside the attempt (a resumed
            attempt replays its recorded result instead of calling it again).
        idempotent: True if calling it twice with the same arguments is harmless.
    """

    def __init__(
        self,
        name: str,
        parameters: Mapping[str, Any] | type[msgspec.Struct],
        fn: Callable[[ToolContext, Any], Any],
        *,
        description: str = "",
        side_effect: bool = False,
        idempotent: bool = False,
    ) -> None:
        if not name or not set(name) <= _NAME_CHARS:
            raise InvalidArgumentError(f"tool name {name!r} must be letters, digits, '_' or '-'")
        self.name = name
        self.description = description
        self.side_effect = side_effect
        self.idempotent = idempotent
        self._fn = fn
        self._args_type: type[msgspec.Struct] | None
        if isinstance(parameters, type) and issubclass(parameters, msgspec.Struct):
            self._args_type = parameters
            self.parameters: dict[str, Any] = _inline_schema(parameters)
        elif isinstance(parameters, Mapping):
            self._args_type = None
            self.parameters = dict(parameters)
        else:
            raise InvalidArgumentTypeError(
                "parameters must be a JSON schema mapping or a msgspec Struct type"
            )

    def __repr__(self) -> str:
        return f"Tool({self.name!r}, side_effect={self.side_effect}, idempotent={self.idempotent})"

    def parse_arguments(self, arguments: Mapping[str, Any] | None) -> Any:
        """Validate `arguments`: a Struct instance for a Struct schema, else the dict.

        Raises:
            ToolPathInvalidError: if a ``path`` or ``cwd`` argument is not a string.
            ToolArgumentsError: if `arguments` is not an object or fails the Struct schema.
        """
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(self.name, "arguments must be a JSON object")
        if self._args_type is None:
            return dict(arguments)
        try:
            return msgspec.convert(dict(arguments), self._args_type)
        except msgspec.ValidationError as e:
            # A path argument of the wrong type is the catalogue's TOOL_PATH_INVALID.
            for field in ("path", "cwd"):
                if str(e).endswith(f"at `$.{field}`") and field in arguments:
                    raise ToolPathInvalidError(arguments[field], "expected a string") from e
            raise ToolArgumentsError(self.name, str(e)) from e

    async def call(
        self,
        ctx: ToolContext,
        arguments: Mapping[str, Any] | None = None,
        *,
        call_id: str | None = None,
    ) -> Any:
        """Run the tool in `ctx`'s sandbox and journal it.

        `call_id` (a model's id for the call) is recorded on both events, so a resumed
        agent attempt can replay the result instead of calling the tool again.

        `ctx.journal` gets `ToolCallStarted` (with the arguments) before the tool runs and
        `ToolCallFinished` after: ``status`` ``"success"`` with the result's size and JSON,
        ``"error"`` with the error, or ``"cancelled"`` when the caller was cancelled (the
        cancellation is re-raised). Awaits the tool (sync functions run in the caller).

        Returns:
            The function's result (JSON-encodable).

        Raises:
            ToolArgumentsError: if the arguments are not JSON or fail the schema (nothing
                is journaled when they are not JSON).
            ToolError: whatever the tool raises (e.g. `ToolPathEscapeError`).
        """
        try:
            raw_arguments = to_raw(dict(arguments or {}))
        except (TypeError, msgspec.EncodeError) as e:
            raise ToolArgumentsError(self.name, f"arguments are not JSON: {e}") from e
        seq = ctx.next_seq()
        common: dict[str, Any] = {
            "run_id": ctx.run_id,
            "node_id": ctx.node_id,
            "iteration": ctx.iteration,
            "attempt": ctx.attempt,
            "tool_name": self.name,
            "seq": seq,
            "call_id": call_id,
        }
        _emit(ctx, ToolCallStarted(timestamp_ms=ctx.now_ms(), arguments=raw_arguments, **common))
        started = time.monotonic()

        def finished(status: str, **fields: Any) -> ToolCallFinished:
            duration_ms = int((time.monotonic() - started) * 1000)
            return ToolCallFinished(
                timestamp_ms=ctx.now_ms(),
                status=status,
                duration_ms=duration_ms,
                **common,
                **fields,
            )

        try:
            value = self._fn(ctx, self.parse_arguments(arguments))
            if inspect.isawaitable(value):
                value = await value
            raw_result = to_raw(value)
        except anyio.get_cancelled_exc_class():
            _emit(ctx, finished("cancelled"))
            raise
        except Exception as e:
            _emit(ctx, finished("error", error=tool_error_info(e)))
            raise
        size = len(bytes(raw_result)) if raw_result is not NULL_RAW else 0
        _emit(ctx, finished("success", result=raw_result, result_size_bytes=size))
        return value


def _emit(ctx: ToolContext, event: ToolCallStarted | ToolCallFinished) -> None:
    if ctx.journal is not None:
        ctx.journal(event)


def _inline_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """Msgspec's JSON schema of `struct`, with the top-level ``$ref`` inlined."""
    schema: dict[str, Any] = msgspec.json.schema(struct)
    ref = schema.get("$ref")
    defs = schema.get("$defs", {})
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        body = dict(defs[name])
        rest = {k: v for k, v in defs.items() if k != name}
        if rest:
            body["$defs"] = rest
        return body
    return schema


def tool_error_info(err: BaseException) -> ErrorInfo:
    """A tool failure as data for `ToolCallFinished.error` (code, message, details)."""
    return error_info_of(err)


def define_tool(
    name: str,
    schema: Mapping[str, Any] | type[msgspec.Struct],
    fn: Callable[[ToolContext, Any], Any],
    *,
    side_effect: bool = False,
    idempotent: bool = False,
    description: str | None = None,
) -> Tool:
    """Define a user tool, journaled and sandboxed like the built-ins.

    Example:
        ```python
        class Ticket(msgspec.Struct):
            title: str

        async def open_ticket(ctx: ToolContext, args: Ticket) -> dict[str, str]:
            return await tracker.open(args.title, key=ctx.idempotency_key)

        tool = define_tool("open_ticket", Ticket, open_ticket, side_effect=True)
        ```

    Args:
        name: Letters, digits, ``_`` or ``-``.
        schema: A msgspec Struct type (arguments are validated into an instance of it) or
            a JSON schema mapping (the function gets the arguments dict as is).
        fn: ``fn(ctx, args)``, sync or async, returning a JSON-encodable value. `ctx` is the
            `ToolContext` (root dir, limits, ``idempotency_key``).
        side_effect: The tool changes the world; a resumed attempt must not call it again
            when its result is recorded.
        idempotent: Calling it twice with the same arguments is harmless.
        description: For the model; defaults to `fn`'s docstring.

    Returns:
        The `Tool`.

    Raises:
        ValueError: if `name` has other characters.
        TypeError: if `schema` is neither a Struct type nor a mapping.
    """
    return Tool(
        name,
        schema,
        fn,
        description=description if description is not None else inspect.getdoc(fn) or "",
        side_effect=side_effect,
        idempotent=idempotent,
    )
