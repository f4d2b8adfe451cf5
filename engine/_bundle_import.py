"""``smithers import``: load a bundle (`_bundle_format`) into a database; nothing runs.

Everything in the file is validated before anything is written (format and version, run
ids, each run's seqs contiguous from 1, each payload a JSON event of its row's type and
run, fork parents present up to their fork points, source paths staying inside their
folder, sizes); then all runs are written in one transaction (`EventStore.import_runs`),
rows byte for byte. Importing the same bundle twice writes nothing the second time; a run
id the database holds with other contents is refused, nothing written.

Imported runs are never executed, and the workflow source is never imported as Python:
it is only written out as files, under ``<db folder>/imported/<digest>/``, for ``fork
--workflow``/``verify --workflow``. An imported run that was not finished, failed,
cancelled or continued (e.g. an ancestor bundled up to its fork point) gets the index
status ``imported``, which nothing (``supervise``, ``down``) resumes or cancels on its
own; ``smithers up --resume RUN`` still resumes it on purpose.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import anyio
import msgspec
from smithers.eventstore import (
    ZERO_HASH,
    BulkRun,
    chain_hash,
    chain_origin,
    decode_event,
    open_store,
    resolve_db,
)
from smithers.eventstore.events import TERMINAL_RUN_STATUSES, RunForked, RunStatusChanged

from ._bundle_format import BUNDLE_FORMAT, BUNDLE_VERSION, BundleHeader, BundleRow
from ._run_ids import path_under, validate_run_id
from .errors import InvalidInputError
from .history import AUDIT_STREAM_ID, SUPERVISOR_STREAM_ID

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from smithers.eventstore import EventStore

__all__ = ("IMPORTED_STATUS", "MAX_BUNDLE_BYTES", "ImportedRun", "ImportResult", "import_bundle")

IMPORTED_STATUS = "imported"
"""Index status of an imported run that had not ended (see the module docstring)."""
MAX_BUNDLE_BYTES = 4 * 1024**3
"""Largest bundle (uncompressed bytes) an import reads."""
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ImportedRun(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What importing one run did."""

    run_id: str
    outcome: str
    """``imported``, ``identical`` (nothing written), ``extended`` or ``kept``."""
    rows: int
    """Rows of the run in the bundle."""
    complete: bool


class ImportResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `import_bundle` did."""

    path: str
    run_id: str
    """The bundle's exported run."""
    runs: tuple[ImportedRun, ...]
    workflows: tuple[str, ...] = ()
    """Entry files of the bundled workflow sources written (absolute paths)."""


class _PayloadTag(msgspec.Struct, rename="camel"):
    type: str
    run_id: str


def _bad(path: str, reason: str, *, line: int | None = None) -> InvalidInputError:
    where = f" (line {line})" if line is not None else ""
    return InvalidInputError(
        f"The bundle {path} cannot be imported{where}: {reason}. Nothing was written.",
        details={"bundle": path, "line": line, "reason": reason},
        hint="Import a file written by `smithers export` (unmodified), or export the run again.",
    )


def _read_lines(path: Path) -> list[bytes]:
    try:
        with path.open("rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            data = f.read(MAX_BUNDLE_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise _bad(str(path), f"it cannot be read ({e})") from e
    if len(data) > MAX_BUNDLE_BYTES:
        raise _bad(str(path), f"it is larger than {MAX_BUNDLE_BYTES} bytes")
    return [line for line in data.split(b"\n") if line.strip()]


def _header(path: str, line: bytes) -> BundleHeader:
    try:
        header = msgspec.json.decode(line, type=BundleHeader)
    except msgspec.DecodeError as e:
        raise _bad(path, f"its header is not a smithers bundle header ({e})", line=1) from e
    if header.format != BUNDLE_FORMAT:
        raise _bad(path, f"its format is {header.format!r}, not {BUNDLE_FORMAT!r}", line=1)
    if header.version != BUNDLE_VERSION:
        raise _bad(
            path,
            f"it is bundle version {header.version}; this smithers reads version "
            f"{BUNDLE_VERSION} (upgrade smithers to read newer bundles)",
            line=1,
        )
    names = [r.run_id for r in header.runs]
    if not names or len(set(names)) != len(names) or header.run_id not in names:
        raise _bad(path, "its header's runs are empty, repeated or miss the exported run")
    for name in names:
        try:
            validate_run_id(name)
        except InvalidInputError as e:
            raise _bad(path, e.summary, line=1) from e
        if name in (SUPERVISOR_STREAM_ID, AUDIT_STREAM_ID):
            raise _bad(path, f"{name!r} is a reserved stream, not a run", line=1)
    return header


def _verify_bundle_chain(path: str, by_run: Mapping[str, Sequence[BundleRow]]) -> None:
    """Check every run's rows against the chain hashes the bundle carries.

    Recomputes `chain_hash` over each run's rows (payload bytes verbatim) from
    `ZERO_HASH`, or for a fork from its parent's row at the fork point when the bundle
    holds it; rows without a hash (a database exported before the chain) are skipped.

    Raises:
        InvalidInputError: ``INVALID_INPUT`` naming the run and first seq whose hash does
            not match its bytes (the file was edited after export).
    """
    for run_id, rows in by_run.items():
        if not rows or rows[0].hash is None:
            continue
        prev = ZERO_HASH
        origin = chain_origin(rows[0].type, rows[0].payload.encode("utf-8"))
        if origin is not None:
            parent = by_run.get(origin[0], ())
            if 1 <= origin[1] <= len(parent) and parent[origin[1] - 1].hash is not None:
                prev = bytes.fromhex(parent[origin[1] - 1].hash or "")
        for row in rows:
            prev = chain_hash(prev, row.seq, row.type, row.payload.encode("utf-8"))
            if row.hash is not None and prev.hex() != row.hash:
                raise _bad(
                    path,
                    f"run {run_id!r} seq {row.seq}: its bytes do not match its chain hash "
                    "(the file was changed after export)",
                )


def _rows(path: str, header: BundleHeader, lines: list[bytes]) -> dict[str, list[BundleRow]]:
    by_run: dict[str, list[BundleRow]] = {r.run_id: [] for r in header.runs}
    decoder = msgspec.json.Decoder(BundleRow)
    tag = msgspec.json.Decoder(_PayloadTag)
    for number, line in enumerate(lines[1:], 2):
        try:
            row = decoder.decode(line)
        except msgspec.DecodeError as e:
            raise _bad(path, f"not an event row ({e})", line=number) from e
        rows = by_run.get(row.run_id)
        if rows is None:
            raise _bad(path, f"a row of run {row.run_id!r}, not in the header", line=number)
        if row.seq != len(rows) + 1:
            raise _bad(
                path, f"run {row.run_id!r} seq {row.seq} where {len(rows) + 1} was due", line=number
            )
        if row.hash is not None and not _HEX64.fullmatch(row.hash):
            raise _bad(path, "its hash is not 64 lowercase hex digits", line=number)
        try:
            data = row.payload.encode("utf-8")
            payload = tag.decode(data)
            decode_event(row.type, data)  # a known type must decode, as readers will
        except (msgspec.DecodeError, UnicodeEncodeError) as e:
            raise _bad(path, f"its payload is not a valid event ({e})", line=number) from e
        if payload.type != row.type or payload.run_id != row.run_id:
            raise _bad(path, "its payload's type or runId differs from the row's", line=number)
        rows.append(row)
    for info in header.runs:
        got = len(by_run[info.run_id])
        if got != info.upto_seq or got == 0:
            raise _bad(path, f"run {info.run_id!r} has {got} rows; its header says {info.upto_seq}")
    _verify_bundle_chain(path, by_run)
    for run_id, rows in by_run.items():
        first = decode_event(rows[0].type, rows[0].payload.encode("utf-8"))
        if isinstance(first, RunForked):
            parent = by_run.get(first.parent_run_id)
            if parent is None or len(parent) < first.parent_seq:
                raise _bad(
                    path,
                    f"run {run_id!r} forks from {first.parent_run_id!r} at seq "
                    f"{first.parent_seq}, which the bundle does not hold",
                )
    return by_run


def _last_status(rows: list[BundleRow]) -> str:
    """The status of the run's last `RunStatusChanged` row (``pending`` for none)."""
    for row in reversed(rows):
        if row.type == "RunStatusChanged":
            event = decode_event(row.type, row.payload.encode("utf-8"))
            if isinstance(event, RunStatusChanged):
                return event.status
    return "pending"


def _check_sources(path: str, header: BundleHeader) -> None:
    for wf in header.workflows:
        if not _HEX64.fullmatch(wf.digest):
            raise _bad(path, f"workflow digest {wf.digest[:80]!r} is not a SHA-256", line=1)
        for f in wf.files:
            pure = PurePosixPath(f.path)
            if not f.path or pure.is_absolute() or ".." in pure.parts or "\\" in f.path:
                raise _bad(path, f"workflow file path {f.path[:200]!r} leaves its folder", line=1)
            if f.source is not None:
                actual = hashlib.sha256(f.source.encode("utf-8")).hexdigest()
                if actual != f.sha256:
                    raise _bad(path, f"workflow file {f.path!r} does not match its SHA-256")


def _write_sources(root: Path, header: BundleHeader) -> list[str]:
    """Write the bundled sources under `root`/<digest[:16]>/; return the entry files."""
    entries: list[str] = []
    for wf in header.workflows:
        if not wf.files or any(f.source is None for f in wf.files):
            continue  # a partial copy would not run as the recorded code
        folder = root / wf.digest[:16]
        for f in wf.files:
            target = path_under(folder, *PurePosixPath(f.path).parts)
            data = (f.source or "").encode("utf-8")
            if target.is_file() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        entries.append(str(path_under(folder, *PurePosixPath(wf.files[0].path).parts)))
    return entries


async def import_bundle(
    path: str | os.PathLike[str],
    *,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    write_sources: bool = True,
) -> ImportResult:
    """Load a bundle written by `export_run` into a database. Awaits I/O; runs nothing.

    Validates the whole file first, then writes every run in one transaction, payload
    bytes verbatim. A run the database already holds with the same rows is left as it
    is (importing twice is a no-op); one holding a prefix of them is extended; one with
    other contents is refused. Then, with `write_sources`, the bundled workflow sources
    (when complete) are written under ``<db folder>/imported/<digest[:16]>/``, never
    imported as Python.

    Args:
        path: The bundle file (JSON lines, optionally gzip-compressed).
        db: Database path or postgresql:// URL (see `resolve_db`); created if missing.
            With `store`, only locates the sources folder (none written when None).
        store: An open `EventStore` to write to instead of opening `db`.
        write_sources: Write the bundled workflow sources next to the database.

    Returns:
        An `ImportResult`: each run's outcome and the workflow entry files written.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if the file is unreadable, not a
            bundle, of another version, or inconsistent; nothing written.
        RunAlreadyExistsError: code ``RUN_ALREADY_EXISTS`` if a run id exists in the
            database with different contents; nothing written.
        DatabaseWriteError: if the database cannot be written; nothing written.
    """
    file = Path(path)
    shown = str(path)
    lines = await anyio.to_thread.run_sync(_read_lines, file)
    if not lines:
        raise _bad(shown, "it is empty")
    header = _header(shown, lines[0])
    by_run = _rows(shown, header, lines)
    _check_sources(shown, header)
    bulk = []
    for info in header.runs:
        rows = by_run[info.run_id]
        status = _last_status(rows)  # from the rows themselves, not the header's word
        ended = info.complete and status in TERMINAL_RUN_STATUSES
        bulk.append(
            BulkRun(
                run_id=info.run_id,
                rows=tuple(
                    (r.seq, r.type, r.timestamp_ms, r.payload.encode("utf-8")) for r in rows
                ),
                status=status if ended else IMPORTED_STATUS,
                workflow_name=info.workflow_name,
            )
        )
    target = resolve_db(db) if store is None or db is not None else None
    # Workflow sources are written beside a database file; a PostgreSQL URL has none.
    db_path = target if isinstance(target, Path) else None
    if store is None:
        opened = await open_store(target)
        try:
            outcomes = await opened.import_runs(bulk)
        finally:
            with anyio.CancelScope(shield=True):
                await opened.close()
    else:
        outcomes = await store.import_runs(bulk)
    entries: list[str] = []
    if write_sources and db_path is not None and header.workflows:
        entries = await anyio.to_thread.run_sync(
            _write_sources, db_path.parent / "imported", header
        )
    return ImportResult(
        path=shown,
        run_id=header.run_id,
        runs=tuple(
            ImportedRun(run_id=i.run_id, outcome=o, rows=i.upto_seq, complete=i.complete)
            for i, o in zip(header.runs, outcomes, strict=True)
        ),
        workflows=tuple(entries),
    )
