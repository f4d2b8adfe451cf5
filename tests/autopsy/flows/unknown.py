"""Too little to go on: `step` raises an exception class of its own, once, no code."""

import msgspec

from smithers import Sequence, Task, workflow


class MysteryError(Exception):
    pass


class Out(msgspec.Struct):
    ok: bool


def step() -> Out:
    raise MysteryError("the frobnicator said no")


@workflow("autopsy-unknown")
def flow(ctx):
    return Sequence(Task("step", output=Out, run=step))
