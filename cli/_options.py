"""Options and argument parsing shared by the commands: ``--db``, ``--json``, durations."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from smithers.engine import EXISTING_RUN_HINT, resolve_actor, shell_command, validate_run_id
from smithers.eventstore import SmithersError, is_postgres_url, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from smithers.eventstore.events import Actor

__all__ = (
    "DURATION",
    "actor_options",
    "cli_actor",
    "LongNameOption",
    "UNIT_MS",
    "check_run_id",
    "command_line",
    "db_option",
    "json_option",
    "parse_duration_ms",
    "parse_input_json",
    "read_input_text",
)

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
"""A duration: a number and a unit (``250ms``, ``10s``, ``5m``, ``2h``, ``1d``)."""
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

db_option = click.option(
    "--db",
    metavar="PATH|URL",
    type=click.Path(dir_okay=False),
    help="Database file, or a postgresql:// URL (the PostgreSQL store). Default: "
    "$SMITHERS_DB, else the nearest .smithers/smithers.db walking up from the current "
    "directory.",
)
json_option = click.option(
    "-j", "--json", "as_json", is_flag=True, help="Print JSON instead of text."
)


def actor_options(*, by_help: str | None = None) -> Callable[[Any], Any]:
    """Add ``--by NAME`` and ``--reason TEXT`` (the audit trail's who and why) to a command.

    The command receives them as ``by`` and ``reason`` (None when not given) and builds
    the operation's actor with `cli_actor`.

    Args:
        by_help: The help of ``--by``, for a command where it means more (approve).

    Returns:
        A click decorator.
    """
    by = click.option(
        "--by",
        "by",
        metavar="NAME",
        help=by_help
        or "Who takes this operation (recorded). Default: $SMITHERS_ACTOR, else your OS user.",
    )
    why = click.option(
        "--reason", "reason", metavar="TEXT", help="Why; recorded with the operation."
    )

    def decorate(f: Any) -> Any:
        return by(why(f))

    return decorate


def cli_actor(by: str | None, reason: str | None) -> Actor:
    """Return the `Actor` of an operation a command takes now (interface ``"cli"``).

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` (exit 4) if `by` or `reason` is
            empty, too long or has control characters; call it before anything is
            opened or recorded.
    """
    return resolve_actor("cli", by=by, reason=reason)


class LongNameOption(click.Option):
    """An option whose usage errors name it by its long name only (``'--status'``).

    Click names an option with a short flag ``'-s' / '--status'``; the long name
    alone keeps messages as they were before the short flags.
    """

    def get_error_hint(self, ctx: click.Context | None) -> str:
        """Return the option's longest name, quoted, for click's error messages."""
        return f"'{max(self.opts, key=len)}'"


def check_run_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check a run id argument or option (``RUN``, ``--run-id``): click's callback.

    An invalid id raises ``INVALID_INPUT`` (exit 4) before anything is opened: ids
    name folders, so ``../x`` or ``a/b`` never reach the database or the file system.

    Returns:
        `value` (None when the option was not given).

    Raises:
        InvalidInputError: code ``INVALID_INPUT``, if `value` is not a valid run id
            (`validate_run_id`).
    """
    if value is None:
        return None
    if param.param_type_name == "argument" or param.name == "resume_id":
        return validate_run_id(value, what="run id", hint=EXISTING_RUN_HINT)
    return validate_run_id(value, what=max(param.opts, key=len))  # --run-id, not -r


def command_line(
    *command: str,
    args: Sequence[str] = (),
    options: Sequence[tuple[str, str | None]] = (),
    db: str | None = None,
) -> str:
    """Return a suggested ``smithers`` command, safe to paste into a POSIX shell.

    `shell_command` with ``--db PATH`` added to `options` when `db` is given: every
    word quoted; when a positional (`args`: run ids, node ids) starts with ``-``, it
    goes after the options and ``--``. E.g. ``command_line("inspect", args=[run_id],
    db=db)`` is ``smithers inspect r1 --db 'my db.sqlite'``, or for run ``-r1``
    ``smithers inspect --db 'my db.sqlite' -- -r1``. A PostgreSQL URL's password is
    shown as ``***`` (`redact_url`): printed commands never carry it.
    """
    if db and is_postgres_url(db):
        db = redact_url(db)
    with_db = [*options, ("--db", db)] if db else list(options)
    return shell_command(*command, args=args, options=with_db)


def parse_duration_ms(text: str, option: str) -> int:
    """Return a duration option (``10s``, ``500ms``, ``2m``; a bare number is seconds) in ms.

    Raises:
        click.BadParameter: if `text` is not a positive duration (a usage error, exit 4).
    """
    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        value += "s"
    m = DURATION.match(value)
    ms = int(float(m.group(1)) * UNIT_MS[m.group(2)]) if m else 0
    if ms <= 0:
        raise click.BadParameter(
            f"expected a positive duration such as 10s, 500ms or 2m, got {text!r}.",
            param_hint=option,
        )
    return ms


_INPUT_HINT = (
    "Pass a JSON object: --input '{\"start\": 5}', --input @input.json (a file) "
    "or --input - (standard input)."
)


def read_input_text(text: str) -> tuple[str, str]:
    """Return ``(JSON text, where it came from)`` for an ``--input`` value.

    ``@PATH`` reads the file at PATH (UTF-8), ``-`` reads standard input to its end,
    anything else is the JSON itself. The second item names the source for messages
    (``--input``, ``--input @input.json``, ``--input -``).

    Raises:
        SmithersError: code ``INVALID_INPUT`` if the file cannot be read or is not
            UTF-8.
    """
    if text == "-":
        return sys.stdin.read(), "--input -"
    if not text.startswith("@"):
        return text, "--input"
    path = text[1:]
    try:
        return Path(path).read_text(encoding="utf-8"), f"--input {text}"
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SmithersError(
            f"--input {text}: cannot read {path!r}: {reason}.",
            code="INVALID_INPUT",
            details={"input": text, "path": path},
            hint=_INPUT_HINT,
        ) from e


def parse_input_json(text: str | None) -> Any:
    """Parse ``--input``: a JSON object, or None when not given.

    The value is the JSON itself, ``@PATH`` (a file holding it) or ``-`` (standard
    input), as `read_input_text` reads them.

    Raises:
        SmithersError: code ``INVALID_INPUT`` if the file cannot be read, or the text
            is not valid JSON or not an object.
    """
    if text is None:
        return None
    body, source = read_input_text(text)
    try:
        value = json.loads(body)
    except json.JSONDecodeError as e:
        raise SmithersError(
            f"{source} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}).",
            code="INVALID_INPUT",
            details={"input": text},
            hint=_INPUT_HINT,
        ) from e
    if not isinstance(value, dict):
        raise SmithersError(
            f"{source} must be a JSON object, got {type(value).__name__}.",
            code="INVALID_INPUT",
            details={"input": text},
            hint=_INPUT_HINT,
        )
    return value
