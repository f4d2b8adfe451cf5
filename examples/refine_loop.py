"""Draft and review until the review passes: a Loop (Smithers' ``<Ralph>``).

Run it::

    smithers up examples/refine_loop.py --input '{"topic": "durable workflows"}'

Each pass of the loop ``refine`` is one iteration: ``draft`` writes a draft (improving
on the last review's notes), ``review`` scores it. When a pass ends the engine renders
again and reads ``until``: once the latest review passes, the loop is done and
``output`` publishes the accepted draft. Every pass keeps its own outputs in the log
(``smithers inspect RUN`` lists ``draft`` and ``review`` per iteration), and at most
``max_iterations`` passes run (``on_max_reached="fail"`` fails the run with
``RALPH_MAX_REACHED`` instead of publishing an unreviewed draft).

The two tasks are compute tasks standing in for agents: the draft gets one point of
quality per pass, and the review passes at ``pass_score`` (3 by default: the third
draft). Retry an earlier pass with ``smithers retry-task RUN --node review
--iteration 1``; see the passes with ``smithers timeline RUN``.
"""

import msgspec

from smithers import Loop, Sequence, Task, WorkflowContext, workflow


class RefineInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    topic: str = "durable workflows"
    pass_score: int = 3
    max_passes: int = 5


class Draft(msgspec.Struct):
    text: str
    quality: int


class Review(msgspec.Struct):
    passed: bool
    score: int
    notes: str


def write_draft(topic: str, iteration: int, notes: str | None) -> dict[str, object]:
    """Stand-in for a writing agent: each pass improves on the last review's notes."""
    text = f"Draft {iteration + 1} about {topic}"
    if notes:
        text += f" (addressing: {notes})"
    return {"text": text, "quality": iteration + 1}


def review_draft(draft: Draft, pass_score: int) -> dict[str, object]:
    """Stand-in for a reviewing agent: passes once the draft is good enough."""
    passed = draft.quality >= pass_score
    notes = "ship it" if passed else f"needs {pass_score - draft.quality} more point(s)"
    return {"passed": passed, "score": draft.quality, "notes": notes}


@workflow(name="refine-loop", input=RefineInput)
def refine_loop(ctx: WorkflowContext) -> Sequence:
    params: RefineInput = ctx.input
    last_review = ctx.latest(Review, "review")
    draft = ctx.output_maybe(Draft, "draft")  # this pass's draft, once written
    it = ctx.iteration
    notes = last_review.notes if last_review else None
    accepted = ctx.latest(Draft, "draft")
    done = last_review is not None and last_review.passed
    return Sequence(
        Loop(
            "refine",
            Task("draft", output=Draft, run=lambda: write_draft(params.topic, it, notes)),
            draft
            and Task("review", output=Review, run=lambda: review_draft(draft, params.pass_score)),
            until=done,
            max_iterations=params.max_passes,
            on_max_reached="fail",
        ),
        done
        and accepted
        and Task(
            "output",
            output=dict,
            value={"text": accepted.text, "passes": ctx.iteration_count(Review, "review")},
        ),
    )
