"""Starting, resuming, cancelling, hijacking and supervising runs, and who owns one."""

from __future__ import annotations

from ._actors import api_actor as api_actor
from ._control import CancelStep as CancelStep
from ._control import cancel_run as cancel_run
from ._control import down as down
from ._decisions import approve as approve
from ._decisions import deny as deny
from ._decisions import list_pending_approvals as list_pending_approvals
from ._gc import COLLECTED_STATUS as COLLECTED_STATUS
from ._gc import GcResult as GcResult
from ._gc import collect_runs as collect_runs
from ._hijack import HijackResult as HijackResult
from ._hijack import HijackStep as HijackStep
from ._hijack import hijack_run as hijack_run
from ._ownership import DEFAULT_STALE_THRESHOLD_MS as DEFAULT_STALE_THRESHOLD_MS
from ._ownership import OwnerKind as OwnerKind
from ._ownership import OwnerVerdict as OwnerVerdict
from ._ownership import judge_owner as judge_owner
from ._ownership import owner_verdict as owner_verdict
from ._ownership import pid_alive as pid_alive
from ._ownership import refuse_if_owned as refuse_if_owned
from ._queue import QUEUED_STATUS as QUEUED_STATUS
from ._queue import QueuedRun as QueuedRun
from ._queue import SubmitResult as SubmitResult
from ._queue import queued_runs as queued_runs
from ._queue import submit_run as submit_run
from ._requests import DecisionResult as DecisionResult
from ._requests import PendingApproval as PendingApproval
from ._requests import SignalResult as SignalResult
from ._resume import load_recorded_workflow as load_recorded_workflow
from ._resume import resume_run as resume_run
from ._resume import wake_parent_of as wake_parent_of
from ._resume_checks import check_determinism as check_determinism
from ._resume_checks import check_resumable as check_resumable
from ._run import SMITHERS_VERSION as SMITHERS_VERSION
from ._run import RunResult as RunResult
from ._run import close_open_attempts as close_open_attempts
from ._run import new_run_id as new_run_id
from ._run import run_result as run_result
from ._run import run_workflow as run_workflow
from ._signals import signal as signal
from ._spawn import ResumeProcess as ResumeProcess
from ._spawn import SpawnResume as SpawnResume
from ._spawn import resume_result_file as resume_result_file
from ._spawn import spawn_detached as spawn_detached
from ._spawn import spawn_resume as spawn_resume
from ._subflow import ENDED_STATUSES as ENDED_STATUSES
from ._subflow import child_outcome as child_outcome
from ._subflow import child_runner as child_runner
from ._subflow import next_wake_ms as next_wake_ms
from ._subflow import wake_parent as wake_parent
from ._supervise import supervise as supervise
from ._wakes import WakeReason as WakeReason
from ._wakes import wake_deadline as wake_deadline
from ._worker import DEFAULT_POLL_S as DEFAULT_POLL_S
from ._worker import WorkerListing as WorkerListing
from ._worker import WorkerStatus as WorkerStatus
from ._worker import list_workers as list_workers
from ._worker import run_worker as run_worker

__all__ = (
    "api_actor",
    "DEFAULT_STALE_THRESHOLD_MS",
    "OwnerKind",
    "OwnerVerdict",
    "judge_owner",
    "owner_verdict",
    "pid_alive",
    "refuse_if_owned",
    "SMITHERS_VERSION",
    "RunResult",
    "check_determinism",
    "check_resumable",
    "close_open_attempts",
    "new_run_id",
    "run_result",
    "run_workflow",
    "CancelStep",
    "cancel_run",
    "down",
    "HijackResult",
    "HijackStep",
    "hijack_run",
    "load_recorded_workflow",
    "resume_run",
    "wake_parent_of",
    "ResumeProcess",
    "SpawnResume",
    "resume_result_file",
    "spawn_detached",
    "spawn_resume",
    "WakeReason",
    "supervise",
    "DecisionResult",
    "PendingApproval",
    "SignalResult",
    "approve",
    "deny",
    "list_pending_approvals",
    "signal",
    "ENDED_STATUSES",
    "child_outcome",
    "child_runner",
    "next_wake_ms",
    "wake_parent",
    "wake_deadline",
    "COLLECTED_STATUS",
    "GcResult",
    "collect_runs",
    "QUEUED_STATUS",
    "QueuedRun",
    "SubmitResult",
    "queued_runs",
    "submit_run",
    "DEFAULT_POLL_S",
    "WorkerListing",
    "WorkerStatus",
    "list_workers",
    "run_worker",
)
