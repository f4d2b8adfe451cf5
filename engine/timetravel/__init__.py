"""Time travel as events (DESIGN §7): rewind, fork, replay, retry-task."""

from __future__ import annotations

from ._operations import fork as fork
from ._operations import replay as replay
from ._operations import retry_task as retry_task
from ._operations import rewind as rewind
from ._operations import task_dependents as task_dependents

__all__ = (
    "fork",
    "replay",
    "retry_task",
    "rewind",
    "task_dependents",
)
