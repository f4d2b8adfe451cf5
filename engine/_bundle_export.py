"""``smithers export``: write a run, its fork ancestry and its workflow source to a bundle.

The bundle's format is in `_bundle_format`. Export only reads the database; it writes
the bundle file (through a temporary file renamed into place, so a failed export leaves
no half file).
"""

from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import anyio
import msgspec
from smithers.eventstore import decode_event, encode_json, open_store
from smithers.eventstore.events import RunForked, RunStarted, RunStatusChanged

from ._bundle_format import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    BundleFile,
    BundleHeader,
    BundleRow,
    BundleRun,
    BundleWorkflow,
)
from ._files import write_atomic
from ._run_ids import EXISTING_RUN_HINT, validate_run_id
from .errors import InvalidInputError, RunNotFoundError
from .history import child_runs
from .lifecycle import SMITHERS_VERSION

if TYPE_CHECKING:
    import os

    from smithers.eventstore import EventStore, StoredEvent

__all__ = ("ExportResult", "export_run")

_MAX_ANCESTRY = 1_000
"""Deepest fork chain followed (a guard against a corrupt, cyclic ancestry)."""


class ExportResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `export_run` wrote."""

    path: str
    """The bundle file written."""
    run_id: str
    runs: tuple[BundleRun, ...]
    """The exported run first, then its fork ancestors, then its subflow runs."""
    events: int
    """Rows written, all runs together."""
    workflows: int
    """Distinct workflows whose source is bundled."""
    warnings: tuple[str, ...] = ()
    """Sentences about sources left out (changed or missing files)."""


def _row_hash(row: StoredEvent) -> str | None:
    """The row's chain hash as hex, or None when its database has no chain yet."""
    return row.hash.hex() if row.hash else None


def _status_of(rows: list[StoredEvent]) -> tuple[str, RunStarted | None]:
    status, started = "pending", None
    for row in rows:
        if row.type == "RunStatusChanged":
            event = decode_event(row.type, row.data)
            if isinstance(event, RunStatusChanged):
                status = event.status
        elif row.type == "RunStarted" and started is None:
            event = decode_event(row.type, row.data)
            if isinstance(event, RunStarted):
                started = event
    return status, started


def _collected(run_id: str) -> InvalidInputError:
    return InvalidInputError(
        f"Run {run_id!r} cannot be exported: its log has gaps (it was collected by "
        "`smithers gc --keep-audit`, which kept only its audit rows).",
        details={"runId": run_id},
        hint="Only whole runs travel; export runs before collecting them.",
    )


_Gathered = tuple[BundleRun, list["StoredEvent"], RunStarted | None]


async def _one(store: EventStore, run_id: str, upto: int | None) -> _Gathered:
    """One run's rows (up to `upto`) and its header entry."""
    rows = await store.read_chained(run_id, upto_seq=upto)
    if not rows:
        raise RunNotFoundError(run_id)
    if any(r.seq != i for i, r in enumerate(rows, 1)):
        raise _collected(run_id)
    last = await store.last_seq(run_id)
    record = await store.get_run(run_id)
    status, started = _status_of(rows)
    upto_seq = rows[-1].seq
    info = BundleRun(
        run_id=run_id,
        upto_seq=upto_seq,
        last_seq=last,
        complete=upto_seq == last,
        status=status,
        workflow_name=record.workflow_name if record else "",
        workflow_hash=started.workflow_hash if started else None,
        rows=len(rows),
    )
    return info, rows, started


async def _gather(store: EventStore, run_id: str, with_ancestry: bool) -> list[_Gathered]:
    """The run, its fork ancestry (up to each fork point), then its subflow runs (whole)."""
    out: list[_Gathered] = []
    current: str | None = run_id
    upto: int | None = None
    seen: set[str] = set()
    while current is not None and current not in seen and len(out) < _MAX_ANCESTRY:
        seen.add(current)
        info, rows, started = await _one(store, current, upto)
        out.append((info, rows, started))
        first = decode_event(rows[0].type, rows[0].data)
        current = None
        if isinstance(first, RunForked):
            current = first.parent_run_id
            upto = None if with_ancestry else first.parent_seq
    todo = [run_id]
    while todo:  # a Subflow's child runs, and theirs: `inspect` lists them
        for child in await child_runs(store, todo.pop()):
            if child.run_id not in seen:
                seen.add(child.run_id)
                out.append(await _one(store, child.run_id, None))
                todo.append(child.run_id)
    return out


def _read_source(base: Path, rel: str, digest: str | None) -> BundleFile:
    """One workflow file as bundled: its text if it still has the recorded hash."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        return BundleFile(path=rel, sha256=digest or "", missing="outside the workflow's folder")
    try:
        data = (base / Path(*pure.parts)).read_bytes()
    except OSError as e:
        return BundleFile(path=rel, sha256=digest or "", missing=f"not readable ({e.strerror})")
    actual = hashlib.sha256(data).hexdigest()
    if digest is not None and actual != digest:
        return BundleFile(path=rel, sha256=digest, missing="changed since the run started")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return BundleFile(path=rel, sha256=actual, missing="not UTF-8 text")
    return BundleFile(path=rel, sha256=actual, source=text)


def _workflows(
    starts: list[RunStarted | None],
) -> tuple[list[BundleWorkflow], list[str]]:
    """The distinct recorded workflows with their sources; warnings for files left out."""
    found: dict[str, BundleWorkflow] = {}
    warnings: list[str] = []
    for started in starts:
        if started is None or not started.workflow_path:
            continue
        entry = Path(started.workflow_path)
        key = started.workflow_hash or f"path:{entry}"
        if key in found:
            continue
        recorded = dict(started.workflow_files)
        rels = [entry.name, *sorted(p for p in recorded if p != entry.name)]
        files = tuple(_read_source(entry.parent, rel, recorded.get(rel)) for rel in rels)
        digest = started.workflow_hash or files[0].sha256
        if not digest:  # no hash recorded and no file to hash: nothing to name it by
            warnings.append(f"workflow file {entry} not bundled: {files[0].missing}")
            continue
        for f in files:
            if f.source is None:
                warnings.append(f"workflow file {f.path} of {entry} not bundled: {f.missing}")
        found[key] = BundleWorkflow(
            digest=digest, name=started.workflow_name, path=str(entry), files=files
        )
    return list(found.values()), warnings


async def export_run(
    run_id: str,
    out: str | os.PathLike[str] | None = None,
    *,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    with_ancestry: bool = False,
) -> ExportResult:
    """Write run `run_id` to a bundle file another database can import. Awaits I/O.

    The bundle holds the run's rows verbatim, its fork ancestry (each ancestor up to the
    seq its child forked at, or whole with `with_ancestry`) so it is self-contained, its
    subflow child runs (whole, recursively), and the source of every workflow those
    runs recorded at start, kept when the file still has the SHA-256 the run recorded.
    Checkpoints are not bundled (an import rebuilds
    state from the log). Reads the database; writes only the bundle file.

    Args:
        run_id: The run to export.
        out: The bundle file (default ``RUN.smithers.jsonl`` in the current folder);
            a name ending in ``.gz`` is gzip-compressed.
        db: Database path or postgresql:// URL (see `resolve_db`); must exist. Ignored with
            `store`.
        store: An open `EventStore` to use instead of `db` (not closed here).
        with_ancestry: Bundle each fork ancestor whole, not only up to its fork point.

    Returns:
        An `ExportResult` (file, runs, row count, warnings about sources left out).

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `run_id` is not a valid run id, or
            the run (or an ancestor) has gaps (collected by ``gc --keep-audit``).
        RunNotFoundError: if the run, or an ancestor it forks from, does not exist.
        InvalidInputError: code ``INVALID_INPUT`` also if the bundle file cannot be
            written (nothing is left of it).
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> await export_run("run-1", "run-1.smithers.jsonl.gz", db="runs.db")  # doctest: +SKIP
    """
    validate_run_id(run_id, hint=EXISTING_RUN_HINT)
    path = Path(out) if out is not None else Path(f"{run_id}.smithers.jsonl")
    if store is not None:
        gathered = await _gather(store, run_id, with_ancestry)
    else:  # read-only: a copy on a read-only mount can be exported too
        opened = await open_store(db, read_only=True)  # a file, or a postgresql:// URL
        try:
            gathered = await _gather(opened, run_id, with_ancestry)
        finally:
            with anyio.CancelScope(shield=True):
                await opened.close()
    workflows, warnings = await anyio.to_thread.run_sync(
        _workflows, [started for _, _, started in gathered]
    )
    header = BundleHeader(
        format=BUNDLE_FORMAT,
        version=BUNDLE_VERSION,
        run_id=run_id,
        exported_at_ms=int(time.time() * 1000),
        smithers_version=SMITHERS_VERSION,
        runs=tuple(info for info, _, _ in gathered),
        workflows=tuple(workflows),
    )
    lines = [encode_json(header)]
    count = 0
    for info, rows, _ in gathered:
        for row in rows:
            try:
                text = bytes(row.data).decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidInputError(
                    f"Run {info.run_id!r} seq {row.seq}: its payload is not UTF-8 JSON; "
                    "it cannot be bundled verbatim.",
                    details={"runId": info.run_id, "seq": row.seq},
                ) from e
            bundle_row = BundleRow(
                run_id=info.run_id,
                seq=row.seq,
                type=row.type,
                timestamp_ms=row.timestamp_ms,
                payload=text,
                hash=_row_hash(row),
            )
            lines.append(encode_json(bundle_row))
            count += 1
    try:
        await anyio.to_thread.run_sync(
            functools.partial(
                write_atomic,
                path,
                (line + b"\n" for line in lines),
                compress=path.name.endswith(".gz"),
            )
        )
    except OSError as e:
        raise InvalidInputError(
            f"Cannot write the bundle {path}: {e.strerror or e}.",
            details={"path": str(path), "reason": str(e)},
            hint="Pass -o FILE in a folder you can write to.",
        ) from e
    return ExportResult(
        path=str(path),
        run_id=run_id,
        runs=header.runs,
        events=count,
        workflows=sum(1 for w in workflows if all(f.source is not None for f in w.files)),
        warnings=tuple(warnings),
    )
