"""The bug bundle's scrubber: a planted secret never survives (properties), and what stays.

`scrub_text` and `scrub_value` are pure, so the properties call them directly with
secrets planted in arbitrary text: by pattern (provider keys, tokens, JWTs, bearer
credentials, ``password=...``), and by value (environment variables named like secrets).
"""

from __future__ import annotations

import json
import os
import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from smithers.engine import (
    REDACTED,
    is_secret_env_name,
    scrub_text,
    scrub_value,
    secret_env_values,
)

FULL = bool(os.environ.get("CI")) or os.environ.get("SMITHERS_SLOW") == "1"
SETTINGS = settings(max_examples=300 if FULL else 60, deadline=None)

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"

text = st.text(max_size=60)
"""Arbitrary text around a planted secret (any unicode)."""
gap = st.sampled_from([" ", "\n", "\t", " : ", "\n\n"])
"""What separates a secret from the text around it in real text."""


def _s(alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=lo, max_size=hi)


PREFIXED = st.one_of(
    st.builds("sk-{}".format, _s(B64URL, 16, 60)),
    st.builds("sk-ant-api03-{}".format, _s(B64URL, 20, 60)),
    st.builds("sk_live_{}".format, _s(ALNUM, 16, 40)),
    st.builds("{}{}".format, st.sampled_from(["ghp_", "gho_", "ghs_", "ghu_"]), _s(ALNUM, 36, 40)),
    st.builds("github_pat_{}".format, _s(ALNUM + "_", 40, 82)),
    st.builds("xoxb-{}-{}".format, _s(string.digits, 10, 13), _s(ALNUM, 16, 24)),
    st.builds("AKIA{}".format, _s(string.ascii_uppercase + string.digits, 16, 16)),
    st.builds("eyJ{}.eyJ{}.{}".format, _s(B64URL, 10, 40), _s(B64URL, 10, 80), _s(B64URL, 20, 43)),
    st.builds("AIza{}".format, _s(B64URL, 35, 35)),
)
"""Credentials recognised by their shape alone."""

VALUE_CHARS = "".join(c for c in string.printable if c not in " \t\n\r\x0b\x0c\"',;&")
NAMES = st.sampled_from(
    ["password", "PASSWORD", "db_password", "api_key", "apiKey", "OPENAI_API_KEY", "secret",
     "client_secret", "token", "access_token", "X-Auth-Token", "passwd", "credentials"]
)  # fmt: skip


@SETTINGS
@given(before=text, sep1=gap, secret=PREFIXED, sep2=gap, after=text)
def test_a_credential_recognised_by_its_shape_never_survives(
    before: str, sep1: str, secret: str, sep2: str, after: str
) -> None:
    assume(secret not in before and secret not in after)
    out = scrub_text(before + sep1 + secret + sep2 + after)
    assert secret not in out


@SETTINGS
@given(
    before=text,
    scheme=st.sampled_from(["Bearer", "bearer", "BEARER", "Basic"]),
    token=_s(ALNUM + "-._~+/", 8, 60),
    after=text,
)
def test_a_bearer_or_basic_credential_never_survives(
    before: str, scheme: str, token: str, after: str
) -> None:
    assume(token not in before and token not in after and token not in REDACTED)
    out = scrub_text(f"{before}\nAuthorization: {scheme} {token}\n{after}")
    assert token not in out


@SETTINGS
@given(
    before=text,
    name=NAMES,
    form=st.sampled_from(["{n}={v}", "{n}: {v}", '"{n}": "{v}"', "{n} = '{v}'", "{n}={v}&x=1"]),
    value=_s(VALUE_CHARS, 6, 40),
    after=text,
)
def test_the_value_of_a_secret_name_never_survives(
    before: str, name: str, form: str, value: str, after: str
) -> None:
    planted = form.format(n=name, v=value)
    assume(value not in before and value not in after)
    assume(value not in planted.replace(value, REDACTED))  # not part of the name or marker
    out = scrub_text(f"{before} {planted}\n{after}")
    assert value not in out


@SETTINGS
@given(
    user=_s(ALNUM, 1, 12),
    password=_s(ALNUM + "!$%*-_.~", 6, 30),
    host=st.sampled_from(["db.local:5432/app", "example.com", "10.0.0.1"]),
)
def test_the_password_of_a_url_never_survives(user: str, password: str, host: str) -> None:
    # Not a piece of what surrounds it ("connec" is in "connect"): that stays.
    assume(password not in f"connect postgres://{user}:{REDACTED}@{host} failed")
    out = scrub_text(f"connect postgres://{user}:{password}@{host} failed")
    assert password not in out


secret_values = st.text(min_size=6, max_size=40).filter(
    lambda v: secret_env_values({"MY_TOKEN": v}) == (v,)
)
"""Values `secret_env_values` takes as secrets (6+ characters, not ``true``, ...)."""


@SETTINGS
@given(before=text, secret=secret_values, middle=text, after=text)
def test_an_environment_secret_never_survives_anywhere(
    before: str, secret: str, middle: str, after: str
) -> None:
    """By value: even glued to other text, twice, or overlapping the marker."""
    planted = before + secret + middle + secret + after
    env = {"MY_SERVICE_TOKEN": secret, "HOME": "/home/ada"}
    out = scrub_text(planted, secrets=secret_env_values(env))
    assert secret not in out


@SETTINGS
@given(
    secret=secret_values,
    shape=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), text),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)
        ),
        max_leaves=12,
    ),
    where=st.sampled_from(["key", "value", "inside"]),
)
def test_an_environment_secret_never_survives_in_a_json_value(
    secret: str, shape: object, where: str
) -> None:
    if where == "key":
        planted: object = {f"x{secret}y": shape}
    elif where == "value":
        planted = {"data": [shape, f"the value is {secret}."]}
    else:
        planted = [{"nested": {"deeper": [secret]}}, shape]
    out = scrub_value(planted, secrets=secret_env_values({"DB_PASSWORD": secret}))
    assert secret not in json.dumps(out, ensure_ascii=False)


def test_a_secret_overlapping_the_marker_is_still_removed() -> None:
    # Redacting "D]zzzzzz" once leaves "[REDACTED]zzzzzz", which holds it again.
    secret = "D]zzzzzz"
    out = scrub_text("D]zzzzzzzzzzzz", secrets=[secret])
    assert secret not in out


@pytest.mark.parametrize(
    "kept",
    [
        "run-lx2k3j-1a2b3c failed at frame 12",
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "File /home/ada/Projects2024/flows/review.py, line 3, in review",
        '{"inputTokens": 120, "outputTokens": 30, "maxTokens": 4096}',
        "the author of the report; idempotencyKey: run-1:a:0",
        "ValueError: boom",
    ],
)
def test_ordinary_text_is_kept(kept: str) -> None:
    """What a bug report needs (ids, hashes, paths, token counts) is not mistaken for a secret."""
    assert scrub_text(kept) == kept


def test_a_json_key_that_names_a_secret_loses_its_string_value_only() -> None:
    value = {
        "apiKey": "plain-words",
        "headers": {"Authorization": "Token abc"},
        "usage": {"inputTokens": 12, "tokens": 40},
        "password": "",
    }
    assert scrub_value(value) == {
        "apiKey": REDACTED,
        "headers": {"Authorization": REDACTED},
        "usage": {"inputTokens": 12, "tokens": 40},
        "password": "",
    }


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OPENAI_API_KEY", True),
        ("GITHUB_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("PGPASSWORD", True),
        ("DB_PWD", True),
        ("HOME", False),
        ("PWD", False),
        ("OLDPWD", False),
        ("PATH", False),
    ],
)
def test_environment_names_that_say_secret(name: str, secret: bool) -> None:
    assert is_secret_env_name(name) is secret


def test_short_and_obvious_values_are_not_scrubbed_everywhere() -> None:
    env = {"FEATURE_TOKEN": "true", "PIN_KEY": "1234", "API_KEY": "abcdef-123", "HOME": "/x"}
    assert secret_env_values(env) == ("abcdef-123",)
