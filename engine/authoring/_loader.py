"""Load a workflow from a Python file, as ``smithers up FILE`` does (DESIGN §12).

A workflow file is a Python file with one ``@workflow`` object at module level, or
several and a ``file.py:name`` spec that picks one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import itertools
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import EngineError, WorkflowMissingDefaultError
from ._components import Workflow

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ("load_named_workflow", "load_workflow")

_counter = itertools.count(1)

_DECLARE_HINT = (
    "Declare one at module level:\n"
    "    from smithers import workflow, Task\n"
    '    @workflow("my-flow")\n'
    "    def my_flow(ctx):\n"
    '        return [Task("hello", output=dict, value={"msg": "hi"})]'
)


def _split_spec(spec: str) -> tuple[str, str | None]:
    """Split ``path[:name]``; a colon that belongs to the path (a drive letter) stays in it."""
    path, sep, name = spec.rpartition(":")
    looks_like_name = name and not any(c in name for c in "/\\.")
    if sep and path and looks_like_name and not Path(spec).is_file():
        return path, name
    return spec, None


def _module_name(path: Path) -> str:
    stem = re.sub(r"\W", "_", path.stem) or "workflow"
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:8]
    return f"_smithers_workflow_{stem}_{digest}_{next(_counter)}"


def _forget_shadowed(folder: Path) -> None:
    """Forget imported modules that this folder's own modules of the same name shadow.

    A workflow imports its sibling modules by plain name (``import helper``). Python
    caches modules by name, so after loading a workflow from another folder with its
    own ``helper.py``, this one would silently get that folder's module. The previous
    workflow keeps the module objects it already holds.
    """
    try:
        local = {p.stem for p in folder.glob("*.py")} | {
            p.parent.name for p in folder.glob("*/__init__.py")
        }
    except OSError:
        return
    for name in [n for n in sys.modules if n.partition(".")[0] in local]:
        file = getattr(sys.modules[name], "__file__", None)
        if file and not Path(file).resolve().is_relative_to(folder.resolve()):
            del sys.modules[name]


def _import_file(path: Path) -> ModuleType:
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise EngineError(
            f"Could not import {path}: not a Python source file.",
            code="INVALID_INPUT",
            details={"path": str(path)},
            hint="Pass a .py file that defines a @workflow.",
        )
    module = importlib.util.module_from_spec(spec)
    # Registered so msgspec, dataclasses and pickling can resolve the module's names.
    sys.modules[name] = module
    folder = str(path.parent)
    _forget_shadowed(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise EngineError(
            f"Could not import {path}: {type(e).__name__}: {e}",
            code="INVALID_INPUT",
            details={"path": str(path), "error": type(e).__name__},
            hint=f"Fix the error, then check the file alone with `python {path}`.",
        ) from e
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return module


def _candidates(module: ModuleType) -> dict[str, Workflow]:
    """Return the module's workflows by global name, each object once."""
    found: dict[str, Workflow] = {}
    seen: set[int] = set()
    for attr, value in vars(module).items():
        if isinstance(value, Workflow) and id(value) not in seen:
            seen.add(id(value))
            found[attr] = value
    defined_here = {
        attr: wf
        for attr, wf in found.items()
        if getattr(wf.build, "__module__", None) == module.__name__
    }
    # Workflows imported from sibling modules only count when the file defines none.
    return defined_here or found


def load_workflow(spec: str) -> tuple[Workflow, Path]:
    """Import a workflow file and return its workflow.

    The file is imported as a fresh module under a unique name, with its directory
    first on ``sys.path`` while it imports (so it can import sibling modules). Its
    module-level code runs in this process.

    Args:
        spec: ``path/to/file.py`` (the file must define exactly one ``@workflow``) or
            ``path/to/file.py:name``, where `name` is a module-level variable or the
            name given to ``@workflow``.

    Returns:
        ``(workflow, absolute path of the file)``.

    Raises:
        EngineError: code ``INVALID_INPUT`` if the file does not exist or raises while
            importing (the import error is chained as ``__cause__``).
        WorkflowMissingDefaultError: if the file defines no workflow, several and no
            `name` picks one, or none called `name`. Details: `path` (and `available`).

    Example:
        >>> wf, path = load_workflow("flows/count.py:count")  # doctest: +SKIP
    """
    raw_path, name = _split_spec(spec)
    path = Path(raw_path).expanduser().resolve()
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise EngineError(
            f"Workflow file {raw_path} {what} (looked at {path}).",
            code="INVALID_INPUT",
            details={"path": str(path)},
            hint="Pass the path of a .py file that defines a @workflow, e.g. "
            "`smithers up flows/count.py`.",
        )
    module = _import_file(path)
    found = _candidates(module)
    available = sorted(f"{attr} ({wf.name!r})" for attr, wf in found.items())
    if name is not None:
        chosen = found.get(name) or vars(module).get(name)
        if not isinstance(chosen, Workflow):
            by_name = [wf for wf in found.values() if wf.name == name]
            chosen = by_name[0] if len(by_name) == 1 else None
        if chosen is None:
            raise WorkflowMissingDefaultError(
                f"{path} has no workflow called {name!r}"
                + (f"; it defines: {', '.join(available)}." if available else "."),
                details={"path": str(path), "name": name, "available": available},
                hint=f"Pick one with {raw_path}:<name>." if available else _DECLARE_HINT,
            )
        return chosen, path
    if len(found) == 1:
        return next(iter(found.values())), path
    if not found:
        raise WorkflowMissingDefaultError(
            f"{path} does not define a workflow.",
            details={"path": str(path)},
            hint=_DECLARE_HINT,
        )
    raise WorkflowMissingDefaultError(
        f"{path} defines several workflows: {', '.join(available)}.",
        details={"path": str(path), "available": available},
        hint=f"Pick one with {raw_path}:<name>, e.g. {raw_path}:{min(found)}.",
    )


def load_named_workflow(path: str, name: str | None) -> tuple[Workflow, Path]:
    """Load the workflow a run recorded: file `path`, and `name` if the file has several.

    Returns:
        ``(workflow, absolute path of its file)``, as `load_workflow`.

    Raises:
        WorkflowMissingDefaultError: if the file does not define that workflow.
        EngineError: code ``INVALID_INPUT`` if the file raises while importing.
    """
    try:
        return load_workflow(path)
    except WorkflowMissingDefaultError:
        if not name or any(c in name for c in "/\\.:"):
            raise
        return load_workflow(f"{path}:{name}")
