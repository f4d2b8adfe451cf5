"""One activation of a run: render, schedule, execute, heartbeats, frames, the run loop.

The run loop by parts: `RunLoop` (the coordinator: the live state, the append per
tick), `AttemptRunner` (the workers), `Decider` (render, start, outcomes, the run's
end); workers report to the coordinator with the `Message` types.
`RunWriter` is the one write path of a run's log (and its NDJSON mirror), used by
every room that appends.

Nothing here reads a run's past beyond the state it is handed; `history` does that.
"""

from __future__ import annotations

from ._attempts import AttemptRunner as AttemptRunner
from ._attempts import RunningAttempt as RunningAttempt
from ._attempts import ToolSettings as ToolSettings
from ._beats import BEAT_COALESCE_MS as BEAT_COALESCE_MS
from ._beats import BeatBook as BeatBook
from ._decide import DEFAULT_HOLD_MS as DEFAULT_HOLD_MS
from ._decide import Decider as Decider
from ._execute import DEFAULT_MAX_TASK_OUTPUT_BYTES as DEFAULT_MAX_TASK_OUTPUT_BYTES
from ._execute import Outcome as Outcome
from ._execute import error_info as error_info
from ._execute import execute_attempt as execute_attempt
from ._execute import validate_output as validate_output
from ._frames import KEYFRAME_INTERVAL as KEYFRAME_INTERVAL
from ._frames import FrameEncoder as FrameEncoder
from ._frames import apply_delta as apply_delta
from ._frames import canonical_json as canonical_json
from ._frames import decode_delta as decode_delta
from ._frames import encode_delta as encode_delta
from ._frames import format_path as format_path
from ._frames import parse_path as parse_path
from ._frames import tree_delta as tree_delta
from ._frames import tree_hash as tree_hash
from ._hijacking import HIJACK_MODE as HIJACK_MODE
from ._hijacking import HIJACK_REASON as HIJACK_REASON
from ._hijacking import HIJACK_STATUS as HIJACK_STATUS
from ._hijacking import AgentSession as AgentSession
from ._hijacking import agent_sessions as agent_sessions
from ._hijacking import close_for_hijack as close_for_hijack
from ._hijacking import find_agent_session as find_agent_session
from ._hijacking import hijacked_events as hijacked_events
from ._loop import HEARTBEAT_INTERVAL_MS as HEARTBEAT_INTERVAL_MS
from ._loop import RunLoop as RunLoop
from ._loop import handing_back as handing_back
from ._messages import AttemptCancelled as AttemptCancelled
from ._messages import AttemptEnded as AttemptEnded
from ._messages import BackoffElapsed as BackoffElapsed
from ._messages import BeatTimedOut as BeatTimedOut
from ._messages import CancelRequested as CancelRequested
from ._messages import ForeignAppended as ForeignAppended
from ._messages import Message as Message
from ._messages import SubflowWaiting as SubflowWaiting
from ._messages import TaskBeat as TaskBeat
from ._messages import ToolJournaled as ToolJournaled
from ._ndjson import STREAM_FILE as STREAM_FILE
from ._ndjson import NdjsonMirror as NdjsonMirror
from ._ndjson import default_log_dir as default_log_dir
from ._render import BASE_ITERATION as BASE_ITERATION
from ._render import MAX_TREE_DEPTH as MAX_TREE_DEPTH
from ._render import Group as Group
from ._render import Leaf as Leaf
from ._render import Plan as Plan
from ._render import compile_tree as compile_tree
from ._render import render_state as render_state
from ._schedule import Scheduler as Scheduler
from ._subflow import SUBFLOW_EVENT_PREFIX as SUBFLOW_EVENT_PREFIX
from ._subflow import ChildCancel as ChildCancel
from ._subflow import ChildOutcome as ChildOutcome
from ._subflow import ChildParked as ChildParked
from ._subflow import ChildRunner as ChildRunner
from ._subflow import SubflowRequest as SubflowRequest
from ._subflow import run_subflow as run_subflow
from ._subflow import subflow_request as subflow_request
from ._subflow import subflow_waiting_events as subflow_waiting_events
from ._waits import WaitStep as WaitStep
from ._waits import close_waits as close_waits
from ._waits import timer_id as timer_id
from ._waits import wait_step as wait_step
from ._writer import Rebase as Rebase
from ._writer import RunWriter as RunWriter
from ._writer import append_to_run as append_to_run

__all__ = (
    "MAX_TREE_DEPTH",
    "DEFAULT_MAX_TASK_OUTPUT_BYTES",
    "BASE_ITERATION",
    "Group",
    "Leaf",
    "Plan",
    "compile_tree",
    "render_state",
    "Scheduler",
    "Outcome",
    "error_info",
    "execute_attempt",
    "validate_output",
    "BEAT_COALESCE_MS",
    "BeatBook",
    "KEYFRAME_INTERVAL",
    "HIJACK_MODE",
    "HIJACK_REASON",
    "HIJACK_STATUS",
    "AgentSession",
    "agent_sessions",
    "close_for_hijack",
    "find_agent_session",
    "hijacked_events",
    "FrameEncoder",
    "apply_delta",
    "canonical_json",
    "decode_delta",
    "encode_delta",
    "format_path",
    "parse_path",
    "tree_delta",
    "tree_hash",
    "NdjsonMirror",
    "STREAM_FILE",
    "default_log_dir",
    "Rebase",
    "RunWriter",
    "append_to_run",
    "Message",
    "TaskBeat",
    "ToolJournaled",
    "BeatTimedOut",
    "AttemptEnded",
    "AttemptCancelled",
    "BackoffElapsed",
    "CancelRequested",
    "ForeignAppended",
    "AttemptRunner",
    "RunningAttempt",
    "ToolSettings",
    "Decider",
    "HEARTBEAT_INTERVAL_MS",
    "RunLoop",
    "handing_back",
    "DEFAULT_HOLD_MS",
    "WaitStep",
    "close_waits",
    "timer_id",
    "wait_step",
    "SubflowWaiting",
    "SUBFLOW_EVENT_PREFIX",
    "ChildCancel",
    "ChildOutcome",
    "ChildParked",
    "ChildRunner",
    "SubflowRequest",
    "run_subflow",
    "subflow_request",
    "subflow_waiting_events",
)
