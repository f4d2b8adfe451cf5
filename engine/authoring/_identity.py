"""Workflow identity: a hash of the entry file and the local modules it imports.

Resume refuses to continue a run whose code changed (``RESUME_METADATA_MISMATCH``):
replaying recorded outputs into different code would silently mix two workflows.
"Local" means relative imports and absolute imports that resolve to a file under the
entry file's directory; site-packages and the standard library are not hashed. Imports
are found by parsing (no code runs), so the identity is the same in every process.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    import os

__all__ = ("WorkflowIdentity", "workflow_identity")


class WorkflowIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Hashes of a workflow's source files."""

    digest: str
    """SHA-256 hex over every file's relative path and content hash, in path order."""
    files: tuple[tuple[str, str], ...]
    """``(path relative to the entry's directory, SHA-256 of its bytes)``, sorted."""

    def diff(self, other: WorkflowIdentity) -> list[str]:
        """Return the relative paths that differ (changed, added or removed) vs `other`."""
        mine, theirs = dict(self.files), dict(other.files)
        return sorted(p for p in mine.keys() | theirs.keys() if mine.get(p) != theirs.get(p))


def _module_file(base: Path, parts: list[str]) -> Path | None:
    target = base.joinpath(*parts) if parts else base
    for candidate in (target.with_suffix(".py"), target / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _local_imports(path: Path, root: Path) -> list[Path]:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []
    found: list[Path] = []
    here = path.parent
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = _module_file(root, alias.name.split("."))
                if hit is not None:
                    found.append(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.parent
            else:
                base = root
            parts = node.module.split(".") if node.module else []
            hit = _module_file(base, parts)
            if hit is not None:
                found.append(hit)
            # `from pkg import mod` may name a submodule.
            for alias in node.names:
                sub = _module_file(base, [*parts, alias.name])
                if sub is not None:
                    found.append(sub)
    return found


def workflow_identity(entry: str | os.PathLike[str]) -> WorkflowIdentity:
    """Hash `entry` and, transitively, the local modules it imports.

    Reads files (sync I/O; small). Unreadable files hash as empty.

    Returns:
        A `WorkflowIdentity`; equal identities mean the same code.
    """
    entry_path = Path(entry).resolve()
    root = entry_path.parent
    seen: dict[Path, str] = {}
    todo = [entry_path]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        seen[path] = hashlib.sha256(data).hexdigest()
        todo.extend(p.resolve() for p in _local_imports(path, root) if p.resolve() not in seen)
    files = []
    for path, digest in seen.items():
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        files.append((rel, digest))
    files.sort()
    overall = hashlib.sha256("\n".join(f"{p} {d}" for p, d in files).encode()).hexdigest()
    return WorkflowIdentity(digest=overall, files=tuple(files))
