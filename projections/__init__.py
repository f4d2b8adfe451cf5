"""Folds from events to state (DESIGN §5): no I/O, clock or randomness.

A fold updates a `RunState` in place, one event at a time in O(1): the state's
containers change and the frozen records in them are replaced, never mutated.
"""

from __future__ import annotations

from ._apply import apply_event as apply_event
from ._apply import fork_state as fork_state
from ._checkpoint import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from ._checkpoint import decode_state as decode_state
from ._checkpoint import encode_state as encode_state
from ._fold import apply_rewind as apply_rewind
from ._fold import effective_events as effective_events
from ._fold import fold as fold
from ._fold import fold_stored as fold_stored
from ._run_state import DONE_NODE_STATES as DONE_NODE_STATES
from ._run_state import WAITING_NODE_STATES as WAITING_NODE_STATES
from ._run_state import AgentReplay as AgentReplay
from ._run_state import ApprovalRecord as ApprovalRecord
from ._run_state import AttemptRecord as AttemptRecord
from ._run_state import CarriedOutput as CarriedOutput
from ._run_state import EventWaitRecord as EventWaitRecord
from ._run_state import FrameRecord as FrameRecord
from ._run_state import LoopRecord as LoopRecord
from ._run_state import NodeKey as NodeKey
from ._run_state import NodeRecord as NodeRecord
from ._run_state import NodeStateName as NodeStateName
from ._run_state import OpenRetry as OpenRetry
from ._run_state import RunState as RunState
from ._run_state import RunStatus as RunStatus
from ._run_state import SignalRecord as SignalRecord
from ._run_state import SubflowParent as SubflowParent
from ._run_state import TimerRecord as TimerRecord
from ._run_state import is_run_status as is_run_status
from .errors import CheckpointDecodeError as CheckpointDecodeError
from .errors import ForkBaseMismatchError as ForkBaseMismatchError
from .errors import InvalidRewindError as InvalidRewindError
from .errors import ProjectionError as ProjectionError

__all__ = (
    "AgentReplay",
    "CHECKPOINT_FORMAT",
    "DONE_NODE_STATES",
    "AttemptRecord",
    "CheckpointDecodeError",
    "ForkBaseMismatchError",
    "CarriedOutput",
    "FrameRecord",
    "LoopRecord",
    "InvalidRewindError",
    "NodeKey",
    "NodeRecord",
    "NodeStateName",
    "OpenRetry",
    "ProjectionError",
    "RunState",
    "SignalRecord",
    "SubflowParent",
    "TimerRecord",
    "WAITING_NODE_STATES",
    "ApprovalRecord",
    "EventWaitRecord",
    "RunStatus",
    "apply_event",
    "apply_rewind",
    "decode_state",
    "effective_events",
    "encode_state",
    "fold",
    "fold_stored",
    "fork_state",
    "is_run_status",
)
