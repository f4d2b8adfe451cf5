r"""Showing untrusted text on a terminal: `safe`, `echo` and JSON's control escapes.

Node ids, labels, workflow names, error messages and outputs come from workflows and
users. Everything the CLI prints for people goes through `safe` (here or via `echo`),
TTY or not, so no control character (C0, DEL, C1) reaches the terminal raw: no escape
sequence moves the cursor, clears the screen, sets the window title (OSC 0) or writes
the clipboard (OSC 52). JSON output is exact instead: `json_controls_escaped` writes
the few control characters JSON leaves raw as ``\u`` escapes.
"""

from __future__ import annotations

import click

__all__ = ("echo", "json_controls_escaped", "safe")

_NAMED_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_CONTROLS = (*range(0x20), 0x7F, *range(0x80, 0xA0))
_SURROGATES = range(0xD800, 0xE000)
_ONE_LINE: dict[int, str] = {
    **{c: _NAMED_ESCAPES.get(c, f"\\x{c:02x}") for c in _CONTROLS},
    **{c: f"\\u{c:04x}" for c in _SURROGATES},
}
_MULTI_LINE: dict[int, str] = {c: e for c, e in _ONE_LINE.items() if c not in (0x09, 0x0A)}
_JSON_EXTRA: dict[int, str] = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0), *_SURROGATES)}


def safe(text: object, *, multiline: bool = False) -> str:
    r"""Return `text` with every control character shown as a visible escape.

    C0 controls (U+0000-U+001F), DEL (U+007F) and C1 controls (U+0080-U+009F) become
    ``\xHH`` (ESC is the 4 characters ``\x1b``), except tab, newline and carriage
    return, shown as ``\t``, ``\n`` and ``\r``; a lone surrogate (not printable
    as UTF-8) becomes ``\udXXX``. So no escape sequence (CSI, OSC 0 titles, OSC 52
    clipboard writes) reaches the terminal, whatever the string. A backslash is left
    as it is: ``\x1b`` in the output may also have been those 4 characters.

    Args:
        text: What to show (anything: `str` of it is used).
        multiline: Keep newlines and tabs as they are (a traceback, an output shown
            on several lines); False (default) for a one-line field.

    Returns:
        The text, without any control character but (with `multiline`) ``\n``/``\t``.
    """
    return str(text).translate(_MULTI_LINE if multiline else _ONE_LINE)


def echo(message: object = "", *, err: bool = False, multiline: bool = False) -> None:
    r"""Print a human line on stdout or stderr, through `safe`.

    The one way plain text reaches the terminal: `message` is passed through `safe`,
    then `click.echo`. One line by default: a newline inside (from a node id, a label,
    an error message) is shown as ``\n`` and cannot forge a line; `multiline` keeps
    newlines and tabs, for text that is several lines (a traceback, a log's tail).
    """
    click.echo(safe(message, multiline=multiline), err=err)


def json_controls_escaped(text: str) -> str:
    r"""Return JSON text with DEL, C1 controls and lone surrogates as ``\uXXXX`` escapes.

    `json.dumps` (``ensure_ascii=False``) and msgspec escape C0 controls but leave
    these raw. Outside strings JSON is ASCII, so each one is inside a string, where
    the escape decodes to the same character: the value is unchanged.
    """
    return text.translate(_JSON_EXTRA)
