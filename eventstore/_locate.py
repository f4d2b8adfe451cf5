"""Where the database lives: ``--db``, else ``SMITHERS_DB``, else the nearest ``.smithers``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ._postgres_sql import is_postgres_url, redact_url
from .errors import SmithersError

__all__ = ("DEFAULT_DB_DIR", "DEFAULT_DB_NAME", "resolve_db", "resolve_db_path")

DEFAULT_DB_DIR = ".smithers"
DEFAULT_DB_NAME = "smithers.db"


def resolve_db_path(
    db: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    must_exist: bool = False,
) -> Path:
    """Return the database path to use (DESIGN §3).

    Order: `db` if given; else the ``SMITHERS_DB`` environment variable; else the nearest
    ``.smithers/smithers.db`` walking up from `cwd`; else ``<cwd>/.smithers/smithers.db``.

    Raises:
        SmithersError: ``CLI_DB_NOT_FOUND`` if `must_exist` and the chosen file is missing;
            ``INVALID_INPUT`` if `db` (or ``SMITHERS_DB``) is a PostgreSQL URL: the
            caller needs a file (use `resolve_db` where a URL is welcome).
    """
    named = db if db is not None else os.environ.get("SMITHERS_DB") or None
    _refuse_other_urls(named)
    if is_postgres_url(named):
        shown = redact_url(str(named))
        raise SmithersError(
            f"This operation needs a SQLite database file, not the PostgreSQL URL {shown}.",
            code="INVALID_INPUT",
            details={"dbPath": shown},
            hint="Give --db a file path (or unset SMITHERS_DB) for it.",
        )
    base = Path(cwd) if cwd is not None else Path.cwd()
    chosen: Path | None = None
    if db is not None:
        chosen = Path(db)
    elif os.environ.get("SMITHERS_DB"):
        chosen = Path(os.environ["SMITHERS_DB"])
    else:
        for folder in (base, *base.parents):
            candidate = folder / DEFAULT_DB_DIR / DEFAULT_DB_NAME
            if candidate.is_file():
                chosen = candidate
                break
    if chosen is None:
        chosen = base / DEFAULT_DB_DIR / DEFAULT_DB_NAME
    if not chosen.is_absolute():
        chosen = base / chosen
    if must_exist and not chosen.is_file():
        raise SmithersError(
            f"No smithers database at {chosen}. Start a run with `smithers up FILE` "
            "first, or point at one with --db PATH or SMITHERS_DB.",
            code="CLI_DB_NOT_FOUND",
            details={"dbPath": str(chosen)},
        )
    return chosen


def resolve_db(
    db: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    must_exist: bool = False,
) -> Path | str:
    """Return the database to use: a PostgreSQL URL as given, else a file (`resolve_db_path`).

    `db` if given, else ``SMITHERS_DB``, is a URL when it starts with ``postgresql://``
    or ``postgres://`` (`is_postgres_url`); it is returned as a `str`, unchecked (the
    store checks it when opened). Anything else resolves as `resolve_db_path` does.

    Raises:
        SmithersError: ``CLI_DB_NOT_FOUND`` if `must_exist` and the chosen file is missing;
            ``INVALID_INPUT`` for a URL of another scheme (``mysql://``, ``sqlite://``).
    """
    named = db if db is not None else os.environ.get("SMITHERS_DB") or None
    _refuse_other_urls(named)
    if is_postgres_url(named):
        return str(named).strip()
    return resolve_db_path(db, cwd=cwd, must_exist=must_exist)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _refuse_other_urls(db: str | os.PathLike[str] | None) -> None:
    """Refuse a ``scheme://`` value that is not a PostgreSQL URL (never a file name)."""
    if isinstance(db, str) and _URL.match(db.strip()) and not is_postgres_url(db):
        scheme = db.strip().split("://", 1)[0]
        raise SmithersError(
            f"--db takes a file path or a postgresql:// URL, not a {scheme}:// URL.",
            code="INVALID_INPUT",
            details={"scheme": scheme},
            hint="Give a SQLite file path (e.g. runs/smithers.db) or "
            "postgresql://USER@HOST:5432/DB.",
        )
