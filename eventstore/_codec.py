"""The JSON codec of events: one module-level encoder and decoder (msgspec perf tips)."""

from __future__ import annotations

import itertools
import math
import re
import typing
from typing import Any

import msgspec

from .events import AnyEvent, Event

__all__ = (
    "EVENT_TYPES",
    "MAX_JSON_DEPTH",
    "JsonValueError",
    "decode_event",
    "decode_json",
    "encode_event",
    "encode_json",
    "encode_json_strict",
    "to_raw",
)

MAX_JSON_DEPTH = 200
"""Deepest nesting of arrays and objects a run's input, a task's output, a heartbeat or
signal payload may have (``[[1]]`` is 2 deep). Deeper trees are refused with a coded
error: encoding and decoding recurse once per level, and Python's recursion limit
(1,000 frames, of which the engine uses some) would otherwise fail them at a depth that
depends on the call stack (about 485 in a worker thread)."""

EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in typing.get_args(AnyEvent)}
"""Every known event class by its ``type`` tag."""

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(AnyEvent)
_any_decoder = msgspec.json.Decoder()


def encode_event(event: Event) -> bytes:
    """Encode an event as camelCase JSON bytes with its ``type`` tag."""
    return _encoder.encode(event)


def decode_event(type_name: str, data: bytes) -> Event | None:
    """Decode stored JSON bytes; return None for a type this version does not know.

    Raises:
        msgspec.DecodeError: if `data` is not a valid event of a known type.
    """
    if type_name not in EVENT_TYPES:
        return None
    return _decoder.decode(data)


def encode_json(value: Any) -> bytes:
    """Encode any msgspec-encodable value (dicts, Structs, lists) as JSON bytes."""
    return _encoder.encode(value)


def decode_json(data: bytes | msgspec.Raw, type: Any = Any) -> Any:
    """Decode JSON bytes, optionally validating against `type` (a Struct, dict, …).

    Raises:
        msgspec.ValidationError: if the JSON does not match `type`.
    """
    if type is Any:
        return _any_decoder.decode(data)
    return msgspec.json.decode(data, type=type)


def to_raw(value: Any) -> msgspec.Raw:
    """Encode `value` as JSON and wrap it as `msgspec.Raw` for an event field."""
    return msgspec.Raw(_encoder.encode(value))


class JsonValueError(ValueError):
    """A value `encode_json_strict` refuses: what is wrong with it, as a sentence.

    Attributes:
        reason: The sentence, e.g. ``"a float at $.a[2] is NaN or infinite"``.
        max_depth: `MAX_JSON_DEPTH` when the value is nested too deep, else None.
    """

    def __init__(self, reason: str, *, max_depth: int | None = None) -> None:
        self.reason = reason
        self.max_depth = max_depth
        super().__init__(reason)


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SIGNS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
"""Opening brackets to +1 and closing ones to -1 (as signed bytes)."""


def _json_depth(raw: bytes) -> int:
    """Deepest nesting of arrays/objects in the JSON `raw` (brackets in strings ignored)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot be deeper than the limit: the common case costs two scans
    body = _STRINGS.sub(b"", raw) if b'"' in raw else raw
    steps = body.translate(None, _NOT_BRACKETS).translate(_SIGNS)
    return max(itertools.accumulate(memoryview(steps).cast("b")), default=0)


def _non_finite_path(value: Any) -> str | None:
    """The JSON path of the first NaN or infinite float in `value`, or None. No recursion."""
    stack: list[tuple[str, Any]] = [("$", msgspec.to_builtins(value))]
    while stack:
        path, v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return path
        elif isinstance(v, dict):
            stack.extend((f"{path}.{k}", x) for k, x in v.items())
        elif isinstance(v, list | tuple):
            stack.extend((f"{path}[{i}]", x) for i, x in enumerate(v))
    return None


def encode_json_strict(value: Any) -> bytes:
    """Encode a user-supplied value as JSON, refusing what `encode_json` would mangle.

    For a run's input, a task's output, heartbeat and signal payloads. Beyond what
    msgspec refuses (unsupported types), this refuses a string holding a lone surrogate
    (UTF-8 cannot hold it), NaN or infinity (JSON has no such numbers: msgspec would
    write ``null``) and a tree nested deeper than `MAX_JSON_DEPTH`. The checks add two
    byte scans of the JSON; values whose JSON holds ``null`` are also walked once for
    non-finite floats.

    Returns:
        The JSON bytes, as `encode_json` gives them.

    Raises:
        JsonValueError: for a lone surrogate, a non-finite float, or a tree deeper than
            `MAX_JSON_DEPTH` (``max_depth`` set).
        TypeError, msgspec.EncodeError: if msgspec cannot encode the value's type.
    """
    too_deep = JsonValueError(
        f"it is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects",
        max_depth=MAX_JSON_DEPTH,
    )
    try:
        raw = _encoder.encode(value)
    except UnicodeEncodeError as e:
        raise JsonValueError(
            f"a string holds a lone surrogate ({e.object[e.start : e.end]!r}), "
            "which UTF-8 cannot encode"
        ) from e
    except RecursionError as e:
        raise too_deep from e
    if _json_depth(raw) > MAX_JSON_DEPTH:
        raise too_deep
    if b"null" in raw:
        path = _non_finite_path(value)
        if path is not None:
            raise JsonValueError(f"the number at {path} is NaN or infinite, which JSON cannot hold")
    return raw
