"""The payloads of approval, signal and timer events a real run writes (issue 9, "Tests").

A run through the engine (approvals granted and denied, a signal with a correlation
id, a timer that fires, one cancelled by the run's end) is read back from its SQLite
file: each event's JSON keys are exactly the seed's fields (``seeds/003_*``, quick
reference: ``nodeId, iteration`` for approvals; ``timerId, firesAtMs, timerType``
etc. for timers), plus the envelope (``type, runId, timestampMs``) and the additions
`eventstore.events` documents. Non-node events omit fields at their default (e.g.
``correlationId`` null), so each payload holds at least the seed's fields and no
unknown one, and over the run every documented field is written. The golden samples
(``golden/v3-waits.jsonl``) use no key outside those sets.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec

from smithers import Approval, Parallel, Sequence, Task, Timer, WaitForEvent, run_workflow, workflow

ENVELOPE = {"type", "runId", "timestampMs"}
NODE = {"nodeId", "iteration"}

SEED_FIELDS: dict[str, set[str]] = {
    "NodeWaitingApproval": NODE,
    "NodeWaitingTimer": NODE | {"firesAtMs"},
    "ApprovalRequested": NODE,
    "ApprovalGranted": NODE,
    "ApprovalDenied": NODE,
    "TimerCreated": {"timerId", "firesAtMs", "timerType"},
    "TimerFired": {"timerId", "firesAtMs", "firedAtMs", "delayMs"},
    "TimerCancelled": {"timerId"},
    "RunStatusChanged": {"status"},
}
"""Fields of the seed's quick reference (``seeds/003_*``), by event type."""

ADDITIONS: dict[str, set[str]] = {
    "ApprovalRequested": {"title", "summary", "metadata", "mode", "options"},
    "ApprovalGranted": {"note", "decidedBy", "selected", "ranked", "actor"},
    "ApprovalDenied": {"note", "decidedBy", "actor"},
    "TimerCreated": {"nodeId", "iteration"},
    "NodeWaitingEvent": NODE | {"eventName", "correlationId", "timeoutAtMs"},
    "SignalReceived": {"signalName", "data", "correlationId", "sentBy", "actor"},
}
"""Our documented additions (`eventstore.events`, "waits"; ``actor``: the audit trail);
the last two are our own types."""

OMITTED_AT_DEFAULT: dict[str, set[str]] = {"TimerCreated": {"iteration"}}
"""Fields a run of this test writes only at their default, which non-node events omit
(``omit_defaults`` on `Event`; node events always write every field)."""

WAIT_TYPES = set(SEED_FIELDS) | set(ADDITIONS)

GOLDEN = Path(__file__).resolve().parents[1] / "eventstore" / "golden" / "v3-waits.jsonl"


def expected_keys(type_name: str) -> set[str]:
    return ENVELOPE | SEED_FIELDS.get(type_name, set()) | ADDITIONS.get(type_name, set())


class N(msgspec.Struct):
    n: int


@workflow("payloads")
def payloads(ctx: Any) -> Any:
    return Sequence(
        Approval(
            "pick",
            request={"title": "Which?", "summary": "two builds", "metadata": {"b": 1}},
            mode="select",
            options=("a", "b"),
        ),
        Approval("veto", request={"title": "Stop?"}, on_deny="continue"),
        WaitForEvent("ci", event="ci.done", output=N, correlation_id="sha-1", timeout_ms=3_600_000),
        Timer("soak", duration=0),
        Task("deploy", output=N, run=lambda: {"n": 1}, needs_approval=True),
    )


def boom() -> Any:
    raise RuntimeError("boom")


@workflow("cancels-a-timer")
def cancels_a_timer(ctx: Any) -> Any:
    return Parallel(
        Timer("later", duration="2h"),
        Sequence(Task("slow", output=N, value={"n": 1}), Task("boom", output=N, run=boom)),
    )


def stored_payloads(db: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's events as stored (the table's JSON payloads), in seq order."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT type, payload FROM _smithers_events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    out = []
    for type_name, payload in rows:
        data = json.loads(bytes(payload))
        assert data["type"] == type_name
        out.append(data)
    return out


async def test_a_real_runs_wait_events_have_exactly_the_seeds_fields(
    db: Path, decisions: Any
) -> None:
    async def go() -> Any:
        return await run_workflow(payloads, db=db, run_id="w", resume=True, log_dir=None)

    first = await run_workflow(payloads, db=db, run_id="w", log_dir=None)
    assert first.status == "waiting-approval"
    await decisions.approve("w", "pick", selected="b", note="b is green", by="ana", db=db)
    assert (await go()).status == "waiting-approval"
    await decisions.deny("w", "veto", note="no veto", by="bo", db=db)
    assert (await go()).status == "waiting-event"
    await decisions.signal("w", "ci.done", {"n": 3}, correlation_id="sha-1", by="ci", db=db)
    assert (await go()).status == "waiting-approval"  # the gated task
    await decisions.approve("w", "deploy", db=db)
    done = await go()
    assert done.status == "finished", done.error
    assert done.outputs["pick"] == {"selected": "b", "notes": "b is green"}

    failed = await run_workflow(cancels_a_timer, db=db, run_id="c", log_dir=None)
    assert failed.status == "failed"

    seen: dict[str, set[str]] = {}
    for event in stored_payloads(db, "w") + stored_payloads(db, "c"):
        type_name = event["type"]
        if type_name not in WAIT_TYPES:
            continue
        keys = set(event)
        assert ENVELOPE | SEED_FIELDS.get(type_name, set()) <= keys, (type_name, keys)
        assert keys <= expected_keys(type_name), (type_name, keys)
        seen.setdefault(type_name, set()).update(keys)
    assert set(seen) == WAIT_TYPES, f"not emitted: {WAIT_TYPES - set(seen)}"
    for type_name, keys in seen.items():
        missing = expected_keys(type_name) - keys - OMITTED_AT_DEFAULT.get(type_name, set())
        assert not missing, f"{type_name}: never written: {missing}"
    statuses = {e["status"] for e in stored_payloads(db, "w") if e["type"] == "RunStatusChanged"}
    assert {"waiting-approval", "waiting-event"} <= statuses


def test_the_golden_wait_samples_use_only_the_seeds_fields_and_ours() -> None:
    samples = [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]
    assert samples
    for sample in samples:
        keys = set(sample)
        assert ENVELOPE | SEED_FIELDS.get(sample["type"], set()) <= keys, sample["type"]
        assert keys <= expected_keys(sample["type"]), sample["type"]
