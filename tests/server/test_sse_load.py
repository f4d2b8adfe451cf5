"""SSE under load: 50 subscribers on one run logging > 2,000 events, each gets every event
once, in order; one drops its connection and resumes with ``Last-Event-ID``.

Against a real ``smithers serve`` subprocess. Prints the figures (events delivered per
second, misses) for the record.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

SUBSCRIBERS = 50
DROP_AFTER = 500
"""The dropping subscriber disconnects after this many events, then resumes."""


async def _subscribe(
    http: httpx.AsyncClient, run_id: str, *, last_id: str | None = None, stop_after: int = 0
) -> tuple[list[int], str | None]:
    """Read the stream; return the seqs got and the last ``id:`` (stop early if asked)."""
    seqs: list[int] = []
    headers = {"Last-Event-ID": last_id} if last_id else {}
    event_id: str | None = last_id
    async with http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as r:
        assert r.status_code == 200
        name = None
        async for line in r.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                assert name == "smithers"
                seq = json.loads(line[6:])["seq"]
                assert str(seq) == event_id
                seqs.append(seq)
                if stop_after and len(seqs) >= stop_after:
                    break  # leaving the block closes the connection mid-stream
    return seqs, event_id


@pytest.mark.slow  # a 620-task run and 50 streams: ~10 s on 2 CPUs
async def test_fifty_subscribers_get_every_event_once_in_order(
    serve: Callable[..., Any],
) -> None:
    served = serve()
    limits = httpx.Limits(max_connections=SUBSCRIBERS + 10)
    timeout = httpx.Timeout(60)
    async with httpx.AsyncClient(base_url=served.url, limits=limits, timeout=timeout) as http:
        r = await http.post("/v1/runs", json={"workflowPath": "many.py", "input": {"tasks": 620}})
        assert r.status_code == 201, r.text
        run_id = r.json()["runId"]
        got: dict[int, list[int]] = {}

        async def plain(i: int) -> None:
            got[i] = (await _subscribe(http, run_id))[0]

        async def dropping() -> None:
            first, last = await _subscribe(http, run_id, stop_after=DROP_AFTER)
            rest, _ = await _subscribe(http, run_id, last_id=last)
            got[0] = first + rest

        began = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(dropping)
            for i in range(1, SUBSCRIBERS):
                tg.start_soon(plain, i)
        elapsed = time.perf_counter() - began
        run = (await http.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "finished"
    last_seq = run["lastSeq"]
    assert last_seq >= 2000
    expected = list(range(1, last_seq + 1))
    misses = sum(len(set(expected) - set(seqs)) for seqs in got.values())
    assert len(got) == SUBSCRIBERS
    for i, seqs in got.items():
        assert seqs == expected, f"subscriber {i}"
    delivered = sum(len(seqs) for seqs in got.values())
    print(
        f"\nSSE: {SUBSCRIBERS} subscribers x {last_seq} events = {delivered} delivered in "
        f"{elapsed:.2f} s: {delivered / elapsed:,.0f} events/s, misses {misses}, "
        f"one resumed with Last-Event-ID after {DROP_AFTER}"
    )
