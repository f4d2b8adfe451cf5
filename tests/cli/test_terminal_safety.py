"""Hostile strings never drive the terminal; suggested commands paste safely (issue 15).

Item 1: node ids, labels, workflow names, error messages and outputs full of control
characters (CSI, OSC 0 window titles, OSC 52 clipboard writes, C1 controls, DEL) are
shown as visible escapes (``\\x1b``) by every command, piped or on a TTY, while
``--json`` output decodes to the exact original strings.

Item 5: every suggested ``smithers …`` command quotes run ids, node ids and paths for
the shell and puts ``--`` before a positional starting with ``-``: pasted into
``sh -c`` it gets exactly the words it names, and run for real it does what it says.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, NamedTuple

import pytest
from click.testing import CliRunner
from smithers.cli import main
from smithers.cli._output import dumps
from smithers.cli._text import safe
from smithers.engine import shell_command

if TYPE_CHECKING:
    from pathlib import Path

ERROR = "\x1b]52;c;ZXZpbA==\x07 boom \x1b[2J \x9b31m"
"""The task's error: an OSC 52 clipboard write, a clear-screen CSI, an 8-bit CSI."""
WORKFLOW = "wf\x1b]0;pwned title\x07"
NODE_OK = "ok\x1b[31m\x9b"
NODE_BOOM = "boom\x1b]0;t\x07\x7f"
NODE_LINES = "two\nFORGED line"
"""A node id with a newline: shown as ``\\n``, it cannot forge a line of output."""
LABEL = "lab\x1b]8;;https://example.invalid\x07y\x1b]8;;\x07 [bold]b[/bold] \r\x08\x85"
OUTPUT = {"s": "\x1b[2J\x9b\x7f\x00 [bold]x[/]", "k\x1b": "\x90q\x9c"}
TITLE = "Ship?\x1b]52;c;ZXZpbA==\x07"
GATE = "-g a'b\"$(touch pwned);x"
"""An approval node id: a leading dash, both quotes, a command substitution, a `;`."""
RUN_FAILED = "-h1"
RUN_GATE = "-g:1"
RUN_GATE2 = "-g:2"
SHELL_NODE = "-t a'b\"$(touch pwned);x & y \\"
"""A failing node id with no control character, but all of the shell's specials."""
RUN_SHELL = "-s:1"
"""Run ids allow letters, digits and ``-_.:``: a leading dash is the hostile part."""

FLOW = f"""
    from smithers import Approval, Sequence, Task, workflow

    def boom():
        raise RuntimeError({ERROR!r})

    @workflow({WORKFLOW!r})
    def hostile(ctx):
        return Sequence(
            Task({NODE_OK!r}, output=dict, value={OUTPUT!r}, label={LABEL!r}),
            Task({NODE_LINES!r}, output=dict, value={{}}, label="two\\nFORGED label"),
            Task({NODE_BOOM!r}, output=dict, run=boom, label={LABEL!r}),
        )

    @workflow("gate")
    def gate(ctx):
        return Sequence(Approval({GATE!r}, request={{"title": {TITLE!r}}}))

    @workflow("shellish")
    def shellish(ctx):
        return Sequence(Task({SHELL_NODE!r}, output=dict, run=boom))
"""

_ESC_VISIBLE = "\\x1b]52;c;ZXZpbA==\\x07 boom \\x1b[2J \\x9b31m"
"""How `ERROR` shows: every control character as its ``\\xHH`` escape."""


def controls(text: str, *, allow: str = "\n\t") -> list[str]:
    """The C0, DEL and C1 control characters in `text`, but those in `allow`."""
    return [
        c
        for c in text
        if (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) < 0xE000) and c not in allow
    ]


class Ran(NamedTuple):
    """What a command did: its exit code, its stdout and its stderr."""

    code: int
    stdout: str
    stderr: str


class Hostile(NamedTuple):
    """A database with failed runs and a run parked on an approval, all hostile."""

    root: Path
    db: str
    up_failed: Ran
    up_gate: Ran
    up_shell: Ran


def smithers(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smithers ARGS`` as a real process, stdout and stderr piped."""
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "SMITHERS_DEBUG")}
    return subprocess.run(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    root = tmp_path_factory.mktemp("hostile")
    (root / "hostile.py").write_text(textwrap.dedent(FLOW), encoding="utf-8")
    folder = root / "my runs $(touch pwned);'q'"
    folder.mkdir()
    db = str(folder / "s.db")
    h = Hostile(root, db, Ran(0, "", ""), Ran(0, "", ""), Ran(0, "", ""))
    up_failed = invoke(h, "up", "hostile.py:hostile", f"--run-id={RUN_FAILED}")
    assert up_failed.code == 1, up_failed.stderr
    up_gate = invoke(h, "up", "hostile.py:gate", f"--run-id={RUN_GATE}")
    assert up_gate.code == 3, up_gate.stderr
    up_shell = invoke(h, "up", "hostile.py:shellish", f"--run-id={RUN_SHELL}")
    assert up_shell.code == 1, up_shell.stderr
    return h._replace(up_failed=up_failed, up_gate=up_gate, up_shell=up_shell)


def invoke(h: Hostile, *args: str) -> Ran:
    """Run ``smithers COMMAND --db DB REST`` in-process: (exit code, stdout, stderr)."""
    old = os.getcwd()
    os.chdir(h.root)
    try:
        argv = [args[0], "--db", h.db, *args[1:]]
        result = CliRunner().invoke(main, argv, catch_exceptions=False)
    finally:
        os.chdir(old)
    return Ran(result.exit_code, result.stdout, result.stderr)


# ---------------------------------------------------------------------- safe


def test_safe_shows_every_control_character_as_a_visible_escape() -> None:
    for cp in (*range(0x20), 0x7F, *range(0x80, 0xA0)):
        shown = safe(f"a{chr(cp)}b")
        assert not controls(shown, allow=""), hex(cp)
        assert shown.startswith("a\\"), shown
        assert shown.endswith("b"), shown
    assert safe("\x1b]0;t\x07") == "\\x1b]0;t\\x07"
    assert safe("a\nb\tc\rd") == "a\\nb\\tc\\rd"  # a one-line field
    assert safe("a\nb\tc\rd", multiline=True) == "a\nb\tc\\rd"  # \r could overwrite a line
    assert safe("\ud800") == "\\ud800"  # a lone surrogate cannot even be encoded
    assert safe("é ✓ [bold]x[/]") == "é ✓ [bold]x[/]"  # text is text


def test_json_output_escapes_controls_and_decodes_to_the_original() -> None:
    value = {"k\x1b": ["\x00\x1b]52;c;x\x07", "\x7f\x85\x9b\x9f", "\ud800", "é"]}
    for pretty in (False, True):
        text = dumps(value, pretty=pretty)
        assert not controls(text, allow="\n" if pretty else ""), text
        assert json.loads(text) == value
    assert "é" in dumps(value)  # non-ASCII text stays readable


# ---------------------------------------------------------------------- item 1


def test_up_shows_the_hostile_run_escaped(hostile: Hostile) -> None:
    """`up`'s progress lines, summary and ``Error [CODE]`` line."""
    for proc in (hostile.up_failed, hostile.up_gate, hostile.up_shell):
        assert not controls(proc.stdout), proc.stdout
        assert not controls(proc.stderr), proc.stderr
    out, err = hostile.up_failed.stdout, hostile.up_failed.stderr
    assert f"failed    {safe(NODE_BOOM)} (attempt 1): RuntimeError: {_ESC_VISIBLE}" in out
    assert f"finished  {safe(NODE_OK)}" in out
    assert f"Error [WORKFLOW_EXECUTION_FAILED]: RuntimeError: {_ESC_VISIBLE}" in err
    assert safe(TITLE) in hostile.up_gate.stdout  # the approval's title, parked


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("ps",), [safe(WORKFLOW)]),
        (("inspect", "--", RUN_FAILED), [safe(WORKFLOW), safe(NODE_OK), _ESC_VISIBLE]),
        (("inspect", "--", RUN_GATE), [safe(GATE), safe(TITLE)]),
        (("events", "--", RUN_FAILED), [safe(NODE_BOOM), _ESC_VISIBLE, "label="]),
        (("logs", "--", RUN_FAILED), ['"label":"lab\\u001b]8;;']),
        (("node", "--", RUN_FAILED, NODE_BOOM), [safe(NODE_BOOM), _ESC_VISIBLE]),
        (("output", "--", RUN_FAILED, NODE_OK), ["\\u001b[2J\\u009b\\u007f\\u0000"]),
        (("timeline", "--", RUN_FAILED), [RUN_FAILED]),
        (("state", "--frame", "1", "--", RUN_FAILED), [safe(NODE_OK), safe(NODE_BOOM)]),
        (("diff", "--from", "0", "--to", "1", "--", RUN_FAILED), [safe(NODE_BOOM)]),
        (("verify", "--", RUN_FAILED), [safe(WORKFLOW)]),
        (("approvals",), [safe(GATE), safe(TITLE)]),
        (("graph", "hostile.py:hostile"), [safe(NODE_OK), safe(NODE_BOOM)]),
    ],
    ids=lambda v: v[0] if isinstance(v, tuple) else None,
)
def test_read_commands_show_control_characters_escaped(
    hostile: Hostile, args: tuple[str, ...], expected: list[str]
) -> None:
    if args[0] == "graph":
        old = os.getcwd()
        os.chdir(hostile.root)
        try:
            result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        finally:
            os.chdir(old)
        out, err = result.stdout, result.stderr
    else:
        _, out, err = invoke(hostile, *args)
    assert "INTERNAL_ERROR" not in err, err
    assert not controls(out), out
    assert not controls(err), err
    assert not re.search(r"^FORGED", out + err, re.M), out
    if args[0] in ("inspect", "events", "state") and RUN_FAILED in args:
        assert safe(NODE_LINES) in out  # two\nFORGED line, on one line
    for text in expected:
        assert text in out, (text, out)


def test_an_error_line_shows_a_hostile_argument_escaped(hostile: Hostile) -> None:
    """Error lines and click's usage errors quote what the user typed: escaped too."""
    code, _, err = invoke(hostile, "events", "--", RUN_FAILED, "--type", "No\x1b]0;t\x07de")
    assert code == 4
    assert "\\x1b]0;t\\x07" in err, err
    assert not controls(err), err
    code, _, err = invoke(hostile, "ps", "--bogus\x1b[2J\x9b")
    assert code == 4
    assert "--bogus\\x1b[2J\\x9b" in err, err
    assert not controls(err), err


def test_json_output_keeps_the_hostile_strings_exactly(hostile: Hostile) -> None:
    _, out, _ = invoke(hostile, "inspect", "--json", "--", RUN_FAILED)
    assert not controls(out), out
    body = json.loads(out)
    assert body["workflowName"] == WORKFLOW
    nodes = {n["nodeId"]: n for n in body["nodes"]}
    assert nodes[NODE_OK]["label"] == LABEL
    assert nodes[NODE_OK]["output"] == OUTPUT
    assert nodes[NODE_BOOM]["attempts"][0]["error"]["message"] == ERROR

    _, out, _ = invoke(hostile, "output", "--json", "--", RUN_FAILED, NODE_OK)
    assert json.loads(out) == OUTPUT
    for command in ("logs", "events"):
        extra = ("--json",) if command == "events" else ()
        _, out, _ = invoke(hostile, command, *extra, "--", RUN_FAILED)
        assert not controls(out), out
        events = [json.loads(line) for line in out.splitlines()]
        failed = [e for e in events if e["type"] == "NodeFailed"]
        assert failed[0]["nodeId"] == NODE_BOOM
        assert failed[0]["error"]["message"] == ERROR
    _, out, _ = invoke(hostile, "ps", "--json")
    assert WORKFLOW in {r["workflowName"] for r in json.loads(out)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ("up", "hostile.py:hostile", "--run-id=-p1"),
        ("inspect", "--", RUN_FAILED),
        ("events", "--", RUN_FAILED),
        ("ps",),
        ("logs", "--", RUN_GATE),
    ],
    ids=lambda v: v[0],
)
def test_read_commands_as_real_processes(hostile: Hostile, args: tuple[str, ...]) -> None:
    proc = smithers(hostile.root, args[0], "--db", hostile.db, *args[1:])
    assert proc.returncode == (1 if args[0] == "up" else 0), proc.stderr
    assert not controls(proc.stdout), proc.stdout
    assert not controls(proc.stderr), proc.stderr
    assert "\\x1b" in proc.stdout or "\\u001b" in proc.stdout  # shown, escaped
    if args[0] == "up":
        assert f"Error [WORKFLOW_EXECUTION_FAILED]: RuntimeError: {_ESC_VISIBLE}" in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
@pytest.mark.parametrize(
    "args",
    [
        ("up", "hostile.py:hostile", "--run-id", "t1"),
        ("inspect", "--", RUN_FAILED),
        ("events", "--", RUN_FAILED),
        ("ps",),
        ("state", "--frame", "1", "--", RUN_FAILED),
    ],
    ids=lambda v: v[0],
)
def test_on_a_terminal_no_hostile_sequence_gets_through(
    hostile: Hostile, args: tuple[str, ...]
) -> None:
    """The TTY path (rich tables, live status line) writes our own styles only."""
    raw = on_tty(hostile.root, args[0], "--db", hostile.db, *args[1:])
    assert "\x1b]" not in raw  # no OSC: no title, clipboard write or hyperlink
    assert "\x07" not in raw
    assert "\x1b[2J" not in raw
    assert not controls(raw, allow="\n\t\r\x1b"), repr(raw)
    ours = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # our styles, cursor moves
    assert "\x1b" not in ours
    assert "\\x1b" in ours  # the hostile ESC, shown


def on_tty(cwd: Path, *args: str) -> str:
    """Run ``python -m smithers ARGS`` with stdout and stderr on a pseudo-terminal."""
    import fcntl
    import select
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 300, 0, 0))
    drop = ("SMITHERS_DB", "SMITHERS_DEBUG", "NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "smithers", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    out = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30.0)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:  # pragma: no cover - only when the test failed
            proc.kill()
            proc.wait()
    return out.decode("utf-8", errors="surrogateescape")


# ---------------------------------------------------------------------- item 5


def argv_in_sh(command: str, cwd: Path) -> list[str]:
    """The words ``sh -c`` passes to ``smithers`` when `command` is pasted into it."""
    script = 'smithers() { printf "%s\\0" "$@"; }\n' + command
    proc = subprocess.run(
        ["sh", "-c", script], cwd=cwd, capture_output=True, timeout=30, check=True
    )
    return proc.stdout.decode().split("\0")[:-1]


def hints(text: str) -> list[str]:
    """Every suggested command in `text`: from ``smithers `` to the line's end or a backtick."""
    found = re.findall(r"`(smithers [^`]*)`", text)
    rest = re.sub(r"`smithers [^`]*`", "", text)
    found += [m.rstrip() for m in re.findall(r"(?:^|[ :])(smithers [^\n`]*)", rest)]
    return found


@pytest.mark.parametrize(
    ("command", "args", "options", "argv"),
    [
        ("inspect", ["-x"], [], ["inspect", "--", "-x"]),
        ("inspect", ["r1"], [("--db", "a b")], ["inspect", "r1", "--db", "a b"]),
        (
            "approve",
            ["-r"],
            [("--node", "-n"), ("--db", "-d b")],
            ["approve", "--node=-n", "--db=-d b", "--", "-r"],
        ),
        ("up", [], [("--resume", "-r")], ["up", "--resume=-r"]),
        ("ps", [], [("--all", None)], ["ps", "--all"]),
        (
            "events",
            ["r1"],
            [("--node", "a b'c\"$(touch pwned);`x` \\")],
            ["events", "r1", "--node", "a b'c\"$(touch pwned);`x` \\"],
        ),
        ("node", ["r1", "", "-"], [], ["node", "--", "r1", "", "-"]),
    ],
)
def test_shell_command_survives_sh(
    tmp_path: Path,
    command: str,
    args: list[str],
    options: list[tuple[str, str | None]],
    argv: list[str],
) -> None:
    """Unit: ``sh -c`` hands `shell_command`'s words back unchanged; nothing runs."""
    line = shell_command(command, args=args, options=options)
    assert argv_in_sh(line, tmp_path) == argv
    assert shlex.split(line) == ["smithers", *argv]
    assert not (tmp_path / "pwned").exists()


def paste(h: Hostile, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` as ``sh -c`` would, with ``smithers`` the real ``python -m smithers``."""
    script = f'smithers() {{ "{sys.executable}" -m smithers "$@"; }}\n{command}'
    env = {k: v for k, v in os.environ.items() if k not in ("SMITHERS_DB", "SMITHERS_DEBUG")}
    return subprocess.run(
        ["sh", "-c", script], cwd=h.root, env=env, capture_output=True, text=True, timeout=60
    )


def by_verb(text: str) -> dict[str, str]:
    """The suggested commands in `text`, by their subcommand (the last one wins)."""
    return {shlex.split(h)[1]: h for h in hints(text)}


def test_up_hints_paste_as_the_words_they_name(hostile: Hostile) -> None:
    """A failed run's ``inspect``, ``node`` and ``retry-task`` hints, through ``sh``."""
    up, db = hostile.up_shell, hostile.db
    shown = by_verb(up.stdout + up.stderr)
    assert argv_in_sh(shown["inspect"], hostile.root) == ["inspect", "--db", db, "--", RUN_SHELL]
    assert argv_in_sh(shown["node"], hostile.root) == [
        *("node", "--db", db, "--", RUN_SHELL, SHELL_NODE)
    ]
    assert argv_in_sh(shown["retry-task"], hostile.root) == [
        *("retry-task", f"--node={SHELL_NODE}", "--db", db, "--", RUN_SHELL)
    ]
    # A node id with control characters shows them escaped: visible, never pasted raw.
    shown = by_verb(hostile.up_failed.stderr)
    assert argv_in_sh(shown["node"], hostile.root)[-1] == safe(NODE_BOOM)
    assert not (hostile.root / "pwned").exists()


def test_fork_and_parked_run_hints_paste_as_the_words_they_name(hostile: Hostile) -> None:
    """``up --resume`` and ``inspect`` after a fork; ``approve``/``deny`` of a parked run."""
    fork = invoke(hostile, "fork", "--frame", "0", "--run-id=-f:1", "--", RUN_SHELL)
    assert fork.code == 0, fork.stderr
    shown = by_verb(fork.stdout)
    db = hostile.db
    assert argv_in_sh(shown["up"], hostile.root) == ["up", "--resume=-f:1", "--db", db]
    assert argv_in_sh(shown["inspect"], hostile.root) == ["inspect", "--db", db, "--", "-f:1"]

    shown = by_verb(hostile.up_gate.stdout)
    approve = ["approve", f"--node={GATE}", "--db", db, "--", RUN_GATE]
    assert argv_in_sh(shown["approve"], hostile.root) == approve
    assert argv_in_sh(shown["deny"], hostile.root) == ["deny", *approve[1:]]
    listed = {
        (a["runId"], a["nodeId"]): a
        for a in json.loads(invoke(hostile, "approvals", "--json").stdout)
    }
    assert listed[RUN_GATE, GATE]["approveCommand"] == shown["approve"]
    assert listed[RUN_GATE, GATE]["denyCommand"] == shown["deny"]
    assert not (hostile.root / "pwned").exists()


@pytest.mark.slow
def test_pasted_hints_do_what_they_say(hostile: Hostile) -> None:
    """Run for real: ``retry-task`` reruns the named node, ``approve`` decides the gate."""
    retry = by_verb(hostile.up_shell.stderr)["retry-task"]
    done = paste(hostile, retry)
    assert done.returncode == 1, done.stderr  # boom fails again
    assert f"Reset: {SHELL_NODE}." in done.stdout
    state = json.loads(invoke(hostile, "inspect", "--json", "--", RUN_SHELL).stdout)
    assert state["nodes"][0]["attemptCount"] == 2

    up = invoke(hostile, "up", "hostile.py:gate", f"--run-id={RUN_GATE2}")
    assert up.code == 3, up.stderr
    approve = by_verb(up.stdout)["approve"]
    # Options go before `--`, so --no-resume (no background process) goes after the verb.
    done = paste(hostile, approve.replace(" approve ", " approve --no-resume ", 1))
    assert done.returncode == 0, done.stderr
    state = json.loads(invoke(hostile, "inspect", "--json", "--", RUN_GATE2).stdout)
    assert state["nodes"][0]["approval"]["decision"] == "granted"
    seen = paste(hostile, by_verb(done.stdout)["inspect"])
    assert seen.returncode == 0, seen.stderr
    assert f"Run       {RUN_GATE2}" in seen.stdout
    assert not (hostile.root / "pwned").exists()
