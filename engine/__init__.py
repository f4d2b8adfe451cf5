"""The engine: render, schedule, execute; the run loop; the read API (DESIGN §6)."""

from __future__ import annotations

from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._components import Backoff as Backoff
from ._components import Branch as Branch
from ._components import Parallel as Parallel
from ._components import Sequence as Sequence
from ._components import Task as Task
from ._components import Workflow as Workflow
from ._components import workflow as workflow
from ._context import TaskContext as TaskContext
from ._context import WorkflowContext as WorkflowContext
from ._loader import load_workflow as load_workflow
from ._queries import event_to_json as event_to_json
from ._queries import follow_events as follow_events
from ._queries import get_output as get_output
from ._queries import list_runs as list_runs
from ._queries import load_run as load_run
from ._queries import read_events as read_events
from ._run import SMITHERS_VERSION as SMITHERS_VERSION
from ._run import RunResult as RunResult
from ._run import new_run_id as new_run_id
from ._run import run_workflow as run_workflow
from .errors import DuplicateIdError as DuplicateIdError
from .errors import EngineError as EngineError
from .errors import InvalidInputError as InvalidInputError
from .errors import InvalidOutputError as InvalidOutputError
from .errors import MissingOutputError as MissingOutputError
from .errors import NodeNotFoundError as NodeNotFoundError
from .errors import RunNotFoundError as RunNotFoundError
from .errors import SchedulerError as SchedulerError
from .errors import TaskIdRequiredError as TaskIdRequiredError
from .errors import TaskMissingOutputError as TaskMissingOutputError
from .errors import TaskTimeoutError as TaskTimeoutError
from .errors import UnsupportedFeatureError as UnsupportedFeatureError
from .errors import WorkflowMissingDefaultError as WorkflowMissingDefaultError

__all__ = (
    "SMITHERS_VERSION",
    "Backoff",
    "Branch",
    "Clock",
    "DuplicateIdError",
    "EngineError",
    "InvalidInputError",
    "InvalidOutputError",
    "MissingOutputError",
    "NodeNotFoundError",
    "Parallel",
    "RunNotFoundError",
    "RunResult",
    "SchedulerError",
    "Sequence",
    "SystemClock",
    "Task",
    "TaskContext",
    "TaskIdRequiredError",
    "TaskMissingOutputError",
    "TaskTimeoutError",
    "UnsupportedFeatureError",
    "Workflow",
    "WorkflowContext",
    "WorkflowMissingDefaultError",
    "event_to_json",
    "follow_events",
    "get_output",
    "list_runs",
    "load_run",
    "load_workflow",
    "new_run_id",
    "read_events",
    "run_workflow",
    "workflow",
)
