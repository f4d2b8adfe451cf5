"""Fixtures of the HTTP API tests: workflow files under a root, an app over a test DB.

`api` is a Starlette TestClient over `create_app` (lifespan run: the server's client
and background task group are real), on a real SQLite file in `tmp_path`.
"""

from __future__ import annotations

import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("sse_starlette")

from smithers.server import ServerConfig, create_app
from starlette.testclient import TestClient

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

HEAD = """
    import msgspec
    from smithers import Approval, Loop, Sequence, Task, WaitForEvent, workflow

    class N(msgspec.Struct):
        n: int
"""

FLOWS: dict[str, str] = {
    "count.py": """
        @workflow("count")
        def count(ctx):
            return Sequence(
                Task("first", output=N, value={"n": 1}),
                Task("second", output=N, run=lambda: {"n": ctx.input.get("start", 0) + 1}),
                Task("third", output=N, value={"n": 3}),
            )
    """,
    "deploy.py": """
        @workflow("deploy")
        def deploy(ctx):
            return Sequence(
                Task("build", output=N, value={"n": 1}),
                Approval("gate", request={"title": "Deploy?"}),
                Task("deploy", output=N, run=lambda: {"n": 2}),
            )
    """,
    "waits.py": """
        @workflow("waits")
        def waits(ctx):
            return Sequence(
                WaitForEvent("ci", event="ci.done", output=N),
                Task("after", output=N, value={"n": 5}),
            )
    """,
    "bad.py": """
        def boom():
            raise ValueError("boom")

        @workflow("bad")
        def bad(ctx):
            return Sequence(
                Task("first", output=N, value={"n": 1}),
                Task("second", output=N, run=boom),
            )
    """,
    "slow.py": """
        import time

        def nap():
            time.sleep(0.2)
            return {"n": 1}

        @workflow("slow")
        def slow(ctx):
            return Sequence(*(Task(f"t{i}", output=N, run=nap) for i in range(200)))
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
    monkeypatch.delenv("SMITHERS_API_KEY", raising=False)
    monkeypatch.setenv("SMITHERS_ACTOR", "tester")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    for name, body in FLOWS.items():
        (folder / name).write_text(textwrap.dedent(HEAD) + textwrap.dedent(body), "utf-8")
    return folder


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "smithers.db"


@pytest.fixture
def make_api(root: Path, db: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**options: Any) -> TestClient:
        config = ServerConfig(db=db, root=root.resolve(), resume_on_start=False, **options)
        client = TestClient(create_app(config), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., TestClient]) -> TestClient:
    return make_api()


def wait_status(api: TestClient, run_id: str, done: Callable[[str], bool]) -> dict[str, Any]:
    """Poll ``GET /v1/runs/{id}`` until `done(status)`; return the run."""
    deadline = time.monotonic() + 20
    while True:
        run: dict[str, Any] = api.get(f"/v1/runs/{run_id}").json()
        if done(run.get("status", "")) or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


@pytest.fixture
def until() -> Callable[..., dict[str, Any]]:
    return wait_status
