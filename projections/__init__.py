"""Pure folds from events to state (DESIGN §5): no I/O, clock or randomness."""

from __future__ import annotations

from ._run_state import DONE_NODE_STATES as DONE_NODE_STATES
from ._run_state import AttemptRecord as AttemptRecord
from ._run_state import FrameRecord as FrameRecord
from ._run_state import NodeKey as NodeKey
from ._run_state import NodeRecord as NodeRecord
from ._run_state import NodeStateName as NodeStateName
from ._run_state import RunState as RunState
from ._run_state import apply_event as apply_event
from ._run_state import fold as fold
from ._run_state import fold_stored as fold_stored

__all__ = (
    "DONE_NODE_STATES",
    "AttemptRecord",
    "FrameRecord",
    "NodeKey",
    "NodeRecord",
    "NodeStateName",
    "RunState",
    "apply_event",
    "fold",
    "fold_stored",
)
