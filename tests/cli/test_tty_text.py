"""Terminal output is text, not markup (issue 8, item 6): every command on a real TTY.

Each command runs as ``python -m smithers`` with its stdout on a pseudo-terminal, so it
takes its terminal path (rich tables, trees, the live progress line). User text (node
ids, labels, workflow names, error messages, outputs, branch labels) is full of rich
markup, ``[/]`` among it: once that crashed ``timeline --tree`` with ``MarkupError``
and made bracketed labels vanish. Now every string shows verbatim.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time
from typing import TYPE_CHECKING, NamedTuple

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")

HOSTILE = "[/] [bold]x[/bold] [link=https://example.invalid]y[/link] :smile:"
"""Markup a console would parse: a bare closing tag, a style, a hyperlink, an emoji code."""
NODES = ("[bold]n[/bold]", "[/]", "boom[/]")
LABELS = ("[/]", "[bold]x[/bold]", "[link=https://example.invalid]z[/link]")
FLOW = f"""
    from smithers import Sequence, Task, workflow

    HOSTILE = {HOSTILE!r}

    def boom():
        raise ValueError("bad " + HOSTILE)

    @workflow("[bold]wf[/bold]")
    def hostile(ctx):
        return Sequence(
            Task({NODES[0]!r}, output=dict, value={{"v": HOSTILE}}, label="[red]lab[/red]"),
            Task({NODES[1]!r}, output=dict, value={{"v": HOSTILE}}),
            Task({NODES[2]!r}, output=dict, run=boom),
        )
"""
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Shown(NamedTuple):
    """What a command showed: its exit code, its terminal text (no colours), its stderr."""

    code: int
    raw: str
    text: str
    err: str


def on_tty(cwd: Path, *args: str) -> Shown:
    """Run ``python -m smithers ARGS`` with stdout on a 200-column pseudo-terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    drop = ("SMITHERS_DB", "SMITHERS_DEBUG", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer closed it
                break
            if not chunk:
                break
            out += chunk
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:  # pragma: no cover - only when the test failed
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            if proc.stderr is not None:
                proc.stderr.close()
    raw = out.decode(errors="replace")
    return Shown(code, raw, _CSI.sub("", raw).replace("\r", ""), err)


def clean(shown: Shown) -> None:
    """No markup crash, no internal error, no hyperlink or emoji made from user text."""
    assert "MarkupError" not in shown.err, shown.err
    assert "INTERNAL_ERROR" not in shown.err, shown.err
    assert "Traceback" not in shown.err, shown.err
    assert "\x1b]8;" not in shown.raw  # an OSC 8 hyperlink
    assert "\N{SMILING FACE WITH SMILING EYES}" not in shown.text
    assert "\N{GRINNING FACE}" not in shown.text


class Hostile(NamedTuple):
    """A database with a failed run full of markup, and two labelled forks of it."""

    root: Path
    db: str
    up: Shown


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    root = tmp_path_factory.mktemp("tty")
    (root / "hostile.py").write_text(textwrap.dedent(FLOW), encoding="utf-8")
    db = str(root / ".smithers" / "smithers.db")
    up = on_tty(root, "up", "hostile.py", "--run-id", "h1", "--input", '{"k": "[/]"}', "--db", db)
    for child, label in (("h2", LABELS[0]), ("h3", LABELS[1])):
        fork = on_tty(root, "fork", "h1", "--frame", "1", "--label", label, "--run-id", child)
        assert fork.code == 0, fork.err
    return Hostile(root, db, up)


def test_up_shows_node_ids_and_the_error_verbatim(hostile: Hostile) -> None:
    up = hostile.up
    clean(up)
    assert up.code == 1
    assert "\x1b[" in up.raw  # really the terminal path: styled
    for node in NODES:
        assert node in up.text
    assert f"ValueError: bad {HOSTILE}" in up.text
    assert f"ValueError: bad {HOSTILE}" in up.err


def test_timeline_tree_shows_fork_labels_verbatim(hostile: Hostile) -> None:
    shown = on_tty(hostile.root, "timeline", "h1", "--tree", "--db", hostile.db)
    clean(shown)
    assert shown.code == 0
    assert "\x1b[1m" in shown.raw  # the rich tree, in bold
    assert f"fork of h1 at frame 1 [{LABELS[0]}]" in shown.text
    assert f"fork of h1 at frame 1 [{LABELS[1]}]" in shown.text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("ps",), ["[bold]wf[/bold]"]),
        (("inspect", "h1"), ["[bold]wf[/bold]", *NODES, '{"k":"[/]"}', "ValueError: bad [/]"]),
        (("events", "h1"), [*NODES, "label=[red]lab[/red]", HOSTILE]),
        (("events", "h1", "--node", "boom[/]"), ["boom[/]", HOSTILE]),
        (("logs", "h1"), [NODES[0], HOSTILE]),
        (("output", "h1", "[/]"), [HOSTILE]),
        (("timeline", "h1"), [f"Fork h2 (pending) at frame 1 [{LABELS[0]}]", LABELS[1]]),
        (("timeline", "h2"), [f"fork of h1 at frame 1 [{LABELS[0]}]"]),
        (("state", "h1", "--frame", "1"), [*NODES, "'[red]lab[/red]'"]),
        (("graph", "hostile.py"), [*NODES, "'[red]lab[/red]'"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_read_commands_show_user_text_verbatim(
    hostile: Hostile, args: tuple[str, ...], expected: list[str]
) -> None:
    db = () if args[0] == "graph" else ("--db", hostile.db)
    shown = on_tty(hostile.root, *args, *db)
    clean(shown)
    assert shown.code == 0, shown.err
    for text in expected:
        assert text in shown.text, text


def test_write_commands_show_user_text_verbatim(hostile: Hostile) -> None:
    """Commands that change runs: on copies of the run, so the read tests see it unchanged."""
    root, db = hostile.root, hostile.db
    replay = on_tty(
        root, "replay", "h1", "--frame", "0", "--label", LABELS[2], "--run-id", "r1", "--db", db
    )
    clean(replay)
    assert replay.code == 1  # boom[/] fails again
    assert "boom[/]" in replay.text
    assert f"ValueError: bad {HOSTILE}" in replay.err

    fork = on_tty(root, "fork", "h1", "--frame", "1", "--label", "[/]", "--run-id", "w1")
    clean(fork)
    assert fork.code == 0
    rewind = on_tty(root, "rewind", "w1", "--frame", "1", "--yes", "--db", db)
    clean(rewind)
    retry = on_tty(root, "retry-task", "r1", "--node", "boom[/]", "--db", db)
    clean(retry)
    assert retry.code == 1
    assert "boom[/]" in retry.text
    cancel = on_tty(root, "cancel", "w1", "--db", db)
    clean(cancel)
    assert cancel.code == 0, cancel.err

    tree = on_tty(root, "timeline", "h1", "--tree", "--db", db)
    clean(tree)
    assert f"replay of h1 at frame 0 [{LABELS[2]}]" in tree.text
