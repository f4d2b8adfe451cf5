"""A run's past, read from its log.

The state at a point, frames, the timeline, diffs, verify, the read API, a node's story,
the audit trail.
"""

from __future__ import annotations

from ._audit import OPERATION_TYPES as OPERATION_TYPES
from ._audit import Operation as Operation
from ._audit import audit as audit
from ._audit import is_operation as is_operation
from ._audit import operation_params as operation_params
from ._audit import related_runs as related_runs
from ._chain_check import COLLECTED_STATUS as COLLECTED_STATUS
from ._chain_check import ChainCheck as ChainCheck
from ._chain_check import check_chain as check_chain
from ._children import ACTIVE_CHILD_STATUSES as ACTIVE_CHILD_STATUSES
from ._children import ChildRun as ChildRun
from ._children import active_descendants as active_descendants
from ._children import child_runs as child_runs
from ._children import is_child_run as is_child_run
from ._diff import DiffSide as DiffSide
from ._diff import JsonChange as JsonChange
from ._diff import NodeDiff as NodeDiff
from ._diff import RunDiff as RunDiff
from ._diff import diff_runs as diff_runs
from ._diff import json_diff as json_diff
from ._graph import render_graph as render_graph
from ._node import AttemptDetail as AttemptDetail
from ._node import HeartbeatDetail as HeartbeatDetail
from ._node import IterationDetail as IterationDetail
from ._node import NodeDetail as NodeDetail
from ._node import build_node_detail as build_node_detail
from ._node import node_detail as node_detail
from ._queries import event_to_json as event_to_json
from ._queries import follow_events as follow_events
from ._queries import get_output as get_output
from ._queries import list_runs as list_runs
from ._queries import load_run as load_run
from ._queries import read_events as read_events
from ._state import AUDIT_STREAM_ID as AUDIT_STREAM_ID
from ._state import SUPERVISOR_STREAM_ID as SUPERVISOR_STREAM_ID
from ._state import FrameRef as FrameRef
from ._state import find_frame as find_frame
from ._state import frame_not_found as frame_not_found
from ._state import frame_range as frame_range
from ._state import load_state as load_state
from ._state import state_at as state_at
from ._timeline import FrameView as FrameView
from ._timeline import Timeline as Timeline
from ._timeline import TimelineFrame as TimelineFrame
from ._timeline import TimelineRewind as TimelineRewind
from ._timeline import TimelineWait as TimelineWait
from ._timeline import frame_view as frame_view
from ._timeline import timeline as timeline
from ._timeline import tree_at as tree_at
from ._verify import FrameMismatch as FrameMismatch
from ._verify import TreeNodeChange as TreeNodeChange
from ._verify import VerifyResult as VerifyResult
from ._verify import recorded_workflow as recorded_workflow
from ._verify import verify_frame as verify_frame
from ._verify import verify_run as verify_run
from ._why import WHY_EVENT_TYPES as WHY_EVENT_TYPES
from ._why import WhyCancel as WhyCancel
from ._why import WhyFailure as WhyFailure
from ._why import WhyReport as WhyReport
from ._why import WhyStep as WhyStep
from ._why import explain as explain

__all__ = (
    "COLLECTED_STATUS",
    "OPERATION_TYPES",
    "Operation",
    "audit",
    "is_operation",
    "operation_params",
    "related_runs",
    "ACTIVE_CHILD_STATUSES",
    "ChildRun",
    "active_descendants",
    "child_runs",
    "is_child_run",
    "DiffSide",
    "JsonChange",
    "NodeDiff",
    "RunDiff",
    "diff_runs",
    "json_diff",
    "FrameMismatch",
    "TreeNodeChange",
    "VerifyResult",
    "ChainCheck",
    "check_chain",
    "recorded_workflow",
    "verify_frame",
    "verify_run",
    "AttemptDetail",
    "HeartbeatDetail",
    "IterationDetail",
    "NodeDetail",
    "build_node_detail",
    "node_detail",
    "AUDIT_STREAM_ID",
    "SUPERVISOR_STREAM_ID",
    "FrameRef",
    "find_frame",
    "frame_not_found",
    "frame_range",
    "load_state",
    "state_at",
    "FrameView",
    "Timeline",
    "TimelineFrame",
    "TimelineRewind",
    "TimelineWait",
    "render_graph",
    "frame_view",
    "timeline",
    "tree_at",
    "event_to_json",
    "follow_events",
    "get_output",
    "list_runs",
    "load_run",
    "read_events",
    "WHY_EVENT_TYPES",
    "WhyCancel",
    "WhyFailure",
    "WhyReport",
    "WhyStep",
    "explain",
)
