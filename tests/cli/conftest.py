"""Fixtures of the CLI tests: workflow files in `tmp_path`, a CliRunner bound to a test DB.

Every test runs in its own `tmp_path` (the cwd) with ``SMITHERS_DB`` unset, so no test
can find a database outside its directory. Test modules run with
``--import-mode=importlib``: helpers are fixtures, not imports.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result
from smithers.cli import main

if TYPE_CHECKING:
    from pathlib import Path

FLOWS: dict[str, str] = {
    "count.py": """
        from __future__ import annotations

        import msgspec
        from smithers import Sequence, Task, workflow

        class Count(msgspec.Struct):
            n: int

        @workflow("count")
        def count(ctx):
            first = ctx.output_maybe(Count, "first")
            return Sequence(
                Task("first", output=Count, value={"n": 1}),
                Task("second", output=Count, run=lambda: {"n": ctx.input.get("start", 0) + 1}),
                first and Task("third", output=Count, value={"n": first.n + 10}),
            )
    """,
    "bad.py": """
        from smithers import Sequence, Task, workflow

        def boom():
            raise ValueError("boom")

        @workflow("bad")
        def bad(ctx):
            return Sequence(
                Task("first", output=dict, value={"n": 1}),
                Task("second", output=dict, run=boom),
            )
    """,
    "wrong_shape.py": """
        import msgspec
        from smithers import Task, workflow

        class Count(msgspec.Struct):
            n: int

        @workflow("wrong-shape")
        def wrong_shape(ctx):
            return [Task("only", output=Count, run=lambda: {"n": "not a number"})]
    """,
    "several.py": """
        from smithers import Task, workflow

        @workflow("first-flow")
        def alpha(ctx):
            return [Task("a", output=dict, value={"from": "alpha"})]

        @workflow("second-flow")
        def beta(ctx):
            return [Task("b", output=dict, value={"from": "beta"})]
    """,
    "empty.py": """
        VALUE = 1
    """,
    "broken.py": """
        import smithers_no_such_module_for_tests
    """,
    "helper.py": """
        GREETING = {"msg": "hello from a sibling"}
    """,
    "uses_helper.py": """
        from helper import GREETING
        from smithers import Task, workflow

        @workflow("greet")
        def greet(ctx):
            return [Task("greeting", output=dict, value=GREETING)]
    """,
}


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite runs its connection thread against asyncio only.
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMITHERS_DB", raising=False)
    monkeypatch.delenv("SMITHERS_DEBUG", raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The test's database file (created by the first ``up``)."""
    return tmp_path / "runs" / "smithers.db"


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """Directory holding every workflow file of `FLOWS`."""
    folder = tmp_path / "flows"
    folder.mkdir()
    for name, body in FLOWS.items():
        (folder / name).write_text(textwrap.dedent(body), encoding="utf-8")
    return folder


class Cli:
    """Invoke ``smithers`` in-process; ``--db`` is added to every command but ``--help``."""

    def __init__(self, db: Path, flows: Path) -> None:
        self.db = db
        self.flows = flows
        self.runner = CliRunner()

    def raw(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run ``smithers ARGS`` exactly as given."""
        return self.runner.invoke(main, list(args), env=env, catch_exceptions=False)

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run ``smithers ARGS --db DB``."""
        return self.raw(*args, "--db", str(self.db), env=env)

    def up(self, flow: str, *args: str) -> Result:
        """Run ``smithers up flows/FLOW ARGS --db DB``."""
        name, sep, pick = flow.partition(":")
        return self("up", str(self.flows / name) + sep + pick, *args)

    def up_json(self, flow: str, *args: str) -> dict[str, Any]:
        """Run ``up --json`` and return the decoded result object."""
        result = self.up(flow, "--json", *args)
        assert result.stdout.count("\n") == 1, result.stdout
        value: dict[str, Any] = json.loads(result.stdout)
        return value


@pytest.fixture
def cli(db: Path, flows: Path) -> Cli:
    """The in-process CLI bound to the test's database and workflow files."""
    return Cli(db, flows)


@pytest.fixture
def finished_run(cli: Cli) -> str:
    """Id of a finished run of ``count.py`` with input ``{"start": 5}``."""
    out = cli.up_json("count.py", "--input", '{"start": 5}')
    assert out["status"] == "finished"
    run_id: str = out["runId"]
    return run_id


@pytest.fixture
def failed_run(cli: Cli) -> str:
    """Id of a failed run of ``bad.py`` (node ``second`` raises ValueError)."""
    out = cli.up_json("bad.py")
    assert out["status"] == "failed"
    run_id: str = out["runId"]
    return run_id
