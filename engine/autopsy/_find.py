"""Finding a run's autopsy: the newest ``post-failure`` run whose input names it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from smithers.eventstore.events import NULL_RAW

from ._classify import AutopsyVerdict
from ._launch import POST_FAILURE_WORKFLOW

if TYPE_CHECKING:
    from .._client import Client

__all__ = ("AutopsyFound", "find_autopsy")


class AutopsyFound(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A run's autopsy: its run, its status and its verdict (None while it works)."""

    run_id: str
    status: str
    verdict: AutopsyVerdict | None = None
    """The ``output`` node's verdict, else the ``investigate`` node's first opinion."""


class _Target(msgspec.Struct, kw_only=True, rename="camel"):
    target_run_id: str | None = None


def _target(raw: msgspec.Raw) -> str | None:
    try:
        value = msgspec.json.decode(raw or b"null", type=_Target | None)
    except msgspec.DecodeError:
        return None
    return value.target_run_id if value is not None else None


def _verdict(raw: msgspec.Raw) -> AutopsyVerdict | None:
    try:
        return msgspec.json.decode(raw, type=AutopsyVerdict)
    except msgspec.DecodeError:
        return None


async def find_autopsy(client: Client, run_id: str) -> AutopsyFound | None:
    """Return the newest autopsy of `run_id` in `client`'s database, or None. Awaits I/O.

    Reads the runs index, then the first ``RunStarted`` of each ``post-failure`` run
    (newest first) until one's input names `run_id` as ``targetRunId``; then that
    run's state.

    Raises:
        DatabaseQueryError: if the database cannot be read.
    """
    runs = [r for r in await client.runs() if r.workflow_name == POST_FAILURE_WORKFLOW]
    for record in runs:
        handle = await client.get_run(record.run_id)
        first = await handle.events(types=("RunStarted",), limit=1)
        if not first or _target(getattr(first[0][1], "input", NULL_RAW)) != run_id:
            continue
        state = await handle.state()
        verdict: AutopsyVerdict | None = None
        for node_id in ("output", "investigate"):
            rec = state.nodes.get((node_id, 0))
            if rec is not None and rec.has_output:
                verdict = _verdict(rec.output)
                if verdict is not None:
                    break
        return AutopsyFound(run_id=record.run_id, status=state.status, verdict=verdict)
    return None
