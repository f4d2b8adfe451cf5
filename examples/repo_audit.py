"""Audit a source tree: files, lines per language and TODO/FIXME markers, as Markdown.

Run it on the current directory::

    smithers up examples/repo_audit.py
    smithers up examples/repo_audit.py --input '{"root": "../other-repo", "report": "audit.md"}'

The report goes to ``.smithers/reports/repo_audit.md`` under the current directory by
default (``.smithers/`` is gitignored, so auditing a repository does not dirty it).

Shape of the run:

1. ``scan`` lists the top-level folders of `root` (and counts the files directly in it).
2. Once ``scan`` has an output, a `Parallel` mounts one ``count-<folder>`` task per
   folder, plus ``root-files`` for the files directly in `root`. Each walks its part of
   the tree and counts files, lines per language (by extension) and TODO/FIXME lines.
3. Once every count exists, ``output`` (the conventional final node) writes the
   Markdown report and returns ``{report_path, files, lines, todos, skipped}``.

The builder only reads recorded outputs; every file-system access happens in a ``run=``
callable, so re-rendering the workflow never touches the disk.

What is counted: every file not matched by `exclude` (glob patterns matched against
each file and folder name, at any depth). Binary files (a NUL byte in the first 8 KiB),
files over 2 MB and unreadable files (e.g. dangling symlinks) are counted as files but
skipped for lines, languages and markers. A TODO/FIXME line is a line containing the
word ``TODO`` or ``FIXME`` (upper case, whole word); each line counts once.
"""

import fnmatch
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

from smithers import Backoff, Parallel, Sequence, Task, WorkflowContext, workflow

DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".smithers",
    "__pycache__",
    "node_modules",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
)
DEFAULT_REPORT = Path(".smithers") / "reports" / "repo_audit.md"
MAX_FILE_BYTES = 2 * 1024 * 1024
BINARY_SNIFF_BYTES = 8192
MAX_EXAMPLES = 5
ROOT_TASK_ID = "root-files"

LANGUAGES: dict[str, tuple[str, ...]] = {
    "Python": (".py", ".pyi", ".pyx"),
    "Markdown": (".md", ".markdown"),
    "TOML": (".toml",),
    "YAML": (".yml", ".yaml"),
    "JSON": (".json", ".jsonl"),
    "Shell": (".sh", ".bash", ".zsh"),
    "JavaScript/TypeScript": (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts"),
    "Rust": (".rs",),
    "Go": (".go",),
    "C/C++": (".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx"),
}
_LANGUAGE_BY_EXT = {ext: lang for lang, exts in LANGUAGES.items() for ext in exts}
_MARKER = re.compile(rb"\b(?:TODO|FIXME)\b")


# ---------------------------------------------------------------------------- schemas


class AuditInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    root: str = "."
    """Directory to audit."""
    report: str | None = None
    """Report path (default ``.smithers/reports/repo_audit.md`` under the cwd)."""
    exclude: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    """Glob patterns of file and folder names to skip, at any depth."""


class Scan(msgspec.Struct, kw_only=True):
    root: str
    """`root`, resolved to an absolute path."""
    folders: list[str]
    """Top-level folders not excluded, sorted."""
    root_files: int
    """Files directly in `root`, not excluded."""


class LangStats(msgspec.Struct, kw_only=True):
    files: int = 0
    lines: int = 0


class Skipped(msgspec.Struct, kw_only=True):
    binary: int = 0
    large: int = 0
    unreadable: int = 0

    @property
    def total(self) -> int:
        return self.binary + self.large + self.unreadable


class FolderStats(msgspec.Struct, kw_only=True):
    folder: str
    """Folder relative to root (``"."`` for the files directly in root)."""
    files: int = 0
    lines: int = 0
    languages: dict[str, LangStats] = msgspec.field(default_factory=dict)
    todos: int = 0
    todo_examples: list[str] = msgspec.field(default_factory=list)
    """Up to five ``path:line`` locations, relative to root."""
    skipped: Skipped = msgspec.field(default_factory=Skipped)


class Output(msgspec.Struct, kw_only=True):
    report_path: str
    files: int
    lines: int
    todos: int
    skipped: int


# ---------------------------------------------------------------------------- file-system work


def _excluded(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _top_level(base: Path, exclude: list[str]) -> tuple[list[str], list[str]]:
    """Return the sorted (folders, files) directly in `base`, minus excluded names.

    Symlinks to folders are left out, as `os.walk` does not descend into them either.
    """
    folders: list[str] = []
    files: list[str] = []
    with os.scandir(base) as entries:
        for entry in entries:
            if _excluded(entry.name, exclude):
                continue
            try:
                is_dir = entry.is_dir()
                is_link = entry.is_symlink()
            except OSError:
                is_dir = is_link = False
            if not is_dir:
                files.append(entry.name)
            elif not is_link:
                folders.append(entry.name)
    return sorted(folders), sorted(files)


def scan_root(root: str, exclude: list[str]) -> Scan:
    """List the top-level folders of `root` and count the files directly in it."""
    base = Path(root).resolve()
    folders, files = _top_level(base, exclude)
    return Scan(root=str(base), folders=folders, root_files=len(files))


def language_of(path: str) -> str:
    """Return the language of `path` by its extension (``"other"`` if unknown)."""
    return _LANGUAGE_BY_EXT.get(os.path.splitext(path)[1].lower(), "other")


def _count_file(path: Path, rel: str, stats: FolderStats) -> None:
    stats.files += 1
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            stats.skipped.large += 1
            return
        data = path.read_bytes()
    except OSError:
        stats.skipped.unreadable += 1
        return
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        stats.skipped.binary += 1
        return
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    stats.lines += lines
    lang = stats.languages.setdefault(language_of(rel), LangStats())
    lang.files += 1
    lang.lines += lines
    if _MARKER.search(data) is None:
        return
    for lineno, line in enumerate(data.splitlines(), start=1):
        if _MARKER.search(line):
            stats.todos += 1
            if len(stats.todo_examples) < MAX_EXAMPLES:
                stats.todo_examples.append(f"{rel}:{lineno}")


def count_folder(root: str, folder: str, exclude: list[str]) -> FolderStats:
    """Count files, lines per language and TODO/FIXME lines under `root`/`folder`.

    With `folder` ``"."``, only the files directly in `root` are counted.
    """
    base = Path(root)
    stats = FolderStats(folder=folder)
    if folder == ".":
        for name in _top_level(base, exclude)[1]:
            _count_file(base / name, name, stats)
        return stats

    def on_error(err: OSError) -> None:
        stats.skipped.unreadable += 1  # an unreadable folder

    for dirpath, dirnames, filenames in os.walk(base / folder, onerror=on_error):
        dirnames[:] = sorted(d for d in dirnames if not _excluded(d, exclude))
        for name in sorted(filenames):
            if _excluded(name, exclude):
                continue
            path = Path(dirpath) / name
            _count_file(path, path.relative_to(base).as_posix(), stats)
    return stats


# ---------------------------------------------------------------------------- the report


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_report(root: str, stats: list[FolderStats]) -> str:
    """Return the Markdown report for the per-folder `stats`."""
    files = sum(s.files for s in stats)
    lines = sum(s.lines for s in stats)
    todos = sum(s.todos for s in stats)
    skipped = Skipped(
        binary=sum(s.skipped.binary for s in stats),
        large=sum(s.skipped.large for s in stats),
        unreadable=sum(s.skipped.unreadable for s in stats),
    )
    languages: dict[str, LangStats] = {}
    for s in stats:
        for name, lang in s.languages.items():
            total = languages.setdefault(name, LangStats())
            total.files += lang.files
            total.lines += lang.lines

    out = [
        "# Repository audit",
        "",
        f"Root: `{root}`",
        "",
        "## Totals",
        "",
        f"- Files: {files}",
        f"- Lines: {lines}",
        f"- TODO/FIXME lines: {todos}",
        f"- Skipped: {skipped.total} ({skipped.binary} binary, {skipped.large} over 2 MB, "
        f"{skipped.unreadable} unreadable)",
        "",
        "## Per folder",
        "",
        "| Folder | Files | Lines | TODO/FIXME | Skipped |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for s in stats:
        folder = "(files in root)" if s.folder == "." else _cell(s.folder)
        out.append(f"| {folder} | {s.files} | {s.lines} | {s.todos} | {s.skipped.total} |")
    out += ["", "## Per language", "", "| Language | Files | Lines |", "| --- | ---: | ---: |"]
    for name, lang in sorted(languages.items(), key=lambda kv: (-kv[1].lines, kv[0])):
        out.append(f"| {_cell(name)} | {lang.files} | {lang.lines} |")
    out += ["", "## TODO/FIXME", ""]
    examples = [e for s in stats for e in s.todo_examples]
    if examples:
        out += [f"- `{e}`" for e in examples]
        if len(examples) < todos:
            out.append(f"- ... and {todos - len(examples)} more (at most 5 listed per folder)")
    else:
        out.append("None found.")
    return "\n".join(out) + "\n"


def write_report(report: str | None, root: str, stats: list[FolderStats]) -> Output:
    """Write the report to `report` (or the default path) and return the totals."""
    path = Path(report) if report else DEFAULT_REPORT
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(root, stats), encoding="utf-8")
    return Output(
        report_path=str(path),
        files=sum(s.files for s in stats),
        lines=sum(s.lines for s in stats),
        todos=sum(s.todos for s in stats),
        skipped=sum(s.skipped.total for s in stats),
    )


# ---------------------------------------------------------------------------- the workflow


def task_ids(folders: list[str]) -> dict[str, str]:
    """Map each folder to a unique, sanitised ``count-<folder>`` task id."""
    ids: dict[str, str] = {}
    used = {ROOT_TASK_ID}
    for folder in folders:
        base = "count-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", folder).strip("-") or "folder")
        tid, n = base, 1
        while tid in used:
            n += 1
            tid = f"{base}-{n}"
        used.add(tid)
        ids[folder] = tid
    return ids


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


@workflow(name="repo-audit", input=AuditInput)
def repo_audit(ctx: WorkflowContext) -> Sequence:
    inp: AuditInput = ctx.input
    scan = ctx.output_maybe(Scan, "scan")
    steps: list[Any] = [
        Task("scan", output=Scan, run=_bind(scan_root, inp.root, inp.exclude), label="List folders")
    ]
    if scan is None:
        return Sequence(*steps)

    ids = task_ids(scan.folders)
    if scan.root_files:
        ids["."] = ROOT_TASK_ID
    steps.append(
        Parallel(
            *(
                Task(
                    tid,
                    output=FolderStats,
                    run=_bind(count_folder, scan.root, folder, inp.exclude),
                    label=f"Count {folder}",
                    retries=1,
                    backoff=Backoff(kind="fixed", initial_ms=0),
                    timeout_ms=600_000,
                )
                for folder, tid in ids.items()
            )
        )
    )
    counts = [ctx.output_maybe(FolderStats, tid) for tid in ids.values()]
    done = [c for c in counts if c is not None]
    if len(done) == len(counts):
        steps.append(
            Task(
                "output",
                output=Output,
                run=_bind(write_report, inp.report, scan.root, done),
                label="Write report",
            )
        )
    return Sequence(*steps)
