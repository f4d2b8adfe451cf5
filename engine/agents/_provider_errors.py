"""Map a model provider's failed HTTP response to an agent error code.

Pure: the status, the body and the headers of the failed response in, a
`ProviderErrorClass` out (which code, retryable or not, how long to wait). Knows the
error payloads of OpenAI (``{"error": {"type", "code", "message"}}``), Anthropic
(``{"type": "error", "error": {"type", "message"}}``) and Google
(``{"error": {"status", "message", "details": [{"retryDelay"}]}}``).
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore.errors import get_error_definition

from .errors import AGENT_ERROR_CLASSES, AgentError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ("ProviderErrorClass", "classify_provider_error", "parse_retry_after_ms")


class ProviderErrorClass(msgspec.Struct, frozen=True, kw_only=True):
    """What a provider failure means for the task, from `classify_provider_error`."""

    code: str
    """An `AGENT_*` code: `AGENT_RATE_LIMITED`, `AGENT_PROVIDER_ERROR`,
    `AGENT_CONFIG_INVALID` or `AGENT_QUOTA_EXCEEDED`."""
    retryable: bool
    """Whether the task's retry policy may try again (the code's catalogue entry)."""
    retry_after_ms: int | None = None
    """Delay the provider asked for (``retry-after-ms``, ``retry-after`` seconds or date,
    Google's ``retryDelay``), in ms; None when it named none."""
    status: int | None = None
    """The HTTP status; None for a failure without a response (connection, timeout)."""
    provider_code: str | None = None
    """The provider's own error type or code, e.g. ``"insufficient_quota"``."""
    message: str = ""
    """The provider's error message (or the raw body, cut to 500 characters)."""

    def to_error(
        self,
        *,
        agent_id: str | None = None,
        agent_engine: str | None = None,
        agent_model: str | None = None,
        now_ms: int | None = None,
    ) -> AgentError:
        """Return the error (not raised) a failing agent call ends with.

        Args:
            agent_id: The agent's id, for details.
            agent_engine: The provider, e.g. ``"openai"``.
            agent_model: The model name.
            now_ms: Current epoch ms; with a retry delay it gives a quota error its
                ``quotaResetAtMs``.

        Returns:
            An instance of the code's class (`AgentRateLimitedError`, ...) whose summary
            names the status and the provider's message, with a next step as hint.
        """
        details: dict[str, Any] = {
            "agentId": agent_id,
            "agentEngine": agent_engine,
            "agentModel": agent_model,
            "status": self.status,
            "providerCode": self.provider_code,
            "retryAfterMs": self.retry_after_ms,
        }
        if self.code == "AGENT_QUOTA_EXCEEDED":
            if now_ms is not None and self.retry_after_ms is not None:
                details["quotaResetAtMs"] = now_ms + self.retry_after_ms
            details["resetHint"] = self.message or None
        details = {k: v for k, v in details.items() if v is not None}
        who = " ".join(p for p in (agent_engine, agent_model) if p) or "the agent's provider"
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        summary = f"{_TITLES[self.code]} ({who}, {status})"
        if self.message:
            summary += f": {self.message}"
        cls = AGENT_ERROR_CLASSES[self.code]
        return cls(summary, details=details, hint=_HINTS[self.code])


_TITLES = {
    "AGENT_RATE_LIMITED": "Rate-limited by the provider",
    "AGENT_PROVIDER_ERROR": "The provider failed",
    "AGENT_CONFIG_INVALID": "The provider rejected the agent's configuration",
    "AGENT_QUOTA_EXCEEDED": "The provider's quota is exhausted",
}
_HINTS = {
    "AGENT_RATE_LIMITED": "The task retries after the provider's delay; lower concurrency "
    "(-c) if it keeps happening.",
    "AGENT_PROVIDER_ERROR": "The task retries; if the provider stays down, resume the run "
    "later (smithers up --resume RUN_ID).",
    "AGENT_CONFIG_INVALID": "Check the API key, the model name and the agent's options, "
    "then start a fresh run; retrying will not fix it.",
    "AGENT_QUOTA_EXCEEDED": "Add credits or raise the plan's limit, or wait for the reset, "
    "then resume the run.",
}

_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_error",
        "billing_hard_limit_reached",
        "billing_not_active",
        "quota_exceeded",
        "usage_limit_exceeded",
    }
)
_AUTH_CODES = frozenset(
    {
        "authentication_error",
        "permission_error",
        "invalid_api_key",
        "invalid_authentication",
        "unauthenticated",
        "permission_denied",
        "unsupported_country_region_territory",
    }
)
_MODEL_CODES = frozenset({"model_not_found", "not_found_error", "not_found"})
_RATE_CODES = frozenset({"rate_limit_error", "rate_limit_exceeded", "rate_limited"})
_TRANSIENT_CODES = frozenset(
    {"overloaded_error", "api_error", "server_error", "internal", "unavailable", "timeout"}
)
_QUOTA_TEXT = re.compile(
    r"quota|billing|credit balance|insufficient (?:funds|credits?|balance)|usage limit|"
    r"spending limit|payment required",
    re.IGNORECASE,
)
_MODEL_TEXT = re.compile(
    r"\bmodel\b.{0,80}\b(?:not found|does not exist|not exist|unknown|not supported|"
    r"unsupported|invalid|not available)|(?:unknown|invalid|unsupported|no such) model",
    re.IGNORECASE | re.DOTALL,
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\s*$")


def _payload(body: Any) -> tuple[str | None, str]:
    """(provider code/type, message) from an error body of any of the known shapes."""
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return None, body.strip()[:500]
    if not isinstance(body, dict):
        return None, "" if body is None else str(body)[:500]
    err = body.get("error", body)
    if isinstance(err, str):  # {"error": "message"}
        return None, err[:500]
    if not isinstance(err, dict):
        return None, ""
    kinds = [err.get(k) for k in ("code", "type", "status")]
    codes = [str(k).lower() for k in kinds if isinstance(k, str) and k]
    message = err.get("message")
    return (" ".join(codes) or None), (message if isinstance(message, str) else "")[:500]


def _delay_from_body(body: Any) -> int | None:
    """Google's ``RetryInfo`` ``retryDelay`` ("30s"), in ms."""
    if isinstance(body, bytes | bytearray | str):
        try:
            body = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return None
    err = body.get("error") if isinstance(body, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    if not isinstance(details, list):
        return None
    for item in details:
        delay = item.get("retryDelay") if isinstance(item, dict) else None
        match = _DURATION.match(delay) if isinstance(delay, str) else None
        if match:
            return round(float(match[1]) * 1000)
    return None


def parse_retry_after_ms(
    headers: Mapping[str, str] | None, *, now_ms: int | None = None
) -> int | None:
    """Return the delay a response's headers ask for, in ms, or None.

    Reads ``retry-after-ms`` (OpenAI; milliseconds) first, then ``retry-after`` (RFC 9110:
    seconds, or an HTTP date, which needs `now_ms`). Header names match in any case;
    negative delays become 0. Pure.

    Args:
        headers: The response headers (any mapping, e.g. ``httpx.Headers``).
        now_ms: Current epoch ms, only needed for a date-valued ``retry-after``.

    Returns:
        The delay in ms, or None when no header (or no usable value) is present.
    """
    if not headers:
        return None
    lower = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    value = lower.get("retry-after-ms")
    if value:
        try:
            return max(0, round(float(value)))
        except ValueError:
            pass
    value = lower.get("retry-after")
    if not value:
        return None
    try:
        return max(0, round(float(value) * 1000))
    except ValueError:
        pass
    if now_ms is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, round(when.timestamp() * 1000) - now_ms)


def _class(code: str, **kwargs: Any) -> ProviderErrorClass:
    definition = get_error_definition(code)
    retryable = definition.retryable if definition is not None else True
    return ProviderErrorClass(code=code, retryable=retryable, **kwargs)


def classify_provider_error(
    status: int | None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    now_ms: int | None = None,
) -> ProviderErrorClass:
    """Classify a model provider's failed response as an agent error code.

    Rules, first match wins:

    1. quota or billing (provider code ``insufficient_quota``, ``billing_error``, ...;
       HTTP 402; or a message about quota, billing, credit balance, usage or spending
       limits) → `AGENT_QUOTA_EXCEEDED`, retryable, with the retry delay if sent;
    2. bad credentials or permission (401, 403, ``authentication_error``,
       ``invalid_api_key``, ...) → `AGENT_CONFIG_INVALID`, not retryable;
    3. unknown model (404, ``model_not_found``, ``not_found_error``, or a message saying
       the model does not exist or is unsupported) → `AGENT_CONFIG_INVALID`;
    4. rate limit (429, ``rate_limit_error``) → `AGENT_RATE_LIMITED`, retryable, with
       the delay of ``retry-after-ms``/``retry-after``/``retryDelay``;
    5. transient (408, 409, 425, any 5xx including Anthropic's 529 "overloaded", or no
       response at all) → `AGENT_PROVIDER_ERROR`, retryable;
    6. any other 4xx (400, 413, 422: the provider rejects the request as invalid) →
       `AGENT_CONFIG_INVALID`.

    Pure: no I/O; the clock only through `now_ms`.

    Args:
        status: HTTP status, or None when no response arrived (connection error, timeout).
        body: The response body: bytes, text, or already-decoded JSON; None if absent.
        headers: The response headers (any mapping; names match in any case).
        now_ms: Current epoch ms, for a date-valued ``retry-after``.

    Returns:
        A `ProviderErrorClass`; its `to_error()` builds the exception to fail with.
    """
    provider_code, message = _payload(body)
    codes = set((provider_code or "").split())
    delay = parse_retry_after_ms(headers, now_ms=now_ms)
    if delay is None:
        delay = _delay_from_body(body)
    common: dict[str, Any] = {
        "status": status,
        "provider_code": provider_code,
        "message": message,
    }
    # A 5xx's message ("model overloaded", "billing service down") is not a verdict.
    client_side = status is None or status < 500
    if codes & _QUOTA_CODES or status == 402 or (client_side and _QUOTA_TEXT.search(message)):
        return _class("AGENT_QUOTA_EXCEEDED", retry_after_ms=delay, **common)
    if status in (401, 403) or codes & _AUTH_CODES:
        return _class("AGENT_CONFIG_INVALID", **common)
    model_text = client_side and status is not None and _MODEL_TEXT.search(message)
    if status == 404 or codes & _MODEL_CODES or model_text:
        return _class("AGENT_CONFIG_INVALID", **common)
    if status == 429 or codes & _RATE_CODES:
        return _class("AGENT_RATE_LIMITED", retry_after_ms=delay, **common)
    if status is None or status in (408, 409, 425) or status >= 500 or codes & _TRANSIENT_CODES:
        return _class("AGENT_PROVIDER_ERROR", retry_after_ms=delay, **common)
    if 400 <= status < 500:
        return _class("AGENT_CONFIG_INVALID", **common)
    return _class("AGENT_PROVIDER_ERROR", retry_after_ms=delay, **common)
