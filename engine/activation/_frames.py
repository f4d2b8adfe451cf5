"""Frames: the rendered tree of every `FrameCommitted`, as keyframes and JSON-path deltas.

Each committed frame carries the canonical tree the engine rendered (`Plan.tree`), so
any frame's tree is rebuilt from the log alone (DESIGN §4, §7). A frame carries either

- a **keyframe**: the whole tree, as canonical JSON (keys sorted, as `Plan.xml_hash`
  hashes it, so ``sha256(keyframe) == xml_hash``); or
- a **delta**: a list of operations turning the previous frame's tree into this one.
  An unchanged tree is the empty delta ``[]``.

Keyframe policy (`FrameEncoder`): the first frame of every activation of a run (a
start, a resume, a fork's first activation) is a keyframe, so the engine never needs
an earlier activation's tree; after that, a frame whose number is a multiple of
`KEYFRAME_INTERVAL` (50) is a keyframe if the tree changed since the last keyframe (an
unchanged tree stays an empty delta: a static 10,000-task tree is not copied 200
times); a delta larger than the tree is written as a keyframe instead. A delta is
always against the frame before it in the run's effective history (after a rewind
the engine writes a keyframe). Readers do not rely on the policy: they look for the
nearest keyframe and verify the result against `xml_hash`.

Delta format: a JSON list of operations, applied in order, each path read against the
tree as the previous operations left it::

    {"op": "set",    "path": "$.children[3].label", "value": "Review"}
    {"op": "insert", "path": "$.children[0].children[2]", "value": {"tag": "task", ...}}
    {"op": "remove", "path": "$.children[4]"}

- ``set``: replace the value at `path`, or add the key if `path` ends in a missing
  object key. ``$`` alone replaces the whole tree.
- ``insert``: insert `value` into a list at `path`'s index (``len`` appends), shifting
  later items right.
- ``remove``: delete an object key or a list item (later items shift left).

Path dialect (a small subset of JSONPath): ``$`` is the root, then any number of
``.key`` (a key matching ``[A-Za-z_][A-Za-z0-9_]*``), ``["any key"]`` (a JSON string
literal, for every other key) and ``[N]`` (a list index, ``N >= 0``). Examples:
``$.children[0].dependsOn[1]``, ``$["odd key"].children[12]``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from typing import Any

import msgspec

__all__ = (
    "KEYFRAME_INTERVAL",
    "FrameEncoder",
    "apply_delta",
    "canonical_json",
    "decode_delta",
    "encode_delta",
    "format_path",
    "parse_path",
    "tree_delta",
    "tree_hash",
)

KEYFRAME_INTERVAL = 50
"""A frame whose number is a multiple of this is a keyframe (if the tree changed since
the last one)."""

PathPart = str | int
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEY_AT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_canonical = msgspec.json.Encoder(order="sorted")
_encoder = msgspec.json.Encoder()
_LIST_DIFF_LIMIT = 2_000
"""Above this many differing list items (after trimming the common prefix and suffix),
items are paired by position instead of matched (matching is quadratic at worst)."""


def canonical_json(tree: Any) -> bytes:
    """Return `tree` as canonical JSON (keys sorted, no spaces): what `xml_hash` hashes."""
    return _canonical.encode(tree)


def tree_hash(tree: Any) -> str:
    """Return the SHA-256 hex digest of `tree`'s canonical JSON (`Plan.xml_hash`)."""
    return hashlib.sha256(_canonical.encode(tree)).hexdigest()


# ---------------------------------------------------------------------- paths


def format_path(parts: tuple[PathPart, ...] | list[PathPart]) -> str:
    """Return the path string of `parts` (keys and list indices from the root).

    Example:
        >>> format_path(["children", 3, "label"])
        '$.children[3].label'
    """
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _KEY.match(part):
            out.append(f".{part}")
        else:
            out.append(f"[{_encoder.encode(part).decode()}]")
    return "".join(out)


def parse_path(path: str) -> list[PathPart]:
    """Return the keys (str) and list indices (int) of a path string.

    Raises:
        ValueError: if `path` is not in the dialect (see the module docstring).
    """
    if not path.startswith("$"):
        raise ValueError(f"path {path!r} does not start with '$'")
    parts: list[PathPart] = []
    i, n = 1, len(path)
    while i < n:
        c = path[i]
        if c == ".":
            m = _KEY_AT.match(path, i + 1)
            if m is None:
                raise ValueError(f"path {path!r}: expected a key after '.' at {i}")
            parts.append(m.group())
            i = m.end()
        elif c == "[" and i + 1 < n and path[i + 1] == '"':
            end = _string_end(path, i + 1)
            if end + 1 >= n or path[end + 1] != "]":
                raise ValueError(f'path {path!r}: unterminated ["key"] at {i}')
            parts.append(msgspec.json.decode(path[i + 1 : end + 1], type=str))
            i = end + 2
        elif c == "[":
            end = path.find("]", i)
            digits = path[i + 1 : end] if end > 0 else ""
            if not digits.isdigit() or not digits.isascii():
                raise ValueError(f'path {path!r}: expected [index] or ["key"] at {i}')
            parts.append(int(digits))
            i = end + 1
        else:
            raise ValueError(f"path {path!r}: unexpected {c!r} at {i}")
    return parts


def _string_end(text: str, start: int) -> int:
    """Index of the closing quote of the JSON string opening at `start`."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise ValueError(f"path {text!r}: unterminated string at {start}")


# ---------------------------------------------------------------------- diff


_SCALARS = frozenset({str, int, bool, type(None)})
"""JSON types whose ``==`` is JSON equality when both sides have the same type (not
float: ``-0.0 == 0.0``)."""


def _same(a: Any, b: Any) -> bool:
    """JSON equality: unlike ``==``, ``true`` differs from ``1`` and ``1`` from ``1.0``."""
    if a is b:
        return True
    if type(a) is not type(b) or a != b:
        return False
    if isinstance(a, dict | list | float):  # nested bool/int/float, or -0.0 and 0.0
        return _canonical.encode(a) == _canonical.encode(b)
    return True


def tree_delta(old: Any, new: Any) -> list[dict[str, Any]]:
    """Return the operations that turn `old` into `new` (``[]`` if they are equal).

    Both are JSON values (dicts, lists, str, int, float, bool, None); neither is
    modified, and the returned values share structure with `new` (do not mutate it).
    Object keys are compared as a set (order is not meaningful); lists are aligned on
    their common prefix and suffix, then by matching items (tasks by ``id``), so
    mounting or unmounting one task costs one operation.

    Args:
        old: The previous tree.
        new: The next tree.

    Returns:
        A list of ``{"op", "path"[, "value"]}`` dicts; `apply_delta` of it on a copy
        of `old` gives a value JSON-equal to `new`.
    """
    ops: list[dict[str, Any]] = []
    _diff(old, new, [], ops)
    return ops


def _diff(a: Any, b: Any, path: list[PathPart], ops: list[dict[str, Any]]) -> None:
    if _same(a, b):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if key not in b:
                ops.append({"op": "remove", "path": format_path([*path, key])})
        for key, value in b.items():
            if key not in a:
                ops.append({"op": "set", "path": format_path([*path, key]), "value": value})
                continue
            old = a[key]
            if old is value or (type(old) is type(value) in _SCALARS and old == value):
                continue  # most fields of most nodes: no call, no path built
            _diff(old, value, [*path, key], ops)
        return
    if isinstance(a, list) and isinstance(b, list):
        _diff_list(a, b, path, ops)
        return
    ops.append({"op": "set", "path": format_path(path), "value": b})


def _item_key(item: Any) -> Any:
    """What list items are matched on: a node's tag and id, else its canonical JSON."""
    if isinstance(item, dict):
        node_id = item.get("id")
        if isinstance(node_id, str):
            return ("node", item.get("tag"), node_id)
        return ("json", _canonical.encode(item))
    return ("json", _canonical.encode(item))


def _diff_list(a: list[Any], b: list[Any], path: list[PathPart], ops: list[dict[str, Any]]) -> None:
    start = 0
    stop = min(len(a), len(b))
    while start < stop and _same(a[start], b[start]):
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and _same(a[end_a - 1], b[end_b - 1]):
        end_a -= 1
        end_b -= 1
    mid_a, mid_b = a[start:end_a], b[start:end_b]
    if not mid_a and not mid_b:
        return
    blocks: list[tuple[str, int, int, int, int]]
    if len(mid_a) > _LIST_DIFF_LIMIT or len(mid_b) > _LIST_DIFF_LIMIT or len(mid_a) == len(mid_b):
        blocks = [("replace", 0, len(mid_a), 0, len(mid_b))]
    else:
        matcher = difflib.SequenceMatcher(
            None, [_item_key(x) for x in mid_a], [_item_key(x) for x in mid_b], autojunk=False
        )
        blocks = list(matcher.get_opcodes())
    # Blocks go left to right; before each, the list is b[:start + j1] + a[start + i1:],
    # so a's item i1 + k is at index start + j1 + k.
    for tag, i1, i2, j1, j2 in blocks:
        if tag == "equal" or tag == "replace":
            paired = min(i2 - i1, j2 - j1)
            for k in range(paired):
                _diff(mid_a[i1 + k], mid_b[j1 + k], [*path, start + j1 + k], ops)
            i1 += paired
            j1 += paired
        for _ in range(i2 - i1):
            ops.append({"op": "remove", "path": format_path([*path, start + j1])})
        for j in range(j1, j2):
            ops.append({"op": "insert", "path": format_path([*path, start + j]), "value": mid_b[j]})


# ---------------------------------------------------------------------- apply


def apply_delta(tree: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply delta operations to `tree` in place and return the result.

    The result is `tree` itself unless an operation replaces the root (path ``$``).
    Values from `ops` are inserted as they are (not copied).

    Args:
        tree: A JSON value (the previous frame's tree), modified in place.
        ops: Operations as `tree_delta` returns them (or decoded from a frame).

    Returns:
        The new tree.

    Raises:
        ValueError: if an operation is malformed or does not fit the tree (a missing
            key or index, an index on an object, ...): the delta is not for this tree.
    """
    for op in ops:
        kind = op.get("op") if isinstance(op, dict) else None
        path = op.get("path") if isinstance(op, dict) else None
        if kind not in ("set", "insert", "remove") or not isinstance(path, str):
            raise ValueError(f"malformed delta operation {op!r}")
        parts = parse_path(path)
        if not parts:
            if kind != "set":
                raise ValueError(f"cannot {kind} the root")
            tree = op.get("value")
            continue
        parent = tree
        for part in parts[:-1]:
            parent = _child(parent, part, path)
        last = parts[-1]
        if isinstance(parent, dict) and isinstance(last, str):
            if kind == "set":
                parent[last] = op.get("value")
            elif kind == "remove" and last in parent:
                del parent[last]
            else:
                raise ValueError(f"cannot {kind} {path}: no such key")
        elif isinstance(parent, list) and isinstance(last, int):
            if kind == "insert" and last <= len(parent):
                parent.insert(last, op.get("value"))
            elif kind == "set" and last < len(parent):
                parent[last] = op.get("value")
            elif kind == "remove" and last < len(parent):
                del parent[last]
            else:
                raise ValueError(f"cannot {kind} {path}: index out of range")
        else:
            raise ValueError(f"cannot {kind} {path}: no such place")
    return tree


def _child(value: Any, part: PathPart, path: str) -> Any:
    if isinstance(value, dict) and isinstance(part, str) and part in value:
        return value[part]
    if isinstance(value, list) and isinstance(part, int) and part < len(value):
        return value[part]
    raise ValueError(f"path {path}: no {part!r} in the tree")


def encode_delta(ops: list[dict[str, Any]]) -> bytes:
    """Return delta operations as JSON bytes (``b"[]"`` for none)."""
    return _encoder.encode(ops)


def decode_delta(data: bytes | msgspec.Raw) -> list[dict[str, Any]]:
    """Return the operations of a frame's `delta` JSON.

    Raises:
        ValueError: if `data` is not a JSON list of objects.
    """
    try:
        ops = msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise ValueError(f"frame delta is not JSON: {e}") from e
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise ValueError("frame delta is not a list of operations")
    return ops


# ---------------------------------------------------------------------- the engine's side


class FrameEncoder:
    """The engine's side: what each committed frame carries (see the module docstring).

    One per activation of a run; it remembers the last frame it encoded, so its first
    frame is always a keyframe.
    """

    __slots__ = ("_changed", "_hash", "_seq", "_tree")

    def __init__(self) -> None:
        self._tree: Any = None
        self._hash: str | None = None
        self._seq: int | None = None
        self._changed = False  # the tree changed since the last keyframe

    def encode(
        self, frame_no: int, tree: dict[str, Any], xml_hash: str, *, previous_seq: int | None
    ) -> tuple[msgspec.Raw | None, msgspec.Raw | None]:
        """Return ``(keyframe, delta)`` for the frame: exactly one of them is not None.

        Does no I/O. Diffing is skipped when `xml_hash` equals the previous frame's.

        Args:
            frame_no: The frame's number.
            tree: The rendered canonical tree (`Plan.tree`); kept, not copied, so it
                must not be mutated afterwards.
            xml_hash: `Plan.xml_hash` of `tree`.
            previous_seq: Seq of the run's latest frame in its effective history (None
                if it has none): a delta is only written against the frame this
                encoder encoded last, and only if that is still the latest one (after
                a rewind it is not, and the frame is a keyframe).

        Returns:
            The keyframe as canonical JSON bytes, or the delta as a JSON list.
        """
        continues = self._seq is not None and previous_seq == self._seq
        unchanged = continues and xml_hash == self._hash
        if continues and not unchanged:
            self._changed = True
        keyed = not continues or (self._changed and frame_no % KEYFRAME_INTERVAL == 0)
        keyframe: msgspec.Raw | None = None
        delta: msgspec.Raw | None = None
        if keyed:
            keyframe = msgspec.Raw(canonical_json(tree))
        elif unchanged:
            delta = msgspec.Raw(b"[]")
        else:
            data = encode_delta(tree_delta(self._tree, tree))
            full = canonical_json(tree)
            if len(data) >= len(full):
                keyframe = msgspec.Raw(full)
            else:
                delta = msgspec.Raw(data)
        if keyframe is not None:
            self._changed = False
        self._tree = tree
        self._hash = xml_hash
        return keyframe, delta

    def committed(self, seq: int) -> None:
        """Record the seq the frame just encoded was given in the log."""
        self._seq = seq
