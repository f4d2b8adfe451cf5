"""Fixtures of the fault-injection suite: a subprocess reaper.

Its seed (`fault_seed`) and the `figures` reporter are suite-wide (``tests/conftest.py``):
the worker chaos test (``tests/workers/test_chaos.py``) reports the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator


@pytest.fixture
def reaper() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to put every spawned process in; those still running at teardown are killed."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
