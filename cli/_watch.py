"""``--watch`` of the read commands: show a view again each time it changes.

`watch_view` polls a read every ``--interval`` and prints the view when it differs
from the last one shown: on a terminal the screen is cleared and redrawn under a
one-line header; otherwise (a pipe, a file) each new view follows the last, after a
blank line, so ``smithers ps --watch --json`` is one JSON document per line. It
returns when ``done`` says the view is final (a run that ended); Ctrl-C (SIGINT)
stops it otherwise, and the command exits 130 like every interrupted command.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from ._options import parse_duration_ms
from ._output import stdout_is_tty
from ._text import echo

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("DEFAULT_INTERVAL", "flush_stdout", "interval_option", "interval_s", "watch_view")

_T = TypeVar("_T")

DEFAULT_INTERVAL = "2s"
"""How often ``--watch`` reads again unless ``--interval`` says otherwise."""

interval_option = click.option(
    "--interval",
    default=DEFAULT_INTERVAL,
    show_default=True,
    metavar="DURATION",
    help="With --watch: how often to read again (e.g. 2s, 500ms).",
)


def interval_s(text: str) -> float:
    """Return ``--interval`` in seconds.

    Raises:
        click.BadParameter: if `text` is not a positive duration (a usage error, exit 4).
    """
    return parse_duration_ms(text, "--interval") / 1000


def flush_stdout() -> None:
    """Flush stdout, so a reader of a pipe sees each view as soon as it is printed."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()


async def watch_view(
    read: Callable[[], Awaitable[_T]],
    show: Callable[[_T], None],
    *,
    title: str,
    every_s: float,
    key: Callable[[_T], Any],
    done: Callable[[_T], bool] | None = None,
    separate: bool = True,
) -> _T:
    """Print ``show(read())`` now and again each time ``key`` of a new read changes.

    Args:
        read: Reads the current value (awaits I/O).
        show: Prints a value.
        title: The command, shown in the header on a terminal (``smithers ps``).
        every_s: Seconds between reads.
        key: What is compared to decide whether the view changed.
        done: True for a value after which nothing changes (the run ended): the
            view is shown and the call returns. None: watch until interrupted.
        separate: Off a terminal, print a blank line between views (not for JSON,
            one document per line).

    Returns:
        The last value read (when `done` said so).

    Raises:
        Whatever `read` raises; KeyboardInterrupt (Ctrl-C) propagates.
    """
    tty = stdout_is_tty()
    shown = False
    last: Any = None
    while True:
        value = await read()
        now = key(value)
        if not shown or now != last:
            if tty:
                click.clear()
                clock = time.strftime("%H:%M:%S")
                echo(f"Every {every_s:g}s: {title}  ({clock}; Ctrl-C to stop)\n", multiline=True)
            elif shown and separate:
                echo()
            show(value)
            flush_stdout()
            shown, last = True, now
        if done is not None and done(value):
            return value
        await anyio.sleep(every_s)
