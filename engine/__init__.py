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
from ._control import CancelStep as CancelStep
from ._control import cancel_run as cancel_run
from ._control import down as down
from ._control import resume_run as resume_run
from ._history import state_at as state_at
from ._loader import load_workflow as load_workflow
from ._ndjson import default_log_dir as default_log_dir
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
from ._supervisor import (
    DEFAULT_SUPERVISOR_STALE_THRESHOLD_MS as DEFAULT_SUPERVISOR_STALE_THRESHOLD_MS,
)
from ._supervisor import ResumeProcess as ResumeProcess
from ._supervisor import SpawnResume as SpawnResume
from ._supervisor import spawn_detached as spawn_detached
from ._supervisor import spawn_resume as spawn_resume
from ._supervisor import supervise as supervise
from ._timeline import Snapshot as Snapshot
from ._timeline import Timeline as Timeline
from ._timeline import TimelineFrame as TimelineFrame
from ._timeline import TimelineRewind as TimelineRewind
from ._timeline import render_graph as render_graph
from ._timeline import snapshot_at as snapshot_at
from ._timeline import timeline as timeline
from ._timeline import tree_at as tree_at
from ._timetravel import fork as fork
from ._timetravel import replay as replay
from ._timetravel import retry_task as retry_task
from ._timetravel import rewind as rewind
from ._timetravel import task_dependents as task_dependents
from .errors import DuplicateIdError as DuplicateIdError
from .errors import EngineError as EngineError
from .errors import InvalidInputError as InvalidInputError
from .errors import InvalidOutputError as InvalidOutputError
from .errors import MissingOutputError as MissingOutputError
from .errors import NodeNotFoundError as NodeNotFoundError
from .errors import ResumeClaimFailedError as ResumeClaimFailedError
from .errors import ResumeMetadataMismatchError as ResumeMetadataMismatchError
from .errors import RunNotFoundError as RunNotFoundError
from .errors import RunNotResumableError as RunNotResumableError
from .errors import RunOwnerAliveError as RunOwnerAliveError
from .errors import RunStillRunningError as RunStillRunningError
from .errors import SchedulerError as SchedulerError
from .errors import SnapshotNotFoundError as SnapshotNotFoundError
from .errors import TaskIdRequiredError as TaskIdRequiredError
from .errors import TaskMissingOutputError as TaskMissingOutputError
from .errors import TaskTimeoutError as TaskTimeoutError
from .errors import UnsupportedFeatureError as UnsupportedFeatureError
from .errors import WorkflowMissingDefaultError as WorkflowMissingDefaultError

__all__ = (
    "default_log_dir",
    "DEFAULT_SUPERVISOR_STALE_THRESHOLD_MS",
    "SMITHERS_VERSION",
    "Backoff",
    "Branch",
    "CancelStep",
    "Clock",
    "DuplicateIdError",
    "EngineError",
    "InvalidInputError",
    "InvalidOutputError",
    "MissingOutputError",
    "NodeNotFoundError",
    "Parallel",
    "ResumeClaimFailedError",
    "ResumeMetadataMismatchError",
    "ResumeProcess",
    "RunNotFoundError",
    "RunNotResumableError",
    "RunOwnerAliveError",
    "RunResult",
    "RunStillRunningError",
    "SchedulerError",
    "Sequence",
    "Snapshot",
    "SnapshotNotFoundError",
    "SpawnResume",
    "SystemClock",
    "Task",
    "TaskContext",
    "TaskIdRequiredError",
    "TaskMissingOutputError",
    "TaskTimeoutError",
    "Timeline",
    "TimelineFrame",
    "TimelineRewind",
    "UnsupportedFeatureError",
    "Workflow",
    "WorkflowContext",
    "WorkflowMissingDefaultError",
    "cancel_run",
    "down",
    "event_to_json",
    "follow_events",
    "fork",
    "get_output",
    "list_runs",
    "load_run",
    "load_workflow",
    "new_run_id",
    "read_events",
    "render_graph",
    "replay",
    "resume_run",
    "retry_task",
    "rewind",
    "run_workflow",
    "snapshot_at",
    "spawn_detached",
    "spawn_resume",
    "state_at",
    "supervise",
    "task_dependents",
    "timeline",
    "tree_at",
    "workflow",
)
