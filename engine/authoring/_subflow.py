"""`Subflow`: another workflow run as one node of this one, as Smithers' ``<Subflow>``.

The node runs the child workflow as a run of its own in the same database, with the
deterministic id ``<parentRunId>:child:<nodeId>:<iteration>`` (`smithers.engine.child_run_id`), and
finishes with the child's output (its node named ``output``). The engine does the rest
(``activation`` runs it as an attempt, ``lifecycle`` starts or resumes the child).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore import decode_json, encode_json

from .._run_ids import SUBFLOW_ID
from ..errors import UnsupportedFeatureError
from ._components import DEFAULT_BACKOFF, Backoff, Task, Workflow

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ("Subflow",)


class Subflow(Task):
    """Run another workflow as a child run; its output is this node's output.

    As Smithers' ``<Subflow>``. When the node starts, the child workflow runs as a run
    of its own in the same database, with the id ``<parentRunId>:child:<nodeId>:
    <iteration>`` and its parent recorded on its ``RunStarted`` (``parentRunId``,
    ``parentNodeId``, ``parentIteration``). The node finishes with the child's
    ``RunResult.output`` (its node named ``output``), validated against `output`.

    - A failed (or cancelled) child fails the node with ``WORKFLOW_EXECUTION_FAILED``
      (details ``status``, ``childRunId``), the child's error as its cause.
    - Cancelling the parent cancels the child; the child records its cancellation.
    - Resuming the parent resumes an unfinished child instead of starting another;
      a finished child's result is reused, never run again.
    - A child that parks (``waiting-approval``/``-event``/``-timer``) makes the node
      wait too, and the parent parks with the same status. Decide or signal the child
      (``smithers approve CHILD_RUN_ID``); when the child ends the parent is resumed
      (or resume it: ``smithers up --resume PARENT``) and reads the child's result.

    Args:
        id: Node id: letters, digits and ``_.-`` (it is part of the child's run id).
        workflow: The child `Workflow` (from ``@workflow``).
        input: The child's input: a JSON object (dict or msgspec Struct) or None for
            ``{}``; validated against the child workflow's input type when it runs.
        output: Schema of the child's output (msgspec Struct type or ``dict``).
        label, depends_on, skip_if: as for `Task`.
        retries: Child runs to start again after a failed one (default 0); each
            retry is a new child run, ``...:<iteration>:<n>``.
        backoff: Delay between a failed child and the next (as for `Task`).
        timeout_ms: Cancel the child and fail the node (``TASK_TIMEOUT``) after this
            many ms.

    Raises:
        TaskIdRequiredError: if `id` is empty.
        UnsupportedFeatureError: if `id` has characters a run id cannot have,
            `workflow` is not a `Workflow`, `input` is not a JSON object, or `retries`
            / `timeout_ms` are out of range.
    """

    __slots__ = ("input", "workflow")

    def __init__(
        self,
        id: str,
        *,
        workflow: Workflow,
        input: Any = None,
        output: Any = dict,
        label: str | None = None,
        depends_on: Iterable[str] = (),
        skip_if: bool = False,
        retries: int | None = None,
        backoff: Backoff | None = None,
        timeout_ms: int | None = None,
    ) -> None:
        self._init_node(
            id,
            kind="subflow",
            output=output if output is not None else dict,
            label=label,
            depends_on=depends_on,
            skip_if=skip_if,
        )
        if not SUBFLOW_ID.fullmatch(id):
            raise UnsupportedFeatureError(
                f"Subflow {id!r}: its id is part of the child's run id, so it may only "
                "have letters, digits and _ . -.",
                details={"nodeId": id},
            )
        if not isinstance(workflow, Workflow):
            raise UnsupportedFeatureError(
                f"Subflow {id!r} needs workflow=<a @workflow object>, got {workflow!r}.",
                details={"nodeId": id},
            )
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise UnsupportedFeatureError(
                f"Subflow {id!r}: retries must be an int >= 0, got {retries!r}.",
                details={"nodeId": id},
            )
        if timeout_ms is not None and (not isinstance(timeout_ms, int) or timeout_ms <= 0):
            raise UnsupportedFeatureError(
                f"Subflow {id!r}: timeout_ms must be an int > 0, got {timeout_ms!r}.",
                details={"nodeId": id},
            )
        self.workflow = workflow
        self.input = _json_object(id, input)
        self.retries = retries or 0
        self.backoff = backoff or DEFAULT_BACKOFF
        self.timeout_ms = timeout_ms

    def __repr__(self) -> str:
        return f"Subflow({self.id!r}, workflow={self.workflow.name!r})"


def _json_object(node_id: str, value: Any) -> dict[str, Any]:
    """`value` (None, a mapping or a Struct) as a plain JSON object."""
    if value is None:
        return {}
    try:
        plain = decode_json(encode_json(value))
    except (TypeError, msgspec.EncodeError) as e:
        raise UnsupportedFeatureError(
            f"Subflow {node_id!r}: input is not JSON-serialisable: {e}.",
            details={"nodeId": node_id},
        ) from e
    if not isinstance(value, Mapping | msgspec.Struct) or not isinstance(plain, dict):
        raise UnsupportedFeatureError(
            f"Subflow {node_id!r}: input must be a JSON object (a dict or a Struct), "
            f"got {type(value).__name__}.",
            details={"nodeId": node_id},
        )
    return plain
