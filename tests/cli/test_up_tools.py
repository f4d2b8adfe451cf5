"""``smithers up --root/--allow-network/--max-output-bytes/--tool-timeout-ms``: the tool sandbox."""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from smithers.eventstore import decode_json
from smithers.eventstore.events import RunStarted, ToolCallFinished

if TYPE_CHECKING:
    from pathlib import Path

TOOLY = """
    import msgspec
    import smithers
    from smithers import Task, workflow

    class Out(msgspec.Struct):
        text: str
        root: str

    async def note(ctx):
        await smithers.tools.write(ctx, path="out/note.txt", content="x" * 50)
        text = await smithers.tools.read(ctx, path="out/note.txt")
        return {"text": text, "root": str(ctx.tools.root_dir)}

    @workflow("tooly")
    def tooly(ctx):
        return Task("note", output=Out, run=note)
"""


@pytest.fixture
def tooly(flows: Path) -> Path:
    path = flows / "tooly.py"
    path.write_text(textwrap.dedent(TOOLY), encoding="utf-8")
    return path


def test_up_root_confines_the_tools_of_a_compute_task(
    procs: Any, log: Any, tooly: Path, tmp_path: Path
) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    proc = procs.smithers(
        "up", str(tooly), "--run-id", "r1", "--root", "sandbox", "--max-output-bytes", "20",
        "--tool-timeout-ms", "5000", "--json",
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["status"] == "finished"
    assert result["outputs"]["note"]["root"] == str(sandbox.resolve())
    assert result["outputs"]["note"]["text"].startswith("x" * 20 + "\n[... output truncated")
    assert (sandbox / "out" / "note.txt").read_text() == "x" * 50
    assert not (tooly.parent / "out").exists()
    events = log.events("r1")
    (started,) = [e for e in events if isinstance(e, RunStarted)]
    config = decode_json(started.config)
    assert config["rootDir"] == str(sandbox)
    assert (config["maxOutputBytes"], config["toolTimeoutMs"]) == (20, 5000)
    assert config["allowNetwork"] is False
    finished = [
        (e.tool_name, e.status, e.node_id) for e in events if isinstance(e, ToolCallFinished)
    ]
    assert finished == [("write", "success", "note"), ("read", "success", "note")]


def test_the_default_root_is_the_workflow_files_folder(cli: Any, tooly: Path) -> None:
    out = cli.up_json("tooly.py")

    assert out["status"] == "finished"
    assert out["outputs"]["note"]["root"] == str(tooly.parent.resolve())
    assert (tooly.parent / "out" / "note.txt").is_file()


def test_detach_forwards_the_sandbox_flags(
    cli: Any, procs: Any, log: Any, tooly: Path, tmp_path: Path
) -> None:
    sandbox = tmp_path / "box"
    sandbox.mkdir()
    result = cli.up("tooly.py", "--detach", "--json", "--run-id", "bg", "--root", str(sandbox),
                    "--allow-network")  # fmt: skip
    assert result.exit_code == 0, result.output
    pid = json.loads(result.stdout)["pid"]
    procs.track(pid)
    assert procs.wait_exit(pid) == 0
    assert log.status("bg") == "finished"
    assert (sandbox / "out" / "note.txt").is_file()
    (started,) = [e for e in log.events("bg") if isinstance(e, RunStarted)]
    assert decode_json(started.config)["allowNetwork"] is True


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--root", "no-such-dir"], "--root"),
        (["--max-output-bytes", "0"], "--max-output-bytes"),
        (["--tool-timeout-ms", "-1"], "--tool-timeout-ms"),
        (["--tool-timeout-ms", "soon"], "--tool-timeout-ms"),
    ],
)
def test_bad_sandbox_flags_exit_4_and_record_nothing(
    cli: Any, tooly: Path, args: list[str], fragment: str
) -> None:
    result = cli.up("tooly.py", *args)

    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]" in result.stderr
    assert fragment in result.stderr
    assert not cli.db.exists()


def test_resume_refuses_sandbox_flags(cli: Any, tmp_path: Path) -> None:
    result = cli("up", "--resume", "some-run", "--root", str(tmp_path))

    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]" in result.stderr
    assert "recorded" in result.stderr
