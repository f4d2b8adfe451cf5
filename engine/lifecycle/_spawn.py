"""Resume processes: the supervisor's entry point for resuming a run (``up --resume --json``).

A resume runs as ``python -m smithers up --resume RUN --json --db DB [--force]`` in a
session of its own; its stderr is appended to ``supervise.log`` and its stdout (one
JSON object, `up --json`'s result) goes to ``supervise.json`` beside it. How it ended is
read from its exit code and that document (`_resume_failure`), never from its text.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import msgspec
from smithers.eventstore import (
    to_raw,
)
from smithers.eventstore.events import (
    NULL_RAW,
    ErrorInfo,
)

from .._files import SymlinkRefusedError, file_mode_of, open_no_follow

__all__ = (
    "ResumeProcess",
    "SpawnResume",
    "resume_result_file",
    "spawn_detached",
    "spawn_resume",
)

log = logging.getLogger("smithers.engine")
_HEADER = "--- smithers supervise: resuming"
_OUTCOME_EXIT_CODES = frozenset({0, 2, 3})
"""Exit codes of ``up`` for a run that reached an outcome: finished, cancelled, waiting."""


class ResumeProcess(Protocol):
    """A started resumer, as `subprocess.Popen` is."""

    @property
    def pid(self) -> int:
        """Its process id."""
        ...

    def poll(self) -> int | None:
        """Return its exit code, or None while it runs (reaps it once it exited)."""
        ...


SpawnResume: TypeAlias = Callable[[str, Path, bool, Path], ResumeProcess]
"""``spawn(run_id, db_path, force, log_file) -> ResumeProcess``: starts a resumer.

The resumer reports as `spawn_resume`'s does: by its exit code, and by one JSON object
written to `resume_result_file(log_file)` (``supervise.json`` beside the log file).
"""


def resume_result_file(log_file: Path) -> Path:
    """Return where a resumer started with `log_file` writes its JSON result.

    The file beside `log_file` with the suffix ``.json``: ``supervise.log`` ->
    ``supervise.json``. Pure.
    """
    return log_file.with_suffix(".json")


class _DetachedPopen(subprocess.Popen[bytes]):
    """A process meant to outlive this object (and this program).

    Dropping a `Popen` whose process still runs warns (`ResourceWarning`); here that is
    the intent, so no warning. The process is still reaped (by `subprocess` later, or by
    init once this program exits).
    """

    def __del__(self, _maxsize: int = sys.maxsize, _warn: Any = None) -> None:
        super().__del__(_maxsize, lambda *args, **kwargs: None)  # type: ignore[call-arg]


def _open_output(
    files: contextlib.ExitStack, path: Path, flags: int, mode: int
) -> Any:  # a binary file object, or subprocess.DEVNULL when refused
    """`path` opened for writing without following a symlink, or DEVNULL (warned)."""
    try:
        fd = open_no_follow(path, os.O_WRONLY | os.O_CREAT | flags, mode=mode)
    except SymlinkRefusedError as e:
        log.warning("not writing the log file: %s; the process's output is discarded", e)
        return subprocess.DEVNULL
    return files.enter_context(os.fdopen(fd, "ab" if flags & os.O_APPEND else "wb"))


def spawn_detached(
    argv: list[str],
    log_file: Path,
    *,
    header: str | None = None,
    stdout_file: Path | None = None,
    db_path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> ResumeProcess:
    """Start `argv` in its own session, its output appended to `log_file`; do not wait.

    The process keeps running when this program exits and is not hit by signals sent
    to this program's process group (Ctrl-C in its terminal). Blocks only to fork.
    The files are never opened through a symlink: one planted at a file's path is
    left alone, a ``smithers.engine`` warning says so, and that output is discarded
    (the process still starts).

    Args:
        argv: The command and its arguments.
        log_file: Receives the process's stderr, and its stdout unless `stdout_file`
            (created with its folder; appended to).
        header: A line written to `log_file` first (e.g. what is started, and when).
        stdout_file: Receives the process's stdout instead (created or emptied first).
        db_path: The database the process works on: files this call creates get its
            permission bits (``0o600`` when None or when it does not exist yet).
        env: The process's environment (default: this program's).

    Returns:
        The started process (`pid`, `poll()`).

    Raises:
        OSError: if the process cannot be started.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode_of(db_path)
    with contextlib.ExitStack() as files:
        out = _open_output(files, log_file, os.O_APPEND, mode)
        if header is not None and out is not subprocess.DEVNULL:
            out.write(header.encode() + b"\n")
            out.flush()
        stdout = out
        if stdout_file is not None:
            stdout = _open_output(files, stdout_file, os.O_TRUNC, mode)
        return _DetachedPopen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=out if stdout_file is not None else subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )


def spawn_resume(
    run_id: str,
    db_path: Path,
    force: bool,
    log_file: Path,
    *,
    stale_threshold_ms: int | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> ResumeProcess:
    """Start the resume entry point, ``python -m smithers up --resume RUN_ID --json``.

    The command is ``python -m smithers up --resume RUN_ID --json --db DB [--force]``,
    in its own session. Its stderr is appended to `log_file`, after a header line; its
    stdout, one JSON object ``{"runId", "status", "outputs", "error"}``, replaces
    `resume_result_file(log_file)`. It reports by exit code (0 finished, 1 failed,
    2 cancelled, 3 waiting, 4 refused) and that object (``status`` null and ``error``
    set when it stopped before the run reached an outcome). Returns at once (the
    process keeps running after the supervisor exits).

    Args:
        run_id: The run to resume.
        db_path: The database (absolute path).
        force: Pass ``--force`` (the owner is stale: on another host, or a live
            process here that stopped renewing its lease).
        log_file: File the resumer's stderr is appended to (created with its folder).
        stale_threshold_ms: With `force`, passed as ``--stale-threshold`` (ms): the
            resumer judges the owner as the supervisor did. None: its default.
        by: Passed as ``--by``: the resume's ``RunStarted`` names this actor (the
            supervisor's). None: the resumer's default.
        reason: Passed as ``--reason``.

    Returns:
        The started process.

    Raises:
        OSError: if the process cannot be started.
    """
    cmd = [sys.executable, "-m", "smithers", "up", "--resume", run_id, "--json"]
    cmd += ["--db", str(db_path)]
    if force:
        cmd.append("--force")
        if stale_threshold_ms is not None:
            cmd += ["--stale-threshold", f"{int(stale_threshold_ms)}ms"]
    cmd += ["--by", by] if by is not None else []
    cmd += ["--reason", reason] if reason is not None else []
    when = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return spawn_detached(
        cmd,
        log_file,
        header=f"{_HEADER} {run_id} at {when} ---",
        stdout_file=resume_result_file(log_file),
        db_path=db_path,
    )


class _ResultError(msgspec.Struct, kw_only=True):
    """The ``error`` of a resumer's JSON result (`error_to_json`'s keys; others ignored)."""

    name: str = "ResumeFailed"
    message: str = ""
    code: str | None = None
    details: Any = None


class _Result(msgspec.Struct, kw_only=True):
    """A resumer's JSON result: ``{"runId", "status", "outputs", "error"}``."""

    status: str | None = None
    error: _ResultError | None = None


def _read_result(path: Path) -> _Result | None:
    """The JSON object a resumer printed, or None (none yet, crashed, not JSON)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return msgspec.json.decode(data.strip() or b"null", type=_Result | None)
    except msgspec.DecodeError:
        return None  # e.g. killed mid-write


def _resume_failure(code: int | None, log_file: Path) -> ErrorInfo | None:
    """Why the last resumer of a run failed, from its exit code and JSON result.

    None if it reported a run outcome: exit code 0, 2 or 3, or a result whose
    ``status`` is set (the run finished, failed, was cancelled or parked: its log says
    so). Else the result's ``error``; with no result (the resumer crashed or was
    killed), an error naming the exit code and the log file. `code` None means the
    exit code is not known (an earlier supervisor started the resumer): then None too
    when there is no result.
    """
    if code in _OUTCOME_EXIT_CODES:
        return None
    result = _read_result(resume_result_file(log_file))
    if result is not None and result.status is not None:
        return None
    if result is not None and result.error is not None:
        err = result.error
        return ErrorInfo(
            name=err.name,
            message=err.message,
            code=err.code,
            retryable=True,
            details=to_raw(err.details) if err.details is not None else NULL_RAW,
        )
    if code is None:
        return None
    return ErrorInfo(
        name="ResumeFailed",
        message=f"the resumer exited with code {code} and no result (see {log_file})",
        retryable=True,
    )
