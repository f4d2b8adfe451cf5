"""Suite-wide options: slow scenarios run in CI, and on request, not in a quick local run.

A test marked ``@pytest.mark.slow`` (crash harness, multi-process CLI scenarios, long
property runs) runs when ``CI`` is set (CI sets ``CI=true``) or ``SMITHERS_SLOW=1``;
otherwise it is skipped with that reason, so ``python -m pytest -q`` stays quick.
"""

from __future__ import annotations

import os

import pytest


def _run_slow() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("SMITHERS_SLOW") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a long scenario; runs in CI (CI set) or with SMITHERS_SLOW=1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _run_slow():
        return
    skip = pytest.mark.skip(reason="slow scenario: runs in CI, or locally with SMITHERS_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
