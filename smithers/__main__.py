"""``python -m smithers``: the ``smithers`` command line."""

from __future__ import annotations

from smithers.cli import main

if __name__ == "__main__":
    main(prog_name="smithers")
