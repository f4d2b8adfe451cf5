"""`read`, `write`, `edit` (unified diffs) and `grep` inside the sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from smithers.engine.tools import (
    ToolContentTooLargeError,
    ToolContext,
    ToolFileTooLargeError,
    ToolGrepFailedError,
    ToolPatchFailedError,
    ToolPatchTooLargeError,
    apply_unified_diff,
    edit,
    grep,
    read,
    write,
)

if TYPE_CHECKING:
    from pathlib import Path

ORIGINAL = "".join(f"line {n}\n" for n in range(1, 21))


async def test_write_creates_folders_and_read_returns_the_text(
    ctx: ToolContext, root: Path
) -> None:
    assert await write(ctx, path="a/b/c.txt", content="héllo\n") == {
        "path": "a/b/c.txt",
        "bytesWritten": 7,
    }
    assert (root / "a/b/c.txt").read_text(encoding="utf-8") == "héllo\n"
    assert await read(ctx, path="a/b/c.txt") == "héllo\n"


async def test_read_output_is_capped(root: Path) -> None:
    (root / "big.txt").write_text("y" * 5000)
    ctx = ToolContext(root, max_output_bytes=100)
    text = await read(ctx, path="big.txt")
    assert text.startswith("y" * 100)
    assert "output truncated: 4900 more bytes" in text


async def test_size_limits(root: Path) -> None:
    ctx = ToolContext(root, max_file_bytes=10, max_content_bytes=10, max_patch_bytes=10)
    (root / "big.txt").write_text("z" * 11)
    with pytest.raises(ToolFileTooLargeError) as info:
        await read(ctx, path="big.txt")
    assert info.value.details == {"path": "big.txt", "sizeBytes": 11, "maxBytes": 10}
    with pytest.raises(ToolContentTooLargeError):
        await write(ctx, path="new.txt", content="z" * 11)
    assert not (root / "new.txt").exists()
    with pytest.raises(ToolPatchTooLargeError):
        await edit(ctx, path="big.txt", patch="@@ -1 +1 @@\n-zzzzzzzzzzz\n+a\n")
    (root / "small.txt").write_text("z\n")
    ctx2 = ToolContext(root, max_file_bytes=10)
    with pytest.raises(ToolFileTooLargeError):
        await edit(ctx2, path="big.txt", patch="@@ -1 +1 @@\n-zzzzzzzzzzz\n+a\n")


async def test_edit_applies_a_unified_diff(ctx: ToolContext, root: Path) -> None:
    (root / "f.txt").write_text(ORIGINAL)
    patch = (
        "--- a/f.txt\n+++ b/f.txt\n"
        "@@ -2,3 +2,3 @@\n line 2\n-line 3\n+LINE THREE\n line 4\n"
        "@@ -15,3 +15,4 @@\n line 15\n line 16\n+inserted\n line 17\n"
    )
    result = await edit(ctx, path="f.txt", patch=patch)
    assert result["hunksApplied"] == 2
    lines = (root / "f.txt").read_text().splitlines()
    assert lines[2] == "LINE THREE"
    assert lines[16] == "inserted"
    assert len(lines) == 21


async def test_edit_finds_a_hunk_that_moved(ctx: ToolContext, root: Path) -> None:
    (root / "f.txt").write_text("new first\nnew second\n" + ORIGINAL)
    await edit(ctx, path="f.txt", patch="@@ -5,1 +5,1 @@\n-line 5\n+five\n")
    assert (root / "f.txt").read_text().splitlines()[6] == "five"


async def test_a_diff_that_does_not_apply_leaves_the_file_unchanged(
    ctx: ToolContext, root: Path
) -> None:
    (root / "f.txt").write_text(ORIGINAL)
    patch = "@@ -1 +1 @@\n-line 1\n+one\n@@ -9 +9 @@\n-not there\n+nine\n"
    with pytest.raises(ToolPatchFailedError) as info:
        await edit(ctx, path="f.txt", patch=patch)
    assert info.value.code == "TOOL_PATCH_FAILED"
    assert info.value.details["hunk"] == 2
    assert (root / "f.txt").read_text() == ORIGINAL


async def test_a_patch_without_hunks_fails(ctx: ToolContext, root: Path) -> None:
    (root / "f.txt").write_text(ORIGINAL)
    with pytest.raises(ToolPatchFailedError, match="no hunk"):
        await edit(ctx, path="f.txt", patch="just some text\n")


async def test_edit_can_create_a_file_from_dev_null(ctx: ToolContext, root: Path) -> None:
    patch = "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1,2 @@\n+print('hi')\n+print('bye')\n"
    await edit(ctx, path="new.py", patch=patch)
    assert (root / "new.py").read_text() == "print('hi')\nprint('bye')\n"


@pytest.mark.parametrize(
    ("text", "patch", "expected"),
    [
        ("a\nb\n", "@@ -1,2 +1,2 @@\n a\n-b\n+c\n", "a\nc\n"),
        ("a\nb", "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n", "a\nc\n"),
        (
            "a\nb\n",
            "@@ -1,2 +1,2 @@\n a\n-b\n+c\n\\ No newline at end of file\n",
            "a\nc",
        ),
        ("a\n\nb\n", "@@ -1,3 +1,3 @@\n a\n\n-b\n+B\n", "a\n\nB\n"),
        ("a\nb\n", "@@ -1,0 +2,1 @@\n+inserted\n", "a\ninserted\nb\n"),
    ],
    ids=["replace", "old-no-newline", "new-no-newline", "blank-context", "insert"],
)
def test_apply_unified_diff_cases(text: str, patch: str, expected: str) -> None:
    assert apply_unified_diff(text, patch)[0] == expected


async def test_grep_finds_lines_with_paths_and_numbers(ctx: ToolContext, root: Path) -> None:
    (root / "src").mkdir()
    (root / "src/a.py").write_text("def alpha():\n    return 1\n")
    (root / "src/b.py").write_text("# nothing\ndef beta():\n")
    (root / ".git").mkdir()
    (root / ".git/config").write_text("def ignored\n")
    (root / "bin.dat").write_bytes(b"def \x00binary\n")
    assert await grep(ctx, pattern=r"^def \w+") == "src/a.py:1:def alpha():\nsrc/b.py:2:def beta():"
    assert await grep(ctx, pattern="ALPHA", ignore_case=True, path="src/a.py") == (
        "src/a.py:1:def alpha():"
    )
    assert await grep(ctx, pattern="nomatch") == ""


async def test_grep_with_a_bad_pattern_fails(ctx: ToolContext) -> None:
    with pytest.raises(ToolGrepFailedError) as info:
        await grep(ctx, pattern="(unclosed")
    assert info.value.code == "TOOL_GREP_FAILED"
