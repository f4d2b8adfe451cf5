"""smithers: durable workflows for AI agents, on an append-only event log.

The public facade: re-exports only (DESIGN §2, §12)::

    from smithers import workflow, Task, Sequence, Parallel, Branch, connect, run_workflow

    async with connect("runs/smithers.db") as client:  # in an async function
        result = await client.run(wf, input={...})
"""

from __future__ import annotations

from smithers import agents as agents
from smithers import tools as tools
from smithers.engine import SMITHERS_VERSION as __version__
from smithers.engine import Approval as Approval
from smithers.engine import ApprovalDecision as ApprovalDecision
from smithers.engine import ApprovalRanking as ApprovalRanking
from smithers.engine import ApprovalSelection as ApprovalSelection
from smithers.engine import Backoff as Backoff
from smithers.engine import Branch as Branch
from smithers.engine import Client as Client
from smithers.engine import ContinueAsNew as ContinueAsNew
from smithers.engine import Loop as Loop
from smithers.engine import Parallel as Parallel
from smithers.engine import RunHandle as RunHandle
from smithers.engine import RunResult as RunResult
from smithers.engine import Sequence as Sequence
from smithers.engine import Subflow as Subflow
from smithers.engine import Task as Task
from smithers.engine import TaskContext as TaskContext
from smithers.engine import Timer as Timer
from smithers.engine import TimerOutput as TimerOutput
from smithers.engine import WaitForEvent as WaitForEvent
from smithers.engine import Workflow as Workflow
from smithers.engine import WorkflowContext as WorkflowContext
from smithers.engine import cancel_run as cancel_run
from smithers.engine import connect as connect
from smithers.engine import down as down
from smithers.engine import fork as fork
from smithers.engine import get_output as get_output
from smithers.engine import list_runs as list_runs
from smithers.engine import load_run as load_run
from smithers.engine import read_events as read_events
from smithers.engine import render_graph as render_graph
from smithers.engine import replay as replay
from smithers.engine import resume_run as resume_run
from smithers.engine import retry_task as retry_task
from smithers.engine import rewind as rewind
from smithers.engine import run_workflow as run_workflow
from smithers.engine import state_at as state_at
from smithers.engine import supervise as supervise
from smithers.engine import timeline as timeline
from smithers.engine import workflow as workflow
from smithers.eventstore.errors import ERROR_REFERENCE_URL as ERROR_REFERENCE_URL
from smithers.eventstore.errors import SmithersError as SmithersError
from smithers.eventstore.errors import error_to_json as error_to_json
from smithers.eventstore.errors import get_error_definition as get_error_definition
from smithers.eventstore.errors import get_error_docs_url as get_error_docs_url
from smithers.eventstore.errors import is_known_error_code as is_known_error_code
from smithers.eventstore.errors import is_smithers_error as is_smithers_error
from smithers.eventstore.errors import known_error_codes as known_error_codes

__all__ = (
    "ERROR_REFERENCE_URL",
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
    "Client",
    "Parallel",
    "RunHandle",
    "RunResult",
    "Sequence",
    "SmithersError",
    "Task",
    "TaskContext",
    "Workflow",
    "WorkflowContext",
    "__version__",
    "cancel_run",
    "connect",
    "down",
    "error_to_json",
    "fork",
    "get_error_definition",
    "get_error_docs_url",
    "is_known_error_code",
    "get_output",
    "is_smithers_error",
    "known_error_codes",
    "list_runs",
    "load_run",
    "read_events",
    "render_graph",
    "replay",
    "resume_run",
    "retry_task",
    "rewind",
    "run_workflow",
    "state_at",
    "supervise",
    "timeline",
    "agents",
    "tools",
    "workflow",
)
