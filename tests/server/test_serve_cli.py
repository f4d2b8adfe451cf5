"""``smithers serve``'s own checks, before anything listens."""

from __future__ import annotations

from click.testing import CliRunner
from smithers.cli import main


def test_a_non_loopback_host_without_a_token_is_refused() -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]" in result.output
    assert "--auth-token" in result.output


def test_a_missing_root_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["serve", "--root", "no/such/dir"])
    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]" in result.output


def test_help_names_the_defaults() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output
    assert "7331" in result.output
    assert "SMITHERS_API_KEY" in result.output
