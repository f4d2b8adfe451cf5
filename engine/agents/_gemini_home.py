"""A Gemini CLI home for one call: the user's ``.gemini``, plus smithers' MCP server.

Gemini CLI reads MCP servers only from settings files (no flag names one; the fact
sheets mcp-bridge.md §4 and gemini-cli.md §5): the user's
``<home>/.gemini/settings.json``, where ``<home>`` is ``$GEMINI_CLI_HOME`` or
``$HOME``. A project ``.gemini/settings.json`` was not picked up in headless runs, and
the system settings path is ignored under a world-writable folder such as /tmp. So
each call that offers smithers' tools runs with ``GEMINI_CLI_HOME`` set to a private
temporary folder whose ``.gemini`` holds:

- ``settings.json``: the user's own settings (auth, model, their MCP servers) with the
  ``smithers`` server added, ``"trust": true`` (headless mode offers untrusted MCP
  tools to the model not at all);
- a symbolic link to every other entry of the user's ``.gemini`` (credentials,
  ``tmp/`` where sessions live), so logins keep working and the session the call
  records is where ``gemini --resume <id>`` (a retry, a hijack) finds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ("gemini_home", "user_gemini_home")


def user_gemini_home(env: Mapping[str, str]) -> Path:
    """The folder whose ``.gemini`` the user's Gemini CLI reads.

    ``$GEMINI_CLI_HOME`` in `env`, else ``$HOME``, else this user's home.
    """
    home = env.get("GEMINI_CLI_HOME") or env.get("HOME")
    return Path(home) if home else Path.home()


def _user_settings(path: Path) -> dict[str, Any]:
    """The user's settings.json as a dict; empty if missing or unreadable."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


@contextlib.contextmanager
def gemini_home(servers: Mapping[str, Any], env: Mapping[str, str]) -> Iterator[str]:
    """A temporary ``GEMINI_CLI_HOME`` with `servers` added to the user's settings.

    The user's ``.gemini`` (and its ``tmp`` folder, where sessions go) is created if
    missing, so what the call records outlives the temporary folder.

    Args:
        servers: MCP server entries by name (``{"command", "args", "trust", …}``).
        env: The environment the CLI runs with (locates the user's home).

    Yields:
        The temporary home folder (mode 0700), removed afterwards.

    Raises:
        OSError: if the user's ``.gemini`` cannot be created or linked.
    """
    real = user_gemini_home(env) / ".gemini"
    (real / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smithers-gemini-") as home:
        os.chmod(home, 0o700)
        dot = Path(home) / ".gemini"
        dot.mkdir()
        for entry in real.iterdir():
            if entry.name != "settings.json":
                (dot / entry.name).symlink_to(entry)
        settings = _user_settings(real / "settings.json")
        mine = settings.get("mcpServers")
        settings["mcpServers"] = {**(mine if isinstance(mine, dict) else {}), **servers}
        path = dot / "settings.json"
        path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
        path.chmod(0o600)
        yield home
