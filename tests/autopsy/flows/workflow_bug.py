"""A workflow bug: `total` looks up a fruit its own price table lacks (KeyError)."""

import msgspec

from smithers import Sequence, Task, workflow

PRICES = {"apple": 3}


class Total(msgspec.Struct):
    n: int


def total() -> Total:
    return Total(n=PRICES["pear"])  # the bug: the test fixes it to PRICES.get("pear", 0)


@workflow("autopsy-workflow-bug")
def flow(ctx):
    return Sequence(
        Task("prices", output=Total, value={"n": len(PRICES)}),
        Task("total", output=Total, run=total),
    )
