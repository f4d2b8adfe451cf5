"""The PostgreSQL tests skip without a server, and fail in CI when its server is down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOWN = "postgresql://root@127.0.0.1:1/nowhere?connect_timeout=2"


def _pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "SMITHERS_TEST_POSTGRES_URL")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",
            "tests/postgres/test_pg_notify.py",
        ],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_without_a_url_the_tests_skip_saying_how_to_run_them(tmp_path: Path) -> None:
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "2 skipped" in proc.stdout
    assert "SMITHERS_TEST_POSTGRES_URL is not set" in proc.stdout


@pytest.mark.slow
def test_an_unreachable_server_skips_locally_and_fails_in_ci(tmp_path: Path) -> None:
    local = _pytest(tmp_path, SMITHERS_TEST_POSTGRES_URL=DOWN)
    assert local.returncode == 0, local.stdout
    assert "unreachable" in local.stdout
    ci = _pytest(tmp_path, SMITHERS_TEST_POSTGRES_URL=DOWN, CI="true")
    assert ci.returncode == 1, ci.stdout
    assert "unreachable in CI" in ci.stdout
