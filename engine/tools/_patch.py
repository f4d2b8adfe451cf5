"""A small unified-diff applier for the `edit` tool (no library needed, no I/O)."""

from __future__ import annotations

import re

__all__ = ("PatchError", "apply_unified_diff")

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(ValueError):
    """A diff that does not parse or apply; `hunk` is 1-based (0: the whole patch)."""

    def __init__(self, hunk: int, reason: str) -> None:
        super().__init__(reason)
        self.hunk = hunk
        self.reason = reason


class _Hunk:
    __slots__ = ("new", "old", "old_start")

    def __init__(self, old_start: int) -> None:
        self.old_start = old_start
        self.old: list[str] = []
        self.new: list[str] = []


def _parse(patch: str) -> list[_Hunk]:
    hunks: list[_Hunk] = []
    current: _Hunk | None = None
    last: list[list[str]] = []
    for line in patch.splitlines(keepends=True):
        match = _HUNK.match(line)
        if match:
            current = _Hunk(int(match.group(1)))
            hunks.append(current)
            continue
        if current is None:
            continue  # headers (diff, index, ---, +++) before the first hunk
        body = line
        if line.startswith("\\"):  # "\ No newline at end of file": the previous line has none
            for lines in last:
                if lines and lines[-1].endswith("\n"):
                    lines[-1] = lines[-1][:-1]
            continue
        if line.startswith(("--- ", "+++ ")) and not current.old and not current.new:
            continue
        tag, text = body[:1], body[1:]
        if tag == "\n" or tag == "":  # a blank context line whose space was stripped
            tag, text = " ", "\n"
        if tag == " ":
            current.old.append(text)
            current.new.append(text)
            last = [current.old, current.new]
        elif tag == "-":
            current.old.append(text)
            last = [current.old]
        elif tag == "+":
            current.new.append(text)
            last = [current.new]
        elif line.startswith("diff "):
            current = None
        else:
            raise PatchError(len(hunks), f"unexpected line {line.rstrip()!r}")
    if not hunks:
        raise PatchError(0, "no hunk ('@@ -a,b +c,d @@') found in the patch")
    return hunks


def _find(lines: list[str], old: list[str], start: int, lowest: int) -> int | None:
    """Where `old` occurs in `lines` at or after `lowest`, nearest to `start`."""
    n = len(old)
    limit = len(lines) - n
    if limit < lowest:
        return None
    for distance in range(max(limit, start) + 1):
        for at in (start - distance, start + distance) if distance else (start,):
            if lowest <= at <= limit and lines[at : at + n] == old:
                return at
    return None


def apply_unified_diff(text: str, patch: str) -> tuple[str, int]:
    r"""Apply a unified diff to `text`.

    Hunks apply in order; each is found at its stated line or, if the file moved, at the
    nearest place where its context and removed lines match exactly (as ``patch`` does
    with an offset, without fuzz). File headers (``---``/``+++``) are ignored: the caller
    names the file. ``\\ No newline at end of file`` is honoured.

    Returns:
        ``(new_text, hunks_applied)``.

    Raises:
        PatchError: if the diff has no hunk, a line it cannot read, or a hunk that does
            not match the text.
    """
    hunks = _parse(patch)
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    cursor = 0
    for number, hunk in enumerate(hunks, 1):
        if not hunk.old:
            # Pure insertion: after line old_start (0 means at the top).
            at = min(max(hunk.old_start, 0), len(lines))
            if at < cursor:
                raise PatchError(number, "hunk overlaps the previous one")
        else:
            wanted = max(hunk.old_start - 1, 0)
            found = _find(lines, hunk.old, wanted, cursor)
            if found is None:
                # A last line without a newline in the file but with one in the diff.
                if lines and not lines[-1].endswith("\n"):
                    patched = [*lines[:-1], lines[-1] + "\n"]
                    found = _find(patched, hunk.old, wanted, cursor)
                    if found is not None:
                        lines = patched
                if found is None:
                    first = hunk.old[0].rstrip("\n")
                    raise PatchError(
                        number,
                        f"its context and removed lines (starting {first!r}) are not in the "
                        f"file at or after line {cursor + 1}",
                    )
            at = found
        out.extend(lines[cursor:at])
        out.extend(hunk.new)
        cursor = at + len(hunk.old)
    out.extend(lines[cursor:])
    return "".join(out), len(hunks)
