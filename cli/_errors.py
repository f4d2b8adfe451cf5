"""One error handler for every command: ``Error [CODE]: summary`` and exit codes (DESIGN §9).

Exit codes: 0 ok, 1 run failed (or an operational error), 2 cancelled, 3 waiting,
4 bad arguments or input, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
Tracebacks only with ``SMITHERS_DEBUG=1``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import IO, Any

import click
from smithers.eventstore import SmithersError

from ._text import safe

__all__ = (
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "SmithersGroup",
    "UsageError",
    "echo_error",
    "exit_code_for_error",
    "exit_code_for_status",
    "usage_error",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 2
EXIT_WAITING = 3
EXIT_USAGE = 4
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

USAGE_ERROR_CODES: frozenset[str] = frozenset(
    {
        "AMBIGUOUS_APPROVAL",
        "APPROVAL_ALREADY_DECIDED",
        "CLI_DB_NOT_FOUND",
        "DUPLICATE_ID",
        "INVALID_EVENTS_OPTIONS",
        "INVALID_INPUT",
        "MISSING_INPUT",
        "MISSING_OUTPUT",
        "NESTED_LOOP",
        "NO_PENDING_APPROVALS",
        "NODE_NOT_FOUND",
        "RESUME_FRAME_MISMATCH",
        "RESUME_METADATA_MISMATCH",
        "RUN_ALREADY_EXISTS",
        "RUN_NOT_FOUND",
        "RUN_NOT_RESUMABLE",
        "RUN_OWNER_ALIVE",
        "RUN_STILL_RUNNING",
        "SNAPSHOT_NOT_FOUND",
        "TASK_HIJACK_UNSUPPORTED",
        "TASK_ID_REQUIRED",
        "TASK_MISSING_OUTPUT",
        "WORKFLOW_MISSING_DEFAULT",
    }
)
"""Codes that mean the command was asked for something wrong or missing: exit 4."""


def exit_code_for_error(code: str) -> int:
    """Return the exit code of a command that stopped on an error with `code`."""
    return EXIT_USAGE if code in USAGE_ERROR_CODES else EXIT_FAILED


def exit_code_for_status(status: str) -> int:
    """Return the exit code of ``up`` for a run that ended with `status`."""
    if status in ("finished", "continued"):
        return EXIT_OK
    if status == "cancelled":
        return EXIT_CANCELLED
    if status.startswith("waiting"):
        return EXIT_WAITING
    return EXIT_FAILED


def debug_enabled() -> bool:
    """Return True when ``SMITHERS_DEBUG`` asks for tracebacks."""
    return os.environ.get("SMITHERS_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def echo_error(code: str, summary: str, *next_steps: str | None) -> None:
    r"""Print ``Error [CODE]: summary`` and the non-empty next-step lines on stderr.

    Through `safe`: the summary is one line (a newline in it is shown as ``\n``), the
    next steps may span lines; no control character reaches the terminal raw.
    """
    click.secho(f"Error [{safe(code)}]: {safe(summary)}", err=True, fg="red")
    for line in next_steps:
        if line:
            click.echo(safe(line, multiline=True), err=True)


def _unwrap(exc: BaseException) -> BaseException:
    """Return the single error inside (nested) one-error exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def report_exception(exc: BaseException) -> int:
    """Print an exception the user's way and return the exit code for it."""
    err = _unwrap(exc)
    if debug_enabled():
        traceback.print_exception(exc)
    if isinstance(err, BrokenPipeError):
        # The reader went away (`smithers logs RUN | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    if isinstance(err, KeyboardInterrupt):
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    if isinstance(err, SmithersError):
        echo_error(err.code, err.summary, err.hint)
        return exit_code_for_error(err.code)
    if isinstance(exc, BaseExceptionGroup):
        summary = "; ".join(f"{type(e).__name__}: {e}" for e in exc.exceptions)
    else:
        summary = f"{type(err).__name__}: {err}"
    echo_error(
        "INTERNAL_ERROR",
        summary,
        None if debug_enabled() else "Set SMITHERS_DEBUG=1 for a traceback.",
    )
    return EXIT_FAILED


class UsageError(click.UsageError):
    """A usage error (click's) printed as every error is: ``Error [INVALID_INPUT]: …``.

    The line carries click's own message (``No such option: --bogus``, ``Invalid
    value for '--limit': …``); the command's usage line and ``Try '… --help' for
    help.`` follow as the next step. Exit code 4 (`EXIT_USAGE`).
    """

    exit_code = EXIT_USAGE

    def __init__(self, error: click.UsageError) -> None:
        """Wrap click's `error`, keeping its message and context."""
        super().__init__(error.format_message(), error.ctx)

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``Error [INVALID_INPUT]: message``, then the usage and the help hint."""
        out = file if file is not None else sys.stderr
        ctx = self.ctx
        color = ctx.color if ctx is not None else None
        message = safe(self.format_message())
        click.secho(f"Error [INVALID_INPUT]: {message}", file=out, fg="red")
        if ctx is None:
            return
        click.echo(safe(ctx.get_usage(), multiline=True), file=out, color=color)
        if ctx.command.get_help_option(ctx) is not None:
            option = max(ctx.command.get_help_option_names(ctx), key=len)
            hint = safe(f"Try '{ctx.command_path} {option}' for help.")
            click.echo(hint, file=out, color=color)


def usage_error(error: click.UsageError) -> click.UsageError:
    """Return `error` as a `UsageError` printed the ``Error [INVALID_INPUT]`` way, exit 4.

    ``smithers`` without a command (click's "no args is help") keeps printing the
    help, exiting 4 too.
    """
    if isinstance(error, click.exceptions.NoArgsIsHelpError | UsageError):
        error.exit_code = EXIT_USAGE  # type: ignore[misc]  # click types it a ClassVar
        return error
    return UsageError(error)


class SmithersGroup(click.Group):
    """A click group whose commands report errors as ``Error [CODE]: …`` with our exit codes.

    Usage errors print ``Error [INVALID_INPUT]: <click's message>``, the usage line
    and the help hint, and exit 4 (DESIGN §9: bad arguments); a
    `SmithersError` prints its code, summary and hint; anything else is an
    ``INTERNAL_ERROR``. No traceback unless ``SMITHERS_DEBUG=1``.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """Parse the group's own options; usage errors exit 4."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            raise usage_error(e) from None

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand, turning every error into a message and an exit code."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except click.UsageError as e:
            raise usage_error(e) from None
        except click.ClickException:
            raise
        except BaseException as e:  # the one place that reports everything
            raise click.exceptions.Exit(report_exception(e)) from None
