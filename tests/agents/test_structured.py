"""Structured output: the schema sent to providers, extraction, validation, repair turns."""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from smithers.engine import agents
from smithers.engine.agents import (
    SCHEMA_REPAIR_TURNS,
    ValidationProblem,
    extract_json,
    invalid_output_error,
    output_instructions,
    output_json_schema,
    repair_prompt,
    validate_output,
)
from smithers.engine.errors import InvalidOutputError
from smithers.eventstore.errors import error_to_json


class Label(msgspec.Struct):
    name: str
    weight: float = 1.0


class Triage(msgspec.Struct):
    severity: int
    title: str
    labels: list[Label] = []


class Tree(msgspec.Struct):
    value: int
    children: list[Tree] = []


# ---------------------------------------------------------------------------- the schema


def test_struct_schema_is_an_inline_object_with_its_nested_defs() -> None:
    schema = output_json_schema(Triage)

    assert "$ref" not in schema
    assert schema["type"] == "object"
    assert schema["title"] == "Triage"
    assert schema["required"] == ["severity", "title"]
    assert schema["properties"]["severity"] == {"type": "integer"}
    assert schema["properties"]["labels"]["items"] == {"$ref": "#/$defs/Label"}
    assert set(schema["$defs"]) == {"Label"}  # the root is inlined, not repeated
    json.dumps(schema)


def test_a_schema_without_nested_types_has_no_defs() -> None:
    assert "$defs" not in output_json_schema(Label)


def test_a_recursive_struct_keeps_its_own_definition_for_the_refs() -> None:
    schema = output_json_schema(Tree)

    assert schema["type"] == "object"
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree"}
    assert schema["$defs"]["Tree"]["title"] == "Tree"


@pytest.mark.parametrize("schema", [dict, dict[str, Any]])
def test_a_dict_output_is_a_plain_object_schema(schema: Any) -> None:
    assert output_json_schema(schema) == {"type": "object"}


def test_the_schema_is_a_fresh_copy() -> None:
    output_json_schema(Triage)["properties"].clear()
    assert output_json_schema(Triage)["properties"]


def test_an_undescribable_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        output_json_schema(object)


def test_the_prompt_contract_carries_the_schema() -> None:
    text = output_instructions(Triage)

    assert "single JSON object" in text
    schema_text = text.split("JSON schema:\n", 1)[1]
    assert json.loads(schema_text) == output_json_schema(Triage)


# ---------------------------------------------------------------------------- extraction

EXTRACTION_CASES = [
    pytest.param('{"a": 1}', {"a": 1}, "whole", id="whole-object"),
    pytest.param('  \n{"a": [1, {"b": 2}]}\n ', {"a": [1, {"b": 2}]}, "whole", id="whole-ws"),
    pytest.param("[1, 2]", [1, 2], "whole", id="whole-array"),
    pytest.param(
        'Here you go:\n```json\n{"a": 1}\n```\nHope that helps!',
        {"a": 1},
        "fenced",
        id="fenced-with-prose",
    ),
    pytest.param(
        '```json\n{"a": 1}\n```\nOn second thought:\n```JSON\n{"a": 2}\n```',
        {"a": 2},
        "fenced",
        id="last-fence-wins",
    ),
    pytest.param(
        '```json\n{"a": {"b": {"c": [1, 2, {"d": null}]}}}\n```',
        {"a": {"b": {"c": [1, 2, {"d": None}]}}},
        "fenced",
        id="fenced-nested",
    ),
    pytest.param(
        'The result is {"a": 1} and that is final.',
        {"a": 1},
        "object",
        id="object-in-prose",
    ),
    pytest.param(
        'Draft: {"a": 1}. Final: {"a": 2, "b": {"c": 3}} -- done',
        {"a": 2, "b": {"c": 3}},
        "object",
        id="last-object-outermost",
    ),
    pytest.param(
        'Answer: {"msg": "use {braces} and } alone", "n": 1} ok',
        {"msg": "use {braces} and } alone", "n": 1},
        "object",
        id="braces-in-strings",
    ),
    pytest.param(
        'x {"q": "she said \\"hi}\\" and left\\\\", "n": 2} y',
        {"q": 'she said "hi}" and left\\', "n": 2},
        "object",
        id="escaped-quotes-and-backslashes",
    ),
    pytest.param(
        'Use the form {name} here. Result: {"a": 1}',
        {"a": 1},
        "object",
        id="prose-braces-before",
    ),
    pytest.param(
        'It said "hi {" then {"a": 1}',
        {"a": 1},
        "object",
        id="prose-quote-and-brace-before",
    ),
    pytest.param(
        'Result: {"a": 1}\nThen an unclosed { trailing',
        {"a": 1},
        "object",
        id="unclosed-brace-after",
    ),
    pytest.param(
        '```json\n{"a": 1,\n```\nbut really {"a": 3}',
        {"a": 3},
        "object",
        id="broken-fence-falls-through",
    ),
    pytest.param('"just a string"', "just a string", "whole", id="whole-string"),
    pytest.param('see ```json {"a": 2}``` above', {"a": 2}, "fenced", id="one-line-fence"),
    pytest.param(
        'A ```jsonc block is not json: ```jsonc\n{"a": 1}\n``` and {"a": 4}',
        {"a": 4},
        "object",
        id="jsonc-fence-is-not-json",
    ),
]


@pytest.mark.parametrize(("text", "value", "source"), EXTRACTION_CASES)
def test_extract_json(text: str, value: Any, source: str) -> None:
    found = extract_json(text)

    assert found is not None
    assert found.value == value
    assert found.source == source
    assert json.loads(found.text) == value


@pytest.mark.parametrize(
    "text",
    ["", "   ", "No JSON here, sorry.", "{not json}", "{", "}{", "```json\n{oops\n```"],
)
def test_no_json_is_none(text: str) -> None:
    assert extract_json(text) is None


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
PROSE = st.text(st.characters(blacklist_characters="{}`"), max_size=40)


@given(
    value=st.dictionaries(st.text(), JSON_VALUES, max_size=5),
    before=PROSE,
    after=PROSE,
)
def test_an_object_in_prose_is_found(value: dict[str, Any], before: str, after: str) -> None:
    found = extract_json(before + msgspec.json.encode(value).decode() + after)

    assert found is not None
    assert found.value == value


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        "{ " * 100_000 + '{"a": 1}',
        '{"' * 100_000 + '{"a": 1}',
        "}" * 100_000 + '{"a": 1}',
        "{x" * 50_000 + "}" * 50_000 + '{"a": 1}',
    ],
    ids=["unclosed", "quotes", "closers", "nested-invalid"],
)
def test_extraction_stays_linear_on_hostile_text(text: str) -> None:
    found = extract_json(text)

    assert found is not None
    assert found.value == {"a": 1}


def test_whole_text_wins_over_an_object_inside_it() -> None:
    found = extract_json('{"outer": {"inner": 1}}')

    assert found is not None
    assert found.source == "whole"
    assert found.value == {"outer": {"inner": 1}}


def test_a_fence_wins_over_a_later_object_in_prose() -> None:
    found = extract_json('```json\n{"a": 1}\n```\nfor example {"a": 9}')

    assert found is not None
    assert found.value == {"a": 1}


# ---------------------------------------------------------------------------- validation


def test_a_valid_reply_round_trips_to_the_struct() -> None:
    value = Triage(severity=2, title="crash", labels=[Label("bug", 0.5)])
    reply = "Here it is:\n```json\n" + msgspec.json.encode(value).decode() + "\n```"

    assert validate_output(reply, Triage) == value


def test_an_already_parsed_reply_is_converted() -> None:
    assert validate_output({"severity": 1, "title": "t"}, Triage) == Triage(1, "t")


def test_a_model_object_is_read_by_attribute() -> None:
    @dataclasses.dataclass
    class Reply:
        severity: int
        title: str

    assert validate_output(Reply(3, "t"), Triage) == Triage(3, "t")


def test_a_dict_output_accepts_any_object() -> None:
    assert validate_output('ok: {"x": [1]}', dict) == {"x": [1]}


def test_a_wrong_type_names_the_path() -> None:
    problem = validate_output('{"severity": 1, "title": "t", "labels": [{"name": 5}]}', Triage)

    assert isinstance(problem, ValidationProblem)
    assert problem.kind == "schema"
    assert problem.message == "Expected `str`, got `int`"
    assert problem.path == "$.labels[0].name"
    assert problem.describe() == "Expected `str`, got `int` at $.labels[0].name"


def test_a_missing_field_is_a_schema_problem_at_the_root() -> None:
    problem = validate_output('{"title": "t"}', Triage)

    assert isinstance(problem, ValidationProblem)
    assert problem.kind == "schema"
    assert problem.message == "Object missing required field `severity`"
    assert problem.path is None
    assert problem.reply == '{"title": "t"}'


def test_strings_are_not_coerced_to_numbers() -> None:
    problem = validate_output('{"severity": "2", "title": "t"}', Triage)

    assert isinstance(problem, ValidationProblem)
    assert problem.path == "$.severity"


def test_a_parsed_reply_that_does_not_fit_is_a_problem_with_its_json() -> None:
    problem = validate_output({"severity": "high", "title": "t"}, Triage)

    assert isinstance(problem, ValidationProblem)
    assert problem.path == "$.severity"
    assert json.loads(problem.reply) == {"severity": "high", "title": "t"}


def test_plain_text_is_a_no_json_problem() -> None:
    problem = validate_output("done", Triage)

    assert isinstance(problem, ValidationProblem)
    assert problem.kind == "no_json"
    assert "JSON object" in problem.message
    assert problem.reply == "done"


# ---------------------------------------------------------------------------- repair turns


def test_two_repair_turns_as_the_reference() -> None:
    assert SCHEMA_REPAIR_TURNS == 2


def test_the_repair_prompt_shows_the_error_the_reply_and_the_turn() -> None:
    problem = validate_output('{"severity": "2", "title": "t"}', Triage)
    assert isinstance(problem, ValidationProblem)

    text = repair_prompt(problem, 1)

    assert "did not match the required output schema" in text
    assert "Repair 1 of 2" in text
    assert "Expected `int`, got `str` at $.severity" in text
    assert '{"severity": "2", "title": "t"}' in text
    assert "only the corrected JSON object" in text
    assert "JSON schema" not in text


def test_the_repair_prompt_can_repeat_the_schema() -> None:
    problem = ValidationProblem(kind="schema", message="Object missing required field `title`")

    text = repair_prompt(problem, 2, schema=Triage)

    assert "Repair 2 of 2" in text
    assert '"title": "Triage"' in text
    assert "Object missing required field `title`" in text


def test_the_repair_prompt_for_plain_text_asks_for_json() -> None:
    problem = validate_output("I fixed it.", Triage)
    assert isinstance(problem, ValidationProblem)

    text = repair_prompt(problem, 1)

    assert text.startswith("Your previous reply contained no JSON")
    assert "I fixed it." in text


def test_the_repair_prompt_cuts_a_long_reply() -> None:
    problem = ValidationProblem(kind="no_json", message="no JSON", reply="x" * 10_000)

    text = repair_prompt(problem, 1)

    assert "x" * 2_000 + " …(cut)" in text
    assert "x" * 2_001 not in text


@pytest.mark.parametrize("attempt", [0, 3, -1])
def test_a_repair_turn_out_of_range_is_refused(attempt: int) -> None:
    problem = ValidationProblem(kind="no_json", message="no JSON")
    with pytest.raises(ValueError, match=r"attempt must be 1\.\.2"):
        repair_prompt(problem, attempt)


def test_the_final_error_is_invalid_output_with_the_schema_retry_attempts() -> None:
    problem = validate_output('{"severity": "x", "title": "t"}', Triage)
    assert isinstance(problem, ValidationProblem)

    err = invalid_output_error(
        problem, node_id="triage", schema_name="Triage", schema_retry_attempts=3
    )

    assert isinstance(err, InvalidOutputError)
    assert err.code == "INVALID_OUTPUT"
    assert err.retryable  # the task's retries take over
    assert err.summary.startswith("Task output failed validation after 3 replies")
    assert "$.severity" in err.summary
    assert str(err) == err.summary
    out = error_to_json(err)
    assert out["details"] == {
        "nodeId": "triage",
        "schema": "Triage",
        "errors": "Expected `int`, got `str` at $.severity",
        "schemaRetryAttempts": 3,
    }


# ---------------------------------------------------------------------------- the package


def test_agents_all_is_complete() -> None:
    module = importlib.import_module("smithers.engine.agents")
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, type(importlib))
    }
    public -= {"annotations"}
    assert isinstance(module.__all__, tuple)
    assert sorted(public - set(module.__all__)) == []
    assert [n for n in module.__all__ if not hasattr(agents, n)] == []
