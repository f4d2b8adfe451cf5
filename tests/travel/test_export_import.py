"""Runs that travel: ``smithers export`` on machine A, ``smithers import`` on machine B."""

from __future__ import annotations

import gzip
import json
import shutil
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path


def _export(machine: Any, run_id: str, out: Path, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = machine.json("export", run_id, "-o", str(out), *args)
    return result


def _lines(path: Path) -> list[dict[str, Any]]:
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


def test_a_run_exported_and_imported_reads_the_same(
    a: Any, b: Any, finished: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "run.smithers.jsonl"
    out = _export(a, finished, bundle)
    assert out["events"] == len(a.rows(finished))

    imported = b.json("import", str(bundle))

    assert [(r["runId"], r["outcome"]) for r in imported["runs"]] == [(finished, "imported")]
    assert b.rows(finished) == a.rows(finished)  # byte for byte
    assert b("events", finished, "--json").stdout == a("events", finished, "--json").stdout
    assert b.json("timeline", finished) == a.json("timeline", finished)
    assert b.json("inspect", finished)["nodes"] == a.json("inspect", finished)["nodes"]
    assert b.json("ps")[0]["status"] == "finished"


def test_importing_the_same_bundle_twice_writes_nothing(
    a: Any, b: Any, forked: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "fork.smithers.jsonl.gz"
    _export(a, forked, bundle)
    b.json("import", str(bundle))
    before = b.count_rows()

    again = b.json("import", str(bundle))

    assert {r["outcome"] for r in again["runs"]} == {"identical"}
    assert b.count_rows() == before


def test_a_fork_travels_with_its_parent_up_to_the_fork_point(
    a: Any, b: Any, finished: str, forked: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "fork.smithers.jsonl.gz"
    out = _export(a, forked, bundle)
    parent = next(r for r in out["runs"] if r["runId"] == finished)
    assert not parent["complete"]
    assert parent["uptoSeq"] < len(a.rows(finished))

    b.json("import", str(bundle))

    assert b.rows(forked) == a.rows(forked)
    assert b.rows(finished) == a.rows(finished)[: parent["uptoSeq"]]
    assert b("events", forked, "--json").stdout == a("events", forked, "--json").stdout
    assert b.json("timeline", forked) == a.json("timeline", forked)
    assert b.json("state", finished, "--frame", "1") == a.json("state", finished, "--frame", "1")
    assert b("diff", finished, forked).exit_code == 0
    # The ancestor cut at the fork point is not "running" to the supervisor.
    statuses = {r["runId"]: r["status"] for r in b.json("ps")}
    assert statuses == {forked: "imported", finished: "imported"}
    listed = b.json("ps", "--status", "imported")
    assert sorted(r["runId"] for r in listed) == sorted([forked, finished])
    assert b.json("inspect", finished)["imported"] is True
    assert "was imported (`smithers import`) before it ended" in b("inspect", finished).stdout


def test_with_ancestry_bundles_the_parent_whole_and_extends_a_partial_copy(
    a: Any, b: Any, finished: str, forked: str, tmp_path: Path
) -> None:
    partial, whole = tmp_path / "p.smithers.jsonl", tmp_path / "w.smithers.jsonl"
    _export(a, forked, partial)
    out = _export(a, forked, whole, "--with-ancestry")
    assert all(r["complete"] for r in out["runs"])

    b.json("import", str(partial))
    result = b.json("import", str(whole))

    outcomes = {r["runId"]: r["outcome"] for r in result["runs"]}
    assert outcomes == {forked: "identical", finished: "extended"}
    assert b.rows(finished) == a.rows(finished)
    assert {r["runId"]: r["status"] for r in b.json("ps")}[finished] == "finished"


def test_a_run_id_holding_other_events_is_refused_and_nothing_is_written(
    a: Any, b: Any, finished: str, forked: str, flows: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "fork.smithers.jsonl"
    _export(a, forked, bundle)
    taken = b("up", str(flows / "count.py"), "--run-id", finished, "--input", '{"start": 9}')
    assert taken.exit_code == 0, taken.output
    before = b.count_rows()

    result = b("import", str(bundle))

    assert result.exit_code == 4
    assert "Error [RUN_ALREADY_EXISTS]" in result.stderr
    assert b.count_rows() == before
    assert forked not in {r["runId"] for r in b.json("ps")}


def _tamper_type(lines: list[dict[str, Any]]) -> None:
    lines[2]["type"] = "NodeFinished"


def _bad_field(lines: list[dict[str, Any]]) -> None:
    payload = json.loads(lines[1]["payload"])
    payload["timestampMs"] = "yesterday"
    lines[1]["payload"] = json.dumps(payload)


def _drop_a_row(lines: list[dict[str, Any]]) -> None:
    del lines[3]


def _newer_version(lines: list[dict[str, Any]]) -> None:
    lines[0]["version"] = 99


def _bad_run_id(lines: list[dict[str, Any]]) -> None:
    lines[0]["runs"][0]["runId"] = lines[0]["runId"] = "../etc"


def _source_escapes(lines: list[dict[str, Any]]) -> None:
    lines[0]["workflows"][0]["files"][0]["path"] = "../../evil.py"


def _source_altered(lines: list[dict[str, Any]]) -> None:
    lines[0]["workflows"][0]["files"][0]["source"] += "\nprint('hi')\n"


@pytest.mark.parametrize(
    ("tamper", "words"),
    [
        (_tamper_type, "type or runId"),
        (_bad_field, "not a valid event"),
        (_drop_a_row, "was due"),
        (_newer_version, "version 99"),
        (_bad_run_id, "Invalid run id"),
        (_source_escapes, "leaves its folder"),
        (_source_altered, "does not match its SHA-256"),
    ],
)
def test_a_damaged_bundle_is_refused_with_exit_4_and_nothing_written(
    a: Any, b: Any, finished: str, tmp_path: Path, tamper: Any, words: str
) -> None:
    bundle = tmp_path / "run.smithers.jsonl"
    _export(a, finished, bundle)
    lines = _lines(bundle)
    tamper(lines)
    _write_lines(bundle, lines)

    result = b("import", str(bundle))

    assert result.exit_code == 4, result.output
    assert "Error [INVALID_INPUT]" in result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert not b.db.exists()


def test_a_file_that_is_not_a_bundle_is_refused(b: Any, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n", encoding="utf-8")

    result = b("import", str(junk))

    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]" in result.stderr
    assert not b.db.exists()


def test_import_runs_nothing_and_forks_onto_the_bundled_source(
    a: Any,
    b: Any,
    finished: str,
    flows: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = tmp_path / "run.smithers.jsonl.gz"
    _export(a, finished, bundle)
    shutil.rmtree(flows)  # machine B has no copy of the workflow files
    marker = tmp_path / "marker"
    monkeypatch.setenv("TRAVEL_MARKER", str(marker))

    imported = b.json("import", str(bundle))

    assert not marker.exists()  # the workflow's modules were not imported
    (entry,) = imported["workflows"]
    assert entry.startswith(str(b.root / "imported"))
    plain = b("fork", finished, "--frame", "1", "--run")
    assert plain.exit_code == 4  # the recorded file is not on this machine
    ran = b("fork", finished, "--frame", "1", "--run", "--workflow", entry, "--json")
    assert ran.exit_code == 0, ran.output
    child = json.loads(ran.stdout.splitlines()[-1])["runId"]
    assert b.json("output", child, "third") == {"n": 11}
    assert b("verify", finished, "--workflow", entry).exit_code == 0


def test_workflow_requires_run_on_fork(b: Any) -> None:
    result = b("fork", "r1", "--frame", "1", "--workflow", "x.py")

    assert result.exit_code == 4
    assert "--workflow only applies with --run" in result.stderr


def test_an_unwritable_bundle_path_is_bad_input(a: Any, finished: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")

    result = a("export", finished, "-o", str(blocker / "run.smithers.jsonl"))

    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]: Cannot write the bundle" in result.stderr


def test_exporting_a_missing_run_is_run_not_found(a: Any, finished: str) -> None:
    result = a("export", "no-such-run")

    assert result.exit_code == 4
    assert "Error [RUN_NOT_FOUND]" in result.stderr


SUBFLOWS = """
import msgspec
from smithers import Sequence, Subflow, Task, workflow

class N(msgspec.Struct):
    n: int

@workflow("double")
def double(ctx):
    return Task("output", output=N, run=lambda: {"n": ctx.input["x"] * 2})

@workflow("parent")
def parent(ctx):
    return Sequence(
        Subflow("twice", workflow=double, input={"x": 4}, output=N),
        Task("output", output=N, run=lambda: {"n": ctx.output(N, "twice").n + 1}),
    )
"""


def test_a_run_travels_with_its_subflow_runs(a: Any, b: Any, flows: Path, tmp_path: Path) -> None:
    (flows / "subflows.py").write_text(SUBFLOWS, encoding="utf-8")
    run_id = a.json("up", str(flows / "subflows.py") + ":parent")["runId"]
    (child,) = [r["runId"] for r in a.json("ps") if r["runId"] != run_id]
    bundle = tmp_path / "sub.smithers.jsonl"
    _export(a, run_id, bundle)

    b.json("import", str(bundle))

    assert b.rows(child) == a.rows(child)
    assert b.json("inspect", run_id)["children"] == a.json("inspect", run_id)["children"]


def test_a_read_only_database_can_be_exported(
    a: Any, b: Any, finished: str, tmp_path: Path
) -> None:
    a("ps")  # settle the WAL into the file before it turns read-only
    modes = [(p, p.stat().st_mode) for p in (a.db, a.root)]
    a.db.chmod(0o444)
    a.root.chmod(0o555)
    try:
        _export(a, finished, tmp_path / "ro.smithers.jsonl")
    finally:
        for path, mode in modes:
            path.chmod(mode)

    b.json("import", str(tmp_path / "ro.smithers.jsonl"))
    assert b.rows(finished) == a.rows(finished)


def test_a_run_whose_workflow_changed_travels_without_its_source(
    a: Any, b: Any, finished: str, flows: Path, tmp_path: Path
) -> None:
    (flows / "helper.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    bundle = tmp_path / "run.smithers.jsonl"

    result = a("export", finished, "-o", str(bundle))

    assert result.exit_code == 0, result.output
    assert "helper.py" in result.stderr
    assert "changed since the run started" in result.stderr
    imported = b.json("import", str(bundle))
    assert imported["workflows"] == []  # a partial copy would not be the recorded code
    assert b.rows(finished) == a.rows(finished)
