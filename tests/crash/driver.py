"""Run or resume the crash workflow in this process: ``python driver.py start|resume DB RUN_ID``.

The crash tests start it as a subprocess and kill it with SIGKILL. It loads
`crash_workflow.py` (next to this file; ``SMITHERS_CRASH_WORKFLOW`` names another file
there, e.g. ``wait_workflow.py``) with `load_workflow` and calls `run_workflow`
(``SMITHERS_CRASH_HOLD_MS`` sets its `hold_ms`).

Exit status: 0 when the run finished; 3 when it parked (``waiting-*``, as ``smithers
up``); 1 when it ended otherwise (the status is printed on stdout); 2 on a
`SmithersError`, whose code is printed on stderr as ``SMITHERS_ERROR <CODE>`` (then
the message).

Fault injection: with ``SMITHERS_CRASH_LEASE_DELAY_MS`` set, the process pauses that
long before each lease write (as if descheduled right after its claim was appended).
With ``SMITHERS_CRASH_GO_FILE`` set, it loads the workflow, then waits for that file
to exist before it calls `run_workflow` (to time a start to the millisecond).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
from smithers.engine import load_workflow, run_workflow
from smithers.eventstore import Lease, SQLiteEventStore
from smithers.eventstore.errors import SmithersError

WORKFLOW = Path(__file__).resolve().parent / "crash_workflow.py"
LEASE_DELAY_ENV = "SMITHERS_CRASH_LEASE_DELAY_MS"
GO_FILE_ENV = "SMITHERS_CRASH_GO_FILE"
WORKFLOW_ENV = "SMITHERS_CRASH_WORKFLOW"
HOLD_ENV = "SMITHERS_CRASH_HOLD_MS"


class SlowLeaseStore(SQLiteEventStore):
    """A store whose process pauses before each lease write."""

    delay_s = 0.0

    async def put_lease(self, lease: Lease) -> None:
        await anyio.sleep(self.delay_s)
        await super().put_lease(lease)


async def _main(mode: str, db: str, run_id: str) -> int:
    workflow_file = WORKFLOW.with_name(os.environ.get(WORKFLOW_ENV) or WORKFLOW.name)
    wf, path = load_workflow(str(workflow_file))
    hold = os.environ.get(HOLD_ENV)
    options = {"hold_ms": int(hold)} if hold else {}
    delay_ms = os.environ.get(LEASE_DELAY_ENV)
    store = None
    if delay_ms:
        SlowLeaseStore.delay_s = int(delay_ms) / 1000
        store = await SlowLeaseStore.open(db)
    go_file = os.environ.get(GO_FILE_ENV)
    while go_file and not os.path.exists(go_file):
        await anyio.sleep(0.001)
    try:
        result = await run_workflow(
            wf,
            input={},
            run_id=run_id,
            resume=mode == "resume",
            db=db,
            store=store,
            workflow_path=path,
            **options,
        )
    except SmithersError as e:
        print(f"SMITHERS_ERROR {e.code}\n{e}", file=sys.stderr, flush=True)
        return 2
    finally:
        if store is not None:
            await store.close()
    print(f"status {result.status}", flush=True)
    if result.status.startswith("waiting-"):
        return 3
    return 0 if result.status == "finished" else 1


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("start", "resume"):
        print("usage: python driver.py start|resume DB RUN_ID", file=sys.stderr)
        return 64
    return anyio.run(_main, *argv, backend="asyncio")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
