"""Run ids are names, not paths (issue 8, item 4): one check at every API entry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from smithers.engine import (
    MAX_RUN_ID_LENGTH,
    InvalidInputError,
    cancel_run,
    default_log_dir,
    fork,
    replay,
    resume_run,
    retry_task,
    rewind,
    validate_run_id,
)

from smithers import Task, connect, run_workflow, workflow

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.engine import Workflow

VALID = ["r", "run-lx2k3j-1a2b3c", "a.b", "ns:job_1", "..a", "a..b", "x" * MAX_RUN_ID_LENGTH]
INVALID = [
    "",
    ".",
    "..",
    "../../../../escaped",
    "a/b",
    "/abs",
    "a\\b",
    "with space",
    "tab\there",
    "new\nline",
    "nul\x00",
    "émoji-é",
    "[/]",
    "x" * (MAX_RUN_ID_LENGTH + 1),
]


@workflow("one")
def one(ctx: object) -> list[Task]:
    return [Task("only", output=dict, value={"ok": True})]


@pytest.mark.parametrize("run_id", VALID)
def test_valid_ids_pass_unchanged(run_id: str) -> None:
    assert validate_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", INVALID)
def test_invalid_ids_are_invalid_input(run_id: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_run_id(run_id)
    assert info.value.code == "INVALID_INPUT"
    assert info.value.details["runId"] == run_id
    assert info.value.hint


def test_a_non_string_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="must be a string"):
        validate_run_id(42)


def test_default_log_dir_is_resolved_and_stays_under_executions(tmp_path: Path) -> None:
    db = tmp_path / "sub" / ".." / "smithers.db"
    assert default_log_dir(db, "r") == (tmp_path / "executions" / "r" / "logs").resolve()
    with pytest.raises(InvalidInputError):
        default_log_dir(db, "../../escaped")


def test_default_log_dir_refuses_a_run_folder_linked_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "executions").mkdir()
    (tmp_path / "executions" / "linked").symlink_to(outside)
    with pytest.raises(InvalidInputError, match="leaves its folder"):
        default_log_dir(tmp_path / "smithers.db", "linked")


@pytest.mark.parametrize("run_id", ["../../../../escaped", "..", "a/b"])
async def test_run_workflow_refuses_before_anything_is_written(tmp_path: Path, run_id: str) -> None:
    db = tmp_path / "db" / "smithers.db"
    with pytest.raises(InvalidInputError):
        await run_workflow(one, input={}, run_id=run_id, db=db)
    assert not db.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


async def test_client_start_run_and_get_run_refuse(tmp_path: Path) -> None:
    db = tmp_path / "smithers.db"
    async with connect(db) as client:
        with pytest.raises(InvalidInputError):
            await client.run(one, run_id="../x")
        with pytest.raises(InvalidInputError):
            await client.start(one, run_id="a/b")
        assert not db.exists()  # refused before the database was created
        await client.run(one, run_id="ok")
        with pytest.raises(InvalidInputError) as info:
            await client.get_run("../ok")
        assert "smithers ps" in (info.value.hint or "")


async def _finished(db: Path, wf: Workflow = one) -> str:
    return (await run_workflow(wf, input={}, run_id="parent", db=db)).run_id


@pytest.mark.parametrize("op", ["fork", "replay"])
async def test_fork_and_replay_refuse_a_bad_new_id(tmp_path: Path, op: str) -> None:
    db = tmp_path / "smithers.db"
    parent = await _finished(db)
    call = (
        fork(parent, frame=0, db=db, run_id_new="../../../../escaped")
        if op == "fork"
        else replay(parent, frame=0, db=db, workflow=one, run_id_new="..")
    )
    with pytest.raises(InvalidInputError, match="new run id"):
        await call
    assert not (tmp_path.parent / "escaped").exists()
    async with connect(db) as client:
        assert [r.run_id for r in await client.runs()] == [parent]


async def test_every_operation_on_an_existing_run_refuses_a_path(tmp_path: Path) -> None:
    db = tmp_path / "smithers.db"
    await _finished(db)
    bad = "../parent"
    calls = [
        cancel_run(bad, db=db),
        resume_run(bad, db=db),
        rewind(bad, frame=0, db=db),
        retry_task(bad, node="only", db=db),
        fork(bad, frame=0, db=db),
        replay(bad, frame=0, db=db),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="Invalid run id"):
            await call
