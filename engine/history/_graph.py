"""`render_graph`: a workflow's tree for an input, rendered without running it."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from smithers.eventstore import SmithersError
from smithers.projections import (
    RunState,
)

from ..activation import compile_tree
from ..authoring import WorkflowContext, check_input
from ..errors import EngineError

if TYPE_CHECKING:
    from ..authoring import Workflow

__all__ = ("render_graph",)


def render_graph(wf: Workflow, input: Any = None, *, run_id: str = "graph") -> dict[str, Any]:
    """Render `wf` once, without running it, and return its canonical tree. No I/O.

    The render sees a run with nothing recorded yet: `ctx.output_maybe` gives None,
    so the tree is what a new run mounts first.

    Args:
        wf: The workflow.
        input: Its input (a JSON object, or an instance of its input type).
        run_id: The run id the builder sees as ``ctx.run_id``.

    Returns:
        The tree as plain JSON values: ``{"tag": "workflow", "children": [...]}``, each
        node with ``tag`` (``task``, ``sequence``, ``parallel``, ``branch``) and, for
        tasks, ``id``, ``kind`` and ``output`` (as in `FrameCommitted` keyframes).

    Raises:
        InvalidInputError: if `input` is not an object or fails the input schema.
        DuplicateIdError: if two tasks share an id.
        EngineError: code ``INVALID_INPUT`` if the builder returns a non-component;
            code ``WORKFLOW_EXECUTION_FAILED`` if it raises an exception that is not a
            `SmithersError` (details ``name``, ``message``, ``location`` as
            ``file:line``; the exception is its ``__cause__``).
        SmithersError: the builder's own (e.g. `MissingOutputError`), unchanged.

    Example:
        >>> render_graph(count, {"start": 5})["children"][0]["tag"]  # doctest: +SKIP
        'sequence'
    """
    input_value, _ = check_input(wf, input)
    ctx = WorkflowContext(run_id=run_id, input=input_value, state=RunState(run_id=run_id))
    try:
        built = wf.build(ctx)
    except SmithersError:
        raise
    except Exception as e:
        raise _builder_error(wf, e) from e
    return compile_tree(built).tree


def _builder_error(wf: Workflow, exc: Exception) -> EngineError:
    """``WORKFLOW_EXECUTION_FAILED`` for an exception the builder raised, with where."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
    message = f"{type(exc).__name__}: {exc}"
    return EngineError(
        f"The builder of workflow {wf.name!r} raised {message}",
        code="WORKFLOW_EXECUTION_FAILED",
        details={"name": type(exc).__name__, "message": str(exc), "location": where},
        hint=(f"Raised at {where}. " if where else "")
        + "Fix the builder; SMITHERS_DEBUG=1 shows the traceback.",
    )
