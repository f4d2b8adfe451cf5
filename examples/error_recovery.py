"""Branch for error recovery: a port of Smithers' "Branch for Error Recovery" example.

Run it::

    smithers up examples/error_recovery.py                                  # success
    smithers up examples/error_recovery.py --input '{"ok": false}'          # fallback
    smithers up examples/error_recovery.py --input '{"fail_times": 2}'      # 2 retries
    smithers up examples/error_recovery.py --input '{"fail_times": 3}'      # run fails

Mapping to the seed (``error-recovery`` in the Smithers docs):

- ``<Task id="risky" output="risky" agent={riskyAgent} retries={2} timeoutMs={30_000}>``
  is ``Task("risky", output=Risky, run=attempt_operation, retries=2, timeout_ms=30_000)``.
  smithers-py has no agent tasks yet, so `attempt_operation` stands in for the LLM: a
  small deterministic async function whose behaviour the input controls.
- ``ctx.outputMaybe("risky", { nodeId: "risky" })`` is ``ctx.output_maybe(Risky, "risky")``;
  ``risky?.ok ?? false`` is ``risky is not None and risky.ok``.
- ``<Branch if={ok} then={...} else={...} />`` is ``Branch(ok, then=..., else_=...)``. Both
  arms mount a static task with the same id, ``summary``, whose output schema is
  ``Output`` (the seed's ``output`` table), so read it as ``result.outputs["summary"]``.

As in the seed, the first render has no ``risky`` output yet, so the branch shows its
``else`` arm; ``summary`` cannot start before ``risky`` ends (it comes later in the
`Sequence`), and once ``risky`` has an output the workflow re-renders and the right arm
is taken. If ``risky`` still fails after its retries, the run fails (no
``continue_on_fail``), exactly as in Smithers.

Input (all optional):

- ``fail_times``: the stand-in raises on its first `fail_times` attempts (the attempt
  number comes from `TaskContext`, so this is deterministic and survives restarts).
- ``ok`` / ``message``: what a successful attempt returns.
- ``sleep_ms``: how long each attempt "thinks"; with ``timeout_ms`` below it, every
  attempt fails with ``TASK_TIMEOUT``.
- ``timeout_ms``: per-attempt timeout (default 30 000, the seed's value).
- ``retry_delay_ms``: initial exponential backoff between attempts (default 1 000, the
  engine's default; 0 retries at once).
"""

import anyio
import msgspec

from smithers import Backoff, Branch, Sequence, Task, TaskContext, WorkflowContext, workflow


class RecoveryInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    fail_times: int = 0
    ok: bool = True
    message: str = "operation completed"
    sleep_ms: int = 0
    timeout_ms: int = 30_000
    retry_delay_ms: int = 1_000


class Risky(msgspec.Struct):
    ok: bool
    message: str


class Output(msgspec.Struct):
    summary: str


class OperationError(RuntimeError):
    """What the stand-in raises on an attempt that is told to fail."""


async def attempt_operation(tctx: TaskContext) -> Risky:
    """Stand-in for the seed's ``riskyAgent``: "Attempt the operation"."""
    inp: RecoveryInput = tctx.input
    if inp.sleep_ms:
        await anyio.sleep(inp.sleep_ms / 1000)
    if tctx.attempt <= inp.fail_times:
        raise OperationError(f"attempt {tctx.attempt} of the operation failed")
    return Risky(ok=inp.ok, message=inp.message)


@workflow(name="error-recovery", input=RecoveryInput)
def error_recovery(ctx: WorkflowContext) -> Sequence:
    inp: RecoveryInput = ctx.input
    risky = ctx.output_maybe(Risky, "risky")
    ok = risky is not None and risky.ok
    return Sequence(
        Task(
            "risky",
            output=Risky,
            run=attempt_operation,
            retries=2,
            timeout_ms=inp.timeout_ms,
            backoff=Backoff(kind="exponential", initial_ms=inp.retry_delay_ms),
        ),
        Branch(
            ok,
            then=Task(
                "summary",
                output=Output,
                value={"summary": f"Success: {risky.message if risky else ''}"},
            ),
            else_=Task(
                "summary", output=Output, value={"summary": "Fallback: operation did not succeed"}
            ),
        ),
    )
