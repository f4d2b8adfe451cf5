"""The ``smithers`` command line (DESIGN §9): click commands over the public API.

Run ``smithers --help`` for the commands. `main` is the click group (the console
script ``smithers = "smithers.cli:main"``); ``python -m smithers`` runs it too.
"""

from __future__ import annotations

from ._commands import main as main

__all__ = ("main",)
