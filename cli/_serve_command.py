"""``smithers serve``: the HTTP API (`smithers.server`, the optional ``[server]`` extra)."""

from __future__ import annotations

import os
from pathlib import Path

import click
from smithers.eventstore import SmithersError, resolve_db_path

from ._commands import main
from ._options import db_option

__all__ = ("serve",)

API_KEY_ENV = "SMITHERS_API_KEY"
"""Environment variable holding the API's auth token when --auth-token is not given."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=7331, show_default=True, help="TCP port."
)
@db_option
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True),
    default=".",
    show_default=True,
    help="Folder workflow files must lie under (symlinks resolved).",
)
@click.option(
    "--auth-token",
    metavar="T",
    help=f"Token every route but /health requires (Bearer or x-smithers-key). "
    f"Default: ${API_KEY_ENV}.",
)
def serve(host: str, port: int, db: str | None, root: str, auth_token: str | None) -> None:
    """Serve the HTTP API: start, watch and steer runs over HTTP.

    \b
    Listens on 127.0.0.1:7331 by default and refuses a non-loopback --host
    without a token. Runs started over HTTP run in this process; stopping the
    server (Ctrl-C, SIGTERM) leaves them for the next start, which resumes
    them. The routes are listed at GET /openapi.json.
        smithers serve
        smithers serve --root ./flows --port 8080
        SMITHERS_API_KEY=s3cret smithers serve --host 0.0.0.0
        curl localhost:7331/v1/runs
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    token = auth_token if auth_token is not None else os.environ.get(API_KEY_ENV) or None
    try:
        from smithers.server import ServerConfig, check_bind
        from smithers.server import serve as run_server
    except ImportError as e:
        raise SmithersError(
            f"The HTTP server needs the [server] extra ({e.name} is not installed).",
            code="INVALID_INPUT",
            hint="pip install 'smithers-py[server]'",
        ) from None
    check_bind(host, token)
    config = ServerConfig(
        db=resolve_db_path(db),
        root=Path(root).resolve(),
        auth_token=token,
        keep_runs_on_exit=True,
    )
    click.echo(f"smithers serve: http://{host}:{port} (database {config.db})", err=True)
    run_server(config, host=host, port=port)
