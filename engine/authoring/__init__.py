"""What a workflow author writes: components, `ctx`, a workflow file's loader and identity."""

from __future__ import annotations

from ._components import AGENT_HEARTBEAT_TIMEOUT_MS as AGENT_HEARTBEAT_TIMEOUT_MS
from ._components import BUILTIN_TOOL_NAMES as BUILTIN_TOOL_NAMES
from ._components import MAX_INPUT_BYTES as MAX_INPUT_BYTES
from ._components import WAIT_KINDS as WAIT_KINDS
from ._components import Backoff as Backoff
from ._components import Branch as Branch
from ._components import Component as Component
from ._components import Parallel as Parallel
from ._components import Sequence as Sequence
from ._components import Task as Task
from ._components import TaskKind as TaskKind
from ._components import Workflow as Workflow
from ._components import check_input as check_input
from ._components import encode_input as encode_input
from ._components import workflow as workflow
from ._context import MAX_HEARTBEAT_BYTES as MAX_HEARTBEAT_BYTES
from ._context import TaskContext as TaskContext
from ._context import WorkflowContext as WorkflowContext
from ._context import active_iteration as active_iteration
from ._context import output_index as output_index
from ._identity import WorkflowIdentity as WorkflowIdentity
from ._identity import workflow_identity as workflow_identity
from ._loader import load_named_workflow as load_named_workflow
from ._loader import load_workflow as load_workflow
from ._loops import MAX_CONTINUATION_BYTES as MAX_CONTINUATION_BYTES
from ._loops import ContinueAsNew as ContinueAsNew
from ._loops import Loop as Loop
from ._subflow import Subflow as Subflow
from ._waits import Approval as Approval
from ._waits import ApprovalDecision as ApprovalDecision
from ._waits import ApprovalOptionsRequiredError as ApprovalOptionsRequiredError
from ._waits import ApprovalRanking as ApprovalRanking
from ._waits import ApprovalSelection as ApprovalSelection
from ._waits import Timer as Timer
from ._waits import TimerOutput as TimerOutput
from ._waits import WaitForEvent as WaitForEvent
from ._waits import parse_duration_ms as parse_duration_ms

__all__ = (
    "AGENT_HEARTBEAT_TIMEOUT_MS",
    "BUILTIN_TOOL_NAMES",
    "Backoff",
    "Branch",
    "Component",
    "Parallel",
    "Sequence",
    "Task",
    "Workflow",
    "check_input",
    "encode_input",
    "MAX_INPUT_BYTES",
    "workflow",
    "MAX_HEARTBEAT_BYTES",
    "TaskContext",
    "WorkflowContext",
    "active_iteration",
    "output_index",
    "load_named_workflow",
    "load_workflow",
    "WorkflowIdentity",
    "workflow_identity",
    "Approval",
    "ApprovalDecision",
    "ApprovalOptionsRequiredError",
    "ApprovalRanking",
    "ApprovalSelection",
    "Timer",
    "TimerOutput",
    "WaitForEvent",
    "parse_duration_ms",
    "WAIT_KINDS",
    "Subflow",
    "TaskKind",
    "MAX_CONTINUATION_BYTES",
    "ContinueAsNew",
    "Loop",
)
