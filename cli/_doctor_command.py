"""``smithers doctor``: what this machine gives smithers-py (see `smithers.engine.diagnose`)."""

from __future__ import annotations

import msgspec
from smithers.engine import diagnose, diagnose_agents
from smithers.eventstore import resolve_db_path

from ._commands import main
from ._options import db_option, json_option
from ._output import echo_json, print_table
from ._text import echo

__all__ = ("agents", "doctor")

_STYLES = {"ok": "green", "warn": "yellow", "missing": "dim"}


@main.command()
@db_option
@json_option
def doctor(db: str | None, as_json: bool) -> None:
    """Check this machine: extras, tool sandbox, provider keys, database.

    \b
    Says which network enforcement the `bash` tool gets here ("namespace": an
    empty network namespace, or "blocklist": known network programs refused),
    which optional extras are installed (pip install 'smithers-py[ai]' for
    model agents), which provider API keys are set (never their values), and
    whether the database can be written. Changes nothing.
        smithers doctor
        smithers doctor --json
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    report = diagnose(resolve_db_path(db))
    if as_json:
        echo_json(msgspec.to_builtins(report))
        return
    echo(f"smithers-py {report.smithers_version} on Python {report.python}")
    echo(f"Network  bash tool: {report.network_mode}")
    echo()
    print_table(
        ("CHECK", "STATUS", "DETAIL"),
        ((c.name, c.status, c.detail) for c in report.checks),
        styles=("bold", None, ""),
    )
    hints = [(c.name, c.hint) for c in report.checks if c.hint and c.status != "ok"]
    if hints:
        echo()
        for name, hint in hints:
            echo(f"{name}: {hint}")


@main.command()
@json_option
def agents(as_json: bool) -> None:
    """List the agents this machine can run, and what each one is missing.

    \b
    Coding-agent CLIs (Claude Code, Codex, Gemini CLI): found on PATH, and the
    version they report. Model API agents (smithers.agents.openai/anthropic):
    whether the [ai] extra is installed. For each, which credential variables
    are set (never their values) and how to install it.
        smithers agents
        smithers agents --json
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    found = diagnose_agents()
    if as_json:
        echo_json([msgspec.to_builtins(a) for a in found])
        return
    print_table(
        ("AGENT", "KIND", "AVAILABLE", "VERSION", "KEYS SET"),
        (
            (
                a.name,
                a.kind,
                "yes" if a.available else f"no: {a.install}",
                a.version or "-",
                ", ".join(k for k, v in a.keys.items() if v) or "-",
            )
            for a in found
        ),
        styles=("bold", None, None, "", ""),
    )
