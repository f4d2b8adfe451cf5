"""Fixtures of the bug-report tests: ``smithers`` as a real process, a local bug endpoint.

`bug_server` is an ``http.server`` on 127.0.0.1 in a thread of the test process: it
records every request and answers as the test sets (`BugServer.reply`). No test reaches
any other address.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def run_smithers(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smithers ARGS`` in `cwd` with `env` added to a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMITHERS_")}
    base["SMITHERS_POST_FAILURE"] = "0"  # no autopsy runs in these tests
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class BugServer:
    """A bug endpoint on 127.0.0.1: records POSTs, answers `status` with `body`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 201
        self.body: Any = None
        self.headers: dict[str, str] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                server.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": json.loads(raw),
                    }
                )
                payload = json.dumps(server.body).encode() if server.body is not None else b""
                self.send_response(server.status)
                for key, value in server.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint: ``http://127.0.0.1:PORT/api/bugs``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/api/bugs"

    def reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        """Answer the next POSTs with `status`, JSON `body` and `headers`."""
        self.status, self.body, self.headers = status, body, headers or {}

    def start(self) -> BugServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def bug_server() -> Iterator[BugServer]:
    """A running `BugServer`; stopped after the test."""
    server = BugServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smithers() -> Any:
    """`run_smithers`, for test modules (they cannot import this conftest)."""
    return run_smithers
