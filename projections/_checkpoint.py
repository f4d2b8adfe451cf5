"""Checkpoints: a `RunState` as bytes and back, for the side table of folded states.

DESIGN §5: the folded state is cached every K events, keyed by ``(run_id, seq)``, to
bound time-travel latency; deleting the cache loses nothing. This module is only the
codec; where checkpoints are kept is the engine's business.

The format is msgspec JSON. The state holds user JSON as `msgspec.Raw`, which JSON
embeds byte for byte (MessagePack would copy JSON bytes in as if they were MessagePack).
`RunState.nodes` has tuple keys, which JSON cannot encode, so the nodes are stored as a
list of records, whose ``(node_id, iteration)`` are their keys.

Every checkpoint names its format: a version bumped by hand when the fold's meaning
changes, plus a digest of the state Structs' fields computed at import, so a
checkpoint written by another `RunState` layout is refused, never decoded with
defaults filling the missing fields.
"""

from __future__ import annotations

import hashlib

import msgspec
from smithers.eventstore.events import ErrorInfo

from ._run_state import AttemptRecord, FrameRecord, NodeRecord, RunState
from .errors import CheckpointDecodeError

__all__ = ("CHECKPOINT_FORMAT", "decode_state", "encode_state")

_FOLD_VERSION = 1
"""Bump when folding the same events gives a different state (a handler changed)."""


def _layout_digest() -> str:
    parts: list[str] = []
    for cls in (RunState, NodeRecord, AttemptRecord, FrameRecord, ErrorInfo):
        fields = ",".join(
            f"{f.name}:{f.encode_name}:{f.type!r}" for f in msgspec.structs.fields(cls)
        )
        parts.append(f"{cls.__name__}({fields})")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:16]


CHECKPOINT_FORMAT = f"{_FOLD_VERSION}.{_layout_digest()}"
"""Format of the checkpoints this version writes and reads."""


class _Header(msgspec.Struct):
    format: str


class _Checkpoint(msgspec.Struct):
    format: str
    state: RunState
    """The state with no nodes: they are in `nodes`."""
    nodes: list[NodeRecord]
    """The nodes in mount order."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Checkpoint)
_header_decoder = msgspec.json.Decoder(_Header)


def encode_state(state: RunState) -> bytes:
    """Return `state` as checkpoint bytes (JSON). Does no I/O.

    Args:
        state: Any `RunState` (not modified).

    Returns:
        Bytes that `decode_state` turns back into a state equal to `state`, nodes in
        the same order and every `msgspec.Raw` byte for byte (whitespace around a Raw
        value is dropped: no decoded event has any).
    """
    shell = msgspec.structs.replace(state, nodes={})
    return _encoder.encode(_Checkpoint(CHECKPOINT_FORMAT, shell, list(state.nodes.values())))


def decode_state(data: bytes) -> RunState:
    """Return the `RunState` that `encode_state` turned into `data`. Does no I/O.

    Args:
        data: Checkpoint bytes.

    Returns:
        A new state, equal to the encoded one.

    Raises:
        CheckpointDecodeError: if `data` is not a checkpoint, or one of another format
            (written by another version): drop it and fold the log instead.
    """
    try:
        checkpoint = _decoder.decode(data)
    except msgspec.DecodeError as e:
        try:
            written = _header_decoder.decode(data).format
        except msgspec.DecodeError:
            raise CheckpointDecodeError(str(e)) from e
        if written != CHECKPOINT_FORMAT:
            raise CheckpointDecodeError(
                f"format {written!r}, this version reads {CHECKPOINT_FORMAT!r}"
            ) from e
        raise CheckpointDecodeError(str(e)) from e
    if checkpoint.format != CHECKPOINT_FORMAT:
        raise CheckpointDecodeError(
            f"format {checkpoint.format!r}, this version reads {CHECKPOINT_FORMAT!r}"
        )
    state = checkpoint.state
    state.nodes = {(rec.node_id, rec.iteration): rec for rec in checkpoint.nodes}
    if len(state.nodes) != len(checkpoint.nodes):
        raise CheckpointDecodeError("two node records have the same (node_id, iteration)")
    return state
