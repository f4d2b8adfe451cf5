"""``smithers bug``: a bug bundle of one run, scrubbed, written to a file, posted on request.

A bundle is one JSON object (`build_bug_bundle`)::

    {"format": "smithers-bug", "version": 1, "title", "body", "createdAtMs",
     "smithersVersion", "python", "platform",
     "run": {"runId", "status", "workflowName", "workflowPath", "createdAtMs",
             "finishedAtMs", "error", "input", "failedNodes": [{"nodeId", "iteration",
             "attempts", "error"}]},
     "workflow": {"path", "source", "truncated", "missing"},
     "events": [the run's last `BUG_EVENTS` events, as ``smithers events --json``],
     "eventsTotal", "redactions"}

Every string in it is scrubbed (`scrub_value`): secrets by pattern, and the values of
the environment variables named like secrets, wherever they appear. `file_bug` writes it
to ``<db folder>/bugs/<run>-<UTC time>.json`` (temporary file renamed into place) and,
only when ``SMITHERS_BUG_URL`` is set, POSTs it there as JSON (stdlib ``urllib``; nothing
else ever leaves the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import decode_json, resolve_db_path
from smithers.eventstore.errors import error_info_to_json

from ._client import connect
from ._files import write_atomic
from ._run_ids import EXISTING_RUN_HINT, validate_run_id
from ._scrub import REDACTED, scrub_value, secret_env_values
from .errors import InvalidInputError
from .history import event_to_json
from .lifecycle import SMITHERS_VERSION

if TYPE_CHECKING:
    from collections.abc import Mapping

    from smithers.projections import RunState

__all__ = (
    "BUG_EVENTS",
    "BUG_FORMAT",
    "BUG_URL_ENV",
    "MAX_SOURCE_CHARS",
    "BugReport",
    "build_bug_bundle",
    "file_bug",
)

BUG_FORMAT = "smithers-bug"
"""The bundle's ``format`` field."""
BUG_URL_ENV = "SMITHERS_BUG_URL"
"""The environment variable naming the endpoint a bug bundle is POSTed to."""
BUG_EVENTS = 80
"""How many of the run's last events a bundle carries."""
MAX_SOURCE_CHARS = 20_000
"""Longest workflow source a bundle carries, in characters (the rest is cut)."""
MAX_STRING_CHARS = 20_000
"""Longest string kept in a bundle; longer ones are cut (at a word's end) and marked."""
POST_TIMEOUT_S = 10.0
"""How long the POST may take, in seconds."""


class BugReport(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `file_bug` did."""

    run_id: str
    """The run the bundle is about."""
    path: str
    """The bundle file written (absolute)."""
    url: str | None = None
    """The filed bug's URL as the endpoint answered it (``url``/``bugUrl``/``html_url``
    of a JSON reply, else its ``Location`` header); None when not posted or not given."""
    bug_id: str | None = None
    """The filed bug's id as the endpoint answered it (``id``/``bugId``), if any."""
    posted: bool = False
    """True if the bundle was POSTed and the endpoint answered 2xx."""
    endpoint: str | None = None
    """Where it was POSTed (``SMITHERS_BUG_URL``); None when that is unset."""
    post_error: str | None = None
    """Why the POST failed (the file is written regardless); None otherwise."""
    redactions: int = 0
    """How many secrets were replaced by ``[REDACTED]`` in the bundle."""


def _cut(value: Any) -> Any:
    """Strings longer than `MAX_STRING_CHARS` cut and marked, recursively.

    Done before scrubbing (scrubbing megabytes of output would take seconds), so the cut
    also drops the partial word it ends in: no fragment of a secret the cut split is left
    for the scrubber to miss.
    """
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        kept = value[:MAX_STRING_CHARS]
        space = max(kept.rfind(c) for c in " \n\t")
        kept = kept[:space] if space >= MAX_STRING_CHARS - 300 else kept[:-300]
        return kept + f" ... [cut: {len(value) - len(kept)} chars]"
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value]
    return value


def _read_source(path: str | None) -> dict[str, Any]:
    """The workflow file as bundled: at most `MAX_SOURCE_CHARS` characters."""
    if not path:
        return {"path": None, "source": None, "truncated": False, "missing": "not recorded"}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        reason = f"not readable ({e.strerror or e})"
        return {"path": path, "source": None, "truncated": False, "missing": reason}
    cut = len(text) > MAX_SOURCE_CHARS
    if cut:  # at a line's end: no fragment of a secret the cut split is left
        text = text[:MAX_SOURCE_CHARS].rpartition("\n")[0] + "\n"
    return {"path": path, "source": text, "truncated": cut, "missing": None}


def _failed_nodes(state: RunState) -> list[dict[str, Any]]:
    return [
        {
            "nodeId": node.node_id,
            "iteration": node.iteration,
            "attempts": node.attempt_count,
            "error": error_info_to_json(node.last_error),
        }
        for node in state.nodes.values()
        if node.state == "failed"
    ]


def _title(state: RunState) -> str:
    error = state.error
    if error is None:
        return f"Run {state.run_id} ({state.workflow_name or 'workflow'}) is {state.status}"
    code = f"[{error.code}] " if error.code else ""
    first = (error.message or error.name).strip().splitlines()
    return f"Run {state.run_id} {state.status}: {code}{first[0] if first else error.name}"


async def build_bug_bundle(
    run_id: str,
    *,
    title: str | None = None,
    body: str | None = None,
    db: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Return the scrubbed bug bundle of run `run_id` (the JSON object above). Awaits I/O.

    Reads the database (read-only) and the workflow file the run recorded; writes
    nothing.

    Args:
        run_id: The run.
        title: The report's title (default: the run's status and error, one line).
        body: Free text for the report (default: empty).
        db: Database path (see `resolve_db_path`); must exist.
        environ: The environment whose secret-named variables' values are scrubbed
            (default: ``os.environ``).
        now_ms: The bundle's ``createdAtMs``, Unix epoch ms (default: now).

    Returns:
        The bundle as a JSON-ready dict, every string scrubbed, with ``redactions`` the
        number of secrets replaced.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `run_id` is not a valid run id.
        RunNotFoundError: if the run has no events.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
    """
    validate_run_id(run_id, hint=EXISTING_RUN_HINT)
    async with connect(db, read_only=True) as client:
        handle = await client.get_run(run_id)
        state = await handle.state()
        rows = await handle.events(after_seq=max(0, state.seq - BUG_EVENTS))
    source = await anyio.to_thread.run_sync(_read_source, state.workflow_path)
    bundle: dict[str, Any] = {
        "format": BUG_FORMAT,
        "version": 1,
        "title": title if title is not None else _title(state),
        "body": body or "",
        "createdAtMs": now_ms if now_ms is not None else time.time_ns() // 1_000_000,
        "smithersVersion": SMITHERS_VERSION,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "run": {
            "runId": state.run_id,
            "status": state.status,
            "workflowName": state.workflow_name,
            "workflowPath": state.workflow_path,
            "createdAtMs": state.created_at_ms,
            "finishedAtMs": state.finished_at_ms,
            "error": error_info_to_json(state.error),
            "input": decode_json(state.input),
            "failedNodes": _failed_nodes(state),
        },
        "workflow": source,
        "events": [event_to_json(stored) for stored, _ in rows[-BUG_EVENTS:]],
        "eventsTotal": state.seq,
    }
    env = os.environ if environ is None else environ
    before = json.dumps(bundle, ensure_ascii=False).count(REDACTED)
    scrubbed: dict[str, Any] = scrub_value(_cut(bundle), secrets=secret_env_values(env))
    after = json.dumps(scrubbed, ensure_ascii=False).count(REDACTED)
    scrubbed["redactions"] = max(0, after - before)
    return scrubbed


def _bug_path(db_path: Path, run_id: str, now_ms: int) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_ms / 1000)) + f"{now_ms % 1000:03d}Z"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return db_path.parent / "bugs" / f"{safe}-{stamp}.json"


def _check_endpoint(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInputError(
            f"{BUG_URL_ENV} must be an http(s) URL, not {url!r}.",
            details={"env": BUG_URL_ENV},
            hint=f"Set {BUG_URL_ENV}=https://host/path, or unset it to only write the file.",
        )
    return url


class _Reply(msgspec.Struct, frozen=True, kw_only=True):
    url: str | None = None
    bug_id: str | None = None
    error: str | None = None


def _post(endpoint: str, data: bytes) -> _Reply:
    """POST `data` (JSON) to `endpoint`; the bug's URL and id from the reply."""
    request = urllib.request.Request(
        endpoint,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"smithers-py/{SMITHERS_VERSION}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S) as response:
            raw = response.read(1_000_000)
            location = response.headers.get("Location")
    except urllib.error.HTTPError as e:
        return _Reply(error=f"HTTP {e.code} {e.reason}")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        return _Reply(error=f"cannot reach {endpoint}: {reason}")
    answer: Any = None
    with contextlib.suppress(ValueError):
        answer = json.loads(raw) if raw else None
    url: Any = location
    bug_id: Any = None
    if isinstance(answer, dict):
        url = answer.get("url") or answer.get("bugUrl") or answer.get("html_url") or url
        bug_id = answer.get("id") or answer.get("bugId")
    return _Reply(url=str(url) if url else None, bug_id=str(bug_id) if bug_id is not None else None)


async def file_bug(
    run_id: str,
    *,
    title: str | None = None,
    body: str | None = None,
    db: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> BugReport:
    """File a bug report about run `run_id`: write its bundle, POST it if configured.

    The bundle (`build_bug_bundle`, secrets scrubbed) is written to
    ``<db folder>/bugs/<run>-<UTC time>.json``; then, only if ``SMITHERS_BUG_URL`` is
    set in `environ`, POSTed there as JSON. A failed POST does not raise: the report
    says ``posted=False`` and why, and the file stays. Awaits I/O (the database, the
    file, the network when configured).

    This is what the post-failure workflow's ``report-bug`` task calls, and what
    ``smithers bug`` runs.

    Args:
        run_id: The run.
        title: The report's title (default: the run's status and error, one line).
        body: Free text for the report.
        db: Database path (see `resolve_db_path`); must exist.
        environ: The environment: ``SMITHERS_BUG_URL`` and the secret values to scrub
            (default: ``os.environ``).

    Returns:
        A `BugReport`: the file's path, whether it was posted, the bug's URL and id
        when the endpoint answered them.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `run_id` is not a valid run id, if
            ``SMITHERS_BUG_URL`` is not an http(s) URL, or if the file cannot be written.
        RunNotFoundError: if the run has no events.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> report = await file_bug("run-1", title="resume hangs", db="runs.db")  # doctest: +SKIP
        >>> report.path, report.posted, report.url  # doctest: +SKIP
    """
    env = os.environ if environ is None else environ
    endpoint = env.get(BUG_URL_ENV) or None
    if endpoint is not None:
        _check_endpoint(endpoint)
    db_path = resolve_db_path(db, must_exist=True)
    now_ms = time.time_ns() // 1_000_000
    bundle = await build_bug_bundle(
        run_id, title=title, body=body, db=db_path, environ=env, now_ms=now_ms
    )
    data = json.dumps(bundle, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    path = _bug_path(db_path, run_id, now_ms)
    try:
        await anyio.to_thread.run_sync(write_atomic, path, (data,))
    except OSError as e:
        raise InvalidInputError(
            f"Cannot write the bug report {path}: {e.strerror or e}.",
            details={"path": str(path), "reason": str(e)},
            hint="Point --db at a database in a folder you can write to.",
        ) from e
    report = BugReport(
        run_id=run_id, path=str(path), endpoint=endpoint, redactions=bundle["redactions"]
    )
    if endpoint is None:
        return report
    reply = await anyio.to_thread.run_sync(_post, endpoint, json.dumps(bundle).encode())
    if reply.error is not None:
        return msgspec.structs.replace(report, post_error=reply.error)
    return msgspec.structs.replace(report, posted=True, url=reply.url, bug_id=reply.bug_id)
