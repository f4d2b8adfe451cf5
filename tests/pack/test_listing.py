"""`smithers.engine.pack`'s listing API: names, validation, project first, system hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
import smithers.engine.pack as pack
from smithers.engine import InvalidInputError
from smithers.engine.pack import (
    SYSTEM_WORKFLOWS,
    file_name_for,
    find_workflow,
    list_workflows,
    project_workflows_dir,
    validate_workflow_name,
    workflow_name_for,
)


def test_all_names_the_public_api() -> None:
    public = {n for n, v in vars(pack).items() if not n.startswith("_") and n != "annotations"}
    public -= {n for n, v in vars(pack).items() if type(v).__name__ == "module"}
    assert sorted(public) == sorted(pack.__all__)


def test_post_failure_is_the_system_workflow() -> None:
    assert frozenset({"post-failure"}) == SYSTEM_WORKFLOWS


@pytest.mark.parametrize(
    ("path", "name"),
    [("post_failure.py", "post-failure"), ("/x/.smithers/workflows/review.py", "review")],
)
def test_a_files_stem_with_underscores_is_the_name(path: str, name: str) -> None:
    assert workflow_name_for(path) == name
    assert file_name_for(name) == Path(path).name


@pytest.mark.parametrize(
    ("given", "valid"),
    [
        ("review", "review"),
        ("post-failure", "post-failure"),
        ("post_failure", "post-failure"),
        ("v2-review", "v2-review"),
    ],
)
def test_valid_names(given: str, valid: str) -> None:
    assert validate_workflow_name(given) == valid


@pytest.mark.parametrize(
    "bad", ["", "../review", "review.py", "/etc/passwd", "a/b", "Review", "-x", "a b", "x" * 65]
)
def test_anything_else_is_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="not a workflow name") as info:
        validate_workflow_name(bad)
    assert info.value.code == "INVALID_INPUT"


def _flow(folder: Path, file: str, doc: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    path.write_text(f'"""{doc}"""\n', encoding="utf-8")
    return path


def test_the_project_first_system_hidden(tmp_path: Path) -> None:
    folder = tmp_path / ".smithers" / "workflows"
    mine = _flow(folder, "review.py", "My review.")
    _flow(folder, "post_failure.py", "Autopsy.")
    _flow(folder, "_helpers.py", "Not a workflow.")
    (folder / "notes.txt").write_text("no", encoding="utf-8")

    shown = {w.name: w for w in list_workflows(project_dir=folder)}
    every = {w.name: w for w in list_workflows(project_dir=folder, system=True)}

    assert "post-failure" not in shown
    assert "helpers" not in every
    assert every["post-failure"].system
    assert shown["review"].path == str(mine)
    assert shown["review"].overrides_pack
    assert shown["review"].summary == "My review."
    assert shown["research"].origin == "pack"
    assert find_workflow("review", project_dir=folder).path == str(mine)
    assert find_workflow("post_failure", project_dir=folder).name == "post-failure"


def test_an_unknown_name_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="No workflow named 'nope'") as info:
        find_workflow("nope", project_dir=tmp_path)
    assert {"review", "research", "implement"} <= set(info.value.details["available"])


def test_the_nearest_project_folder_walking_up(tmp_path: Path) -> None:
    folder = tmp_path / ".smithers" / "workflows"
    folder.mkdir(parents=True)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)

    assert project_workflows_dir(deep) == folder.resolve()
    assert project_workflows_dir(tmp_path / "a") == folder.resolve()
