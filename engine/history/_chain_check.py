"""The log check of ``verify`` (issue 16): does a run's stored log match its hash chain?

Each stored event carries a SHA-256 hash chaining it to the run's previous event
(`smithers.eventstore.chain_hash`); a fork's first event chains from its parent's
event at the fork point. `check_chain` reads the run's rows with their hashes and
recomputes the chain: the first row whose bytes changed, that is missing, or that is
not where it was appended is named by its seq. Reads only; pure past the read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec
from smithers.eventstore import ZERO_HASH, chain_origin, verify_chain

from ..errors import RunNotFoundError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from smithers.eventstore import EventStore, StoredEvent

__all__ = ("COLLECTED_STATUS", "ChainCheck", "check_chain")

COLLECTED_STATUS = "collected"
"""The runs-index status of a run `smithers gc --keep-audit` pruned (`collect_runs`)."""


class ChainCheck(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The outcome of `check_chain`: the run's log against its hash chain."""

    status: Literal["ok", "broken", "absent", "collected"]
    """``ok``: every row matches its hash; ``broken``: one does not (`seq`, `reason`);
    ``absent``: the database has no chain yet (schema version 2 opened read-only;
    opening it writable once, e.g. with any write command, computes it);
    ``collected``: ``smithers gc --keep-audit`` deleted all but the run's operation
    events and last event, and each stretch of consecutive kept rows matches its
    hashes from the stretch's first row on (the links across deleted rows cannot be
    checked)."""
    rows_checked: int
    """How many rows of the run were read (all of them)."""
    last_hash: str | None = None
    """Hex SHA-256 chain hash of the run's last row when `status` is ``ok``: keep it
    elsewhere to detect later truncation or rewriting."""
    seq: int | None = None
    """The first seq that does not match (None when not broken)."""
    reason: Literal["payload", "gap", "order"] | None = None
    """``payload``: the row's stored bytes (payload, type or hash) changed; ``gap``: no
    row has this seq (deleted); ``order``: the row is not where it was appended
    (rows swapped or moved)."""
    message: str | None = None
    """One line for people, e.g. ``"seq 5: payload bytes changed"``."""
    parent_run_id: str | None = None
    """For a fork: the parent whose row at `parent_seq` the chain starts from."""
    parent_seq: int | None = None
    """For a fork: the parent's seq the first row chains from."""
    parent_missing: bool = False
    """For a fork: True when the parent's row at `parent_seq` is gone (the parent run
    was deleted): the first row's link to it cannot be checked, the rest of the
    chain is checked from the first row's stored hash."""

    @property
    def ok(self) -> bool:
        """True unless the chain is broken (an ``absent`` chain is not a failure)."""
        return self.status != "broken"


async def check_chain(store: EventStore, run_id: str) -> ChainCheck:
    """Recompute a run's hash chain from its stored rows and compare it with theirs.

    Awaits one read of the run's rows (and, for a fork, one of its parent's row at
    the fork point); writes nothing; one SHA-256 per row. The parent's own chain is
    not checked here (verify the parent for that): a fork trusts the parent row's
    stored hash. A fork whose parent row is gone (the parent deleted) is checked
    from its first row on (`ChainCheck.parent_missing`).

    Args:
        store: The open event store.
        run_id: The run.

    Returns:
        A `ChainCheck`: ``ok`` (with the last row's hash), ``broken`` (the first seq
        that does not match and why) or ``absent`` (no chain in this database yet).

    Raises:
        RunNotFoundError: if the run has no events.
        DatabaseQueryError: if the database cannot be read.
    """
    rows = await store.read_chained(run_id)
    if not rows:
        raise RunNotFoundError(run_id)
    if all(not r.hash for r in rows):
        return ChainCheck(status="absent", rows_checked=len(rows))
    prev = ZERO_HASH
    parent: tuple[str, int] | None = None
    missing = False
    if rows[0].seq == 1:
        parent = chain_origin(rows[0].type, rows[0].data)
    if parent is not None:
        parent_row = await store.read_chained(
            parent[0], after_seq=parent[1] - 1, upto_seq=parent[1]
        )
        if parent_row and parent_row[0].hash:
            prev = parent_row[0].hash
        else:
            missing = True
    found = verify_chain(rows, prev=prev)
    if found is not None and found.reason == "gap":
        record = await store.get_run(run_id)
        if record is not None and record.status == COLLECTED_STATUS:
            return _check_collected(rows)
    if missing and found is not None and found.seq == 1 and found.reason == "payload":
        # Chained from the parent's row when appended, which is gone since: check
        # the rest from the first row's own hash.
        found = verify_chain(rows[1:], prev=rows[0].hash, after_seq=1)
    parent_run_id, parent_seq = parent if parent is not None else (None, None)
    if found is None:
        return ChainCheck(
            status="ok",
            rows_checked=len(rows),
            last_hash=rows[-1].hash.hex(),
            parent_run_id=parent_run_id,
            parent_seq=parent_seq,
            parent_missing=missing,
        )
    return ChainCheck(
        status="broken",
        rows_checked=len(rows),
        seq=found.seq,
        reason=found.reason,
        message=found.message,
        parent_run_id=parent_run_id,
        parent_seq=parent_seq,
        parent_missing=missing,
    )


def _check_collected(rows: Sequence[StoredEvent]) -> ChainCheck:
    """Check a pruned run stretch by stretch (rows of consecutive seqs)."""
    start = 0
    for i in range(1, len(rows) + 1):
        if i < len(rows) and rows[i].seq == rows[i - 1].seq + 1:
            continue
        head = rows[start]
        found = verify_chain(rows[start + 1 : i], prev=head.hash, after_seq=head.seq)
        if found is not None:
            return ChainCheck(
                status="broken",
                rows_checked=len(rows),
                seq=found.seq,
                reason=found.reason,
                message=found.message,
            )
        start = i
    return ChainCheck(status="collected", rows_checked=len(rows), last_hash=rows[-1].hash.hex())
