"""``smithers init``: writes the pack, keeps what the project has, and is resumable."""

from __future__ import annotations

import json
from typing import Any

from smithers.engine.pack import PACK_WORKFLOWS_DIR, pack_workflows

PACK_FILES = sorted(p.name for p in PACK_WORKFLOWS_DIR.glob("*.py"))


def test_the_pack_holds_the_promised_workflows() -> None:
    names = {w.name for w in pack_workflows()}
    assert {"review", "research", "implement"} <= names
    assert all(w.origin == "pack" and w.summary for w in pack_workflows())


def test_init_writes_every_pack_file(project: Any) -> None:
    done = project.smithers("init")

    assert done.returncode == 0, done.stderr
    folder = project.root / ".smithers" / "workflows"
    assert sorted(p.name for p in folder.iterdir()) == PACK_FILES
    for name in PACK_FILES:
        assert (folder / name).read_bytes() == (PACK_WORKFLOWS_DIR / name).read_bytes()
        assert f"wrote  {folder / name}" in done.stdout


def test_init_twice_keeps_the_projects_files(project: Any) -> None:
    assert project.smithers("init").returncode == 0
    edited = project.root / ".smithers" / "workflows" / "review.py"
    edited.write_text("# my review\n", encoding="utf-8")

    done = project.smithers("init", "--json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["written"] == []
    assert sorted(result["kept"]) == sorted(str(edited.parent / n) for n in PACK_FILES)
    assert edited.read_text(encoding="utf-8") == "# my review\n"
    assert "kept" in project.smithers("init").stdout


def test_init_force_replaces_them(project: Any) -> None:
    assert project.smithers("init").returncode == 0
    edited = project.root / ".smithers" / "workflows" / "review.py"
    edited.write_text("# my review\n", encoding="utf-8")

    done = project.smithers("init", "--force", "--json")

    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["written"]) == len(PACK_FILES)
    assert edited.read_bytes() == (PACK_WORKFLOWS_DIR / "review.py").read_bytes()


def test_an_interrupted_init_is_completed_by_running_it_again(project: Any) -> None:
    """An init killed mid-way left one file whole and a half-written temporary file."""
    folder = project.root / ".smithers" / "workflows"
    folder.mkdir(parents=True)
    first = PACK_FILES[0]
    (folder / first).write_bytes((PACK_WORKFLOWS_DIR / first).read_bytes())
    second = PACK_FILES[1]
    partial = folder / f".{second}.4242.tmp"
    partial.write_bytes((PACK_WORKFLOWS_DIR / second).read_bytes()[:50])

    done = project.smithers("init", "--json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["kept"] == [str(folder / first)]
    assert sorted(result["written"]) == sorted(str(folder / n) for n in PACK_FILES[1:])
    assert result["removedTmp"] == [str(partial)]
    assert sorted(p.name for p in folder.iterdir()) == PACK_FILES
    for name in PACK_FILES:
        assert (folder / name).read_bytes() == (PACK_WORKFLOWS_DIR / name).read_bytes()


def test_init_dir_writes_elsewhere_and_a_missing_dir_exits_4(project: Any) -> None:
    other = project.root / "sub"
    other.mkdir()

    done = project.smithers("init", "--dir", "sub")

    assert done.returncode == 0, done.stderr
    assert (other / ".smithers" / "workflows" / "review.py").is_file()
    assert not (project.root / ".smithers").exists()
    missing = project.smithers("init", "--dir", "no-such-folder")
    assert missing.returncode == 4
    assert "Error [INVALID_INPUT]" in missing.stderr
    assert "Traceback" not in missing.stderr
