"""`serve`: run the API with uvicorn (what ``smithers serve`` calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.engine import InvalidInputError

from ._app import create_app
from ._config import DEFAULT_HOST, DEFAULT_PORT, is_loopback

if TYPE_CHECKING:
    from ._config import ServerConfig

__all__ = ("check_bind", "serve")


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback `host` without an auth token.

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` if `host` is reachable from other
            machines and `token` is empty.
    """
    if not token and not is_loopback(host):
        raise InvalidInputError(
            f"Refusing to listen on {host} without an auth token: anyone who can reach "
            "it could start and cancel runs.",
            details={"field": "host", "reason": "non-loopback without a token"},
            hint="Pass --auth-token T (or set SMITHERS_API_KEY), or bind 127.0.0.1.",
        )


def serve(
    config: ServerConfig,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "info",
) -> None:
    """Serve the API on `host`:`port` until SIGINT/SIGTERM. Blocks.

    Args:
        config: What to serve (`ServerConfig`).
        host: Address to bind (default loopback only).
        port: TCP port (0: a free one).
        log_level: uvicorn's log level.

    Raises:
        InvalidInputError: if `host` is not loopback and `config` has no auth token.
    """
    import uvicorn

    check_bind(host, config.auth_token)
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
