"""The Python API on PostgreSQL: ``smithers.connect(url)`` runs, parks, resumes, reads."""

from __future__ import annotations

import msgspec
from smithers.eventstore import PostgresEventStore, verify_chain

import smithers
from smithers import Approval, Sequence, Task, Timer, WaitForEvent, workflow


class Build(msgspec.Struct):
    version: str


class Smoke(msgspec.Struct):
    ok: bool


@workflow("deploy")
def deploy(ctx):  # type: ignore[no-untyped-def]
    return Sequence(
        Task("build", output=Build, value={"version": "1.0.0"}),
        Approval("approve-deploy", request={"title": "Deploy 1.0.0?"}),
        Timer("soak", duration="200ms"),
        WaitForEvent("smoke", event="smoke.passed", output=Smoke),
        Task("rollout", output=Build, value={"version": "1.0.0"}),
    )


async def test_a_run_parks_and_resumes_on_postgresql(pg_url: str) -> None:
    async with smithers.connect(pg_url) as client:
        assert client.path is None
        assert client.db == pg_url
        result = await client.run(deploy, run_id="deploy-1")
        assert result.status == "waiting-approval"
        run = await client.get_run("deploy-1")
        await run.approve("approve-deploy", note="fine", by="ana", workflow=deploy)
        assert (await run.result()).status == "waiting-event"
        await run.signal("smoke.passed", {"ok": True}, workflow=deploy)
        result = await run.result()
        assert result.status == "finished"
        assert result.outputs["smoke"] == {"ok": True}
        assert [r.run_id for r in await client.runs()] == ["deploy-1"]
    async with await PostgresEventStore.open(pg_url, read_only=True) as store:
        rows = await store.read_chained("deploy-1")
        assert verify_chain(rows) is None
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
