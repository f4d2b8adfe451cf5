"""The JSON codec of events: one module-level encoder and decoder (msgspec perf tips)."""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from .events import AnyEvent, Event

__all__ = ("EVENT_TYPES", "decode_event", "encode_event", "encode_json", "decode_json", "to_raw")

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
