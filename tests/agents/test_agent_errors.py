"""Agent error codes: the catalogue, the classes, and provider-error classification."""

from __future__ import annotations

import json
from typing import Any

import pytest
from smithers.engine.agents import (
    AGENT_ERROR_CLASSES,
    AgentConfigInvalidError,
    AgentError,
    AgentProviderError,
    AgentQuotaExceededError,
    AgentRateLimitedError,
    classify_provider_error,
    parse_retry_after_ms,
)
from smithers.engine.errors import EngineError
from smithers.eventstore.errors import (
    SmithersError,
    error_to_json,
    get_error_definition,
    known_error_codes,
)

SEED_AGENT_CODES = (  # seed 001, "Agents"
    "AGENT_CLI_ERROR",
    "AGENT_QUOTA_EXCEEDED",
    "AGENT_CONFIG_INVALID",
    "AGENT_RPC_FILE_ARGS",
    "AGENT_BUILD_COMMAND",
    "AGENT_DIAGNOSTIC_TIMEOUT",
)
NOW_MS = 1_700_000_000_000

# ---------------------------------------------------------------------------- the catalogue


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        ("AGENT_CLI_ERROR", True),
        ("AGENT_QUOTA_EXCEEDED", True),
        ("AGENT_CONFIG_INVALID", False),
        ("AGENT_RPC_FILE_ARGS", False),
        ("AGENT_BUILD_COMMAND", False),
        ("AGENT_DIAGNOSTIC_TIMEOUT", True),
        ("AGENT_RATE_LIMITED", True),
        ("AGENT_PROVIDER_ERROR", True),
    ],
)
def test_every_agent_code_has_its_category_and_retryability(code: str, retryable: bool) -> None:
    definition = get_error_definition(code)

    assert definition is not None
    assert definition.category == "agents"
    assert definition.retryable is retryable
    assert SmithersError("x", code=code).retryable is retryable


def test_the_seed_agent_codes_are_all_known() -> None:
    assert set(SEED_AGENT_CODES) <= set(known_error_codes())


def test_quota_details_are_the_seeds() -> None:
    definition = get_error_definition("AGENT_QUOTA_EXCEEDED")
    assert definition is not None
    assert definition.details == (
        "agentId",
        "agentEngine",
        "agentModel",
        "quotaResetAtMs",
        "resetHint",
    )


def test_invalid_output_lists_schema_retry_attempts() -> None:
    definition = get_error_definition("INVALID_OUTPUT")
    assert definition is not None
    assert "schemaRetryAttempts" in definition.details
    assert definition.retryable


@pytest.mark.parametrize("code", sorted(AGENT_ERROR_CLASSES))
def test_one_class_per_agent_code(code: str) -> None:
    cls = AGENT_ERROR_CLASSES[code]
    err = cls("boom", details={"retryAfterMs": 250})

    assert cls.default_code == code
    assert isinstance(err, AgentError)
    assert isinstance(err, EngineError)
    assert err.code == code
    assert err.retry_after_ms == 250
    assert get_error_definition(code) is not None


def test_agent_error_classes_cover_every_agent_code() -> None:
    agent_codes = {c for c in known_error_codes() if c.startswith("AGENT_")}
    assert set(AGENT_ERROR_CLASSES) == agent_codes


def test_config_invalid_is_a_value_error() -> None:
    assert issubclass(AgentConfigInvalidError, ValueError)


# ---------------------------------------------------------------------------- retry-after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3_000),
        ({"retry-after": "1.5"}, 1_500),
        ({"RETRY-AFTER": "0"}, 0),
        ({"retry-after": "-4"}, 0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 250),  # OpenAI's ms header first
        ({"retry-after-ms": "junk", "retry-after": "2"}, 2_000),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10_000),
        ({"retry-after": "not a date"}, None),
        ({"x-other": "1"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str] | None, expected: int | None) -> None:
    # 1_700_000_000 s is Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after_ms(headers, now_ms=NOW_MS) == expected


def test_a_date_retry_after_needs_the_current_time() -> None:
    assert parse_retry_after_ms({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}) is None


# ---------------------------------------------------------------------------- classification


def _openai(code: str | None, message: str, kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


def _anthropic(kind: str, message: str) -> str:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}})


CLASSIFICATION = [
    # (id, status, body, headers, code, retryable, retry_after_ms)
    (
        "openai-429-rate-limit-retry-after",
        429,
        _openai("rate_limit_exceeded", "Rate limit reached for gpt-4o on requests per min"),
        {"retry-after": "20"},
        "AGENT_RATE_LIMITED",
        True,
        20_000,
    ),
    (
        "openai-429-retry-after-ms",
        429,
        _openai("rate_limit_exceeded", "Rate limit reached", "requests"),
        {"retry-after-ms": "1200"},
        "AGENT_RATE_LIMITED",
        True,
        1_200,
    ),
    (
        "anthropic-429",
        429,
        _anthropic("rate_limit_error", "Number of request tokens has exceeded your rate limit."),
        {"Retry-After": "7"},
        "AGENT_RATE_LIMITED",
        True,
        7_000,
    ),
    ("bare-429", 429, None, None, "AGENT_RATE_LIMITED", True, None),
    (
        "openai-429-insufficient-quota",
        429,
        _openai("insufficient_quota", "You exceeded your current quota, please check your plan."),
        None,
        "AGENT_QUOTA_EXCEEDED",
        True,
        None,
    ),
    (
        "anthropic-billing",
        400,
        _anthropic("invalid_request_error", "Your credit balance is too low to access the API."),
        None,
        "AGENT_QUOTA_EXCEEDED",
        True,
        None,
    ),
    (
        "anthropic-402-billing-error",
        402,
        _anthropic("billing_error", "Billing issue."),
        None,
        "AGENT_QUOTA_EXCEEDED",
        True,
        None,
    ),
    (
        "google-quota-retry-delay",
        429,
        {
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "message": "Quota exceeded for metric generate_content_requests.",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}
                ],
            }
        },
        None,
        "AGENT_QUOTA_EXCEEDED",
        True,
        31_000,
    ),
    (
        "openai-401-bad-key",
        401,
        _openai("invalid_api_key", "Incorrect API key provided: sk-xx."),
        None,
        "AGENT_CONFIG_INVALID",
        False,
        None,
    ),
    (
        "anthropic-401",
        401,
        _anthropic("authentication_error", "invalid x-api-key"),
        None,
        "AGENT_CONFIG_INVALID",
        False,
        None,
    ),
    (
        "anthropic-403",
        403,
        _anthropic("permission_error", "Your API key does not have permission."),
        None,
        "AGENT_CONFIG_INVALID",
        False,
        None,
    ),
    (
        "openai-404-unknown-model",
        404,
        _openai("model_not_found", "The model `gpt-9` does not exist or you do not have access."),
        None,
        "AGENT_CONFIG_INVALID",
        False,
        None,
    ),
    (
        "anthropic-404-model",
        404,
        _anthropic("not_found_error", "model: claude-nope"),
        None,
        "AGENT_CONFIG_INVALID",
        False,
        None,
    ),
    (
        "400-unknown-model-by-message",
        400,
        _openai(None, "Unknown model: llama-99"),
        None,
        "AGENT_CONFIG_INVALID",
        False,
        None,
    ),
    (
        "400-invalid-request",
        400,
        _openai(None, "Invalid value for 'temperature': must be <= 2."),
        None,
        "AGENT_CONFIG_INVALID",
        False,
        None,
    ),
    (
        "500-server-error",
        500,
        _openai(None, "The server had an error while processing your request.", "server_error"),
        None,
        "AGENT_PROVIDER_ERROR",
        True,
        None,
    ),
    ("502-html-body", 502, b"<html>Bad Gateway</html>", None, "AGENT_PROVIDER_ERROR", True, None),
    (
        "503-with-retry-after",
        503,
        "Service Unavailable",
        {"Retry-After": "5"},
        "AGENT_PROVIDER_ERROR",
        True,
        5_000,
    ),
    (
        "503-model-overloaded-is-not-config",
        503,
        _openai(None, "That model is currently overloaded with other requests.", "server_error"),
        None,
        "AGENT_PROVIDER_ERROR",
        True,
        None,
    ),
    (
        "anthropic-529-overloaded",
        529,
        _anthropic("overloaded_error", "Overloaded"),
        None,
        "AGENT_PROVIDER_ERROR",
        True,
        None,
    ),
    ("408-timeout", 408, None, None, "AGENT_PROVIDER_ERROR", True, None),
    ("no-response", None, None, None, "AGENT_PROVIDER_ERROR", True, None),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "code", "retryable", "delay"),
    [pytest.param(*row[1:], id=row[0]) for row in CLASSIFICATION],
)
def test_classify_provider_error(
    status: int | None,
    body: Any,
    headers: dict[str, str] | None,
    code: str,
    retryable: bool,
    delay: int | None,
) -> None:
    found = classify_provider_error(status, body, headers, now_ms=NOW_MS)

    assert found.code == code
    assert found.retryable is retryable
    assert found.retry_after_ms == delay
    assert found.status == status
    err = found.to_error()
    assert type(err) is AGENT_ERROR_CLASSES[code]
    assert err.retryable is retryable


def test_the_provider_code_and_message_are_kept() -> None:
    found = classify_provider_error(
        401, _anthropic("authentication_error", "invalid x-api-key"), None
    )

    assert found.provider_code == "authentication_error"
    assert found.message == "invalid x-api-key"


def test_a_non_json_body_becomes_the_message() -> None:
    found = classify_provider_error(502, "  upstream connect error  ", {})
    assert found.message == "upstream connect error"
    assert found.provider_code is None


def test_a_rate_limit_error_names_the_delay_and_the_agent() -> None:
    found = classify_provider_error(
        429, _anthropic("rate_limit_error", "slow down"), {"retry-after": "2"}
    )

    err = found.to_error(agent_id="triager", agent_engine="anthropic", agent_model="claude-x")

    assert isinstance(err, AgentRateLimitedError)
    assert err.retry_after_ms == 2_000
    assert err.summary == "Rate-limited by the provider (anthropic claude-x, HTTP 429): slow down"
    assert err.hint is not None
    assert err.details == {
        "agentId": "triager",
        "agentEngine": "anthropic",
        "agentModel": "claude-x",
        "status": 429,
        "providerCode": "rate_limit_error",
        "retryAfterMs": 2_000,
    }
    json.dumps(error_to_json(err))


def test_a_quota_error_carries_its_reset_time() -> None:
    found = classify_provider_error(
        429,
        _openai("insufficient_quota", "You exceeded your current quota."),
        {"retry-after": "60"},
    )

    err = found.to_error(agent_model="gpt-4o", now_ms=NOW_MS)

    assert isinstance(err, AgentQuotaExceededError)
    assert err.details["quotaResetAtMs"] == NOW_MS + 60_000
    assert err.details["resetHint"] == "You exceeded your current quota."
    assert err.retryable


def test_a_config_error_is_not_retryable_and_says_what_to_check() -> None:
    err = classify_provider_error(401, _openai("invalid_api_key", "Incorrect API key")).to_error()

    assert isinstance(err, AgentConfigInvalidError)
    assert not err.retryable
    assert err.retry_after_ms is None
    assert err.summary.startswith("The provider rejected the agent's configuration")
    assert err.hint is not None
    assert "API key" in err.hint


def test_a_dropped_connection_says_no_response() -> None:
    err = classify_provider_error(None).to_error()

    assert isinstance(err, AgentProviderError)
    assert "no response" in err.summary
    assert err.details == {}
