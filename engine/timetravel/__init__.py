"""Time travel as events (DESIGN §7): rewind, fork, replay, retry-task."""

from __future__ import annotations

from ._dependents import task_dependents as task_dependents
from ._operations import fork as fork
from ._operations import replay as replay
from ._operations import rewind as rewind
from ._retry import retry_task as retry_task

__all__ = (
    "fork",
    "replay",
    "retry_task",
    "rewind",
    "task_dependents",
)
