"""The public surface: facade exports, `__all__` completeness, layering of imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("eventstore", "projections", "engine", "cli", "server")
# Which layers each layer may import (DESIGN §2: eventstore <- projections <- engine <- cli).
ALLOWED = {
    "eventstore": set(),
    "projections": {"eventstore"},
    "engine": {"eventstore", "projections"},
    # cli imports server only inside `smithers serve` (the optional [server] extra).
    "cli": {"eventstore", "projections", "engine", "server"},
    "server": {"eventstore", "projections", "engine"},
}
PACKAGES = (
    "smithers",
    *(f"smithers.{layer}" for layer in LAYERS),
    "smithers.engine.tools",
    "smithers.tools",
    "smithers.agents",
)

CONTRACT_NAMES = (  # DESIGN §12
    "workflow",
    "Task",
    "Sequence",
    "Parallel",
    "Branch",
    "run_workflow",
    "connect",
    "Client",
    "RunHandle",
    "SmithersError",
    "is_smithers_error",
    "error_to_json",
    "known_error_codes",
    "get_error_definition",
    "ERROR_REFERENCE_URL",
    "is_known_error_code",
    "get_error_docs_url",
)


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_facade_exports_the_contract(name: str) -> None:
    smithers = importlib.import_module("smithers")
    assert hasattr(smithers, name)
    assert name in smithers.__all__


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_a_tuple_of_existing_names(package: str) -> None:
    module = importlib.import_module(package)
    assert isinstance(module.__all__, tuple)
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_attribute_is_in_all(package: str) -> None:
    module = importlib.import_module(package)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, type(importlib))
    }
    public -= {"annotations"}
    assert sorted(public - set(module.__all__)) == []


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_flow_one_way(layer: str) -> None:
    bad: list[str] = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] in LAYERS:
                bad.append(f"{path.name}: bare import {module} (use smithers.{module})")
            if parts[0] == "smithers" and len(parts) > 1 and parts[1] in LAYERS:
                target = parts[1]
                if target != layer and target not in ALLOWED[layer]:
                    bad.append(f"{path.name}: {layer} imports {module}")
            if parts[0] == "smithers" and len(parts) == 1:
                bad.append(f"{path.name}: imports the facade")
    assert bad == []


@pytest.mark.parametrize("layer", ["projections", "engine", "cli"])
def test_no_database_driver_outside_eventstore(layer: str) -> None:
    drivers = {"sqlite3", "aiosqlite"}
    hits = [
        f"{path.name}: {module}"
        for path in sorted((ROOT / layer).rglob("*.py"))
        for module in _imports(path)
        if module.split(".")[0] in drivers
    ]
    assert hits == []


def test_projections_do_no_io_clock_or_randomness() -> None:
    forbidden = {"os", "time", "random", "pathlib", "anyio", "asyncio", "socket", "datetime"}
    hits = [
        f"{path.name}: {module}"
        for path in sorted((ROOT / "projections").rglob("*.py"))
        for module in _imports(path)
        if module.split(".")[0] in forbidden
    ]
    assert hits == []


def test_cli_uses_only_public_names() -> None:
    hits = [
        f"{path.name}: {module}"
        for path in sorted((ROOT / "cli").rglob("*.py"))
        for module in _imports(path)
        if module.startswith("smithers.")
        and any(part.startswith("_") for part in module.split(".")[1:])
    ]
    assert hits == []


ENGINE_ROOMS = ("authoring", "activation", "history", "lifecycle", "timetravel")
"""The engine's sub-packages, lowest first: each may import only the ones before it."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["smithers", *parts]) if parts[0] != "smithers" else ".".join(parts)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports_from(path: Path) -> list[tuple[str, list[str]]]:
    """``(absolute module, imported names)`` for each import in the file."""
    module = _module_name(path)
    package = _package_of(module, path)
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.append((target, [alias.name for alias in node.names]))
    return out


def _target_package(target: str) -> str:
    """The package a module belongs to (itself if it is a package)."""
    parts = target.split(".")
    folder = ROOT / ("smithers" if len(parts) == 1 else Path(*parts[1:]))
    return target if folder.is_dir() else target.rpartition(".")[0]


def _owning_package(target: str) -> str | None:
    """The package whose private room `target` is (up to its first ``_name`` part), if any."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def _inside(importer: str, package: str) -> bool:
    return (importer + ".").startswith(package + ".")


@pytest.mark.parametrize("layer", [*LAYERS, "smithers"])
def test_no_module_imports_another_packages_private_names(layer: str) -> None:
    """A private module (``_x``) or name is used only inside its package and sub-packages."""
    bad: list[str] = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        importer = _package_of(_module_name(path), path)
        for target, names in _imports_from(path):
            if target.split(".")[0] != "smithers":
                continue
            owner = _owning_package(target)
            if owner is not None and not _inside(importer, owner):
                bad.append(f"{path.relative_to(ROOT)}: imports private module {target}")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and not _inside(importer, _target_package(target)):
                bad.append(f"{path.relative_to(ROOT)}: imports {private} from {target}")
    assert bad == []


def test_engine_rooms_import_one_way() -> None:
    """authoring <- activation <- history <- lifecycle <- timetravel; no cycles."""
    bad: list[str] = []
    for room in ENGINE_ROOMS:
        allowed = set(ENGINE_ROOMS[: ENGINE_ROOMS.index(room) + 1])
        for path in sorted((ROOT / "engine" / room).rglob("*.py")):
            for target, _ in _imports_from(path):
                parts = target.split(".")
                inside = parts[:2] == ["smithers", "engine"] and len(parts) > 2
                if inside and parts[2] in ENGINE_ROOMS and parts[2] not in allowed:
                    bad.append(f"{path.relative_to(ROOT)}: {room} imports {target}")
    assert bad == []


SIDE_ROOMS: dict[str, tuple[str, ...]] = {
    "tools": ("authoring", "errors"),
    "agents": ("authoring", "errors", "tools"),
}
"""Engine rooms outside the chain, with what of the engine each may import: the chain's
rooms (agents' runtime, the executor) build on them, never the reverse."""


@pytest.mark.parametrize("room", sorted(SIDE_ROOMS))
def test_side_rooms_import_only_what_they_may(room: str) -> None:
    allowed = {room, *SIDE_ROOMS[room]}
    bad: list[str] = []
    for path in sorted((ROOT / "engine" / room).rglob("*.py")):
        for target, _ in _imports_from(path):
            parts = target.split(".")
            inside = parts[:2] == ["smithers", "engine"]
            if inside and (len(parts) == 2 or parts[2] not in allowed):
                bad.append(f"{path.relative_to(ROOT)}: {room} imports {target}")
    assert bad == []


def test_chain_rooms_may_use_side_rooms_but_not_the_reverse() -> None:
    assert set(SIDE_ROOMS).isdisjoint(ENGINE_ROOMS)
    for room in SIDE_ROOMS:
        assert (ROOT / "engine" / room / "__init__.py").is_file()
