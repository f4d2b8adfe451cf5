"""Every route of the HTTP API through an ASGI test client, on a real SQLite file."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.testclient import TestClient

Until = Any


def _start(api: TestClient, flow: str, **body: Any) -> str:
    r = api.post("/v1/runs", json={"workflowPath": flow, **body})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["runId"]
    return run_id


def _finished(api: TestClient, until: Until, flow: str = "count.py", **body: Any) -> str:
    run_id = _start(api, flow, **body)
    assert until(api, run_id, lambda s: s == "finished")["status"] == "finished"
    return run_id


def test_health_and_openapi_list_every_route(api: TestClient) -> None:
    assert api.get("/health").json() == {"ok": True}
    doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {
        (m, r.path)
        for r in api.app.routes
        for m in (r.methods or ())
        if m != "HEAD"  # type: ignore[attr-defined]
    }
    assert routes == served


def test_start_then_read_the_run(api: TestClient, until: Until) -> None:
    run_id = _finished(api, until, input={"start": 4}, by="alice", reason="try it")
    run = api.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "finished"
    assert run["input"] == {"start": 4}
    assert {n["nodeId"]: n["output"] for n in run["nodes"]} == {
        "first": {"n": 1},
        "second": {"n": 5},
        "third": {"n": 3},
    }
    listed = api.get("/v1/runs").json()
    assert [r["runId"] for r in listed["runs"]] == [run_id]
    assert listed["nextOffset"] is None
    ops = api.get("/v1/audit", params={"runId": run_id}).json()["operations"]
    started = [op for op in ops if op["type"] == "RunStarted"]
    assert started[0]["actor"]["interface"] == "http"
    assert started[0]["actor"]["name"] == "alice"
    assert started[0]["actor"]["reason"] == "try it"


def test_run_config_sets_the_run_options(api: TestClient, until: Until) -> None:
    run_id = _finished(api, until, config={"maxConcurrency": 2, "toolTimeoutMs": 5000})
    config = api.get(f"/v1/runs/{run_id}").json()["config"]
    assert config["maxConcurrency"] == 2
    assert config["toolTimeoutMs"] == 5000
    for bad in ({"allowNetwork": True}, {"maxConcurrency": 0}, {"maxConcurrency": "x"}, [1]):
        r = api.post("/v1/runs", json={"workflowPath": "count.py", "config": bad})
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "INVALID_REQUEST"


def test_runs_are_paged_and_filtered(api: TestClient, until: Until) -> None:
    ids = [_finished(api, until) for _ in range(3)]
    failed = _start(api, "bad.py")
    until(api, failed, lambda s: s == "failed")
    page = api.get("/v1/runs", params={"limit": 2, "status": "finished"}).json()
    assert len(page["runs"]) == 2
    assert page["nextOffset"] == 2
    rest = api.get("/v1/runs", params={"limit": 2, "offset": 2, "status": "finished"}).json()
    assert [r["runId"] for r in page["runs"] + rest["runs"]] == ids[::-1]
    assert rest["nextOffset"] is None
    only_failed = api.get("/v1/runs", params={"status": "failed"}).json()["runs"]
    assert [r["runId"] for r in only_failed] == [failed]
    bad = api.get("/v1/runs", params={"limit": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "INVALID_REQUEST"


def test_frames_state_timeline_node_and_diff(api: TestClient, until: Until) -> None:
    run_id = _finished(api, until)
    frames = api.get(f"/v1/runs/{run_id}/frames").json()["frames"]
    assert [f["frameNo"] for f in frames] == list(range(len(frames)))
    at0 = api.get(f"/v1/runs/{run_id}/state", params={"frame": 0}).json()
    assert at0["frameNo"] == 0
    assert at0["tree"]["tag"] == "workflow"
    assert isinstance(at0["state"]["nodes"], list)
    assert {n["nodeId"] for n in at0["state"]["nodes"] if n["state"] == "finished"} == set()
    now = api.get(f"/v1/runs/{run_id}/state").json()
    assert now["status"] == "finished"
    missing = api.get(f"/v1/runs/{run_id}/state", params={"frame": 99})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "SNAPSHOT_NOT_FOUND"
    tl = api.get(f"/v1/runs/{run_id}/timeline").json()
    assert tl["runId"] == run_id
    assert len(tl["frames"]) == len(frames)
    node = api.get(f"/v1/runs/{run_id}/nodes/second").json()
    assert node["iterations"][0]["output"] == {"n": 1}
    assert [e["type"] for e in node["events"]][-1] == "NodeFinished"
    gone = api.get(f"/v1/runs/{run_id}/nodes/nope")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "NODE_NOT_FOUND"
    same = api.get(f"/v1/runs/{run_id}/diff", params={"other": run_id}).json()
    assert same["nodes"] == []
    changed = api.get(f"/v1/runs/{run_id}/diff", params={"fromFrame": 0}).json()
    assert {n["nodeId"] for n in changed["nodes"]} >= {"first"}


def test_unknown_run_and_bad_ids(api: TestClient) -> None:
    r = api.get("/v1/runs/run-nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "RUN_NOT_FOUND"
    assert "message" in r.json()["error"]
    bad = api.get("/v1/runs/bad%20id%0A")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "INVALID_INPUT"
    assert api.get("/v1/nothing").json()["error"]["code"] == "NOT_FOUND"
    assert api.get("/v1/nothing").status_code == 404


def test_existing_id_conflicts_and_resume_needs_an_id(api: TestClient, until: Until) -> None:
    run_id = _finished(api, until)
    again = api.post("/v1/runs", json={"workflowPath": "count.py", "runId": run_id})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "RUN_ALREADY_EXISTS"
    need = api.post("/v1/runs", json={"resume": True})
    assert need.status_code == 400
    assert need.json()["error"]["code"] == "RUN_ID_REQUIRED"
    done = api.post("/v1/runs", json={"resume": True, "runId": run_id})
    assert done.status_code == 200
    assert done.json()["status"] == "finished"
    bad_input = api.post("/v1/runs", json={"workflowPath": "count.py", "input": [1]})
    assert bad_input.status_code == 400
    assert bad_input.json()["error"]["code"] == "INVALID_REQUEST"


def test_cancel_an_active_run_then_409(api: TestClient, until: Until) -> None:
    run_id = _start(api, "slow.py")
    r = api.post(f"/v1/runs/{run_id}/cancel", json={"by": "bob", "reason": "too slow"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    again = api.post(f"/v1/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "RUN_NOT_ACTIVE"
    ops = api.get("/v1/audit", params={"runId": run_id, "type": "RunCancelRequested"}).json()
    assert ops["operations"][0]["actor"]["name"] == "bob"
    assert ops["operations"][0]["actor"]["interface"] == "http"


def test_approve_resumes_the_parked_run(api: TestClient, until: Until) -> None:
    run_id = _start(api, "deploy.py")
    assert until(api, run_id, lambda s: s.startswith("waiting"))["status"] == "waiting-approval"
    pending = api.get("/v1/approvals").json()["approvals"]
    assert [(a["runId"], a["nodeId"]) for a in pending] == [(run_id, "gate")]
    r = api.post(f"/v1/runs/{run_id}/nodes/gate/approve", json={"by": "carol", "note": "ok"})
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "granted"
    assert until(api, run_id, lambda s: s == "finished")["status"] == "finished"
    twice = api.post(f"/v1/runs/{run_id}/nodes/gate/approve")
    assert twice.status_code == 409
    ops = api.get("/v1/audit", params={"runId": run_id, "type": "ApprovalGranted"}).json()
    assert ops["operations"][0]["actor"] == {
        **ops["operations"][0]["actor"],
        "name": "carol",
        "interface": "http",
    }


def test_deny_fails_the_gate(api: TestClient, until: Until) -> None:
    run_id = _start(api, "deploy.py")
    until(api, run_id, lambda s: s.startswith("waiting"))
    r = api.post(f"/v1/runs/{run_id}/nodes/gate/deny", json={"reason": "not today"})
    assert r.status_code == 200
    assert r.json()["decision"] == "denied"
    end = until(api, run_id, lambda s: s in ("failed", "finished"))
    assert end["status"] == "failed"


def test_signal_resumes_the_waiting_run(api: TestClient, until: Until) -> None:
    run_id = _start(api, "waits.py")
    assert until(api, run_id, lambda s: s.startswith("waiting"))["status"] == "waiting-event"
    bad = api.post(f"/v1/runs/{run_id}/signals/ci.done", json={"data": {"n": "x"}})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "INVALID_INPUT"
    r = api.post(f"/v1/runs/{run_id}/signals/ci.done", json={"data": {"n": 7}, "by": "ci"})
    assert r.status_code == 200, r.text
    run = until(api, run_id, lambda s: s == "finished")
    assert {n["nodeId"]: n["output"] for n in run["nodes"]}["ci"] == {"n": 7}


def test_rewind_then_resume(api: TestClient, until: Until) -> None:
    run_id = _finished(api, until)
    r = api.post(f"/v1/runs/{run_id}/rewind", json={"frame": 1, "reason": "again"})
    assert r.status_code == 200, r.text
    assert api.post(f"/v1/runs/{run_id}/rewind", json={}).status_code == 400
    resumed = api.post(f"/v1/runs/{run_id}/resume", json={"by": "dave"})
    assert resumed.status_code in (200, 202), resumed.text
    assert until(api, run_id, lambda s: s == "finished")["status"] == "finished"
    types = [
        op["type"] for op in api.get("/v1/audit", params={"runId": run_id}).json()["operations"]
    ]
    assert "RunRewound" in types


def test_fork_replay_and_retry_task(api: TestClient, until: Until) -> None:
    run_id = _finished(api, until)
    fork = api.post(f"/v1/runs/{run_id}/fork", json={"frame": 1, "label": "try"})
    assert fork.status_code == 201, fork.text
    child = fork.json()["runId"]
    assert api.post(f"/v1/runs/{child}/resume").status_code == 202
    assert until(api, child, lambda s: s == "finished")["parentRunId"] == run_id
    replay = api.post(f"/v1/runs/{run_id}/replay", json={"frame": 0, "input": {"start": 9}})
    assert replay.status_code == 202, replay.text
    replayed = until(api, replay.json()["runId"], lambda s: s == "finished")
    assert {n["nodeId"]: n["output"] for n in replayed["nodes"]}["second"] == {"n": 10}
    retry = api.post(f"/v1/runs/{run_id}/retry-task", json={"nodeId": "second"})
    assert retry.status_code == 202, retry.text
    assert until(api, run_id, lambda s: s == "finished")["status"] == "finished"
    ops = api.get("/v1/audit", params={"runId": run_id}).json()["operations"]
    assert {"RunForked", "RetryTaskStarted"} <= {op["type"] for op in ops}
    assert all(op["actor"]["interface"] == "http" for op in ops)


def test_events_of_a_finished_run_as_sse(api: TestClient, until: Until) -> None:
    run_id = _finished(api, until)
    seq = api.get(f"/v1/runs/{run_id}").json()["lastSeq"]
    r = api.get(f"/v1/runs/{run_id}/events")
    assert r.headers["content-type"].startswith("text/event-stream")
    got = _parse(r.text)
    assert [int(m["id"]) for m in got] == list(range(1, seq + 1))
    assert {m["event"] for m in got} == {"smithers"}
    after = _parse(api.get(f"/v1/runs/{run_id}/events", params={"afterSeq": 5}).text)
    assert int(after[0]["id"]) == 6
    resumed = _parse(
        api.get(f"/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(seq - 1)}).text
    )
    assert [int(m["id"]) for m in resumed] == [seq]


def _parse(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if fields:
            out.append(fields)
    return out


def test_a_live_stream_pings_and_closes_when_the_run_ends(
    make_api: Callable[..., TestClient], until: Until
) -> None:
    api = make_api(sse_ping_s=0.1)
    run_id = _start(api, "waits.py")
    until(api, run_id, lambda s: s.startswith("waiting"))
    timer = threading.Timer(0.6, lambda: api.post(f"/v1/runs/{run_id}/cancel"))
    timer.start()
    try:
        text = api.get(f"/v1/runs/{run_id}/events").text  # returns once the stream closes
    finally:
        timer.join()
    assert ": ping" in text
    events = _parse(text)
    assert [int(m["id"]) for m in events] == list(range(1, len(events) + 1))
    assert json.loads(events[-1]["data"])["type"] in ("RunCancelled", "RunStatusChanged")


def test_a_state_s_nodes_are_a_list_even_when_there_are_none() -> None:
    from smithers.projections import RunState
    from smithers.server._json import to_json

    # Keyed by (node, iteration): a list of records, also for a run with no node yet.
    assert to_json(RunState(run_id="r"))["nodes"] == []
