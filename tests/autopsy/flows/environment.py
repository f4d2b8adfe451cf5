"""An environment problem: `call` needs AUTOPSY_TEST_TOKEN, which the shell does not set."""

import os

import msgspec

from smithers import Sequence, Task, workflow


class Called(msgspec.Struct):
    token_chars: int


def call() -> Called:
    token = os.environ["AUTOPSY_TEST_TOKEN"]
    return Called(token_chars=len(token))


@workflow("autopsy-environment")
def flow(ctx):
    return Sequence(Task("call", output=Called, run=call))
