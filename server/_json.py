"""JSON in and out of the HTTP API: parse bodies under the limits, render results camelCase.

Bodies are checked before they are decoded: at most `MAX_JSON_DEPTH` nested arrays or
objects (a deep document is refused as ``INVALID_JSON``, never parsed). Results are the
engine's msgspec Structs rendered as JSON objects with camelCase keys; encoded JSON
(outputs, inputs) is decoded in place, and stored errors take the one error shape.
"""

from __future__ import annotations

import base64
import enum
import re
from pathlib import PurePath
from typing import Any

import msgspec
from smithers.eventstore.errors import error_info_to_json
from smithers.eventstore.events import ErrorInfo

from .errors import InvalidJsonError, InvalidRequestError

__all__ = (
    "MAX_JSON_DEPTH",
    "camel",
    "json_depth",
    "optional_bool",
    "optional_int",
    "optional_str",
    "parse_body",
    "to_json",
)

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects a request body may have."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """Return the deepest nesting of arrays and objects in `body` (0 for a scalar).

    Strings are skipped, so brackets inside them do not count. Linear in the body's size;
    it does not validate the JSON (the decoder does).
    """
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_body(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Decode a request body into a JSON object; an empty body is ``{}``.

    Args:
        body: The raw body (already under the size limit).
        max_depth: Deepest nesting allowed.

    Returns:
        The decoded object.

    Raises:
        InvalidJsonError: code ``INVALID_JSON`` if the body nests deeper than
            `max_depth`, is not JSON, or is not a JSON object.
    """
    if not body.strip():
        return {}
    if json_depth(body) > max_depth:
        raise InvalidJsonError(f"it nests deeper than {max_depth} levels")
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as e:
        raise InvalidJsonError(str(e)) from None
    if not isinstance(value, dict):
        raise InvalidJsonError("it is not a JSON object")
    return value


def optional_str(body: dict[str, Any], field: str) -> str | None:
    """Return ``body[field]`` if it is a string, None if absent or null.

    Raises:
        InvalidRequestError: if present and not a string.
    """
    value = body.get(field)
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequestError(field, "must be a string")


def optional_int(body: dict[str, Any], field: str, *, minimum: int | None = 0) -> int | None:
    """Return ``body[field]`` (an int, or a query string of digits), None if absent.

    Raises:
        InvalidRequestError: if present and not an integer at least `minimum`.
    """
    value = body.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise InvalidRequestError(field, "must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(field, "must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidRequestError(field, f"must be at least {minimum}")
    return value


def optional_bool(body: dict[str, Any], field: str, default: bool = False) -> bool:
    """Return ``body[field]`` as a bool (``true``/``false``, also as query strings).

    Raises:
        InvalidRequestError: if present and not a boolean.
    """
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    raise InvalidRequestError(field, "must be true or false")


def camel(name: str) -> str:
    """Return `name` in camelCase (``created_at_ms`` -> ``createdAtMs``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_LISTED_FIELDS: dict[type, frozenset[str]] = {}


def _keyed_by_non_strings(cls: type) -> frozenset[str]:
    """Fields of Struct `cls` annotated as mappings with non-string keys (cached).

    Read from the annotations' text (``dict[NodeKey, NodeRecord]``), never evaluated:
    such a mapping is rendered as the list of its values, also when it is empty (its
    keys cannot tell then).
    """
    found = _LISTED_FIELDS.get(cls)
    if found is None:
        names = set()
        for klass in reversed(cls.__mro__):
            for name, note in vars(klass).get("__annotations__", {}).items():
                text = note if isinstance(note, str) else repr(note)
                if text.startswith("dict[") and not text.startswith("dict[str"):
                    names.add(name)
        found = _LISTED_FIELDS[cls] = frozenset(names)
    return found


def to_json(value: Any) -> Any:
    """Return `value` as plain JSON values, camelCase keys for Struct fields.

    Structs become objects (field names camelCased); `ErrorInfo` takes the one error
    shape (`error_info_to_json`); ``msgspec.Raw`` and bytes holding JSON are decoded
    (other bytes become base64); mappings keep their keys (non-string keys, such as a
    run state's ``(node, iteration)`` keys, turn the mapping into a list of its values,
    and a Struct field annotated so is a list even when empty);
    tuples, lists and sets become lists; enums their values; paths strings.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, ErrorInfo):
        return error_info_to_json(value)
    if isinstance(value, msgspec.Struct):
        # The class's own field tables: `msgspec.structs.fields` would evaluate the
        # annotations, which name types imported only for type checking.
        cls = type(value)
        listed = _keyed_by_non_strings(cls)
        out: dict[str, Any] = {}
        for name, encoded in zip(cls.__struct_fields__, cls.__struct_encode_fields__, strict=True):
            key = encoded if encoded != name else camel(name)
            field = getattr(value, name)
            if name in listed and isinstance(field, dict):
                out[key] = [to_json(v) for v in field.values()]  # a list, empty or not
            else:
                out[key] = to_json(field)
        return out
    if isinstance(value, msgspec.Raw):
        return msgspec.json.decode(bytes(value)) if len(value) else None
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: to_json(v) for k, v in value.items()}
        return [to_json(v) for v in value.values()]
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, PurePath):
        return str(value)
    return msgspec.to_builtins(value)
