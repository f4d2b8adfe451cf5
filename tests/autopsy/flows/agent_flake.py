"""A flake: `ask` hangs past its timeout on its first call only (a provider that stalled).

Each call counts itself in `flake.count` beside this file; only the first one hangs.
"""

from pathlib import Path

import anyio
import msgspec

from smithers import Sequence, Task, workflow

COUNTER = Path(__file__).with_name("flake.count")


class Answer(msgspec.Struct):
    calls: int


async def ask() -> Answer:
    calls = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(calls + 1))
    if calls == 0:
        await anyio.sleep(30)  # stalls: TASK_TIMEOUT after 300 ms
    return Answer(calls=calls + 1)


@workflow("autopsy-agent-flake")
def flow(ctx):
    return Sequence(Task("ask", output=Answer, run=ask, timeout_ms=300))
