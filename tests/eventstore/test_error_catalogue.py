"""The error catalogue against Smithers' error reference, its generated docs, and the
rule that every error the project raises carries a catalogue code (issue 12).

The reference's tables are kept in ``data/smithers_error_reference.md`` (a verbatim copy
of the seed's section tables), so the comparison runs on any machine.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import re
from pathlib import Path

import click
import pytest
from smithers.eventstore.errors import (
    CATEGORIES,
    ERROR_DEFINITIONS,
    SmithersError,
    get_error_docs_url,
    is_known_error_code,
    render_errors_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).with_name("data") / "smithers_error_reference.md"
SECTIONS = {title: key for key, title in CATEGORIES.items()} | {"Effect / Runtime": "runtime"}


def reference_rows() -> list[tuple[str, str, list[str]]]:
    """(category, code, the row's other cells) of every code row of the reference."""
    rows: list[tuple[str, str, list[str]]] = []
    category = None
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            category = SECTIONS[line[3:].strip()]
            continue
        m = re.match(r"^\| `([A-Z0-9_]+)`\s*\|(.*)\|\s*$", line)
        if m and category is not None:
            rows.append((category, m.group(1), [c.strip() for c in m.group(2).split("|")]))
    return rows


ROWS = reference_rows()


def test_the_reference_copy_holds_every_section() -> None:
    assert len(ROWS) >= 110
    assert {c for c, _, _ in ROWS} == set(CATEGORIES)


@pytest.mark.parametrize(("category", "code", "cells"), ROWS, ids=[r[1] for r in ROWS])
def test_every_reference_code_is_defined_as_the_reference_says(
    category: str, code: str, cells: list[str]
) -> None:
    assert is_known_error_code(code)
    d = ERROR_DEFINITIONS[code]
    assert d.reference
    if category == "http":
        # A code of the HTTP table: its status; RUN_NOT_FOUND/RUN_ALREADY_EXISTS are also
        # engine codes and keep their engine category.
        assert d.http_status == int(cells[0])
        assert d.category in ("http", "engine")
        return
    assert d.category == category
    details = cells[1]
    keys = [] if details == "--" else re.findall(r"(\w+)\??", details.strip("{} "))
    assert set(keys) <= set(d.details), (code, keys, d.details)


def test_codes_beyond_the_reference_are_marked_as_ours() -> None:
    in_reference = {code for _, code, _ in ROWS}
    ours = {code for code, d in ERROR_DEFINITIONS.items() if not d.reference}
    assert ours == set(ERROR_DEFINITIONS) - in_reference
    assert "TREE_TOO_DEEP" in ours


def test_docs_errors_md_is_generated_from_the_catalogue() -> None:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert text == render_errors_markdown(), "run: smithers errors --markdown > docs/errors.md"
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", text, re.M))
    assert documented == set(ERROR_DEFINITIONS)


def test_docs_urls_name_the_code() -> None:
    assert get_error_docs_url("RUN_NOT_FOUND").endswith("#run-not-found")


# ------------------------------------------------------------ every raise has a code

SOURCE_DIRS = ("eventstore", "projections", "engine", "cli", "smithers")

ALLOWED_PLAIN_RAISES: dict[tuple[str, str], str] = {
    # Python protocols, not errors smithers reports.
    ("engine/agents/__init__.py", "AttributeError"): "module __getattr__",
    ("engine/agents/__init__.py", "ImportError"): "lazy import of an optional extra",
    ("smithers/agents.py", "AttributeError"): "module __getattr__",
    ("engine/agents/_pydantic.py", "ModelRetry"): "Pydantic AI's own retry signal",
    # Invariants: a failure here is a bug in smithers-py (reported as INTERNAL_ERROR).
    ("engine/activation/_loop.py", "AssertionError"): "fold order invariant",
    ("engine/agents/_pydantic.py", "AssertionError"): "unreachable",
    ("engine/agents/_run.py", "AssertionError"): "unreachable",
    ("engine/lifecycle/_control.py", "AssertionError"): "unreachable",
    ("projections/_handlers.py", "RuntimeError"): "two fold handlers registered at import",
    # Raised and caught inside the layer, which reports a coded error instead.
    ("engine/activation/_frames.py", "ValueError"): "frame delta parser (CHECKPOINT/FRAME)",
    ("engine/activation/_ndjson.py", "OSError"): "short write of the NDJSON log",
    ("eventstore/_codec.py", "JsonValueError"): "caller reports INVALID_INPUT/INVALID_OUTPUT",
    ("eventstore/_sqlite_sql.py", "WriteAbandonedError"): "becomes DB_WRITE_FAILED",
    ("engine/_files.py", "SymlinkRefusedError"): "becomes TOOL_PATH_ESCAPE",
    ("engine/tools/_patch.py", "PatchError"): "becomes TOOL_PATCH_FAILED",
}
"""Raises of exceptions without a catalogue code that are allowed, and why."""


def _raised_names() -> list[tuple[str, int, str]]:
    found = []
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Raise) and node.exc is not None:
                    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                    if isinstance(exc, (ast.Name, ast.Attribute)):
                        rel = path.relative_to(ROOT).as_posix()
                        found.append((rel, node.lineno, ast.unparse(exc)))
    return found


def _resolve(rel: str, name: str) -> object:
    dotted = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    if not dotted.startswith("smithers"):
        dotted = "smithers." + dotted
    value: object = importlib.import_module(dotted)
    for i, part in enumerate(name.split(".")):
        found = getattr(value, part, None)
        if found is None and i == 0:
            found = getattr(builtins, part, None) or getattr(click, part, None)
        if found is None:
            return None
        value = found
    return value


def test_every_raised_error_class_carries_a_catalogue_code() -> None:
    unknown: list[str] = []
    checked = 0
    for rel, line, name in _raised_names():
        value = _resolve(rel, name)
        if not isinstance(value, type) or not issubclass(value, BaseException):
            continue  # a variable (re-raise) or a factory function: checked where made
        checked += 1
        if issubclass(value, SmithersError):
            if not is_known_error_code(value.default_code):
                unknown.append(f"{rel}:{line} {name} has unknown code {value.default_code}")
        elif rel.startswith("cli/") and issubclass(
            value, (click.ClickException, click.exceptions.Exit)
        ):
            continue  # click's usage errors and exits: printed by click, exit 2 or as given
        elif (rel, name) not in ALLOWED_PLAIN_RAISES:
            unknown.append(f"{rel}:{line} raises {name}, which carries no catalogue code")
    assert checked > 200
    assert unknown == []


def test_every_built_code_is_used_somewhere_and_no_planned_one_is() -> None:
    # `planned` must stay honest: a code the source names outside the catalogue is
    # built (raised, returned in an HTTP error, printed by the CLI); one it never names
    # is planned.
    # (cli/_errors.py maps codes to exit statuses, planned ones included.)
    skip = {"_error_catalogue.py", "_planned_errors.py", "_error_definition.py"}
    named: set[str] = set()
    for folder in (*SOURCE_DIRS, "server"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name not in skip and path != ROOT / "cli" / "_errors.py":
                named |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', path.read_text("utf-8")))
    built = {code for code, d in ERROR_DEFINITIONS.items() if not d.planned}
    planned = set(ERROR_DEFINITIONS) - built
    assert sorted(built - named) == []
    assert sorted(planned & named) == []
