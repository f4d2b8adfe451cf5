"""A real ``smithers serve`` subprocess: auth over TCP, a run and its live event stream,
and runs that survive a restart of the server."""

from __future__ import annotations

import json
import signal
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

TOKEN = "proc-token"


def _status(http: httpx.Client, run_id: str) -> str:
    status: str = http.get(f"/v1/runs/{run_id}").json()["status"]
    return status


def _wait(http: httpx.Client, run_id: str, done: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + 30
    while not done(status := _status(http, run_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return status


def _stream(http: httpx.Client, run_id: str, **params: Any) -> list[dict[str, Any]]:
    got = []
    with http.stream("GET", f"/v1/runs/{run_id}/events", params=params, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                got.append(json.loads(line[6:]))
    return got


def test_served_api_with_token_streams_a_live_run(serve: Callable[..., Any]) -> None:
    served = serve(token=TOKEN)
    assert httpx.get(served.url + "/v1/runs").status_code == 401
    assert httpx.get(served.url + "/health").status_code == 200
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=10) as http:
        r = http.post("/v1/runs", json={"workflowPath": "steps.py"})
        assert r.status_code == 201, r.text
        run_id = r.json()["runId"]
        events = _stream(http, run_id)  # live: the run is still going when this starts
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["type"] in ("RunFinished", "RunStatusChanged")
        assert _status(http, run_id) == "finished"
        assert http.get(f"/v1/runs/{run_id}").json()["lastSeq"] == events[-1]["seq"]
    assert served.stop() == 0


@pytest.mark.slow  # two server start-ups and a 2 s run: ~7 s
def test_runs_started_over_http_survive_a_restart(serve: Callable[..., Any]) -> None:
    first = serve()
    with httpx.Client(base_url=first.url, timeout=10) as http:
        run_id = http.post("/v1/runs", json={"workflowPath": "steps.py"}).json()["runId"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            nodes = http.get(f"/v1/runs/{run_id}").json()["nodes"]
            if sum(n["state"] == "finished" for n in nodes) >= 3:
                break
            time.sleep(0.05)
    assert first.stop(signal.SIGTERM) == 0  # stopped mid-run: the run stays "running"
    second = serve()
    with httpx.Client(base_url=second.url, timeout=10) as http:
        assert _wait(http, run_id, lambda s: s == "finished") == "finished"
        run = http.get(f"/v1/runs/{run_id}").json()
        assert run["activation"] == 2
        assert {n["nodeId"]: n["output"] for n in run["nodes"]}["s19"] == {"n": 19}
        ops = http.get("/v1/audit", params={"runId": run_id, "type": "RunStarted"}).json()
        assert [op["actor"]["interface"] for op in ops["operations"]] == ["http", "http"]
