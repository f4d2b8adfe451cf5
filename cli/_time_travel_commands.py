"""Time-travel commands that only read: ``graph``, ``state``, ``timeline`` (DESIGN §7, §9).

``graph FILE`` renders a workflow without running it; ``state RUN --frame N`` shows the
tree and node states at a frame; ``timeline RUN`` lists a run's frames and its forks
and continuations. They append nothing. Registered on the ``smithers`` group when
`smithers.cli` is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import msgspec
from rich.text import Text
from rich.tree import Tree
from smithers.engine import load_workflow, render_graph

from ._clients import Clients, pass_clients
from ._commands import main
from ._options import LongNameOption, check_run_id, db_option, json_option, parse_input_json
from ._output import (
    STATE_STYLES,
    echo_json,
    format_clock,
    format_time,
    inspect_json,
    print_table,
    stdout_console,
    stdout_is_tty,
)
from ._text import echo, safe

if TYPE_CHECKING:
    from smithers.engine import Client, FrameView, Timeline, TimelineWait
    from smithers.projections import RunState

__all__ = ("graph_command", "state_command", "timeline_command")

_HASH_CHARS = 12


# ---------------------------------------------------------------------- trees


def _node_label(node: dict[str, Any], states: dict[str, str] | None) -> tuple[str, str]:
    """``(text, state)`` of a tree node: ``task review (agent) finished``."""
    tag = str(node.get("tag", "?"))
    if tag == "task":
        key = str(node.get("id"))
        if node.get("iteration") is not None:
            key += f"#{node['iteration']}"  # a task in a loop: this pass
        text = f"task {key} ({node.get('kind')})"
        if node.get("label"):
            text += f" {node['label']!r}"
        # A task this frame's render mounted has no record yet (NodePending follows).
        state = (states or {}).get(key, "new" if states is not None else "")
        return text, state
    if tag == "loop":
        passes = f"pass {node.get('iteration')}, max {node.get('maxIterations')}"
        return f"loop {node.get('id')} ({passes})", ""
    if tag == "branch":
        return f"branch ({'then' if node.get('if') else 'else'})", ""
    if node.get("maxConcurrency") is not None:
        return f"{tag} (max {node['maxConcurrency']})", ""
    return tag, ""


def _print_tree(tree: dict[str, Any], states: dict[str, str] | None = None) -> None:
    """Print a canonical tree: a rich Tree on a TTY, indented lines otherwise."""
    tty = stdout_is_tty()
    root_text, _ = _node_label(tree, states)
    rich_root = Tree(Text(safe(root_text), style="bold")) if tty else None
    lines: list[str] = []
    stack: list[tuple[dict[str, Any], int, Tree | None]] = [(tree, 0, rich_root)]
    while stack:  # iterative: a 10,000-task sequence must not hit the recursion limit
        node, depth, branch = stack.pop()
        text, state = _node_label(node, states)
        if branch is None:
            lines.append("  " * depth + text + (f"  {state}" if state else ""))
        children = node.get("children") or []
        added: list[tuple[dict[str, Any], int, Tree | None]] = []
        for child in children:
            if not isinstance(child, dict):
                continue
            sub: Tree | None = None
            if branch is not None:
                child_text, child_state = _node_label(child, states)
                label = Text(safe(child_text))
                if child_state:
                    label.append(f"  {child_state}", style=STATE_STYLES.get(child_state, "dim"))
                sub = branch.add(label)
            added.append((child, depth + 1, sub))
        stack.extend(reversed(added))
    if rich_root is not None:
        stdout_console().print(rich_root)
    else:
        for line in lines:
            echo(line)


# ---------------------------------------------------------------------- graph


@main.command("graph")
@click.argument("file", metavar="FILE[:NAME]")
@click.option(
    "-i",
    "--input",
    "input_json",
    cls=LongNameOption,
    metavar="JSON",
    help="Workflow input: a JSON object, @FILE holding one, or - to read it from stdin.",
)
@json_option
def graph_command(file: str, input_json: str | None, as_json: bool) -> None:
    """Render a workflow's tree without running it.

    Shows what a new run would mount first: each task with its id and kind, inside
    its sequences, parallels and branches. Nothing is recorded; no database is needed.

    \b
    Examples:
        smithers graph examples/hello.py --input '{"name": "Ada"}'
        smithers graph examples/robust_pipeline.py:robust_pipeline --json | jq '.children[0]'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"
    input_value = parse_input_json(input_json)
    wf, _ = load_workflow(file)
    tree = render_graph(wf, input_value)
    if as_json:
        echo_json(tree, pretty=stdout_is_tty())
    else:
        _print_tree(tree)


# ---------------------------------------------------------------------- state


def frame_view_json(snap: FrameView) -> dict[str, Any]:
    """Return ``state --json``: the frame, its tree, and every node's state then."""
    nodes = inspect_json(snap.state)["nodes"]
    return {
        "runId": snap.run_id,
        "frameNo": snap.frame_no,
        "seq": snap.seq,
        "timestampMs": snap.timestamp_ms,
        "xmlHash": snap.xml_hash,
        "status": snap.state.status,
        "tree": snap.tree,
        "nodes": [
            {
                "nodeId": n["nodeId"],
                "iteration": n["iteration"],
                "state": n["state"],
                "attempts": n["attemptCount"],
                "output": n["output"],
            }
            for n in nodes
        ],
    }


def _node_states(state: RunState) -> dict[str, str]:
    """Each node's state: by id at iteration 0, by ``id#iteration`` in every iteration."""
    out: dict[str, str] = {key[0]: rec.state for key, rec in state.nodes.items() if key[1] == 0}
    out.update({f"{key[0]}#{key[1]}": rec.state for key, rec in state.nodes.items()})
    return out


@main.command("state")
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.option(
    "--frame",
    type=click.IntRange(min=0),
    required=True,
    metavar="N",
    help="Frame number (see `smithers timeline RUN`).",
)
@db_option
@json_option
@pass_clients
def state_command(clients: Clients, run_id: str, frame: int, db: str | None, as_json: bool) -> None:
    """Show a run as it was at a frame: the rendered tree and each node's state.

    Rebuilt by replaying the run's log (from the nearest checkpoint) up to the
    frame's FrameCommitted event; nothing is written.

    \b
    Examples:
        smithers state RUN --frame 3
        smithers state RUN --frame 3 --json | jq '.nodes[] | select(.state == "finished")'
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"

    async def read(client: Client) -> FrameView:
        return await (await client.get_run(run_id)).frame_view(frame)

    snap = clients.run(db, read, read_only=True)
    if as_json:
        echo_json(frame_view_json(snap))
        return
    counts = ", ".join(f"{n} {s}" for s, n in sorted(snap.state.counts().items()))
    echo(f"Run      {snap.run_id}")
    echo(f"Frame    {snap.frame_no} (seq {snap.seq}, {format_time(snap.timestamp_ms)})")
    echo(f"Hash     {snap.xml_hash}")
    echo(f"Status   {snap.state.status}" + (f"; nodes: {counts}" if counts else ""))
    echo()
    if snap.tree is None:
        echo("This frame was recorded without its tree (an older version wrote it).")
        return
    _print_tree(snap.tree, _node_states(snap.state))


# ---------------------------------------------------------------------- timeline


def timeline_json(tl: Timeline) -> dict[str, Any]:
    """Return ``timeline --json``: the run's frames, rewinds and descendants (camelCase).

    A frame where nodes began or stopped waiting has ``waits``: ``[{nodeId,
    iteration, kind, change, how}]`` (`TimelineWait`); other frames do not have the key.
    """
    out: dict[str, Any] = msgspec.to_builtins(tl)
    runs = [out]
    while runs:
        run = runs.pop()
        for frame in run["frames"]:
            if not frame["waits"]:
                del frame["waits"]
        runs.extend(run["children"])
    return out


def _passes(iterations: dict[str, int]) -> str:
    """``refine#2 inner@1#0``: each running loop and its pass."""
    return " ".join(f"{loop_id}#{it}" for loop_id, it in iterations.items())


def _print_frames(tl: Timeline) -> None:
    if not tl.frames:
        echo("No frames yet.")
        return
    if any(f.iterations for f in tl.frames):
        # A run with loops: which pass each frame is in.
        print_table(
            ("FRAME", "SEQ", "TIME", "HASH", "FINISHED", "LOOPS", ""),
            (
                (
                    str(f.frame_no),
                    str(f.seq),
                    format_clock(f.timestamp_ms),
                    f.xml_hash[:_HASH_CHARS],
                    str(f.finished_count),
                    _passes(f.iterations),
                    "discarded" if f.discarded else "",
                )
                for f in tl.frames
            ),
            styles=("bold", "", "", "dim", "", "", "dim"),
        )
        return
    print_table(
        ("FRAME", "SEQ", "TIME", "HASH", "FINISHED", ""),
        (
            (
                str(f.frame_no),
                str(f.seq),
                format_clock(f.timestamp_ms),
                f.xml_hash[:_HASH_CHARS],
                str(f.finished_count),
                "; ".join(
                    (["discarded"] if f.discarded else []) + [_wait_note(w) for w in f.waits]
                ),
            )
            for f in tl.frames
        ),
        styles=("bold", "", "", "dim", "", "dim"),
    )


def _wait_note(wait: TimelineWait) -> str:
    """A frame's note for a node that began or stopped waiting: ``timer soak fired``."""
    node = f"{wait.node_id}#{wait.iteration}" if wait.iteration else wait.node_id
    kind = "signal" if wait.kind == "event" else wait.kind
    return f"{kind} {node} " + ("waiting" if wait.change == "started" else wait.how or "ended")


def _origin(tl: Timeline) -> str:
    where = f"frame {tl.parent_frame_no}" if tl.parent_frame_no is not None else "its start"
    text = f"{tl.kind} of {tl.parent_run_id} at {where}"
    return text + (f" [{tl.branch_label}]" if tl.branch_label else "")


def _run_line(tl: Timeline) -> str:
    frames = f"{len(tl.frames)} frame{'s' if len(tl.frames) != 1 else ''}"
    if tl.frames:
        frames += f" ({tl.frames[0].frame_no}-{tl.frames[-1].frame_no})"
    head = f"{tl.run_id}  {tl.status}  {frames}"
    return head + (f"  <- {_origin(tl)}" if tl.kind != "run" else "")


def _print_run_tree(tl: Timeline) -> None:
    if stdout_is_tty():
        root = Tree(Text(safe(_run_line(tl)), style="bold"))
        stack: list[tuple[Timeline, Tree]] = [(tl, root)]
        while stack:
            node, branch = stack.pop()
            for child in node.children:
                stack.append((child, branch.add(Text(safe(_run_line(child))))))
        stdout_console().print(root)
        return
    lines: list[tuple[int, Timeline]] = [(0, tl)]
    while lines:
        depth, node = lines.pop()
        echo("  " * depth + _run_line(node))
        lines.extend((depth + 1, child) for child in reversed(node.children))


@main.command("timeline")
@click.argument("run_id", metavar="RUN", callback=check_run_id)
@click.option("--tree", "as_tree", is_flag=True, help="Show the run and its descendants as a tree.")
@click.option(
    "--follow-ancestry",
    is_flag=True,
    help="Start from the run's first ancestor (continue-as-new, forks): the whole chain.",
)
@db_option
@json_option
@pass_clients
def timeline_command(
    clients: Clients,
    run_id: str,
    as_tree: bool,
    follow_ancestry: bool,
    db: str | None,
    as_json: bool,
) -> None:
    """Show a run's frames, rewinds, forks and continuations.

    Each frame is a committed render: its number, the seq of its FrameCommitted
    event, when, the tree's hash, and how many nodes had finished by then; a note
    says which nodes began or stopped waiting since the frame before (e.g. "timer
    soak waiting", "approval deploy granted", "signal ci timed-out"). Use a
    frame number with `state`, `rewind`, `fork` or `replay`. --json prints the whole
    tree of descendant runs, each with its frames.

    \b
    Examples:
        smithers timeline RUN
        smithers timeline RUN --tree
        smithers timeline RUN --json | jq '.frames[-1]'
        smithers timeline RUN --follow-ancestry --tree
    """  # noqa: D301 - click reads \b (a backspace) as "keep line breaks"

    async def read(client: Client) -> Timeline:
        run = await client.get_run(run_id)
        return await run.timeline(follow_ancestry=follow_ancestry)

    tl = clients.run(db, read, read_only=True)
    if as_json:
        echo_json(timeline_json(tl))
        return
    if as_tree:
        _print_run_tree(tl)
        return
    echo(_run_line(tl))
    echo()
    _print_frames(tl)
    for rewind in tl.rewinds:
        echo(
            f"Rewound at seq {rewind.seq} ({format_time(rewind.timestamp_ms)}) "
            f"to frame {rewind.to_frame_no} (seq {rewind.to_seq})."
        )
    if tl.children:
        echo()
        for child in tl.children:
            echo(
                f"{child.kind.capitalize()} {child.run_id} ({child.status}) at "
                + (
                    f"frame {child.parent_frame_no}"
                    if child.parent_frame_no is not None
                    else "its start"
                )
                + (f" [{child.branch_label}]" if child.branch_label else "")
            )
