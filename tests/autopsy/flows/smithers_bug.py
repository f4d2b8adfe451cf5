"""What a smithers defect looks like in the log: a plain exception with no frame outside
smithers. `run` is a builtin (a `functools.partial` of `operator.getitem`), so the
KeyError is raised by C code the engine calls, with no Python frame of this file: the
log holds exactly what an engine bug leaves (no code, no user traceback).
"""

import functools
import operator

from smithers import Sequence, Task, workflow


@workflow("autopsy-smithers-bug")
def flow(ctx):
    return Sequence(
        Task("step", output=dict, run=functools.partial(operator.getitem, {}, "missing"))
    )
