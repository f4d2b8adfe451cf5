"""Scrubbing secrets out of text and JSON values before they leave the machine (`smithers bug`).

Pure functions: no I/O, no clock. Two kinds of secret are removed:

- **by pattern**, wherever they appear: provider API keys (``sk-...``, ``sk-ant-...``,
  ``sk_live_...``), GitHub tokens (``ghp_``, ``gho_``, ``ghs_``, ``github_pat_``), Slack
  tokens (``xoxb-...``), AWS access key ids (``AKIA...``, ``ASIA...``), Google API keys
  (``AIza...``), ``Bearer``/``Basic`` credentials, JWTs (``eyJ...``), PEM private-key
  blocks, the password of a ``scheme://user:password@host`` URL, the value after a name
  that says password/secret/token/api key/credential (``password=...``,
  ``"apiKey": "..."``, ``TOKEN: ...``), and long mixed-case alphanumeric strings that look
  generated (32+ characters with upper case, lower case and digits; lower-case hex such as
  SHA-256 digests and run ids is kept);
- **by value**: the values of environment variables whose names say key, token, secret,
  password, credential or auth (`secret_env_values`), removed wherever they occur, even
  inside other words. Values shorter than `MIN_SECRET_LENGTH` characters, and obvious
  non-secrets (``true``, ``none``, ...), are not treated as secrets: scrubbing them
  everywhere would destroy the report without protecting anything.

Each secret becomes `REDACTED` (``[REDACTED]``). The scrubber errs on the side of
removing too much: a variable assignment in workflow source such as
``token = ctx.input`` loses its right-hand side.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = (
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "is_secret_env_name",
    "scrub_text",
    "scrub_value",
    "secret_env_values",
)

REDACTED = "[REDACTED]"
"""What a secret is replaced with."""

MIN_SECRET_LENGTH = 6
"""Shortest environment value (in characters) scrubbed by value."""

_NOT_SECRETS = frozenset({"true", "false", "none", "null", "undefined", "enabled", "disabled"})

_SECRET_ENV_NAME = re.compile(r"(?i)key|token|secret|passw|pwd|credential|auth")
_NOT_SECRET_ENV_NAMES = frozenset({"PWD", "OLDPWD"})
"""The shell's working directories: named like passwords (``pwd``), never secret."""

# A name (in text or a JSON key) whose value is a secret.
_NAME = (
    r"(?:api|access|secret|private|auth|session|signing|encryption|master|client)[_-]?key"
    r"|apikey|passw(?:or)?d|passphrase|pwd|secret|token(?!s)|credentials?|authorization"
    r"|cookie"
)
_SECRET_KEY = re.compile(rf"(?i){_NAME}")

_PATTERNS: tuple[re.Pattern[str], ...] = (
    # PEM private keys, whole block.
    re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)", re.S),
    # Provider and platform keys by prefix.
    re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{12,}"),
    re.compile(r"(?<![A-Za-z0-9])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}"),
    re.compile(r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"(?<![A-Za-z0-9])xox[abposrce]-[A-Za-z0-9-]{8,}"),
    re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}"),
    re.compile(r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{30,}"),
    re.compile(r"(?<![A-Za-z0-9])(?:hf_|npm_|glpat-)[A-Za-z0-9_-]{20,}"),
    # JSON web tokens: header.payload.signature, base64url.
    re.compile(r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # HTTP credentials.
    re.compile(r"(?i)(?<=\bbearer )\s*[A-Za-z0-9._~+/-]{8,}=*"),
    re.compile(r"(?i)(?<=\bbasic )\s*[A-Za-z0-9._~+/-]{8,}=*"),
    # scheme://user:password@host: the password.
    re.compile(r"(?<=://)(?:[^\s:/@]*):[^\s@/]+(?=@)"),
    # Looks generated: 32+ characters mixing upper case, lower case and digits (no
    # slash: paths stay readable).
    re.compile(
        r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])"
        r"(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{32,}=*"
    ),
)

# name = value, name: value, "name": "value", name="value": a quoted value up to its
# closing quote (escapes skipped) or the end of the line, whole.
_ASSIGNMENT = re.compile(
    rf"(?im)(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]{{0,80}}?(?:{_NAME})[A-Za-z0-9_.-]{{0,80}})"
    r"(?P<sep>[\"']?[ \t]*[:=][ \t]*)"
    r"(?:(?P<q>[\"'])(?P<quoted>(?:\\.|[^\\\n]|\\(?=\n|\Z)){0,500}?)(?:(?P=q)|$)"
    r"|(?P<bare>[^\s\"',;&]+))"
)

_MAX_PASSES = 8
"""Re-scrub a text at most this often before giving up and redacting it whole."""


def is_secret_env_name(name: str) -> bool:
    """Return True if an environment variable's name says it holds a secret.

    Args:
        name: The variable's name, e.g. ``OPENAI_API_KEY``.

    Returns:
        True if the name contains key, token, secret, passw, pwd, credential or auth
        (any case); False for the shell's ``PWD`` and ``OLDPWD``.
    """
    return name.upper() not in _NOT_SECRET_ENV_NAMES and bool(_SECRET_ENV_NAME.search(name))


def secret_env_values(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Return the values of `environ` to scrub wherever they appear.

    Args:
        environ: An environment, e.g. ``os.environ``.

    Returns:
        The distinct values of variables named like secrets (`is_secret_env_name`) that
        are at least `MIN_SECRET_LENGTH` characters long (surrounding whitespace not
        counted) and not obvious non-secrets
        (``true``, ``none``, ...) nor part of `REDACTED`; longest first.
    """
    found = {
        value
        for name, value in environ.items()
        if is_secret_env_name(name)
        and len(value.strip()) >= MIN_SECRET_LENGTH
        and value.strip().lower() not in _NOT_SECRETS
        and value not in REDACTED
    }
    return tuple(sorted(found, key=lambda v: (-len(v), v)))


def _redact_values(text: str, values: tuple[str, ...]) -> str:
    """Replace every stretch of `text` covered by an occurrence of a value."""
    spans: list[tuple[int, int]] = []
    for value in values:
        start = text.find(value)
        while start != -1:
            spans.append((start, start + len(value)))
            start = text.find(value, start + 1)
    if not spans:
        return text
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    out: list[str] = []
    at = 0
    for start, end in merged:
        out.append(text[at:start])
        out.append(REDACTED)
        at = end
    out.append(text[at:])
    return "".join(out)


def _assignment(match: re.Match[str]) -> str:
    if match.group("quoted") is not None:
        q = match.group("q")
        if not match.group("quoted") or match.group("quoted") == REDACTED:
            return match.group(0)
        return f"{match.group('name')}{match.group('sep')}{q}{REDACTED}{q}"
    if match.group("bare") == REDACTED:
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{REDACTED}"


def _one_pass(text: str, values: tuple[str, ...]) -> str:
    text = _redact_values(text, values)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return _ASSIGNMENT.sub(_assignment, text)


def scrub_text(text: str, *, secrets: Iterable[str] = ()) -> str:
    """Return `text` with every secret replaced by `REDACTED`. Pure.

    Args:
        text: Any text (an error message, workflow source, a JSON string).
        secrets: Exact values to remove wherever they occur (e.g. `secret_env_values`);
            values shorter than `MIN_SECRET_LENGTH` or part of `REDACTED` are ignored.

    Returns:
        The scrubbed text. If a replacement ever recreated a secret (a value that
        overlaps the marker itself), the text is scrubbed again; a text that still holds
        one after several passes is returned as `REDACTED` whole.
    """
    values = tuple(
        sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH and s not in REDACTED},
            key=lambda v: (-len(v), v),
        )
    )
    for _ in range(_MAX_PASSES):
        scrubbed = _one_pass(text, values)
        if scrubbed == text and not any(v in scrubbed for v in values):
            return scrubbed
        text = scrubbed
    return text if not any(v in text for v in values) else REDACTED


def scrub_value(value: Any, *, secrets: Iterable[str] = ()) -> Any:
    """Return a JSON-like value with its secrets replaced by `REDACTED`. Pure.

    Strings are scrubbed with `scrub_text` (mapping keys too); a string under a key that
    names a secret (``password``, ``apiKey``, ``token``, ``authorization``, ...; not
    ``tokens``, which counts them) is replaced whole. Lists, tuples and dicts are walked;
    numbers, booleans and None are kept.

    Args:
        value: A JSON-like value (dict, list, tuple, str, int, float, bool, None).
        secrets: Exact values to remove wherever they occur (see `scrub_text`).

    Returns:
        A new value of the same shape (tuples become lists).
    """
    values = tuple(secrets)
    return _scrub(value, values)


def _scrub(value: Any, values: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets=values)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = scrub_text(key, secrets=values) if isinstance(key, str) else key
            if isinstance(key, str) and isinstance(item, str) and _SECRET_KEY.search(key):
                out[name] = REDACTED if item else item
            else:
                out[name] = _scrub(item, values)
        return out
    if isinstance(value, list | tuple):
        return [_scrub(item, values) for item in value]
    return value
