"""Files the engine writes: beside the database never through a symlink; others whole.

The NDJSON mirror and the logs of detached processes live in folders other users may
be able to write to (a shared ``runs/`` folder). A symlink planted at such a path
would make the engine append a run's events, or a process's output, to any file the
user can write (``~/.bashrc``). These files are opened with ``O_NOFOLLOW``: a symlink
at the path is refused (``SymlinkRefusedError``), and new files get the database
file's permission bits, not wider ones.
"""

from __future__ import annotations

import errno
import gzip
import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = (
    "DEFAULT_FILE_MODE",
    "SymlinkRefusedError",
    "file_mode_of",
    "open_no_follow",
    "write_atomic",
)

DEFAULT_FILE_MODE = 0o600
"""Permission bits of a new file when the database's are not known (owner only)."""


class SymlinkRefusedError(OSError):
    """A file the engine writes is a symbolic link at its path: it is not followed."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            errno.ELOOP,
            f"{path} is a symbolic link; refusing to follow it (remove it to write there)",
        )
        self.path = path


def file_mode_of(path: str | os.PathLike[str] | None, default: int = DEFAULT_FILE_MODE) -> int:
    """The permission bits (``0o777`` part) of the file at `path`, or `default`.

    `default` when `path` is None or cannot be stat'ed. Blocks on one ``stat``.
    """
    if path is None:
        return default
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return default


def open_no_follow(path: Path, flags: int, *, mode: int = DEFAULT_FILE_MODE) -> int:
    """Open `path` with ``O_NOFOLLOW | O_CLOEXEC`` added to `flags`; return the fd.

    With ``O_CREAT`` in `flags`, a file this call creates gets exactly `mode` (set with
    ``fchmod``, so the umask does not change it); an existing file keeps its bits.
    Blocks on the open.

    Raises:
        SymlinkRefusedError: if the last component of `path` is a symbolic link.
        OSError: as ``os.open`` (e.g. FileNotFoundError without ``O_CREAT``).
    """
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if not flags & os.O_CREAT:
            return os.open(path, flags)
        try:
            return os.open(path, flags & ~os.O_CREAT)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, flags | os.O_EXCL, mode)
        except FileExistsError:  # created meanwhile by another writer
            return os.open(path, flags & ~os.O_CREAT)
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.EEXIST and os.path.islink(path)):
            raise SymlinkRefusedError(path) from e
        raise
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_atomic(
    path: Path, chunks: Iterable[bytes], *, tmp: Path | None = None, compress: bool = False
) -> None:
    """Write `chunks` to `path` whole or not at all. Blocking file I/O.

    The bytes go to a temporary file beside `path` (default ``.NAME.PID.tmp``), which is
    fsynced and renamed over `path`: a reader, or a crash, sees the old file or the new
    one, never a part. The parent folder is created if missing. Used by bundles
    (``export``), bug reports and ``smithers init``.

    Args:
        path: The file to write.
        chunks: Its content, in pieces (written in order).
        tmp: The temporary file's path (its caller may recognise leftovers by it).
        compress: Gzip the content (``.gz`` files).

    Raises:
        OSError: the folder cannot be written; the temporary file is removed and
            `path` is unchanged.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp or path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            if compress:
                with gzip.GzipFile(fileobj=f, mode="wb") as gz:
                    for chunk in chunks:
                        gz.write(chunk)
            else:
                for chunk in chunks:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
