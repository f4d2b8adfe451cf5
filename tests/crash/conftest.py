"""Fixtures of the crash tests: the seed of the kill schedules and a subprocess reaper.

The seed is drawn once per session and printed in the report header; set
``SMITHERS_CRASH_SEED`` to replay a schedule (timings still vary from run to run).
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator

SEED_ENV = "SMITHERS_CRASH_SEED"
_SEED = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))


def pytest_report_header() -> str:
    return f"crash tests: {SEED_ENV}={_SEED}"


@pytest.fixture
def crash_seed() -> int:
    """The session's base seed (``SMITHERS_CRASH_SEED`` or a random one, printed)."""
    print(f"{SEED_ENV}={_SEED}")
    return _SEED


@pytest.fixture
def reaper() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to put every spawned process in; those still running at teardown are killed."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
