"""The run bundle's format: what ``smithers export`` writes and ``smithers import`` reads.

A bundle is one JSON-lines file (gzip-compressed when its name ends in ``.gz``; import
detects gzip by its magic bytes). Line 1 is the header (`BundleHeader`)::

    {"format": "smithers-bundle", "version": 1, "exportedAtMs": ..., "runId": "R",
     "smithersVersion": "...", "runs": [{"runId", "uptoSeq", "lastSeq", "complete",
     "status", "workflowName", "workflowHash", "rows"}, ...],
     "workflows": [{"digest", "name", "path", "files": [{"path", "sha256",
     "source" | null, "missing" | null}]}]}

then one line per event row (`BundleRow`), runs in header order, each run's rows in
seq order from 1: ``{"runId", "seq", "type", "timestampMs", "payload", "hash"}``.
``payload`` is the stored payload bytes verbatim, as a string (they are UTF-8 JSON): an
import writes exactly these bytes, never a re-encoding, so a row hash recomputes
identically. ``hash`` is the row's chain hash (hex) when the database keeps one, else
null. ``runs`` lists the exported run first, then its fork ancestry: each ancestor up to
the seq its child forked at (``complete`` false), or whole with ``--with-ancestry``; then
its subflow child runs (and theirs), whole.
``workflows`` holds the source of each distinct workflow the runs recorded at start
(the entry file and its local modules, paths relative to the entry's folder), read at
export and kept only when it still matches the SHA-256 the run recorded.
"""

from __future__ import annotations

import msgspec

__all__ = (
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "BundleFile",
    "BundleHeader",
    "BundleRow",
    "BundleRun",
    "BundleWorkflow",
)

BUNDLE_FORMAT = "smithers-bundle"
"""The header's ``format``."""
BUNDLE_VERSION = 1
"""The header's ``version`` this smithers writes and reads."""


class BundleRun(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One run in a bundle (header ``runs``)."""

    run_id: str
    upto_seq: int
    """Seq of the run's last row in the bundle (its rows are seqs 1..upto_seq)."""
    last_seq: int
    """The run's last seq in the exporting database."""
    complete: bool
    """True when the bundle holds the whole run (``upto_seq == last_seq``)."""
    status: str
    """The run's last status in the bundled rows (``pending`` for none)."""
    workflow_name: str = ""
    workflow_hash: str | None = None
    """The `workflow_hash` its first `RunStarted` recorded (None: none recorded)."""
    rows: int = 0
    """How many rows follow for it (``upto_seq``)."""


class BundleFile(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One source file of a bundled workflow."""

    path: str
    """Path relative to the entry file's folder (POSIX separators)."""
    sha256: str
    """SHA-256 (hex) the run recorded for it (of `source`'s UTF-8 bytes when kept)."""
    source: str | None = None
    """The file's text, or None when it could not be bundled (see `missing`)."""
    missing: str | None = None
    """Why `source` is None (``changed since the run started``, ``not found``, ...)."""


class BundleWorkflow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A workflow some bundled run recorded at start."""

    digest: str
    """The recorded `workflow_hash` (or the entry file's SHA-256 when none was)."""
    name: str
    path: str
    """The entry file's absolute path on the exporting machine."""
    files: tuple[BundleFile, ...] = ()
    """The entry file first, then its local modules."""


class BundleHeader(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Line 1 of a bundle."""

    format: str
    version: int
    run_id: str
    """The exported run."""
    exported_at_ms: int = 0
    smithers_version: str = ""
    runs: tuple[BundleRun, ...] = ()
    workflows: tuple[BundleWorkflow, ...] = ()


class BundleRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One event row of a bundle, payload verbatim."""

    run_id: str
    seq: int
    type: str
    timestamp_ms: int
    payload: str
    """The stored payload bytes, decoded as UTF-8 (they are JSON text)."""
    hash: str | None = None
    """The row's chain hash (hex), when the exporting database keeps one."""
