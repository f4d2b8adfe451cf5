"""The hash chain that makes a run's log tamper-evident (issue 16).

Every stored event carries ``hash``: 32 bytes of SHA-256 chaining it to the event
before it in its run, so editing, deleting or reordering a stored row breaks the
chain from that row on. The exact formula (an export bundle recomputes it):

    hash(seq) = SHA-256( prev                       32 bytes
                       || seq                       8 bytes, unsigned big-endian
                       || type                      UTF-8, then one 0x00 byte
                       || payload )                 the stored bytes, as they are

where ``prev`` is the hash of the run's event at ``seq - 1``; for the run's first
event it is 32 zero bytes (`ZERO_HASH`), except for a fork: a run whose first event
is ``RunForked`` chains from its parent's event at ``parentSeq`` (`chain_origin`),
and from 32 zero bytes when the parent has no such row (deleted, or ``parentSeq``
0). The run id and timestamp are not hashed apart: the payload holds both
(``runId``, ``timestampMs``).

A chain proves the rows agree with each other, not who wrote them: someone who
rewrites a row and every hash after it makes a consistent log. And deleting a run's
last rows leaves a shorter chain that verifies. Keep an export (or the last hash)
elsewhere for that.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal

import msgspec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._envelope import StoredEvent

__all__ = ("ZERO_HASH", "ChainBreak", "chain_hash", "chain_origin", "verify_chain")

ZERO_HASH = bytes(32)
"""The ``prev`` of a run's first event (and of a fork whose parent row is missing)."""

_sha256 = hashlib.sha256


def chain_hash(prev: bytes, seq: int, type: str, payload: bytes) -> bytes:
    """Return the chain hash of one stored event (the module docstring's formula).

    Pure and cheap (one SHA-256 over ~50 bytes plus the payload: ~1 µs for a small
    event).

    Args:
        prev: The hash of the run's previous event, or `ZERO_HASH` (32 bytes).
        seq: The event's seq in its run (>= 1).
        type: The event's type tag as stored, e.g. ``"NodeFinished"``.
        payload: The event's stored bytes.

    Returns:
        32 bytes: ``SHA-256(prev || seq (8 bytes, big-endian) || type || 0x00 || payload)``.
    """
    return _sha256(
        b"".join((prev, seq.to_bytes(8, "big"), type.encode(), b"\x00", payload))
    ).digest()


class _ForkHead(msgspec.Struct, rename="camel"):
    parent_run_id: str
    parent_seq: int = 0


_fork_head = msgspec.json.Decoder(_ForkHead)


def chain_origin(type: str, payload: bytes) -> tuple[str, int] | None:
    """Return ``(parent run id, parent seq)`` a run's first event chains from, if a fork.

    Args:
        type: The first event's stored type tag.
        payload: The first event's stored bytes.

    Returns:
        ``(parentRunId, parentSeq)`` of a ``RunForked`` first event; None for any other
        event (or a ``RunForked`` whose bytes do not decode): the chain starts from
        `ZERO_HASH`.
    """
    if type != "RunForked":
        return None
    try:
        head = _fork_head.decode(payload)
    except msgspec.DecodeError:
        return None
    return head.parent_run_id, head.parent_seq


BreakReason = Literal["payload", "gap", "order"]


class ChainBreak(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Where and why a run's chain does not verify (`verify_chain`)."""

    seq: int
    """The first seq whose row does not match: the changed or moved row, or the first
    missing seq of a gap."""
    reason: BreakReason
    """``payload``: the row's bytes (payload, type or hash) changed; ``gap``: no row
    has this seq; ``order``: the row is not where it was appended (rows swapped or
    moved)."""

    @property
    def message(self) -> str:
        """One line for people, e.g. ``"seq 5: payload bytes changed"``."""
        if self.reason == "gap":
            return f"seq {self.seq}: row missing (gap at seq {self.seq})"
        if self.reason == "order":
            return f"seq {self.seq}: out of order (rows swapped or moved)"
        return f"seq {self.seq}: payload bytes changed"


def verify_chain(
    rows: Sequence[StoredEvent], *, prev: bytes = ZERO_HASH, after_seq: int = 0
) -> ChainBreak | None:
    """Check a run's stored rows against their hashes; return the first break or None.

    Pure; costs one `chain_hash` per row (a few more for the row that breaks). `rows`
    are one run's rows in seq order (as `EventStore.read_chained` returns them), from
    its first row, or from the row after `after_seq` given that row's hash as `prev`.

    A row is out of ``order`` when its position (global append order) is below the
    previous row's, or its stored hash is the one it would have next to another row
    of the run (rows swapped or moved); a row whose hash does not match otherwise had
    its ``payload`` (or type, or hash) changed. A seq with no row is a ``gap``.

    Args:
        rows: The rows, `StoredEvent` with `hash` set, sorted by seq.
        prev: The hash the first row chains from: `ZERO_HASH` for a run's first row,
            the parent's row hash at the fork point for a fork (see `chain_origin`).
        after_seq: The seq before the first row's (0: `rows` start the run).

    Returns:
        None when every row matches; else the first `ChainBreak`.
    """
    expected = after_seq + 1
    last_position = -1
    for i, row in enumerate(rows):
        if row.seq != expected:
            return ChainBreak(seq=expected, reason="gap" if row.seq > expected else "order")
        if chain_hash(prev, row.seq, row.type, row.data) != row.hash:
            moved = row.position < last_position or _belongs_elsewhere(rows, i)
            return ChainBreak(seq=row.seq, reason="order" if moved else "payload")
        prev, last_position, expected = row.hash, row.position, expected + 1
    return None


def _belongs_elsewhere(rows: Sequence[StoredEvent], i: int) -> bool:
    """True if ``rows[i]``'s stored hash is the one it would have next to another row.

    Rows whose content (type, payload, hash) was swapped keep their hashes: the row
    now at seq s chained from the row now at s + 1 (or s - 1) when it was appended.
    """
    row = rows[i]
    return any(
        chain_hash(other.hash, seq, row.type, row.data) == row.hash
        for j, other in enumerate(rows)
        if j != i
        for seq in (other.seq - 1, other.seq, other.seq + 1)
        if seq >= 1
    )
