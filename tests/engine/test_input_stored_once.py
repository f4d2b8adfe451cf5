"""Issue 15, item 3: a run's input is stored once, not on every activation.

The first ``RunStarted`` carries the input; a resume's ``RunStarted``, and a fork's
first one when the fork keeps the input it has, carry ``input`` null with
``inputRef``/``inputHash``. The fold keeps the input, so `inspect --json` and the
run's state still show it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import anyio
from click.testing import CliRunner
from smithers.cli import main
from smithers.engine import fork, load_run
from smithers.eventstore import SQLiteEventStore, decode_event, decode_json, encode_json
from smithers.eventstore.events import NULL_RAW, RunStarted
from smithers.projections import fold_stored

from smithers import Task, WaitForEvent, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

BIG = {"blob": "x" * 1_000_000, "n": 1}
"""A ~1 MB input."""
SMALL = 100_000
"""Far less than the input: what one activation may add to the log, in bytes."""


@workflow("gated")
def gated(ctx: Any) -> Any:
    return [
        Task("a", output=dict[str, Any], run=lambda: {"n": ctx.input["n"]}),
        WaitForEvent("w", event="go", output=dict[str, Any]),
    ]


async def _log(db: Path, run_id: str) -> tuple[int, list[RunStarted]]:
    """Bytes of the run's events, and its RunStarted events."""
    store = await SQLiteEventStore.open(db)
    try:
        rows = await store.read(run_id)
    finally:
        await store.close()
    starts = [decode_event(r.type, r.data) for r in rows if r.type == "RunStarted"]
    return sum(len(r.data) for r in rows), [e for e in starts if isinstance(e, RunStarted)]


async def _inspect_input(db: Path, run_id: str) -> Any:
    """``smithers inspect RUN --json``'s input (the CLI runs its own loop: in a thread)."""
    args = ["inspect", run_id, "--json", "--db", str(db)]
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(main, args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["input"]


async def test_resume_refers_to_the_input_instead_of_repeating_it(db: Path) -> None:
    first = await run_workflow(gated, input=BIG, db=db, run_id="r1", hold_ms=0)
    assert first.status == "waiting-event"
    size, _ = await _log(db, "r1")
    assert size > 1_000_000
    for _ in range(3):
        again = await run_workflow(gated, db=db, run_id="r1", resume=True, hold_ms=0)
        assert again.status == "waiting-event"
    grown, starts = await _log(db, "r1")
    assert grown - size < 3 * SMALL  # before: ~1 MB more per resume
    digest = hashlib.sha256(encode_json(BIG)).hexdigest()
    assert decode_json(starts[0].input) == BIG
    assert starts[0].input_ref is None
    for later in starts[1:]:
        assert (later.input, later.input_ref, later.input_hash) == (NULL_RAW, "r1", digest)
    state = await load_run("r1", db=db)
    assert decode_json(state.input) == BIG
    assert await _inspect_input(db, "r1") == BIG


async def test_a_fork_keeping_its_parent_input_refers_to_the_parent(db: Path) -> None:
    await run_workflow(gated, input=BIG, db=db, run_id="p", hold_ms=0)
    child = await fork("p", frame=0, db=db, run_id_new="c", workflow=gated)
    result = await run_workflow(gated, db=db, run_id=child, resume=True, hold_ms=0)
    assert result.status == "waiting-event"
    size, starts = await _log(db, "c")
    assert size < SMALL  # before: the fork's RunStarted repeated the 1 MB input
    assert (starts[0].input, starts[0].input_ref) == (NULL_RAW, "p")
    state = await load_run("c", db=db)
    assert decode_json(state.input) == BIG
    assert await _inspect_input(db, "c") == BIG


async def test_a_fork_given_its_own_input_stores_it_once(db: Path) -> None:
    await run_workflow(gated, input={"n": 1}, db=db, run_id="p", hold_ms=0)
    child = await fork("p", frame=0, db=db, run_id_new="c", input=BIG, workflow=gated)
    await run_workflow(gated, db=db, run_id=child, resume=True, hold_ms=0)
    await run_workflow(gated, db=db, run_id=child, resume=True, hold_ms=0)
    size, starts = await _log(db, "c")
    assert 1_000_000 < size < 1_000_000 + SMALL  # in RunForked only
    assert [s.input_ref for s in starts] == ["c", "c"]
    assert decode_json((await load_run("c", db=db)).input) == BIG
    assert decode_json((await load_run("p", db=db)).input) == {"n": 1}


async def test_a_log_repeating_the_input_folds_as_before(db: Path) -> None:
    # Logs written before this change repeat the input on every RunStarted.
    await run_workflow(gated, input={"n": 1}, db=db, run_id="r1", hold_ms=0)
    store = await SQLiteEventStore.open(db)
    try:
        rows = await store.read("r1")
    finally:
        await store.close()
    state = fold_stored("r1", rows)
    assert decode_json(state.input) == {"n": 1}
    old_style = RunStarted(
        run_id="r1", timestamp_ms=1, input=NULL_RAW, activation=2, workflow_name="gated"
    )
    from smithers.projections import apply_event

    apply_event(state, old_style, seq=state.seq + 1)
    assert decode_json(state.input) == {"n": 1}
