"""Errors of approvals: deciding what waits for a person.

Re-exported by `errors` (import them from there).
"""

from __future__ import annotations

from typing import Any

from ._error_base import EngineError
from ._shell import shell_command

__all__ = (
    "AmbiguousApprovalError",
    "ApprovalAlreadyDecidedError",
    "NoPendingApprovalsError",
)


class NoPendingApprovalsError(EngineError, LookupError):
    """``approve``/``deny`` found no approval waiting for a decision.

    The run (or the node named) asks for none: nothing waits yet, the run ended, or
    the node is not an approval. Details: `runId`, and `nodeId` when one was named.
    """

    default_code = "NO_PENDING_APPROVALS"

    def __init__(self, run_id: str, why: str, *, node_id: str | None = None) -> None:
        details: dict[str, Any] = {"runId": run_id}
        if node_id is not None:
            details["nodeId"] = node_id
        super().__init__(
            f"No approval waits for a decision in run {run_id!r}: {why}.",
            details=details,
            hint="See what waits with `smithers approvals`, or the run with "
            f"`{shell_command('inspect', args=[run_id])}`.",
        )


class AmbiguousApprovalError(EngineError, ValueError):
    """``approve``/``deny`` without a node (or iteration) while several approvals wait.

    Details: `runId`, `pending` (a list of ``{"nodeId", "iteration", "title"}``,
    with ``"runId"`` when they wait in the run's child runs).
    """

    default_code = "AMBIGUOUS_APPROVAL"

    def __init__(
        self,
        run_id: str,
        pending: list[tuple[str, int, str | None]],
        *,
        runs: list[str] | None = None,
    ) -> None:
        where = runs or [run_id] * len(pending)
        shown = ", ".join(
            f"{node}"
            + (f" (iteration {it})" if it else "")
            + (f" in child run {rid}" if rid != run_id else "")
            + (f": {title!r}" if title else "")
            for (node, it, title), rid in zip(pending, where, strict=True)
        )
        node, iteration, _ = pending[0]
        opts: list[tuple[str, str | None]] = [("--node", node)]
        if iteration:
            opts.append(("--iteration", str(iteration)))
        example = shell_command("approve", args=[where[0]], options=opts)
        items: list[dict[str, object]] = [
            {"nodeId": n, "iteration": it, "title": title} for n, it, title in pending
        ]
        if runs is not None:
            for item, rid in zip(items, runs, strict=True):
                item["runId"] = rid
        super().__init__(
            f"{len(pending)} approvals wait in run {run_id!r}: {shown}. Say which one.",
            details={"runId": run_id, "pending": items},
            hint=f"Name the node, e.g. `{example}`.",
        )


class ApprovalAlreadyDecidedError(EngineError):
    """The approval was already granted or denied: a decision is recorded once.

    Details: `runId`, `nodeId`, `iteration`, `decision` (``granted``/``denied``),
    `decidedBy`, `decidedAtMs`, `note`.
    """

    default_code = "APPROVAL_ALREADY_DECIDED"

    def __init__(
        self,
        run_id: str,
        node_id: str,
        iteration: int,
        *,
        decision: str,
        decided_by: str | None,
        decided_at_ms: int | None,
        note: str | None,
        when: str,
    ) -> None:
        who = f" by {decided_by}" if decided_by else ""
        said = f" (note: {note!r})" if note else ""
        it = f" (iteration {iteration})" if iteration else ""
        super().__init__(
            f"The approval of {node_id!r}{it} in run {run_id!r} was already {decision}"
            f"{who} at {when}{said}; a decision is recorded once.",
            details={
                "runId": run_id,
                "nodeId": node_id,
                "iteration": iteration,
                "decision": decision,
                "decidedBy": decided_by,
                "decidedAtMs": decided_at_ms,
                "note": note,
            },
            hint=f"See the run with `{shell_command('inspect', args=[run_id])}`; to decide "
            "again, rewind it "
            "to a frame before the decision (`smithers rewind`).",
        )
