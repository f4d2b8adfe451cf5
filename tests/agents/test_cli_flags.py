"""Every flag the CLI agents pass exists in the real CLI's ``--help``.

Runs against the real Claude Code, Codex and Gemini CLI when they are installed (CI
installs them from the npm registry into .ci/clis, see .ci/run); skipped elsewhere
with the command to install them. With ``CI`` set, a missing CLI fails instead of
skipping, so CI cannot pass without the check.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from smithers.engine.agents import ClaudeCodeAgent, CodexAgent, GeminiAgent
from smithers.engine.agents._bridge import ToolBridge

INSTALL = {
    "claude": "@anthropic-ai/claude-code",
    "codex": "@openai/codex",
    "gemini": "@google/gemini-cli",
}


def _cli(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        how = f"npm install -g {INSTALL[name]}"
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed in CI ({how}; .ci/run should do it)")
        pytest.skip(f"{name} is not installed here: {how} to run the flag check")
    return path


def _help(*argv: str) -> str:
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    return done.stdout + done.stderr


def _flags(argv: list[str]) -> list[str]:
    return sorted({a for a in argv[1:] if a.startswith("-") and a != "-"})


def _missing(flags: list[str], help_text: str) -> list[str]:
    return [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", help_text)]


def test_claude_code_flags_exist() -> None:
    claude = _cli("claude")
    agent = ClaudeCodeAgent(
        binary=claude,
        model="sonnet",
        system_prompt="Be brief.",
        allowed_tools=["Read"],
        disallowed_tools=["Bash"],
        permission_mode="acceptEdits",
    )
    argv = agent.argv(session_id="00000000-0000-0000-0000-000000000000", schema={"type": "object"})
    flags = _flags(argv)
    assert len(flags) >= 9
    help_text = _help(claude, "--help")
    assert _missing(flags, help_text) == []
    assert _missing(["--no-such-flag"], help_text) == ["--no-such-flag"]  # it can fail


def test_codex_flags_exist() -> None:
    codex = _cli("codex")
    agent = CodexAgent(
        binary=codex, model="gpt-5-codex", config={"model_reasoning_effort": '"high"'}
    )
    argv = agent.argv(root="/tmp", session_id="thread-1", schema_file="/tmp/schema.json")
    flags = _flags(argv)
    assert len(flags) >= 6
    help_text = _help(codex, "exec", "--help")
    assert _missing(flags, help_text) == []
    assert re.search(r"^\s+resume\b", help_text, re.M)  # `codex exec resume <id>`


def test_gemini_flags_exist() -> None:
    gemini = _cli("gemini")
    agent = GeminiAgent(binary=gemini, model="gemini-2.5-pro", approval_mode="yolo")
    bridge = ToolBridge(socket_path="/tmp/s.sock", command="python", args=["-m", "x"])
    argv = agent.argv(session_id="00000000-0000-0000-0000-000000000000", bridge=bridge)
    flags = _flags(argv)
    assert "--allowed-mcp-server-names" in flags  # smithers' tools over MCP
    assert len(flags) >= 6
    assert _missing(flags, _help(gemini, "--help")) == []
