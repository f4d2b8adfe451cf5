"""``smithers errors``: one catalogue entry, the list, JSON, Markdown, unknown codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from smithers.eventstore.errors import ERROR_DEFINITIONS

ROOT = Path(__file__).resolve().parents[2]


def test_one_code_in_any_spelling(cli: Any) -> None:
    for spelling in ("RUN_NOT_FOUND", "run-not-found", "Run_Not_Found"):
        result = cli.raw("errors", spelling)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("RUN_NOT_FOUND  (engine)")
        assert "Details:   runId" in result.stdout
        assert "HTTP:      404" in result.stdout
        assert "#run-not-found" in result.stdout


def test_a_planned_code_says_it_is_not_raised_today(cli: Any) -> None:
    result = cli.raw("errors", "SCORER_FAILED")
    assert result.exit_code == 0
    assert "Planned:" in result.stdout


def test_json_of_one_code_and_of_all(cli: Any) -> None:
    one = json.loads(cli.raw("errors", "AGENT_QUOTA_EXCEEDED", "--json").stdout)
    assert one["code"] == "AGENT_QUOTA_EXCEEDED"
    assert one["category"] == "agents"
    assert "quotaResetAtMs" in one["details"]
    assert one["docsUrl"].endswith("#agent-quota-exceeded")
    every = json.loads(cli.raw("errors", "--json").stdout)
    assert [e["code"] for e in every] == list(ERROR_DEFINITIONS)
    assert {"code", "category", "when", "details", "retryable", "httpStatus", "planned"} <= set(
        every[0]
    )


def test_the_list_names_every_code(cli: Any) -> None:
    out = cli.raw("errors").stdout
    for code in ERROR_DEFINITIONS:
        assert code in out


def test_markdown_is_the_checked_in_docs(cli: Any) -> None:
    out = cli.raw("errors", "--markdown").stdout
    assert out == (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")


def test_an_unknown_code_is_refused_with_the_closest_ones(cli: Any) -> None:
    result = cli.raw("errors", "RUN_NOT_FOND")
    assert result.exit_code == 4
    assert "Error [INVALID_INPUT]: Unknown error code 'RUN_NOT_FOND'." in result.output
    assert "Did you mean RUN_NOT_FOUND" in result.output
