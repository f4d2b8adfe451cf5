"""The command that opens a CLI agent's session interactively, for a person (hijack).

Each CLI keeps its sessions on disk and resumes one by id in its interactive mode
(the fact sheets in ../shared/reference): Claude Code ``claude --resume <id>``, Codex
``codex resume <id>`` (the interactive twin of ``codex exec resume``), Gemini CLI
``gemini --resume <id>``. The CLIs find the session by the folder they run in (Claude
Code's transcripts sit under a directory named after the cwd; Codex filters by cwd;
Gemini by project), so the command is run in the session's folder.
"""

from __future__ import annotations

import shlex
from typing import Any

from ._claude import ENGINE as CLAUDE_ENGINE
from ._codex import ENGINE as CODEX_ENGINE
from ._gemini import ENGINE as GEMINI_ENGINE

__all__ = ("INTERACTIVE_RESUME", "SessionInfo", "interactive_command", "session_info")

INTERACTIVE_RESUME: dict[str, tuple[str, ...]] = {
    CLAUDE_ENGINE: ("claude", "--resume"),
    CODEX_ENGINE: ("codex", "resume"),
    GEMINI_ENGINE: ("gemini", "--resume"),
}
"""Engine name -> the interactive command's words before the session id."""


class SessionInfo:
    """An agent session saved in an attempt's heartbeat payload (see `save_session`).

    Attributes:
        engine: The engine name (``"claude-code"``, ``"codex"``, ``"gemini"``).
        session_id: The CLI's session or thread id.
        cwd: Absolute folder the CLI ran in, or None (payloads saved before it was).
    """

    __slots__ = ("cwd", "engine", "session_id")

    def __init__(self, engine: str, session_id: str, cwd: str | None) -> None:
        self.engine = engine
        self.session_id = session_id
        self.cwd = cwd

    def __repr__(self) -> str:
        return f"SessionInfo({self.engine!r}, {self.session_id!r}, cwd={self.cwd!r})"


def session_info(payload: Any) -> SessionInfo | None:
    """The CLI agent session in a decoded heartbeat payload, or None if it holds none.

    Args:
        payload: A heartbeat payload as JSON values (``{"engine", "sessionId",
            "cwd"?}`` when a CLI agent saved one).

    Returns:
        The session, or None for any other payload (not a dict, no engine or id).
    """
    if not isinstance(payload, dict):
        return None
    engine = payload.get("engine")
    sid = payload.get("sessionId")
    if not isinstance(engine, str) or not isinstance(sid, str) or not engine or not sid:
        return None
    cwd = payload.get("cwd")
    return SessionInfo(engine, sid, cwd if isinstance(cwd, str) and cwd else None)


def interactive_command(engine: str, session_id: str, cwd: str | None = None) -> str | None:
    """The shell command that opens session `session_id` of `engine` for a person.

    Args:
        engine: The engine name the session was saved under.
        session_id: The session (thread) id.
        cwd: The folder to run it in; with it the command is ``cd <cwd> && …``.

    Returns:
        The command line, each word shell-quoted; None for an engine with no
        interactive resume (not a CLI agent).
    """
    words = INTERACTIVE_RESUME.get(engine)
    if words is None:
        return None
    command = shlex.join([*words, session_id])
    return f"cd {shlex.quote(cwd)} && {command}" if cwd else command
