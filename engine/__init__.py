"""The engine (DESIGN §6), in rooms by role; each sub-package re-exports its public names.

- `authoring`: what a workflow author writes (components, `ctx`, loader, identity).
- `activation`: one activation of a run (render, schedule, execute, heartbeats, frames,
  the run loop, the run writer).
- `history`: a run's past read from its log (state at a point, timeline, read API).
- `lifecycle`: starting, resuming, cancelling, supervising runs; ownership.
- `timetravel`: rewind, fork, replay, retry-task, as events.

Imports between them flow one way: authoring <- activation <- history <- lifecycle <-
timetravel; the modules at this level (`errors`, `_clock`, `_stores`, `_checkpoints`)
are shared by all. `_client` (`connect`, `Client`, `RunHandle`) sits on top of every
room: one open store, every operation.
"""

from __future__ import annotations

from ._actor import ACTOR_ENV as ACTOR_ENV
from ._actor import resolve_actor as resolve_actor
from ._bug import BUG_URL_ENV as BUG_URL_ENV
from ._bug import BugReport as BugReport
from ._bug import build_bug_bundle as build_bug_bundle
from ._bug import file_bug as file_bug
from ._bundle_export import ExportResult as ExportResult
from ._bundle_export import export_run as export_run
from ._bundle_import import IMPORTED_STATUS as IMPORTED_STATUS
from ._bundle_import import ImportedRun as ImportedRun
from ._bundle_import import ImportResult as ImportResult
from ._bundle_import import import_bundle as import_bundle
from ._client import Client as Client
from ._client import RunHandle as RunHandle
from ._client import connect as connect
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._doctor import AgentAvailability as AgentAvailability
from ._doctor import DoctorReport as DoctorReport
from ._doctor import diagnose as diagnose
from ._doctor import diagnose_agents as diagnose_agents
from ._error_lookup import lookup_error_code as lookup_error_code
from ._migrate import MigrateResult as MigrateResult
from ._migrate import migrate_database as migrate_database
from ._run_ids import EXISTING_RUN_HINT as EXISTING_RUN_HINT
from ._run_ids import MAX_RUN_ID_LENGTH as MAX_RUN_ID_LENGTH
from ._run_ids import child_run_id as child_run_id
from ._run_ids import parse_child_run_id as parse_child_run_id
from ._run_ids import validate_run_id as validate_run_id
from ._scrub import REDACTED as REDACTED
from ._scrub import is_secret_env_name as is_secret_env_name
from ._scrub import scrub_text as scrub_text
from ._scrub import scrub_value as scrub_value
from ._scrub import secret_env_values as secret_env_values
from ._shell import shell_command as shell_command
from .activation import default_log_dir as default_log_dir
from .authoring import Approval as Approval
from .authoring import ApprovalDecision as ApprovalDecision
from .authoring import ApprovalRanking as ApprovalRanking
from .authoring import ApprovalSelection as ApprovalSelection
from .authoring import Backoff as Backoff
from .authoring import Branch as Branch
from .authoring import ContinueAsNew as ContinueAsNew
from .authoring import Loop as Loop
from .authoring import Parallel as Parallel
from .authoring import Sequence as Sequence
from .authoring import Subflow as Subflow
from .authoring import Task as Task
from .authoring import TaskContext as TaskContext
from .authoring import Timer as Timer
from .authoring import TimerOutput as TimerOutput
from .authoring import WaitForEvent as WaitForEvent
from .authoring import Workflow as Workflow
from .authoring import WorkflowContext as WorkflowContext
from .authoring import load_workflow as load_workflow
from .authoring import workflow as workflow
from .errors import AmbiguousApprovalError as AmbiguousApprovalError
from .errors import ApprovalAlreadyDecidedError as ApprovalAlreadyDecidedError
from .errors import ContinuationStateTooLargeError as ContinuationStateTooLargeError
from .errors import DuplicateIdError as DuplicateIdError
from .errors import EngineError as EngineError
from .errors import InvalidContinuationStateError as InvalidContinuationStateError
from .errors import InvalidInputError as InvalidInputError
from .errors import InvalidOutputError as InvalidOutputError
from .errors import MissingOutputError as MissingOutputError
from .errors import NestedLoopError as NestedLoopError
from .errors import NodeNotFoundError as NodeNotFoundError
from .errors import NoPendingApprovalsError as NoPendingApprovalsError
from .errors import RalphMaxReachedError as RalphMaxReachedError
from .errors import ResumeClaimFailedError as ResumeClaimFailedError
from .errors import ResumeFrameMismatchError as ResumeFrameMismatchError
from .errors import ResumeMetadataMismatchError as ResumeMetadataMismatchError
from .errors import RunNotFoundError as RunNotFoundError
from .errors import RunNotResumableError as RunNotResumableError
from .errors import RunOwnerAliveError as RunOwnerAliveError
from .errors import RunStillRunningError as RunStillRunningError
from .errors import SchedulerError as SchedulerError
from .errors import SnapshotNotFoundError as SnapshotNotFoundError
from .errors import TaskIdRequiredError as TaskIdRequiredError
from .errors import TaskMissingOutputError as TaskMissingOutputError
from .errors import TaskOutputTooLargeError as TaskOutputTooLargeError
from .errors import TaskTimeoutError as TaskTimeoutError
from .errors import TreeTooDeepError as TreeTooDeepError
from .errors import UnsupportedFeatureError as UnsupportedFeatureError
from .errors import WorkflowExecutionFailedError as WorkflowExecutionFailedError
from .errors import WorkflowMissingDefaultError as WorkflowMissingDefaultError
from .history import AUDIT_STREAM_ID as AUDIT_STREAM_ID
from .history import OPERATION_TYPES as OPERATION_TYPES
from .history import AttemptDetail as AttemptDetail
from .history import ChainCheck as ChainCheck
from .history import ChildRun as ChildRun
from .history import DiffSide as DiffSide
from .history import FrameMismatch as FrameMismatch
from .history import FrameView as FrameView
from .history import HeartbeatDetail as HeartbeatDetail
from .history import IterationDetail as IterationDetail
from .history import JsonChange as JsonChange
from .history import NodeDetail as NodeDetail
from .history import NodeDiff as NodeDiff
from .history import Operation as Operation
from .history import RunDiff as RunDiff
from .history import Timeline as Timeline
from .history import TimelineFrame as TimelineFrame
from .history import TimelineRewind as TimelineRewind
from .history import TimelineWait as TimelineWait
from .history import TreeNodeChange as TreeNodeChange
from .history import VerifyResult as VerifyResult
from .history import audit as audit
from .history import check_chain as check_chain
from .history import diff_runs as diff_runs
from .history import event_to_json as event_to_json
from .history import follow_events as follow_events
from .history import frame_view as frame_view
from .history import get_output as get_output
from .history import is_operation as is_operation
from .history import list_runs as list_runs
from .history import load_run as load_run
from .history import node_detail as node_detail
from .history import read_events as read_events
from .history import render_graph as render_graph
from .history import state_at as state_at
from .history import timeline as timeline
from .history import tree_at as tree_at
from .history import verify_run as verify_run
from .lifecycle import COLLECTED_STATUS as COLLECTED_STATUS
from .lifecycle import DEFAULT_POLL_S as DEFAULT_POLL_S
from .lifecycle import DEFAULT_STALE_THRESHOLD_MS as DEFAULT_STALE_THRESHOLD_MS
from .lifecycle import QUEUED_STATUS as QUEUED_STATUS
from .lifecycle import SMITHERS_VERSION as SMITHERS_VERSION
from .lifecycle import CancelStep as CancelStep
from .lifecycle import DecisionResult as DecisionResult
from .lifecycle import GcResult as GcResult
from .lifecycle import HijackResult as HijackResult
from .lifecycle import HijackStep as HijackStep
from .lifecycle import OwnerVerdict as OwnerVerdict
from .lifecycle import PendingApproval as PendingApproval
from .lifecycle import ResumeProcess as ResumeProcess
from .lifecycle import RunResult as RunResult
from .lifecycle import SignalResult as SignalResult
from .lifecycle import SpawnResume as SpawnResume
from .lifecycle import SubmitResult as SubmitResult
from .lifecycle import WorkerListing as WorkerListing
from .lifecycle import approve as approve
from .lifecycle import cancel_run as cancel_run
from .lifecycle import collect_runs as collect_runs
from .lifecycle import deny as deny
from .lifecycle import down as down
from .lifecycle import hijack_run as hijack_run
from .lifecycle import list_pending_approvals as list_pending_approvals
from .lifecycle import list_workers as list_workers
from .lifecycle import new_run_id as new_run_id
from .lifecycle import resume_result_file as resume_result_file
from .lifecycle import resume_run as resume_run
from .lifecycle import run_worker as run_worker
from .lifecycle import run_workflow as run_workflow
from .lifecycle import signal as signal
from .lifecycle import spawn_detached as spawn_detached
from .lifecycle import spawn_resume as spawn_resume
from .lifecycle import submit_run as submit_run
from .lifecycle import supervise as supervise
from .lifecycle import wake_deadline as wake_deadline
from .timetravel import fork as fork
from .timetravel import replay as replay
from .timetravel import retry_task as retry_task
from .timetravel import rewind as rewind
from .timetravel import task_dependents as task_dependents

__all__ = (
    "default_log_dir",
    "DEFAULT_STALE_THRESHOLD_MS",
    "DEFAULT_POLL_S",
    "QUEUED_STATUS",
    "SubmitResult",
    "WorkerListing",
    "list_workers",
    "run_worker",
    "submit_run",
    "MigrateResult",
    "migrate_database",
    "OwnerVerdict",
    "ACTOR_ENV",
    "EXISTING_RUN_HINT",
    "MAX_RUN_ID_LENGTH",
    "SMITHERS_VERSION",
    "Backoff",
    "Branch",
    "Approval",
    "ApprovalDecision",
    "ApprovalRanking",
    "ApprovalSelection",
    "Timer",
    "TimerOutput",
    "WaitForEvent",
    "Subflow",
    "ContinueAsNew",
    "Loop",
    "CancelStep",
    "AmbiguousApprovalError",
    "ApprovalAlreadyDecidedError",
    "DecisionResult",
    "NoPendingApprovalsError",
    "PendingApproval",
    "SignalResult",
    "approve",
    "deny",
    "list_pending_approvals",
    "signal",
    "Client",
    "Clock",
    "DuplicateIdError",
    "EngineError",
    "InvalidInputError",
    "InvalidOutputError",
    "MissingOutputError",
    "NodeNotFoundError",
    "Parallel",
    "ResumeClaimFailedError",
    "ResumeFrameMismatchError",
    "ResumeMetadataMismatchError",
    "ResumeProcess",
    "RunNotFoundError",
    "RunNotResumableError",
    "ContinuationStateTooLargeError",
    "InvalidContinuationStateError",
    "NestedLoopError",
    "TaskOutputTooLargeError",
    "TreeTooDeepError",
    "RalphMaxReachedError",
    "RunOwnerAliveError",
    "RunHandle",
    "RunResult",
    "RunStillRunningError",
    "SchedulerError",
    "Sequence",
    "FrameView",
    "DiffSide",
    "FrameMismatch",
    "JsonChange",
    "NodeDiff",
    "RunDiff",
    "TreeNodeChange",
    "VerifyResult",
    "ChainCheck",
    "check_chain",
    "diff_runs",
    "verify_run",
    "AttemptDetail",
    "HeartbeatDetail",
    "IterationDetail",
    "NodeDetail",
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
    "TimelineWait",
    "UnsupportedFeatureError",
    "AgentAvailability",
    "DoctorReport",
    "diagnose",
    "diagnose_agents",
    "Workflow",
    "WorkflowContext",
    "WorkflowMissingDefaultError",
    "WorkflowExecutionFailedError",
    "cancel_run",
    "hijack_run",
    "HijackResult",
    "HijackStep",
    "connect",
    "down",
    "event_to_json",
    "follow_events",
    "fork",
    "get_output",
    "list_runs",
    "load_run",
    "load_workflow",
    "new_run_id",
    "node_detail",
    "read_events",
    "render_graph",
    "replay",
    "resume_result_file",
    "resume_run",
    "retry_task",
    "rewind",
    "run_workflow",
    "frame_view",
    "spawn_detached",
    "spawn_resume",
    "state_at",
    "supervise",
    "wake_deadline",
    "task_dependents",
    "timeline",
    "OPERATION_TYPES",
    "Operation",
    "audit",
    "is_operation",
    "tree_at",
    "validate_run_id",
    "child_run_id",
    "parse_child_run_id",
    "shell_command",
    "ChildRun",
    "workflow",
    "lookup_error_code",
    "resolve_actor",
    "AUDIT_STREAM_ID",
    "COLLECTED_STATUS",
    "ExportResult",
    "GcResult",
    "IMPORTED_STATUS",
    "ImportResult",
    "ImportedRun",
    "collect_runs",
    "export_run",
    "import_bundle",
    "BUG_URL_ENV",
    "BugReport",
    "build_bug_bundle",
    "file_bug",
    "REDACTED",
    "is_secret_env_name",
    "scrub_text",
    "scrub_value",
    "secret_env_values",
)
