"""``smithers doctor``: what this machine gives smithers-py, read-only."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from smithers.engine.tools import network_mode
from smithers.eventstore import decode_json
from smithers.eventstore.events import RunStarted

if TYPE_CHECKING:
    from pathlib import Path


def test_doctor_json_reports_the_network_mode_extras_and_keys(cli: Any, db: Path) -> None:
    result = cli("doctor", "--json", env={"OPENAI_API_KEY": "sk-secret", "ANTHROPIC_API_KEY": ""})

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["networkMode"] == network_mode(False)
    assert report["networkMode"] in ("namespace", "blocklist")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["network"]["status"] == ("ok" if report["networkMode"] == "namespace" else "warn")
    assert checks["OPENAI_API_KEY"]["detail"] == "set"
    assert "sk-secret" not in result.stdout  # a key's value is never printed
    assert checks["ANTHROPIC_API_KEY"]["status"] == "missing"
    assert checks["ANTHROPIC_API_KEY"]["hint"].startswith("export ANTHROPIC_API_KEY")
    assert checks["database"]["status"] == "warn"
    assert not db.exists()  # doctor never creates the database


def test_doctor_text_names_what_to_install(cli: Any) -> None:
    result = cli("doctor")

    assert result.exit_code == 0, result.output
    assert "Network  bash tool:" in result.stdout
    assert "pydantic-ai-slim" in result.stdout


def test_a_runs_start_event_records_the_network_mode(cli: Any, log: Any) -> None:
    out = cli.up_json("count.py", "--input", '{"start": 1}')

    (started,) = [e for e in log.events(out["runId"]) if isinstance(e, RunStarted)]
    config = decode_json(started.config)
    assert config["networkMode"] == network_mode(False)


def test_agents_lists_the_clis_on_path_with_their_versions(cli: Any) -> None:
    from pathlib import Path

    doubles = Path(__file__).resolve().parents[1] / "agents" / "doubles"
    env = {"PATH": f"{doubles}:/usr/bin:/bin", "ANTHROPIC_API_KEY": "sk-ant-secret"}
    result = cli.raw("agents", "--json", env=env)

    assert result.exit_code == 0, result.output
    found = {a["name"]: a for a in json.loads(result.stdout)}
    assert found["ClaudeCodeAgent"]["available"] is True
    assert found["ClaudeCodeAgent"]["version"] == "2.1.332 (Claude Code)"
    assert found["ClaudeCodeAgent"]["keys"] == {"ANTHROPIC_API_KEY": True}
    assert found["CodexAgent"]["version"] == "codex-cli 0.171.0"
    assert found["GeminiAgent"]["path"] == str(doubles / "gemini")
    assert "sk-ant-secret" not in result.stdout
    assert {a["kind"] for a in found.values()} == {"cli", "api"}


def test_agents_says_how_to_install_a_missing_cli(cli: Any, tmp_path: Path) -> None:
    result = cli.raw("agents", env={"PATH": str(tmp_path)})

    assert result.exit_code == 0, result.output
    assert "no: npm install -g @openai/codex" in result.stdout
