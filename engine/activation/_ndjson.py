"""Best-effort NDJSON mirror of a run's events (``stream.ndjson``, DESIGN §3).

True append, never a rewrite. The log table is the truth: a failure here is logged once
and the mirror turns itself off; the run goes on.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import IO, TYPE_CHECKING

from smithers.eventstore import encode_event

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from smithers.eventstore.events import Event

__all__ = ("NdjsonMirror", "STREAM_FILE", "default_log_dir")

log = logging.getLogger("smithers.engine")
STREAM_FILE = "stream.ndjson"


def default_log_dir(db_path: str | os.PathLike[str], run_id: str) -> Path:
    """The run's default log folder: ``<db dir>/executions/<run_id>/logs`` (DESIGN §3)."""
    return Path(db_path).parent / "executions" / run_id / "logs"


def ndjson_line(event_json: bytes, seq: int) -> bytes:
    """Return one NDJSON line: the event's JSON with ``seq`` added after ``type``."""
    # event_json starts with {"type":"X", — insert seq right after the opening brace.
    return b'{"seq":' + str(seq).encode() + b"," + event_json[1:] + b"\n"


class NdjsonMirror:
    """Appends events to ``<log_dir>/stream.ndjson``."""

    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / STREAM_FILE
        self._file: IO[bytes] | None = None
        self._broken = False

    def write(self, events: Iterable[Event], first_seq: int) -> None:
        """Append `events` (seqs from `first_seq`) and flush; never raises."""
        if self._broken:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab")
            self._file.write(
                b"".join(ndjson_line(encode_event(e), s) for s, e in enumerate(events, first_seq))
            )
            self._file.flush()
        except OSError as e:
            self._broken = True
            log.warning(
                "NDJSON mirror %s disabled: %s (the database keeps every event)", self.path, e
            )

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
