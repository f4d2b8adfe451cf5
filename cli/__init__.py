"""The ``smithers`` command line (DESIGN §9): click commands over the public API.

Run ``smithers --help`` for the commands. `main` is the click group (the console
script ``smithers = "smithers.cli:main"``); ``python -m smithers`` runs it too.
"""

from __future__ import annotations

from . import _audit_command as _audit_command  # registers audit
from . import _bug_command as _bug_command  # registers bug
from . import _bundle_commands as _bundle_commands  # registers export, import, gc
from . import _debug_commands as _debug_commands  # registers diff, verify
from . import _decision_commands as _decision_commands  # registers approve, deny, signal, ...
from . import _doctor_command as _doctor_command  # registers doctor, agents
from . import _errors_command as _errors_command  # registers errors
from . import _hijack_command as _hijack_command  # registers hijack
from . import _log_commands as _log_commands  # registers events, output, logs
from . import _node_command as _node_command  # registers node
from . import _ops as _ops  # registers cancel, down, supervise on `main`
from . import _pack_commands as _pack_commands  # registers init, workflow list|path|run
from . import _read_commands as _read_commands  # registers ps, inspect
from . import _serve_command as _serve_command  # registers serve
from . import _time_travel_commands as _time_travel_commands  # registers graph, state, timeline
from . import _time_travel_ops as _time_travel_ops  # registers rewind, fork, replay, retry-task
from . import _why_command as _why_command  # registers why
from . import _worker_commands as _worker_commands  # registers migrate, submit, worker, workers
from ._commands import main as main

__all__ = ("main",)
