"""Fixtures of the HTTP API tests: workflow files under a root, an app over a test DB.

`api` is a Starlette TestClient over `create_app` (lifespan run: the server's client
and background task group are real), on a real SQLite file in `tmp_path`.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("sse_starlette")

import httpx
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
    # 20 tasks of 0.1 s one after another: a run a test can stop in the middle.
    "steps.py": """
        import time

        def step(i):
            def run():
                time.sleep(0.1)
                return {"n": i}
            return run

        @workflow("steps")
        def steps(ctx):
            return Sequence(*(Task(f"s{i}", output=N, run=step(i)) for i in range(20)))
    """,
    # `tasks` tasks in parallel (4 at a time), each ~10 ms: 620 tasks log > 2,000 events.
    "many.py": """
        import time
        from smithers import Parallel

        def nap(i):
            def run():
                time.sleep(0.01)
                return {"n": i}
            return run

        @workflow("many")
        def many(ctx):
            count = int(ctx.input.get("tasks", 620))
            return Parallel(*(Task(f"t{i}", output=N, run=nap(i)) for i in range(count)))
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


class Served:
    """A real ``smithers serve`` subprocess on 127.0.0.1 and a free port."""

    def __init__(self, proc: subprocess.Popen[str], port: int, token: str | None) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def serve(root: Path, db: Path, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(token: str | None = None) -> Served:
        port = _free_port()
        args = [sys.executable, "-m", "smithers", "serve", "--port", str(port)]
        args += ["--db", str(db), "--root", str(root)]
        if token:
            args += ["--auth-token", token]
        with (tmp_path / f"serve-{len(started)}.log").open("w") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True)
        served = Served(proc, port, token)
        started.append(served)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(served.url + "/health", timeout=1).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"smithers serve did not start (exit {proc.poll()})")
            time.sleep(0.1)

    yield start
    for served in started:
        served.stop(signal.SIGKILL)
