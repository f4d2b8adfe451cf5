"""Best-effort NDJSON mirror of a run's events (``stream.ndjson``, DESIGN §3).

True append, never a rewrite (the one exception: a torn last line, left by a process
that died mid-write, is cut off before the next line is written). The file holds a
run's events in the log's order, seq 1, 2, 3, … with no gap or repeat, even when
several processes append to the run: every writer takes an OS lock on the file
(``flock``), finds the last line of the run it holds, and writes only the lines that
follow it (`NdjsonMirror.extend`); the caller fetches from the store whatever the file
lacks before its own events. The log table is the truth: a failure here is logged
once and the mirror turns itself off; the run goes on. The file is never opened
through a symlink (``O_NOFOLLOW``: one planted at its path turns the mirror off with a
warning), and is created with the database file's permission bits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from smithers.eventstore import encode_json

from .._files import open_no_follow
from .._run_ids import path_under, validate_run_id

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("NdjsonMirror", "STREAM_FILE", "default_log_dir", "ndjson_line")

log = logging.getLogger("smithers.engine")
STREAM_FILE = "stream.ndjson"
_CHUNK = 65_536
"""Bytes read at a time when the file is searched backwards."""
_SEQ_PREFIX = b'{"seq":'
_TYPE_PREFIX = b'"type":"'
_TOOL_CALL_PREFIX = b'{"type":"ToolCall'


def default_log_dir(db_path: str | os.PathLike[str], run_id: str) -> Path:
    """Return the run's default log folder: ``<db dir>/executions/<run_id>/logs`` (DESIGN §3).

    The path is resolved (absolute, symlinks followed) and checked to stay under
    ``<db dir>/executions``; nothing is created.

    Raises:
        InvalidInputError: code ``INVALID_INPUT``, if `run_id` is not a valid run id
            (`validate_run_id`) or the path would leave ``<db dir>/executions``.
    """
    validate_run_id(run_id)
    return path_under(Path(db_path).parent / "executions", run_id, "logs")


def ndjson_line(event_json: bytes, seq: int) -> bytes:
    """Return one NDJSON line: the event's JSON with ``seq`` added before ``type``.

    Args:
        event_json: The encoded event, as `encode_event` gives it and the store keeps
            it (``{"type":…,"runId":…,…}``).
        seq: The event's seq in its run.

    Returns:
        ``{"seq":<seq>,"type":…}`` and a newline. A tool call's own counter
        (``ToolCallStarted``/``ToolCallFinished.seq``) is shown as ``callSeq``, so
        ``seq`` is always the log's.
    """
    if event_json.startswith(_TOOL_CALL_PREFIX):
        # Its first "seq" key is the event's own (fields before it are strings and ints).
        event_json = event_json.replace(b'"seq":', b'"callSeq":', 1)
    return _SEQ_PREFIX + str(seq).encode() + b"," + event_json[1:] + b"\n"


class NdjsonMirror:
    """The file ``<log_dir>/stream.ndjson``, appended to under an OS file lock.

    One instance per writer; it keeps the file open until `close`. Never raises from
    `extend`: an I/O error, or a symlink at the file's path, is logged once (a
    ``smithers.engine`` warning) and turns the mirror off.

    Args:
        log_dir: The folder of the file.
        create: Create the folder and file if missing (a run's own activation, a new
            run). False for a process appending to a run it does not drive (cancel,
            rewind, retry-task): it mirrors only into a file that already exists, so
            a run started with ``--no-log`` (or another ``--log-dir``) gets none.
        mode: Permission bits of the file when this instance creates it (the
            database file's, `file_mode_of`); default ``0o644``.
    """

    def __init__(self, log_dir: Path, *, create: bool = True, mode: int = 0o644) -> None:
        self.path = log_dir / STREAM_FILE
        self.create = create
        self.mode = mode
        self._fd: int | None = None
        self._off = False
        # What this instance knows of the file: its size when last seen (always at a
        # line boundary) and the last seq of `_run_id` in it up to there.
        self._run_id: str | None = None
        self._size = 0
        self._last = 0

    def extend(self, run_id: str, first_seq: int, payloads: Sequence[bytes]) -> int | None:
        """Write the lines of `payloads` (seqs from `first_seq`) the file does not hold.

        Under an exclusive lock on the file: cuts off a torn last line, finds the last
        seq of `run_id` in the file (``have``) and, if ``have >= first_seq - 1``,
        appends the payloads of seqs ``have + 1 …``; otherwise the file lacks the
        events before `first_seq` and nothing is written: the caller fetches them and
        calls again. Blocks on file I/O (no await; the lock is never held across one).

        Args:
            run_id: The run (its lines are told apart by their ``runId``, so a folder
                shared by several runs still works).
            first_seq: Seq of ``payloads[0]``.
            payloads: Encoded events as the store keeps them, in seq order.

        Returns:
            ``have``, the run's last seq in the file before this call (0 if none); or
            None if the mirror is off (no file to append to, or an I/O error).
        """
        if self._off:
            return None
        try:
            fd = self._fd if self._fd is not None else self._open()
            if fd is None:
                return None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                have = self._last_seq(fd, run_id)
                skip = have - first_seq + 1
                if 0 <= skip < len(payloads):
                    data = b"".join(
                        [ndjson_line(p, s) for s, p in enumerate(payloads[skip:], have + 1)]
                    )
                    if os.write(fd, data) < len(data):
                        raise OSError(f"short write to {self.path} (disk full?)")
                    self._size += len(data)
                    self._last = first_seq + len(payloads) - 1
                return have
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as e:
            self.turn_off(str(e))
            return None

    def turn_off(self, why: str) -> None:
        """Stop mirroring (logged once); the database keeps every event."""
        if not self._off:
            self._off = True
            log.warning(
                "NDJSON mirror %s disabled: %s (the database keeps every event)", self.path, why
            )
        self.close()

    def close(self) -> None:
        """Close the file (it is opened again by the next `extend`)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            self._run_id = None

    # ------------------------------------------------------------------ internals

    def _open(self) -> int | None:
        if self._fd is None:
            flags = os.O_RDWR | os.O_APPEND
            if self.create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                flags |= os.O_CREAT
            try:
                self._fd = open_no_follow(self.path, flags, mode=self.mode)
            except FileNotFoundError:
                if self.create:
                    raise
                self._off = True  # not this run's mirror to start: nothing to extend
                return None
        return self._fd

    def _last_seq(self, fd: int, run_id: str) -> int:
        """The last seq of `run_id` in the file (0 if none); call under the lock.

        Only what others appended since this instance last looked is searched, so the
        cost is O(1) while this process is the only writer.
        """
        size = os.fstat(fd).st_size
        if run_id == self._run_id and size == self._size:
            return self._last
        start, known = self._size, self._last
        if run_id != self._run_id or size < self._size:
            start, known = 0, 0  # first look, or the file was cut: search it all
        if size > start and os.pread(fd, 1, size - 1) != b"\n":
            # A writer died mid-line: cut the torn line off before appending.
            size = _after_last_newline(fd, size)
            os.ftruncate(fd, size)
            if size < start:
                start, known = 0, 0
        found = _last_seq_in(fd, run_id, start, size)
        self._run_id, self._size = run_id, size
        self._last = found if found is not None else known
        return self._last


def _after_last_newline(fd: int, end: int) -> int:
    """Offset just after the last newline before `end` (0 if there is none)."""
    pos = end
    while pos > 0:
        n = min(_CHUNK, pos)
        pos -= n
        at = os.pread(fd, n, pos).rfind(b"\n")
        if at >= 0:
            return pos + at + 1
    return 0


def _last_seq_in(fd: int, run_id: str, start: int, end: int) -> int | None:
    """The seq of the last line of `run_id` in bytes ``start..end`` (whole lines)."""
    needle = b',"runId":' + encode_json(run_id)
    tail = b""
    pos = end
    while pos > start:
        n = min(_CHUNK, pos - start)
        pos -= n
        lines = (os.pread(fd, n, pos) + tail).split(b"\n")
        tail = lines[0]  # may be the end of a line that starts in an earlier chunk
        for line in reversed(lines[1:]):
            seq = _seq_of(line, needle)
            if seq is not None:
                return seq
    return _seq_of(tail, needle)


def _seq_of(line: bytes, needle: bytes) -> int | None:
    """The seq of a mirror line if it is an event of the run `needle` names, else None.

    A line is ``{"seq":N,"type":"T","runId":"R",…}`` (`ndjson_line` of an encoded
    event: the tag first, then the base fields). Anything else is another file's line.
    """
    if not line.startswith(_SEQ_PREFIX):
        return None
    comma = line.find(b",", len(_SEQ_PREFIX))
    digits = line[len(_SEQ_PREFIX) : comma]
    if comma < 0 or not digits.isdigit() or not line.startswith(_TYPE_PREFIX, comma + 1):
        return None
    quote = line.find(b'"', comma + 1 + len(_TYPE_PREFIX))
    if quote < 0 or not line.startswith(needle, quote + 1):
        return None
    if line[quote + 1 + len(needle) : quote + 2 + len(needle)] not in (b",", b"}"):
        return None
    return int(digits)
