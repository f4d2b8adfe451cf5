"""Filesystem tools stay inside root_dir: `..`, absolute paths and symlinks are refused."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from smithers.engine.tools import (
    ToolContext,
    ToolPathEscapeError,
    ToolPathInvalidError,
    bash,
    edit,
    grep,
    read,
    write,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("top secret\n")
    return secret


@pytest.mark.parametrize("path", ["../outside/secret.txt", "a/../../outside/secret.txt"])
async def test_dot_dot_out_of_the_root_is_refused(ctx: ToolContext, path: str) -> None:
    with pytest.raises(ToolPathEscapeError, match="outside the sandbox root") as info:
        await read(ctx, path=path)
    assert info.value.code == "TOOL_PATH_ESCAPE"


async def test_dot_dot_that_stays_inside_is_fine(ctx: ToolContext, root: Path) -> None:
    (root / "a").mkdir()
    (root / "b.txt").write_text("bee\n")
    assert await read(ctx, path="a/../b.txt") == "bee\n"


async def test_absolute_path_outside_is_refused(ctx: ToolContext, outside: Path) -> None:
    with pytest.raises(ToolPathEscapeError):
        await read(ctx, path=str(outside))
    with pytest.raises(ToolPathEscapeError):
        await write(ctx, path=str(outside), content="pwned")
    assert outside.read_text() == "top secret\n"


async def test_absolute_path_inside_is_fine(ctx: ToolContext, root: Path) -> None:
    (root / "in.txt").write_text("ok")
    assert await read(ctx, path=str(root / "in.txt")) == "ok"


async def test_symlink_pointing_out_is_refused_for_every_tool(
    ctx: ToolContext, root: Path, outside: Path
) -> None:
    (root / "link.txt").symlink_to(outside)
    (root / "dir").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(ToolPathEscapeError):
        await read(ctx, path="link.txt")
    with pytest.raises(ToolPathEscapeError):
        await write(ctx, path="link.txt", content="pwned")
    with pytest.raises(ToolPathEscapeError):
        await write(ctx, path="dir/new.txt", content="pwned")
    with pytest.raises(ToolPathEscapeError):
        await edit(ctx, path="link.txt", patch="@@ -1 +1 @@\n-top secret\n+pwned\n")
    with pytest.raises(ToolPathEscapeError):
        await grep(ctx, pattern="secret", path="dir")
    with pytest.raises(ToolPathEscapeError):
        await bash(ctx, command=["cat", "secret.txt"], cwd="dir")
    assert outside.read_text() == "top secret\n"
    assert not (outside.parent / "new.txt").exists()


async def test_a_dangling_symlink_out_is_refused_on_write(
    ctx: ToolContext, root: Path, tmp_path: Path
) -> None:
    target = tmp_path / "outside-new.txt"
    (root / "dangling").symlink_to(target)
    with pytest.raises(ToolPathEscapeError):
        await write(ctx, path="dangling", content="pwned")
    assert not target.exists()


async def test_symlink_created_by_an_earlier_tool_call_is_refused(
    ctx: ToolContext, root: Path, outside: Path
) -> None:
    await bash(ctx, command=["ln", "-s", str(outside), "sneaky"])
    assert os.path.islink(root / "sneaky")
    with pytest.raises(ToolPathEscapeError):
        await read(ctx, path="sneaky")
    with pytest.raises(ToolPathEscapeError):
        await write(ctx, path="sneaky", content="pwned")
    assert outside.read_text() == "top secret\n"


async def test_grep_does_not_follow_symlinks_out(
    ctx: ToolContext, root: Path, outside: Path
) -> None:
    (root / "mine.txt").write_text("secret of my own\n")
    (root / "link.txt").symlink_to(outside)
    (root / "dir").symlink_to(outside.parent, target_is_directory=True)
    assert await grep(ctx, pattern="secret") == "mine.txt:1:secret of my own"


@pytest.mark.parametrize("path", [3, None, "", "a\x00b", ["a"]])
async def test_a_path_that_is_not_a_string_is_invalid(ctx: ToolContext, path: object) -> None:
    from smithers.engine.tools import READ, WRITE

    with pytest.raises(ToolPathInvalidError) as info:
        await READ.call(ctx, {"path": path})
    assert info.value.code == "TOOL_PATH_INVALID"
    with pytest.raises(ToolPathInvalidError):
        await WRITE.call(ctx, {"path": path, "content": "x"})


async def test_a_missing_file_is_an_invalid_path(ctx: ToolContext) -> None:
    with pytest.raises(ToolPathInvalidError, match="no such file"):
        await read(ctx, path="nope.txt")


def test_the_root_is_resolved(tmp_path: Path, root: Path) -> None:
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    assert ToolContext(tmp_path / "alias").root_dir == root.resolve()
    with pytest.raises(ToolPathInvalidError):
        ToolContext(tmp_path / "missing")
