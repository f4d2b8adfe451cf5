"""Suite-wide options: slow scenarios run in CI, and on request, not in a quick local run.

A test marked ``@pytest.mark.slow`` (crash harness, multi-process CLI scenarios, long
property runs) runs when ``CI`` is set (CI sets ``CI=true``) or ``SMITHERS_SLOW=1``;
otherwise it is skipped with that reason, so ``python -m pytest -q`` stays quick. Every
test runs with ``SMITHERS_POST_FAILURE=0``: a failing ``up`` starts no background autopsy.

Fault scenarios (``tests/fault``, the worker chaos test) share a seed (`fault_seed`:
``SMITHERS_FAULT_SEED``, else `DEFAULT_FAULT_SEED`, fixed so CI replays the same kill
schedules) and report their figures (kills, extra executions, runs, integrity, time)
through `figures`: printed on stderr, attached with ``record_property``, appended to
``fault-figures.txt`` in the session's base temporary directory, and repeated in a
"fault-injection figures" section at the end of the report, so they show without
``-s`` (as in CI).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

FAULT_SEED_ENV = "SMITHERS_FAULT_SEED"
DEFAULT_FAULT_SEED = 20261130
_FAULT_SEED = int(os.environ.get(FAULT_SEED_ENV) or DEFAULT_FAULT_SEED)
_REPORTED: list[str] = []


def _run_slow() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("SMITHERS_SLOW") == "1"


@pytest.fixture(autouse=True)
def _no_post_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed ``up`` launches no post-failure autopsy (tests/autopsy turns it back on)."""
    monkeypatch.setenv("SMITHERS_POST_FAILURE", "0")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a long scenario; runs in CI (CI set) or with SMITHERS_SLOW=1"
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _REPORTED:
        terminalreporter.section("fault-injection figures")
        terminalreporter.write_line(f"{FAULT_SEED_ENV}={_FAULT_SEED}")
        for line in _REPORTED:
            terminalreporter.write_line(line)


@pytest.fixture
def fault_seed() -> int:
    """The fault scenarios' seed (``SMITHERS_FAULT_SEED``, else `DEFAULT_FAULT_SEED`), printed."""
    print(f"{FAULT_SEED_ENV}={_FAULT_SEED}", file=sys.stderr)
    return _FAULT_SEED


@pytest.fixture
def figures(
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[dict[str, Any]], str]:
    """A function reporting a scenario's figures (a JSON-able dict); returns the line."""

    def report(values: dict[str, Any]) -> str:
        line = f"{request.node.name}: {json.dumps(values, sort_keys=True)}"
        print(line, file=sys.stderr)
        for key, value in values.items():
            record_property(key, value)
        path = tmp_path_factory.getbasetemp() / "fault-figures.txt"
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        _REPORTED.append(line)
        return line

    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _run_slow():
        return
    skip = pytest.mark.skip(reason="slow scenario: runs in CI, or locally with SMITHERS_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------------- decisions, signals


class Decisions:
    """Records approval decisions and signals the way another process would.

    Until the ``approve``/``deny``/``signal`` API lands, the tests of waiting runs record
    `ApprovalGranted`/`ApprovalDenied`/`SignalReceived` here, in one place: each call
    appends one event to the run's log with ``expected_seq`` = the run's last seq (as a
    request from outside the owning activation) and resumes nothing. Pass `db` (a SQLite
    file, opened and closed per call) or an open `store`. Returns the event's seq.
    """

    async def approve(
        self,
        run_id: str,
        node_id: str,
        *,
        iteration: int = 0,
        note: str | None = None,
        by: str | None = None,
        selected: str | None = None,
        ranked: tuple[str, ...] = (),
        at_ms: int | None = None,
        db: Any = None,
        store: Any = None,
    ) -> int:
        """Append `ApprovalGranted` for `node_id` (its `iteration`)."""
        from smithers.eventstore.events import ApprovalGranted

        event = ApprovalGranted(
            run_id=run_id,
            timestamp_ms=_now_ms(at_ms),
            node_id=node_id,
            iteration=iteration,
            note=note,
            decided_by=by,
            selected=selected,
            ranked=ranked,
        )
        return await _append(run_id, event, db, store)

    async def deny(
        self,
        run_id: str,
        node_id: str,
        *,
        iteration: int = 0,
        note: str | None = None,
        by: str | None = None,
        at_ms: int | None = None,
        db: Any = None,
        store: Any = None,
    ) -> int:
        """Append `ApprovalDenied` for `node_id` (its `iteration`)."""
        from smithers.eventstore.events import ApprovalDenied

        event = ApprovalDenied(
            run_id=run_id,
            timestamp_ms=_now_ms(at_ms),
            node_id=node_id,
            iteration=iteration,
            note=note,
            decided_by=by,
        )
        return await _append(run_id, event, db, store)

    async def signal(
        self,
        run_id: str,
        name: str,
        data: Any = None,
        *,
        correlation_id: str | None = None,
        by: str | None = None,
        at_ms: int | None = None,
        db: Any = None,
        store: Any = None,
    ) -> int:
        """Append `SignalReceived` named `name` with the JSON payload `data`."""
        from smithers.engine import resolve_actor
        from smithers.eventstore import to_raw
        from smithers.eventstore.events import SignalReceived

        event = SignalReceived(
            run_id=run_id,
            timestamp_ms=_now_ms(at_ms),
            signal_name=name,
            data=to_raw(data),
            correlation_id=correlation_id,
            sent_by=by,
            actor=resolve_actor("api", by=by) if by is not None else None,
        )
        return await _append(run_id, event, db, store)


def _now_ms(at_ms: int | None) -> int:
    import time

    return at_ms if at_ms is not None else time.time_ns() // 1_000_000


async def _append(run_id: str, event: Any, db: Any, store: Any) -> int:
    from smithers.eventstore import SQLiteEventStore

    opened = store is None
    if store is None:
        store = await SQLiteEventStore.open(db, create=False)
    try:
        last: int = await store.last_seq(run_id)
        return int(await store.append(run_id, [event], expected_seq=last))
    finally:
        if opened:
            await store.close()


DECISIONS = Decisions()


@pytest.fixture(scope="session")
def decisions() -> Decisions:
    """Records decisions and signals into a run's log (see `Decisions`)."""
    return DECISIONS


# ---------------------------------------------------------------------- PostgreSQL

PG_URL_ENV = "SMITHERS_TEST_POSTGRES_URL"
"""The server the PostgreSQL tests use, e.g. ``postgresql://root@127.0.0.1:5432/test``
(``.ci/run`` sets it). Unset: they are skipped; set but unreachable: skipped locally,
failed in CI (``CI=true``)."""


@pytest.fixture
def pg_url() -> Any:
    """A ``postgresql://`` URL scoped to a fresh schema, dropped after the test.

    The URL ends with ``options=-csearch_path%3Dt_<random>``, so a store (or a
    ``smithers`` subprocess given it as ``--db``) opened on it writes only there.
    """
    import secrets
    import urllib.parse

    base = os.environ.get(PG_URL_ENV, "").strip()
    how = (
        f"start PostgreSQL and set {PG_URL_ENV}=postgresql://USER@HOST:5432/DB "
        "(e.g. postgresql://root@127.0.0.1:5432/test) to run the PostgreSQL tests"
    )
    if not base:
        pytest.skip(f"{PG_URL_ENV} is not set: {how}")
    try:
        import psycopg
    except ImportError:
        pytest.skip(f"psycopg is not installed (pip install -e '.[test]'); {how}")
    schema = f"t_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PG_URL_ENV}={base} is set but unreachable in CI: {e}")
        pytest.skip(f"PostgreSQL at {base} is unreachable ({e}); {how}")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in base else "?"
        options = urllib.parse.quote(f"-csearch_path={schema}", safe="-")
        try:
            yield f"{base}{sep}options={options}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
