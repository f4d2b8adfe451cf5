"""Smithers errors: codes, definitions, JSON shape."""

from __future__ import annotations

import json
import re

import pytest
from smithers.eventstore import _error_catalogue, errors
from smithers.eventstore.errors import (
    ERROR_DEFINITIONS,
    DatabaseQueryError,
    DatabaseWriteError,
    EventStoreError,
    RunAlreadyExistsError,
    SeqConflictError,
    SmithersError,
    error_to_json,
    get_error_definition,
    get_error_docs_url,
    is_known_error_code,
    is_smithers_error,
    known_error_codes,
)

CATEGORIES = set(errors.CATEGORIES)
ERROR_CLASSES = (
    SmithersError,
    EventStoreError,
    SeqConflictError,
    RunAlreadyExistsError,
    DatabaseWriteError,
    DatabaseQueryError,
)


def _chained() -> RunAlreadyExistsError:
    try:
        try:
            raise ValueError("low-level")
        except ValueError as e:
            raise RunAlreadyExistsError("r1", actual_seq=3) from e
    except RunAlreadyExistsError as err:
        return err


# ---------------------------------------------------------------------------- error_to_json


def test_error_to_json_of_a_chained_smithers_error() -> None:
    err = _chained()

    out = error_to_json(err)

    assert set(out) == {"name", "message", "summary", "code", "docsUrl", "details", "cause"}
    assert out["name"] == "RunAlreadyExistsError"
    assert out["code"] == "RUN_ALREADY_EXISTS"
    assert out["summary"] == err.summary
    assert out["summary"].startswith("Run 'r1' already exists")
    assert out["docsUrl"] == get_error_docs_url("RUN_ALREADY_EXISTS")
    assert out["message"] == f"{err.summary} See {out['docsUrl']}"
    assert out["details"] == {"runId": "r1", "expectedSeq": 0, "actualSeq": 3}
    assert out["cause"] == {
        "name": "ValueError",
        "message": "low-level",
        "summary": "low-level",
        "code": None,
    }
    json.dumps(out)  # JSON-ready


def test_error_to_json_of_a_plain_exception() -> None:
    assert error_to_json(KeyError("k")) == {
        "name": "KeyError",
        "message": "'k'",
        "summary": "'k'",
        "code": None,
    }


def test_error_to_json_includes_the_hint_and_the_stack_on_request() -> None:
    try:
        raise SmithersError("Bad input.", code="INVALID_INPUT", hint="Pass a JSON object.")
    except SmithersError as err:
        out = error_to_json(err, include_stack=True)
        plain = error_to_json(err)

    assert out["hint"] == "Pass a JSON object."
    assert "Traceback" in out["stack"]
    assert "SmithersError: Bad input." in out["stack"]
    assert "stack" not in plain


def test_error_to_json_of_a_nested_cause_chain() -> None:
    try:
        try:
            raise _chained()
        except RunAlreadyExistsError as e:
            raise DatabaseWriteError("disk full", details={"dbPath": "x.db"}) from e
    except DatabaseWriteError as err:
        out = error_to_json(err)

    assert out["code"] == "DB_WRITE_FAILED"
    assert out["cause"]["code"] == "RUN_ALREADY_EXISTS"
    assert out["cause"]["cause"]["name"] == "ValueError"


# ---------------------------------------------------------------------------- the code catalogue


def test_known_error_codes_are_unique() -> None:
    codes = [d.code for d in _error_catalogue._DEFINITIONS]
    assert len(codes) == len(set(codes))
    assert known_error_codes() == tuple(codes)


@pytest.mark.parametrize("code", known_error_codes())
def test_definitions_are_well_formed(code: str) -> None:
    definition = ERROR_DEFINITIONS[code]
    assert definition.code == code
    assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", code)
    assert definition.category in CATEGORIES
    assert definition.when
    assert is_known_error_code(code)


def test_get_error_definition() -> None:
    definition = get_error_definition("INVALID_INPUT")
    assert definition is not None
    assert definition.category == "engine"
    assert get_error_definition("NO_SUCH_CODE") is None
    assert not is_known_error_code("NO_SUCH_CODE")
    assert not is_known_error_code(42)


def test_docs_url_anchor_is_the_kebab_code() -> None:
    assert (
        get_error_docs_url("DB_WRITE_FAILED")
        == "https://smithers.sh/reference/errors#db-write-failed"
    )


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_has_a_known_default_code(cls: type[SmithersError]) -> None:
    assert is_known_error_code(cls.default_code)


# ---------------------------------------------------------------------------- classes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (SmithersError("x"), True),
        (DatabaseQueryError("x"), True),
        (type("Coded", (Exception,), {"code": "CUSTOM"})(), True),
        (type("Numbered", (Exception,), {"code": 42})(), False),
        (ValueError("x"), False),
        (None, False),
        ("INVALID_INPUT", False),
    ],
)
def test_is_smithers_error(value: object, expected: bool) -> None:
    assert is_smithers_error(value) is expected


def test_run_already_exists_is_a_seq_conflict() -> None:
    assert issubclass(RunAlreadyExistsError, SeqConflictError)
    err = RunAlreadyExistsError("r1", actual_seq=2)
    assert isinstance(err, SeqConflictError)
    assert isinstance(err, EventStoreError)
    assert (err.run_id, err.expected_seq, err.actual_seq) == ("r1", 0, 2)
    assert str(err) == err.summary
    assert "r1" in err.summary


def test_database_errors_are_os_errors() -> None:
    for cls in (DatabaseWriteError, DatabaseQueryError):
        err = cls("x", details={"dbPath": "s.db"})
        assert isinstance(err, OSError)
        assert isinstance(err, EventStoreError)
        assert err.details == {"dbPath": "s.db"}
        assert str(err) == "x"


def test_a_custom_code_overrides_the_default() -> None:
    err = SmithersError("Custom failure.", code="MY_APP_FAILED", details={"a": 1})
    assert err.code == "MY_APP_FAILED"
    assert err.docs_url.endswith("#my-app-failed")
    assert err.retryable  # unknown codes are retryable by default
    assert err.message == f"Custom failure. See {err.docs_url}"


@pytest.mark.parametrize(("code", "retryable"), [("TASK_TIMEOUT", True), ("INVALID_INPUT", False)])
def test_retryable_comes_from_the_definition(code: str, retryable: bool) -> None:
    assert SmithersError("x", code=code).retryable is retryable
