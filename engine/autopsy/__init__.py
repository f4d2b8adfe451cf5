"""The post-failure autopsy: an offline classifier of failed runs, and its launcher.

`classify_run` (pure: a run's state and events in, an `AutopsyVerdict` out) is the
first opinion of the ``post-failure`` workflow (``smithers/engine/pack/workflows/
post_failure.py``), which ``smithers up`` launches in the background when a run fails
(`launch_post_failure`); ``smithers why`` shows the verdict (`find_autopsy`).
"""

from __future__ import annotations

from ._agent import AGENT_ENV as AGENT_ENV
from ._agent import AgentOpinion as AgentOpinion
from ._agent import autopsy_agent as autopsy_agent
from ._agent import autopsy_agent_spec as autopsy_agent_spec
from ._agent import autopsy_prompt as autopsy_prompt
from ._agent import merge_opinion as merge_opinion
from ._classify import APPROVE_NODE as APPROVE_NODE
from ._classify import FAILURE_CLASSES as FAILURE_CLASSES
from ._classify import SUGGESTIONS as SUGGESTIONS
from ._classify import AutopsyVerdict as AutopsyVerdict
from ._classify import classify as classify
from ._classify import classify_run as classify_run
from ._evidence import LAST_EVENTS as LAST_EVENTS
from ._evidence import MAX_SOURCE_CHARS as MAX_SOURCE_CHARS
from ._evidence import AttemptFact as AttemptFact
from ._evidence import ErrorFact as ErrorFact
from ._evidence import EventLine as EventLine
from ._evidence import Evidence as Evidence
from ._evidence import FailedNode as FailedNode
from ._evidence import collect_evidence as collect_evidence
from ._find import AutopsyFound as AutopsyFound
from ._find import find_autopsy as find_autopsy
from ._launch import AUTOPSY_ENV as AUTOPSY_ENV
from ._launch import OPS_WORKFLOWS as OPS_WORKFLOWS
from ._launch import POST_FAILURE_WORKFLOW as POST_FAILURE_WORKFLOW
from ._launch import AutopsyLaunch as AutopsyLaunch
from ._launch import autopsy_after_failure as autopsy_after_failure
from ._launch import launch_post_failure as launch_post_failure
from ._launch import new_autopsy_run_id as new_autopsy_run_id
from ._launch import post_failure_enabled as post_failure_enabled
from ._launch import post_failure_workflow_path as post_failure_workflow_path
from ._rules import BUG_EXCEPTIONS as BUG_EXCEPTIONS
from ._rules import FLAKE_CODES as FLAKE_CODES
from ._rules import TRANSIENT_CODES as TRANSIENT_CODES
from ._rules import TRANSIENT_EXCEPTIONS as TRANSIENT_EXCEPTIONS
from ._rules import EnvironmentSignal as EnvironmentSignal
from ._rules import environment_signal as environment_signal

__all__ = (
    "AGENT_ENV",
    "APPROVE_NODE",
    "AUTOPSY_ENV",
    "BUG_EXCEPTIONS",
    "FAILURE_CLASSES",
    "FLAKE_CODES",
    "LAST_EVENTS",
    "MAX_SOURCE_CHARS",
    "OPS_WORKFLOWS",
    "POST_FAILURE_WORKFLOW",
    "SUGGESTIONS",
    "TRANSIENT_CODES",
    "TRANSIENT_EXCEPTIONS",
    "AgentOpinion",
    "AttemptFact",
    "AutopsyFound",
    "AutopsyLaunch",
    "AutopsyVerdict",
    "EnvironmentSignal",
    "ErrorFact",
    "EventLine",
    "Evidence",
    "FailedNode",
    "autopsy_after_failure",
    "autopsy_agent",
    "autopsy_agent_spec",
    "autopsy_prompt",
    "classify",
    "classify_run",
    "collect_evidence",
    "environment_signal",
    "find_autopsy",
    "launch_post_failure",
    "merge_opinion",
    "new_autopsy_run_id",
    "post_failure_enabled",
    "post_failure_workflow_path",
)
