"""``GET /metrics``: Prometheus text folded from the log, rebuilt the same after a restart."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import pytest

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families
from smithers.engine.telemetry import MetricsFold
from smithers.eventstore import SQLiteEventStore, decode_event

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from starlette.testclient import TestClient

Until = Any

# An agent task (token usage by model) and a task failing once then passing (a retry).
EXTRA = """
    import msgspec
    from smithers import Backoff, Sequence, Task, workflow
    from smithers.engine.agents import AgentResult, AgentUsage

    class N(msgspec.Struct):
        n: int

    class Scripted:
        id = "scripted"
        engine = "test"
        model = "m-1"

        async def generate(self, request):
            return AgentResult(
                text='{"n": 7}',
                messages=[],
                usage=AgentUsage(model="m-1", input_tokens=10, output_tokens=3),
                finish_reason="stop",
            )

    tries = []

    def flaky():
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("first try fails")
        return {"n": 1}

    @workflow("mixed")
    def mixed(ctx):
        return Sequence(
            Task("ask", output=N, agent=Scripted(), prompt="p"),
            Task("flaky", output=N, run=flaky, retries=1,
                 backoff=Backoff(kind="fixed", initial_ms=0)),
        )
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _scrape(api: TestClient, **headers: str) -> Samples:
    r = api.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return _samples(r.text)


def _start(api: TestClient, flow: str) -> str:
    r = api.post("/v1/runs", json={"workflowPath": flow})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["runId"]
    return run_id


def _recount(db: Path) -> MetricsFold:
    async def fold() -> MetricsFold:
        store = await SQLiteEventStore.open(db, create=False)
        try:
            folded = MetricsFold()
            for stored in await store.read_all():
                folded.apply(stored, decode_event(stored.type, stored.data))
            return folded
        finally:
            await store.close()

    return anyio.run(fold)


@pytest.fixture
def runs(api: TestClient, until: Until, root: Path) -> dict[str, str]:
    (root / "mixed.py").write_text(textwrap.dedent(EXTRA), "utf-8")
    ids = {flow: _start(api, f"{flow}.py") for flow in ("count", "bad", "deploy", "mixed")}
    waiting = {"deploy": "waiting-approval", "bad": "failed"}
    for flow, run_id in ids.items():
        want = waiting.get(flow, "finished")
        assert until(api, run_id, lambda s, w=want: s == w)["status"] == want
    return ids


def test_metrics_count_runs_nodes_attempts_retries_approvals_and_tokens(
    api: TestClient, runs: dict[str, str]
) -> None:
    m = _scrape(api)
    assert m[("smithers_runs_total", ())] == 4
    assert m[("smithers_runs_by_status", (("status", "finished"),))] == 2
    assert m[("smithers_runs_by_status", (("status", "failed"),))] == 1
    assert m[("smithers_runs_by_status", (("status", "waiting-approval"),))] == 1
    assert m[("smithers_runs_ended_total", (("status", "failed"),))] == 1
    # count: 3 finished; bad: 1 finished, 1 failed; deploy: 1 finished, the gate waits;
    # mixed: ask finished, flaky failed once then finished.
    assert m[("smithers_nodes_finished_total", ())] == 7
    assert m[("smithers_nodes_failed_total", ())] == 2
    assert m[("smithers_nodes_started_total", ())] == 9
    assert m[("smithers_node_retries_total", ())] == 1
    assert m[("smithers_node_attempts_total", (("outcome", "finished"),))] == 7
    assert m[("smithers_nodes_by_state", (("state", "waiting-approval"),))] == 1
    assert m[("smithers_nodes_by_state", (("state", "failed"),))] == 1
    assert m[("smithers_approvals_total", (("kind", "requested"),))] == 1
    assert m[("smithers_approvals_waiting", ())] == 1
    assert m[("smithers_tokens_total", (("kind", "input"), ("model", "m-1")))] == 10
    assert m[("smithers_tokens_total", (("kind", "output"), ("model", "m-1")))] == 3
    assert m[("smithers_heartbeat_timeouts_total", ())] == 0
    # Histograms: one observation per ended attempt and per ended run.
    finished = (("le", "+Inf"), ("outcome", "finished"))
    assert m[("smithers_node_attempt_duration_seconds_bucket", finished)] == 7
    assert m[("smithers_node_attempt_duration_seconds_count", (("outcome", "failed"),))] == 2
    assert m[("smithers_run_duration_seconds_count", (("status", "finished"),))] == 2


def test_metrics_follow_new_events_and_an_approval(
    api: TestClient, until: Until, runs: dict[str, str]
) -> None:
    before = _scrape(api)
    run_id = runs["deploy"]
    r = api.post(f"/v1/runs/{run_id}/nodes/gate/approve", json={})
    assert r.status_code < 300, r.text
    assert until(api, run_id, lambda s: s == "finished")["status"] == "finished"
    after = _scrape(api)
    assert after[("smithers_approvals_waiting", ())] == 0
    assert after[("smithers_approvals_total", (("kind", "granted"),))] == 1
    assert after[("smithers_runs_by_status", (("status", "finished"),))] == 3
    assert ("smithers_runs_by_status", (("status", "waiting-approval"),)) not in after
    assert after[("smithers_runs_total", ())] == before[("smithers_runs_total", ())] + 1
    assert after[("smithers_log_position", ())] > before[("smithers_log_position", ())]


def test_a_restart_rebuilds_the_same_counts_from_the_log(
    make_api: Callable[..., TestClient], api: TestClient, runs: dict[str, str], db: Path
) -> None:
    first = _scrape(api)
    assert _scrape(api) == first  # a second scrape counts nothing twice
    api.__exit__(None, None, None)
    again = make_api()
    rebuilt = _scrape(again)
    assert rebuilt == first
    recount = _recount(db)
    assert rebuilt[("smithers_log_position", ())] == recount.position
    assert rebuilt[("smithers_events_total", ())] == recount.events_total
    assert rebuilt[("smithers_nodes_started_total", ())] == recount.nodes_started
    assert rebuilt[("smithers_runs_total", ())] == recount.runs_total
    for status, n in recount.runs_by_status().items():
        assert rebuilt[("smithers_runs_by_status", (("status", status),))] == n
    for state, n in recount.nodes_by_state().items():
        assert rebuilt[("smithers_nodes_by_state", (("state", state),))] == n


def test_two_apps_in_one_process_keep_their_own_registries(
    make_api: Callable[..., TestClient], api: TestClient, until: Until, tmp_path: Path
) -> None:
    other_db = tmp_path / "other" / "smithers.db"
    from smithers.server import ServerConfig, create_app
    from starlette.testclient import TestClient as Client

    root = next(p for p in tmp_path.iterdir() if p.name == "root")
    config = ServerConfig(db=other_db, root=root.resolve(), resume_on_start=False)
    with Client(create_app(config)) as other:
        run_id = _start(api, "count.py")
        assert until(api, run_id, lambda s: s == "finished")["status"] == "finished"
        assert _scrape(api)[("smithers_runs_total", ())] == 1
        assert _scrape(other)[("smithers_runs_total", ())] == 0


def test_metrics_need_the_token_health_does_not(make_api: Callable[..., TestClient]) -> None:
    api = make_api(auth_token="s3cret")
    r = api.get("/metrics")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHORIZED"
    assert api.get("/health").status_code == 200
    m = _scrape(api, Authorization="Bearer s3cret")
    assert m[("smithers_runs_total", ())] == 0
