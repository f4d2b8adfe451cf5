"""`shell_command`: a suggested ``smithers …`` command that is safe to paste into a shell.

Hints name commands to run next (``smithers up --resume RUN``). The run ids, node ids
and paths in them come from users and workflows, so every word is quoted for a POSIX
shell (`shlex.quote`); an option value starting with ``-`` is written ``--opt=VALUE``,
and a positional starting with ``-`` comes last, after the options and ``--``, so the
command line never reads a value as an option. Pasted into ``sh -c``, the command
gets exactly the words it was built from.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("shell_command",)


def shell_command(
    *command: str,
    args: Sequence[str] = (),
    options: Sequence[tuple[str, str | None]] = (),
) -> str:
    """Return a ``smithers`` command line, each word quoted for a POSIX shell.

    The words are ``smithers``, `command`, then the positionals (`args`) and the
    `options`, in that order; when a positional starts with ``-``, the options come
    first and ``--`` goes before the positionals (click reads nothing after ``--`` as
    an option, so no option may follow it).

    Args:
        *command: The subcommand words, ours (``"inspect"``, ``"up"``).
        args: The positionals (a run id, a node id), from users: any text.
        options: ``(name, value)`` pairs, e.g. ``("--db", path)``; value None for a
            flag. A value starting with ``-`` is joined as ``--name=value``.

    Returns:
        One line, e.g. ``smithers inspect 'run 1'`` or ``smithers inspect -- -x``.

    Example:
        >>> shell_command("approve", args=["r1"], options=[("--node", "a b")])
        "smithers approve r1 --node 'a b'"
        >>> shell_command("approve", args=["-r1"], options=[("--node", "-n")])
        'smithers approve --node=-n -- -r1'
    """
    opts: list[str] = []
    for name, value in options:
        if value is None:
            opts.append(name)
        elif value.startswith("-"):
            opts.append(f"{name}={value}")
        else:
            opts += [name, value]
    if any(a.startswith("-") for a in args):
        words = ["smithers", *command, *opts, "--", *args]
    else:
        words = ["smithers", *command, *args, *opts]
    return " ".join(shlex.quote(w) for w in words)
