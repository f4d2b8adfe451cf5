"""Debugging commands that only read: ``diff`` and ``verify`` (issue 8).

``diff RUN --from N --to M`` compares a run between two frames; ``diff RUN_A RUN_B
[--frame N]`` compares two runs (a fork against its parent, a replay against the
original). ``verify RUN`` first checks the run's stored log against its hash chain
(issue 16), then re-renders the run's workflow at every recorded frame and compares
the tree hashes (the determinism check): exit 0 when the chain holds and every frame
matches, 1 otherwise; ``--log-only`` stops after the chain. Both append nothing.
Registered on the ``smithers`` group when `smithers.cli` is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import msgspec
from smithers.engine import load_workflow

from ._clients import Clients, pass_clients
from ._commands import main
from ._errors import EXIT_FAILED, EXIT_OK
from ._options import command_line, db_option, json_option
from ._output import compact_json, echo_json, error_label
from ._text import echo

if TYPE_CHECKING:
    from smithers.engine import (
        ChainCheck,
        Client,
        DiffSide,
        FrameMismatch,
        JsonChange,
        RunDiff,
        VerifyResult,
    )

__all__ = ("diff_command", "diff_json", "verify_command", "verify_json")

_HASH_CHARS = 12
_VALUE_CHARS = 60
_MARK = {"added": "+", "removed": "-", "changed": "~"}


# ---------------------------------------------------------------------- diff


def diff_json(d: RunDiff) -> dict[str, Any]:
    """Return ``diff --json``: both sides, the status, input and node changes (camelCase).

    ``{"a": {...}, "b": {...}, "empty": bool, "status": [a, b] | null, "input": [...],
    "nodes": [{"nodeId", "iteration", "change", "stateA", "stateB", "output": [...]}]}``;
    each JSON change is ``{"path", "op", "old", "new"}``.
    """
    out: dict[str, Any] = msgspec.to_builtins(d)
    out["empty"] = d.empty
    return out


def _side_text(side: DiffSide) -> str:
    where = "(latest)" if side.frame_no is None else f"at frame {side.frame_no}"
    text = f"{side.run_id} {where}"
    if side.source_run_id != side.run_id:
        text += f" (inherited from {side.source_run_id})"
    return text


def _change_line(c: JsonChange, indent: str) -> str:
    old, new = compact_json(c.old, limit=_VALUE_CHARS), compact_json(c.new, limit=_VALUE_CHARS)
    if c.op == "added":
        return f"{indent}+ {c.path}: {new}"
    if c.op == "removed":
        return f"{indent}- {c.path}: {old}"
    return f"{indent}~ {c.path}: {old} -> {new}"


def _print_diff(d: RunDiff) -> None:
    echo(f"a  {_side_text(d.a)}")
    echo(f"b  {_side_text(d.b)}")
    echo()
    if d.empty:
        echo("No differences: same status, input, node states and outputs.")
        return
    if d.status is not None:
        echo(f"Status  {d.status[0]} -> {d.status[1]}")
    if d.input:
        echo("Input")
        for c in d.input:
            echo(_change_line(c, "  "))
    if d.nodes:
        echo("Nodes")
    for n in d.nodes:
        name = n.node_id + (f" (iteration {n.iteration})" if n.iteration else "")
        if n.change == "added":
            echo(f"  + {name}  {n.state_b}")
        elif n.change == "removed":
            echo(f"  - {name}  {n.state_a}")
        else:
            states = n.state_a if n.state_a == n.state_b else f"{n.state_a} -> {n.state_b}"
            echo(f"  ~ {name}  {states}")
        for c in n.output:
            echo(_change_line(c, "      output "))


@main.command("diff")
@click.argument("run_id", metavar="RUN")
@click.argument("other", metavar="[RUN_B]", required=False)
@click.option("--from", "from_frame", type=click.IntRange(min=0), metavar="N", help="RUN's frame.")
@click.option(
    "--to",
    "to_frame",
    type=click.IntRange(min=0),
    metavar="N",
    help="RUN_B's frame (RUN's with one run).",
)
@click.option(
    "--frame",
    type=click.IntRange(min=0),
    metavar="N",
    help="Both sides' frame (with two runs). Default: each run as it is now.",
)
@db_option
@json_option
@pass_clients
def diff_command(
    clients: Clients,
    run_id: str,
    other: str | None,
    from_frame: int | None,
    to_frame: int | None,
    frame: int | None,
    db: str | None,
    as_json: bool,
) -> None:
    """Show what changed between two frames of a run, or between two runs.

    Compares the run's status and input, and every node: added (+), removed (-),
    changed (~: its state, or its output, shown as a JSON diff). With one run, --from
    and --to pick its frames (default: now); with two, --frame picks the same frame
    of both (a fork's frames up to its parent frame are its parent's). Reads the
    log; writes nothing. See frame numbers with `smithers timeline RUN`.

    \b
    Examples:
        smithers diff RUN --from 1 --to 3
        smithers diff PARENT_RUN FORK_RUN
        smithers diff ORIGINAL_RUN REPLAY_RUN --frame 2 --json | jq '.nodes'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"

    async def read(client: Client) -> RunDiff:
        handle = await client.get_run(run_id)
        return await handle.diff(other, from_frame=from_frame, to_frame=to_frame, frame=frame)

    d = clients.run(db, read, read_only=True)
    if as_json:
        echo_json(diff_json(d))
    else:
        _print_diff(d)


# ---------------------------------------------------------------------- verify


def verify_json(result: VerifyResult) -> dict[str, Any]:
    """Return ``verify --json``: ``{"runId", "ok", "chain": {"status", "ok",
    "rowsChecked", "lastHash", "seq", "reason", "message", "parentRunId", "parentSeq",
    "parentMissing"},
    "logOnly", "framesChecked", "mismatchedFrames", "firstMismatch": {"frameNo", "seq",
    "recordedHash", "renderedHash", "error", "nodes": [{"nodeId", "change", "recorded",
    "rendered"}]} | null, "determinismError", ...}``.
    """  # noqa: D205 - the shape is the summary
    out: dict[str, Any] = msgspec.to_builtins(result)
    out["ok"] = result.ok
    if result.chain is not None:
        out["chain"]["ok"] = result.chain.ok
    return out


def _node_fields(node: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (node or {}).items() if k not in ("tag", "id")}


def _print_mismatch(m: FrameMismatch) -> None:
    echo(f"  recorded hash  {m.recorded_hash[:_HASH_CHARS]}")
    rendered = m.rendered_hash[:_HASH_CHARS] if m.rendered_hash else "(the builder raised)"
    echo(f"  rendered hash  {rendered}")
    if m.error is not None:
        echo(f"  the builder raised {error_label(m.error)}")
    for n in m.nodes:
        if n.change == "added":
            echo(f"  + task {n.node_id} {compact_json(_node_fields(n.rendered))}")
        elif n.change == "removed":
            echo(f"  - task {n.node_id} {compact_json(_node_fields(n.recorded))}")
        else:
            old, new = _node_fields(n.recorded), _node_fields(n.rendered)
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            for key in changed:
                echo(
                    f"  ~ task {n.node_id} {key}: "
                    f"{compact_json(old.get(key), limit=_VALUE_CHARS)} -> "
                    f"{compact_json(new.get(key), limit=_VALUE_CHARS)}"
                )
    if not m.nodes and m.error is None:
        echo("  the tasks are the same; their order or grouping differs")


@main.command("verify")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--workflow",
    "workflow_file",
    metavar="FILE[:NAME]",
    help="Check this workflow file instead of the one the run recorded (e.g. the source "
    "`smithers import` wrote for an imported run).",
)
@click.option(
    "--log-only",
    is_flag=True,
    help="Only check the stored log against its hash chain (no workflow imported).",
)
@db_option
@json_option
@pass_clients
def verify_command(
    clients: Clients,
    run_id: str,
    workflow_file: str | None,
    log_only: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Check the run's stored log, then that its workflow still renders what it recorded.

    First the log: every stored event carries a hash chaining it to the one before
    (SHA-256 over the previous hash and the event's stored bytes); the chain is
    recomputed and the first seq whose bytes or order do not match is named (a row
    edited, deleted or moved outside smithers). --log-only stops there.

    Then imports the workflow file the run recorded and, replaying the log, re-renders
    the tree at every recorded frame from the state the engine rendered it from, and
    compares its hash with the recorded one. A difference means the builder reads
    something besides ctx (the clock, randomness, files, the environment) or its code
    changed since the run: resuming or replaying it would not continue the same
    history. Exit 0 when the chain holds and every frame matches, 1 when the chain is
    broken or a frame differs (the first is shown with the tasks that differ).
    Writes nothing; runs the builder once per frame.

    \b
    Examples:
        smithers verify RUN
        smithers verify RUN --log-only
        smithers verify RUN --json | jq '.chain, .firstMismatch.nodes'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    wf = load_workflow(workflow_file)[0] if workflow_file is not None else None

    async def read(client: Client) -> VerifyResult:
        return await (await client.get_run(run_id)).verify(workflow=wf, log_only=log_only)

    result = clients.run(db, read, read_only=True)
    if as_json:
        echo_json(verify_json(result))
    else:
        _print_verify(result, db)
    raise click.exceptions.Exit(EXIT_OK if result.ok else EXIT_FAILED)


def _print_chain(run_id: str, chain: ChainCheck | None, db: str | None) -> None:
    if chain is None:
        return
    rows = f"{chain.rows_checked} row{'s' if chain.rows_checked != 1 else ''}"
    fork = (
        f", chained from {chain.parent_run_id} seq {chain.parent_seq}"
        + (" (that row is gone: checked from seq 1 on)" if chain.parent_missing else "")
        if chain.parent_run_id is not None
        else ""
    )
    if chain.status == "ok":
        last = (chain.last_hash or "")[:_HASH_CHARS]
        echo(f"Run {run_id}: log intact, {rows} match their hash chain{fork} (last {last}).")
    elif chain.status == "collected":
        last = (chain.last_hash or "")[:_HASH_CHARS]
        echo(
            f"Run {run_id}: log pruned by `smithers gc --keep-audit`; the {rows} kept match "
            f"their hash chain, stretch by stretch (last {last})."
        )
    elif chain.status == "absent":
        echo(
            f"Run {run_id}: log not checked, {rows} without a hash chain: the database "
            "predates it (schema version 2). This version computes it when it first opens "
            "the database for writing (any write command, or `await "
            "smithers.eventstore.SQLiteEventStore.open(PATH)` in Python)."
        )
    else:
        echo(
            f"Run {run_id}: log BROKEN at {chain.message} ({rows} read{fork}). The stored "
            "log was changed outside smithers: restore the database from a backup; see "
            f"the rows with `{command_line('events', args=[run_id], db=db)}`."
        )


def _print_verify(result: VerifyResult, db: str | None) -> None:
    _print_chain(result.run_id, result.chain, db)
    if result.log_only:
        return
    if result.determinism_error is not None:
        echo(
            f"Run {result.run_id}: frames not re-rendered: {error_label(result.determinism_error)}"
        )
        return
    frames = f"{result.frames_checked} frame{'s' if result.frames_checked != 1 else ''}"
    source = result.workflow_name + (f" ({result.workflow_path})" if result.workflow_path else "")
    m = result.first_mismatch
    if m is None:
        echo(f"Run {result.run_id}: {frames} re-rendered with workflow {source}; all match.")
        return
    bad = result.mismatched_frames
    shown = ", ".join(str(n) for n in bad[:10]) + (", …" if len(bad) > 10 else "")
    echo(
        f"Run {result.run_id}: frame {m.frame_no} (seq {m.seq}) does not re-render as "
        f"recorded with workflow {source}; {len(bad)} of {frames} differ ({shown})."
    )
    _print_mismatch(m)
    echo(
        "A builder must be a pure function of ctx (no clock, randomness, files or "
        "environment), and its code must not change under a run. Revert the edit to "
        "resume this run, or fork/replay it onto the new code "
        f"(`{command_line('fork', args=[result.run_id], options=[('--frame', 'N')], db=db)}`),"
        " or start a fresh run."
    )
