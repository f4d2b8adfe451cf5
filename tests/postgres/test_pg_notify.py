"""Wake-ups without polling: an append on PostgreSQL wakes its followers (LISTEN/NOTIFY)."""

from __future__ import annotations

import contextlib
import time

import anyio
from smithers.engine import follow_events
from smithers.eventstore import PostgresEventStore, wait_for_append
from smithers.eventstore.events import Event, RunFinished, RunStatusChanged


def status_events(run_id: str, n: int, *, start_ms: int = 1_000) -> list[Event]:
    return [
        RunStatusChanged(run_id=run_id, timestamp_ms=start_ms + i, status="running")
        for i in range(n)
    ]


async def test_another_connections_append_wakes_a_waiter_within_milliseconds(pg_url: str) -> None:
    async with (
        await PostgresEventStore.open(pg_url) as writer,
        await PostgresEventStore.open(pg_url) as follower,
    ):
        assert await follower.wait_for_append("r1", timeout_s=5) is False  # starts listening
        woke_after: list[float] = []

        async def wait() -> None:
            began = time.monotonic()
            assert await follower.wait_for_append("r1", timeout_s=5) is True
            woke_after.append(time.monotonic() - began)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(0.2)
            await writer.append("other", status_events("other", 1), expected_seq=0)  # not r1
            await writer.append("r1", status_events("r1", 1), expected_seq=0)
        assert 0.2 <= woke_after[0] < 1.0  # woken by the append, not the 5 s timeout

        # Without an append the wait ends at its timeout: the caller polls.
        began = time.monotonic()
        assert await wait_for_append(follower, "r1", timeout_s=0.2) is False
        assert time.monotonic() - began >= 0.2


async def test_follow_events_on_postgresql_yields_an_append_without_waiting_a_poll(
    pg_url: str,
) -> None:
    async with (
        await PostgresEventStore.open(pg_url) as writer,
        await PostgresEventStore.open(pg_url) as reader,
    ):
        await writer.append("r1", status_events("r1", 1), expected_seq=0)
        got: list[tuple[int, float]] = []
        began = time.monotonic()
        stream = follow_events("r1", store=reader, poll_interval_s=30)
        async with contextlib.aclosing(stream), anyio.create_task_group() as tg:

            async def write_later() -> None:
                await anyio.sleep(0.5)
                await writer.append(
                    "r1",
                    [RunFinished(run_id="r1", timestamp_ms=5_000)],
                    expected_seq=1,
                    status="finished",
                )

            tg.start_soon(write_later)
            with anyio.fail_after(10):
                async for row, _ in stream:
                    got.append((row.seq, time.monotonic() - began))
        assert [seq for seq, _ in got] == [1, 2]
        assert got[1][1] < 5  # a 30 s poll interval: only the NOTIFY can explain it
