"""Fixtures of the fault-injection suite: its seed, a subprocess reaper and the figures.

The seed is fixed (``DEFAULT_SEED``) so CI replays the same kill schedules; set
``SMITHERS_FAULT_SEED`` to try others (timings still vary from run to run). Each scenario
reports its figures (kills, extra executions, runs, integrity results, time) through the
`figures` fixture: printed on stderr, attached with ``record_property``, appended to
``fault-figures.txt`` in the session's base temporary directory, and repeated in a
"fault-injection figures" section at the end of the pytest report, so they show without
``-s`` (as in CI).
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterator

SEED_ENV = "SMITHERS_FAULT_SEED"
DEFAULT_SEED = 20261130
SEED = int(os.environ.get(SEED_ENV) or DEFAULT_SEED)
_REPORTED: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _REPORTED:
        terminalreporter.section("fault-injection figures")
        terminalreporter.write_line(f"{SEED_ENV}={SEED}")
        for line in _REPORTED:
            terminalreporter.write_line(line)


@pytest.fixture
def fault_seed() -> int:
    """The suite's seed (``SMITHERS_FAULT_SEED``, else ``DEFAULT_SEED``), printed."""
    print(f"{SEED_ENV}={SEED}", file=sys.stderr)
    return SEED


@pytest.fixture
def reaper() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to put every spawned process in; those still running at teardown are killed."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
def figures(
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[dict[str, Any]], str]:
    """A function reporting a scenario's figures (a JSON-able dict); returns the line."""

    def report(values: dict[str, Any]) -> str:
        line = f"{request.node.name}: {json.dumps(values, sort_keys=True)}"
        print(line, file=sys.stderr)
        for key, value in values.items():
            record_property(key, value)
        path = tmp_path_factory.getbasetemp() / "fault-figures.txt"
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        _REPORTED.append(line)
        return line

    return report
