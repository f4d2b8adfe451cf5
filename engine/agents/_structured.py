"""Structured output for agent tasks: schema, extraction, validation, repair turns.

As Smithers' schema-validation retries (seed 002): a task's `output` type becomes a
JSON schema (msgspec's); the agent's reply is parsed (whole text as JSON, else the last
fenced json block, else the last balanced ``{...}`` object) and validated by msgspec;
when it does not fit, up to `SCHEMA_REPAIR_TURNS` follow-up prompts in the same
conversation show the model its validation errors. These repair turns happen inside one
attempt and do not consume the task's `retries`; when they are spent the attempt fails
with `INVALID_OUTPUT` and ``details.schemaRetryAttempts``.

Everything here is pure (no I/O, clock or randomness) and needs only msgspec; the agent
runtime calls it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec
from smithers.engine.errors import InvalidOutputError
from smithers.eventstore.errors import InvalidArgumentError

__all__ = (
    "SCHEMA_REPAIR_TURNS",
    "JsonCandidate",
    "ValidationProblem",
    "output_json_schema",
    "output_instructions",
    "extract_json",
    "validate_output",
    "repair_prompt",
    "invalid_output_error",
)

SCHEMA_REPAIR_TURNS = 2
"""Follow-up prompts that show the model its validation errors, per attempt (seed 002)."""

_MAX_ECHO_CHARS = 2_000
"""How much of a rejected reply a repair prompt quotes back to the model."""


class JsonCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """A JSON value found in an agent's free text by `extract_json`."""

    source: Literal["whole", "fenced", "object"]
    """Where it was found: the whole text, the last fenced json block, the last object."""
    text: str
    """The JSON text itself (what msgspec decodes against the schema)."""
    value: Any
    """The decoded value (untyped JSON: dict, list, str, int, float, bool or None)."""


class ValidationProblem(msgspec.Struct, frozen=True, kw_only=True):
    """Why an agent's reply is not a valid output; what a repair prompt shows the model.

    Returned (not raised) by `validate_output`.
    """

    kind: Literal["no_json", "schema"]
    """``"no_json"``: no JSON value was found in the reply; ``"schema"``: JSON was found
    but does not fit the output schema."""
    message: str
    """msgspec's message without the location, e.g. ``"Expected `int`, got `str`"``."""
    path: str | None = None
    """JSON path of the offending value (``"$.items[0].count"``), None for the root."""
    reply: str = ""
    """The reply (or the JSON found in it) that was rejected, for the repair prompt."""

    def describe(self) -> str:
        """Return the problem as one line, e.g. ``"Expected `int`, got `str` at $.count"``."""
        return f"{self.message} at {self.path}" if self.path else self.message


# ---------------------------------------------------------------------------- schema


def output_json_schema(schema: Any) -> dict[str, Any]:
    """Return msgspec's JSON schema for an output type, in the form providers accept.

    msgspec puts a Struct's schema under ``$defs`` with a root ``$ref``; OpenAI's and
    Anthropic's structured-output and tool-parameter fields want the root object inline.
    So the root definition is inlined and the other definitions stay under ``$defs``
    (kept for the root too when a type refers to itself).

    Args:
        schema: A msgspec Struct type, a ``dict`` type (``dict``, ``dict[str, Any]``), or
            any type msgspec can describe.

    Returns:
        A JSON-ready dict (a fresh copy; callers may mutate it).

    Raises:
        TypeError: if msgspec cannot describe `schema` (e.g. an arbitrary class).
    """
    raw = msgspec.json.schema(schema)
    ref = raw.get("$ref")
    defs: dict[str, Any] = dict(raw.get("$defs", {}))
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return raw
    name = ref.removeprefix("#/$defs/")
    root = dict(defs[name])
    if not _refers_to(defs, ref):
        del defs[name]
    if defs:
        root["$defs"] = defs
    return root


def _refers_to(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_refers_to(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, ref) for v in node)
    return False


def output_instructions(schema: Any) -> str:
    """Return the prompt contract for agents without native structured output.

    Appended to the task's prompt: the JSON schema and how to reply (one JSON object,
    nothing else): DESIGN §8's "prompt contract", for agents (CLI agents, models
    without a JSON mode) that cannot be handed the schema natively.

    Args:
        schema: The task's output type (see `output_json_schema`).

    Returns:
        A plain-text paragraph ending with the schema as pretty JSON.

    Raises:
        TypeError: if msgspec cannot describe `schema`.
    """
    pretty = msgspec.json.format(msgspec.json.encode(output_json_schema(schema))).decode()
    return (
        "Reply with a single JSON object that matches this JSON schema. Put nothing "
        "else in the reply (or put the object in one ```json fenced block at the end).\n"
        f"JSON schema:\n{pretty}"
    )


# ---------------------------------------------------------------------------- extraction

_FENCE = re.compile(r"```[ \t]*json\b[ \t]*\r?\n?(.*?)\r?\n?[ \t]*```", re.IGNORECASE | re.DOTALL)
_DECODER = msgspec.json.Decoder()


def _decode(text: str) -> tuple[bool, Any]:
    try:
        return True, _DECODER.decode(text)
    except (msgspec.DecodeError, UnicodeEncodeError):  # a lone surrogate is not JSON text
        return False, None


_SPECIAL = re.compile(r'[{}"\\]')


def _scan(text: str, start: int, spans: list[tuple[int, int]], seen: set[int]) -> None:
    """Match braces from the ``{`` at `start` until it closes or the text ends.

    Braces inside JSON strings (with their escapes) do not count. Every ``{`` met
    outside a string is added to `seen` (a scan from it would retrace this one) and each
    closed object's ``(start, end)`` is appended to `spans`.
    """
    stack: list[int] = []
    in_string = False
    skip = -1  # index of a character escaped by a backslash
    for match in _SPECIAL.finditer(text, start):
        i = match.start()
        if i == skip:
            continue
        ch = match.group()
        if in_string:
            if ch == "\\":
                skip = i + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            stack.append(i)
            seen.add(i)
        elif ch == "}":
            spans.append((stack.pop(), i + 1))
            if not stack:
                return


def _last_object(text: str) -> JsonCandidate | None:
    """The parseable balanced object ending last in `text` (the outermost one of a nest).

    Linear in the text: a ``{`` is scanned from only if no earlier scan met it outside
    a string, and two scans over the same stretch are either in step or in opposite
    string phase for good, so no character is visited more than twice.
    """
    spans: list[tuple[int, int]] = []
    seen: set[int] = set()
    start = text.find("{")
    while start != -1:
        if start not in seen:
            _scan(text, start, spans, seen)
        start = text.find("{", start + 1)
    for start, end in sorted(spans, key=lambda span: (-span[1], span[0])):
        ok, value = _decode(text[start:end])
        if ok:
            return JsonCandidate(source="object", text=text[start:end], value=value)
    return None


def extract_json(text: str) -> JsonCandidate | None:
    """Find the JSON value an agent meant as its output in free text.

    The order is Smithers' (seed 002): the whole text (stripped) as JSON; else the last
    fenced ```` ```json ```` block, if it parses; else the last balanced ``{...}`` object
    that parses (strings with braces and escaped quotes inside it are handled; prose
    before and after is ignored; of nested objects the outermost is taken). Pure.

    Args:
        text: The agent's reply.

    Returns:
        The `JsonCandidate` found, or None when the text holds no JSON value.
    """
    stripped = text.strip()
    if stripped:
        ok, value = _decode(stripped)
        if ok:
            return JsonCandidate(source="whole", text=stripped, value=value)
    fences = _FENCE.findall(text)
    if fences:
        block = fences[-1].strip()
        ok, value = _decode(block)
        if ok:
            return JsonCandidate(source="fenced", text=block, value=value)
    return _last_object(text)


# ---------------------------------------------------------------------------- validation

_AT = re.compile(r"^(?P<message>.*?) - at `(?P<path>\$[^`]*)`$", re.DOTALL)


def _problem(err: msgspec.ValidationError, reply: str) -> ValidationProblem:
    text = str(err)
    match = _AT.match(text)
    if match:
        return ValidationProblem(
            kind="schema", message=match["message"], path=match["path"], reply=reply
        )
    return ValidationProblem(kind="schema", message=text, reply=reply)


def validate_output(raw: Any, schema: Any) -> Any:
    """Validate an agent's reply against the task's output type.

    Text goes through `extract_json` first and is decoded by msgspec against `schema`
    (JSON rules: no ``"1"`` for an int). Anything else (a provider's native structured
    output, already parsed: a dict, a dataclass or model instance) is converted with
    `msgspec.convert` (same rules; objects are read by attribute). Pure.

    Args:
        raw: The reply text, or an already-parsed JSON value (dict, list, ...).
        schema: The output type: a msgspec Struct type, ``dict``, or another type
            msgspec understands.

    Returns:
        The validated value (an instance of `schema`), or a `ValidationProblem` saying
        why it is not one (``kind="no_json"`` when text holds no JSON at all).
    """
    if isinstance(raw, str):
        candidate = extract_json(raw)
        if candidate is None:
            return ValidationProblem(
                kind="no_json",
                message="The reply contains no JSON value; task outputs must be JSON objects",
                reply=raw,
            )
        try:
            return msgspec.json.decode(candidate.text, type=schema)
        except msgspec.ValidationError as e:
            return _problem(e, candidate.text)
    try:
        return msgspec.convert(raw, type=schema, from_attributes=True)
    except msgspec.ValidationError as e:
        try:
            reply = msgspec.json.encode(raw).decode()
        except (msgspec.EncodeError, TypeError):
            reply = repr(raw)
        return _problem(e, reply)


def repair_prompt(problem: ValidationProblem, attempt: int, *, schema: Any | None = None) -> str:
    """Return the follow-up message that shows the model its validation errors.

    Sent as the next user turn of the same conversation (seed 002: "follow-up prompts
    with the validation errors appended").

    Args:
        problem: What `validate_output` returned for the last reply.
        attempt: Which repair turn this is, from 1 to `SCHEMA_REPAIR_TURNS`.
        schema: The output type; when given, its JSON schema is repeated in the prompt.

    Returns:
        The message text: the error (with its JSON path), the rejected reply (cut to
        2,000 characters), which turn this is, and how to answer.

    Raises:
        ValueError: if `attempt` is not between 1 and `SCHEMA_REPAIR_TURNS`.
    """
    if not 1 <= attempt <= SCHEMA_REPAIR_TURNS:
        raise InvalidArgumentError(f"attempt must be 1..{SCHEMA_REPAIR_TURNS}, got {attempt}")
    if problem.kind == "no_json":
        head = "Your previous reply contained no JSON, but this task needs a JSON object."
    else:
        head = "Your previous reply did not match the required output schema."
    reply = problem.reply
    if len(reply) > _MAX_ECHO_CHARS:
        reply = reply[:_MAX_ECHO_CHARS] + " …(cut)"
    lines = [
        f"{head} (Repair {attempt} of {SCHEMA_REPAIR_TURNS}.)",
        "",
        "Validation errors:",
        f"- {problem.describe()}",
        "",
        "Your previous reply:",
        reply,
        "",
    ]
    if schema is not None:
        pretty = msgspec.json.format(msgspec.json.encode(output_json_schema(schema)))
        lines += ["The JSON schema the reply must match:", pretty.decode(), ""]
    lines.append(
        "Reply again with only the corrected JSON object: no prose, no code fences, "
        "every required field present, every value of the type the schema says."
    )
    return "\n".join(lines)


def invalid_output_error(
    problem: ValidationProblem,
    *,
    node_id: str,
    schema_name: str,
    schema_retry_attempts: int,
) -> InvalidOutputError:
    """Return the `INVALID_OUTPUT` error an attempt fails with once repairs are spent.

    As Smithers, ``details.schemaRetryAttempts`` counts the replies validated in the
    attempt (the first one plus the repair turns: 3 with the default 2 repairs). The
    error is retryable: the task's `retries` take over from here.

    Args:
        problem: The last reply's problem.
        node_id: The task's id.
        schema_name: The output type's name, e.g. ``"Triage"``.
        schema_retry_attempts: Replies validated in this attempt.

    Returns:
        An `InvalidOutputError` (not raised) with details `nodeId`, `schema`, `errors`,
        `schemaRetryAttempts`.
    """
    err = InvalidOutputError(node_id, schema_name, problem.describe())
    err.summary = (
        f"Task output failed validation after {schema_retry_attempts} replies: {err.summary}"
    )
    err.args = (err.summary,)
    err.details["schemaRetryAttempts"] = schema_retry_attempts
    return err
