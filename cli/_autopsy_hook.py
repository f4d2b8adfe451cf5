"""``up``'s post-failure hook: launch the autopsy of a failed run and say so in one line."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from smithers.engine.autopsy import autopsy_after_failure
from smithers.eventstore import resolve_db_path

from ._options import command_line
from ._text import echo

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from smithers.engine import RunResult

__all__ = ("NO_POST_FAILURE_HELP", "announce_autopsy", "autopsy_hook")

NO_POST_FAILURE_HELP = (
    "Do not launch the post-failure autopsy when the run fails (also SMITHERS_POST_FAILURE=0)."
)


def announce_autopsy(
    run_id: str,
    *,
    db: str | None,
    workflow_name: str,
    workflow_path: str | None,
    opted_out: bool,
) -> None:
    """Launch the post-failure autopsy of `run_id` (unless off); print one stderr line."""
    try:
        launch = autopsy_after_failure(
            run_id,
            workflow_name=workflow_name,
            db_path=resolve_db_path(db),
            workflow_path=workflow_path,
            opted_out=opted_out,
        )
    except OSError as e:
        echo(f"[smithers] Could not launch the post-failure autopsy: {e}", err=True)
        return
    if launch is None:
        return
    if launch.run_id is None:
        echo(
            "[smithers] Run failed. The post-failure workflow is not installed; run it by "
            f"hand: {launch.manual_command}",
            err=True,
        )
        return
    rid = launch.run_id
    watch = command_line("inspect", args=[rid], db=db)
    verdict = command_line("output", args=[rid, "output"], db=db)
    echo(
        f"[smithers] Run failed. Post-failure autopsy launched: {rid}. Watch it with `{watch}`, "
        f"read its verdict with `{verdict}` (opt out with --no-post-failure or "
        "SMITHERS_POST_FAILURE=0).",
        err=True,
    )


def autopsy_hook(
    result: RunResult,
    db: str | None,
    workflow_name: str,
    path: Path | None,
    *,
    opted_out: bool,
) -> Callable[[], None] | None:
    """Return `announce_autopsy` bound to a failed `result`, or None when it did not fail."""
    if result.status != "failed":
        return None
    return functools.partial(
        announce_autopsy,
        result.run_id,
        db=db,
        workflow_name=workflow_name,
        workflow_path=str(path) if path is not None else None,
        opted_out=opted_out,
    )
