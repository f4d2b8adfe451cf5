"""Fixtures of the travel tests: two machines' worth of databases and workflow files.

"Machine A" is ``a/`` (its database and the workflow files its runs record); "machine
B" is ``b/``, a fresh database. Commands run in-process through click's CliRunner, as
in ``tests/cli``; real SQLite files in `tmp_path`.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from click.testing import CliRunner, Result
from smithers.cli import main
from smithers.eventstore import SQLiteEventStore

if TYPE_CHECKING:
    from pathlib import Path

COUNT = """
    from __future__ import annotations

    import msgspec
    from smithers import Sequence, Task, workflow

    from helper import add


    class Count(msgspec.Struct):
        n: int


    @workflow("count")
    def count(ctx):
        first = ctx.output_maybe(Count, "first")
        return Sequence(
            Task("first", output=Count, value={"n": 1}),
            Task("second", output=Count, run=lambda: {"n": add(ctx.input.get("start", 0), 1)}),
            first and Task("third", output=Count, value={"n": first.n + 10}),
        )
"""
HELPER = """
    import pathlib
    import os

    # Importing this module leaves a mark: tests check `smithers import` never does.
    marker = os.environ.get("TRAVEL_MARKER")
    if marker:
        pathlib.Path(marker).write_text("imported", encoding="utf-8")


    def add(a, b):
        return a + b
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMITHERS_DB", raising=False)
    monkeypatch.delenv("SMITHERS_DEBUG", raising=False)
    monkeypatch.delenv("TRAVEL_MARKER", raising=False)


class Machine:
    """One database (``DIR/smithers.db``) and the ``smithers`` command bound to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "smithers.db"
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        """Run ``smithers ARGS --db DB`` in-process."""
        return self.runner.invoke(main, [*args, "--db", str(self.db)], catch_exceptions=False)

    def json(self, *args: str) -> Any:
        """Run ``smithers ARGS --json --db DB``; exit 0 and one JSON value expected."""
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def rows(self, run_id: str) -> list[tuple[int, str, int, bytes]]:
        """The run's stored rows ``(seq, type, timestamp_ms, payload)``, read directly."""

        async def read() -> list[tuple[int, str, int, bytes]]:
            async with await SQLiteEventStore.open(self.db, create=False) as store:
                return [(r.seq, r.type, r.timestamp_ms, r.data) for r in await store.read(run_id)]

        return anyio.run(read)

    def count_rows(self) -> int:
        """Every event row of the database, all streams."""

        async def read() -> int:
            async with await SQLiteEventStore.open(self.db, create=False) as store:
                return len(await store.read_all())

        return anyio.run(read)


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """Machine A's workflow folder: ``count.py`` importing its local module ``helper.py``."""
    folder = tmp_path / "a" / "flows"
    folder.mkdir(parents=True)
    (folder / "count.py").write_text(textwrap.dedent(COUNT), encoding="utf-8")
    (folder / "helper.py").write_text(textwrap.dedent(HELPER), encoding="utf-8")
    return folder


@pytest.fixture
def a(tmp_path: Path, flows: Path) -> Machine:
    """Machine A: where runs are made."""
    return Machine(tmp_path / "a")


@pytest.fixture
def b(tmp_path: Path) -> Machine:
    """Machine B: a fresh database that receives bundles."""
    return Machine(tmp_path / "b")


@pytest.fixture
def finished(a: Machine, flows: Path) -> str:
    """Id of a finished run of ``count.py`` (input start 5) on machine A."""
    out = a.json("up", str(flows / "count.py"), "--input", '{"start": 5}')
    assert out["status"] == "finished"
    run_id: str = out["runId"]
    return run_id


@pytest.fixture
def forked(a: Machine, finished: str) -> str:
    """Id of a fork (not run) of `finished` at frame 1 on machine A."""
    run_id: str = a.json("fork", finished, "--frame", "1", "--label", "try")["runId"]
    return run_id
