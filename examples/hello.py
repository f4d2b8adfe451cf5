"""The smallest smithers workflow: greet someone, then shout the greeting.

Run it::

    smithers up examples/hello.py --input '{"name": "Ada"}'

or from Python::

    import anyio
    from smithers import run_workflow
    from examples.hello import hello

    result = anyio.run(lambda: run_workflow(hello, input={"name": "Ada"}))
    print(result.output)  # {'message': 'HELLO, ADA!'}

`greet` is a static task (its output is a literal); `output` is a compute task mounted
once `greet` has an output, and its id makes it the run's conventional final output
(``result.output``).
"""

import msgspec

from smithers import Sequence, Task, WorkflowContext, workflow


class HelloInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str = "world"


class Greeting(msgspec.Struct):
    message: str


@workflow(name="hello", input=HelloInput)
def hello(ctx: WorkflowContext) -> Sequence:
    greeting = ctx.output_maybe(Greeting, "greet")
    return Sequence(
        Task("greet", output=Greeting, value={"message": f"Hello, {ctx.input.name}!"}),
        Task("output", output=Greeting, run=lambda: {"message": greeting.message.upper()})
        if greeting
        else None,
    )
