"""Launching the post-failure autopsy when ``smithers up`` ends with a failed run.

`launch_post_failure` starts ``python -m smithers up <post_failure.py> --run-id
post-failure-<base36 ms>-<hex> --input {targetRunId, workflowPath} --db DB`` in a session
of its own (`spawn_detached`), with ``SMITHERS_POST_FAILURE=0`` (it cannot recurse) and
``SMITHERS_DB`` set in its environment, and returns at once. It is skipped when the
user opted out (``--no-post-failure``, ``SMITHERS_POST_FAILURE=0``) and for the ops
workflows themselves.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .._shell import shell_command

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = (
    "AUTOPSY_ENV",
    "OPS_WORKFLOWS",
    "POST_FAILURE_WORKFLOW",
    "AutopsyLaunch",
    "autopsy_after_failure",
    "launch_post_failure",
    "new_autopsy_run_id",
    "post_failure_enabled",
    "post_failure_workflow_path",
)

POST_FAILURE_WORKFLOW = "post-failure"
"""The autopsy workflow's name (``@workflow("post-failure")``)."""
OPS_WORKFLOWS = frozenset({"post-failure", "triage-run", "monitor", "monitor-smithers", "init"})
"""Workflows whose failures never launch an autopsy (so autopsies never recurse)."""
AUTOPSY_ENV = "SMITHERS_POST_FAILURE"
"""``0`` (or ``false``, ``no``, ``off``) turns the autopsy off."""
_LOG_FILE = "up.log"


class AutopsyLaunch(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `launch_post_failure` did."""

    run_id: str | None
    """The autopsy run's id, or None when none was started."""
    pid: int | None = None
    log_file: str | None = None
    manual_command: str | None = None
    """When the workflow is not installed: the command that runs it by hand."""


def post_failure_enabled(
    workflow_name: str, *, opted_out: bool = False, env: Mapping[str, str] | None = None
) -> bool:
    """Return whether a failed run of `workflow_name` launches an autopsy. Pure.

    Args:
        workflow_name: The failed run's workflow.
        opted_out: ``--no-post-failure`` was given.
        env: The environment (default ``os.environ``): ``SMITHERS_POST_FAILURE=0``
            turns it off.

    Returns:
        False when opted out, turned off or for an ops workflow (`OPS_WORKFLOWS`).
    """
    env = os.environ if env is None else env
    off = env.get(AUTOPSY_ENV, "").strip().lower() in ("0", "false", "no", "off")
    return not (opted_out or off or workflow_name in OPS_WORKFLOWS)


def post_failure_workflow_path(cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the ``post-failure`` workflow file to run, or None when there is none.

    The project's copy, ``.smithers/workflows/post_failure.py`` in `cwd` or the nearest
    folder above it (written by ``smithers init``), else the one shipped in smithers'
    workflow pack (``smithers/engine/pack/workflows/post_failure.py``).
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    for folder in (base, *base.parents):
        candidate = folder / ".smithers" / "workflows" / "post_failure.py"
        if candidate.is_file():
            return candidate.resolve()
    shipped = Path(__file__).resolve().parents[1] / "pack" / "workflows" / "post_failure.py"
    return shipped if shipped.is_file() else None


def new_autopsy_run_id() -> str:
    """Return a new autopsy run id: ``post-failure-<unix ms base36>-<6 hex>``."""
    from ..lifecycle import new_run_id  # lifecycle reads history, which reads autopsy

    return new_run_id("post-failure")


def launch_post_failure(
    target_run_id: str,
    *,
    db_path: str | os.PathLike[str],
    workflow_path: str | None,
    cwd: str | os.PathLike[str] | None = None,
) -> AutopsyLaunch:
    """Start the post-failure autopsy of `target_run_id` in the background.

    Call it only when `post_failure_enabled`. Blocks only to fork.

    Args:
        target_run_id: The failed run.
        db_path: Its database (the autopsy run is recorded there too).
        workflow_path: The failed run's workflow file (input ``workflowPath``).
        cwd: Where to look for the project's ``.smithers/workflows`` (default: cwd).

    Returns:
        The launch: the autopsy's run id, pid and log file; or, when the workflow is
        not installed, no run id and the manual command.

    Raises:
        OSError: if the process cannot be started.
    """
    from ..activation import default_log_dir
    from ..lifecycle import spawn_detached

    db = str(Path(db_path).resolve())
    payload = json.dumps({"targetRunId": target_run_id, "workflowPath": workflow_path})
    path = post_failure_workflow_path(cwd)
    if path is None:
        manual = shell_command(
            "up", args=["post_failure.py"], options=[("--input", payload), ("--db", db)]
        )
        return AutopsyLaunch(run_id=None, manual_command=manual)
    run_id = new_autopsy_run_id()
    log_file = default_log_dir(db, run_id) / _LOG_FILE
    argv = [sys.executable, "-m", "smithers", "up", str(path), "--run-id", run_id]
    argv += ["--input", payload, "--db", db, "--hold-ms", "0"]
    argv += ["--reason", f"post-failure autopsy of {target_run_id}"]
    env = {**os.environ, AUTOPSY_ENV: "0", "SMITHERS_DB": db}
    proc = spawn_detached(argv, log_file, db_path=db, env=env)
    return AutopsyLaunch(run_id=run_id, pid=proc.pid, log_file=str(log_file))


def autopsy_after_failure(
    target_run_id: str,
    *,
    workflow_name: str,
    db_path: str | os.PathLike[str],
    workflow_path: str | None = None,
    opted_out: bool = False,
    cwd: str | os.PathLike[str] | None = None,
) -> AutopsyLaunch | None:
    """Launch the autopsy of a run that just failed, unless it is off; ``up``'s hook.

    `post_failure_enabled` then `launch_post_failure` (see both).

    Returns:
        The launch, or None when the autopsy is off (opted out, ``SMITHERS_POST_FAILURE=0``
        or an ops workflow).

    Raises:
        OSError: if the process cannot be started.
    """
    if not post_failure_enabled(workflow_name, opted_out=opted_out):
        return None
    return launch_post_failure(target_run_id, db_path=db_path, workflow_path=workflow_path, cwd=cwd)
