"""The event catalogue: struct conventions, completeness, wire format, golden samples."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from smithers.eventstore import EVENT_TYPES, decode_event, encode_event
from smithers.eventstore import events as ev

GOLDEN_DIR = Path(__file__).parent / "golden"

ABSTRACT_BASES = (ev.Event, ev.NodeEvent, ev.AttemptEvent)
UNION_CLASSES: tuple[type[ev.Event], ...] = typing.get_args(ev.AnyEvent)

# Smithers' event reference, "Quick Reference" table: type -> extra fields (``?`` optional).
QUICK_REFERENCE: dict[str, tuple[str, ...]] = {
    "SupervisorStarted": ("pollIntervalMs", "staleThresholdMs"),
    "SupervisorPollCompleted": ("staleCount", "resumedCount", "skippedCount", "durationMs"),
    "RunStarted": (),
    "RunStatusChanged": ("status",),
    "RunFinished": (),
    "RunFailed": ("error",),
    "RunCancelled": (),
    "RunAutoResumed": ("lastHeartbeatAtMs", "staleDurationMs"),
    "RunAutoResumeSkipped": ("reason",),
    "RunContinuedAsNew": ("newRunId", "iteration", "carriedStateSize", "ancestryDepth?"),
    "RunForked": ("parentRunId", "parentFrameNo", "branchLabel?"),
    "ReplayStarted": ("parentRunId", "parentFrameNo", "restoreVcs"),
    "FrameCommitted": ("frameNo", "xmlHash"),
    "SnapshotCaptured": ("frameNo", "contentHash"),
    "NodePending": ("nodeId", "iteration"),
    "NodeStarted": ("nodeId", "iteration", "attempt"),
    "NodeFinished": ("nodeId", "iteration", "attempt"),
    "NodeFailed": ("nodeId", "iteration", "attempt", "error"),
    "NodeCancelled": ("nodeId", "iteration", "attempt?", "reason?"),
    "NodeSkipped": ("nodeId", "iteration"),
    "NodeRetrying": ("nodeId", "iteration", "attempt"),
    "NodeWaitingApproval": ("nodeId", "iteration"),
    "NodeWaitingTimer": ("nodeId", "iteration", "firesAtMs"),
    "ApprovalRequested": ("nodeId", "iteration"),
    "ApprovalGranted": ("nodeId", "iteration"),
    "ApprovalAutoApproved": ("nodeId", "iteration"),
    "ApprovalDenied": ("nodeId", "iteration"),
    "ToolCallStarted": ("nodeId", "iteration", "attempt", "toolName", "seq"),
    "ToolCallFinished": ("nodeId", "iteration", "attempt", "toolName", "seq", "status"),
    "NodeOutput": ("nodeId", "iteration", "attempt", "text", "stream"),
    "TimerCreated": ("timerId", "firesAtMs", "timerType"),
    "TimerFired": ("timerId", "firesAtMs", "firedAtMs", "delayMs"),
    "TimerCancelled": ("timerId",),
    "TaskHeartbeat": (
        "nodeId",
        "iteration",
        "attempt",
        "hasData",
        "dataSizeBytes",
        "intervalMs?",
    ),
    "TaskHeartbeatTimeout": ("nodeId", "iteration", "attempt", "lastHeartbeatAtMs", "timeoutMs"),
    "SandboxCreated": ("sandboxId", "runtime", "configJson"),
    "SandboxShipped": ("sandboxId", "runtime", "bundleSizeBytes"),
    "SandboxHeartbeat": ("sandboxId", "remoteRunId?", "progress?"),
    "SandboxBundleReceived": ("sandboxId", "bundleSizeBytes", "patchCount", "hasOutputs"),
    "SandboxCompleted": ("sandboxId", "remoteRunId?", "runtime", "status", "durationMs"),
    "SandboxFailed": ("sandboxId", "runtime", "error"),
    "SandboxDiffReviewRequested": ("sandboxId", "patchCount", "totalDiffLines"),
    "SandboxDiffAccepted": ("sandboxId", "patchCount"),
    "SandboxDiffRejected": ("sandboxId", "reason?"),
    "RevertStarted": ("nodeId", "iteration", "attempt", "jjPointer"),
    "RevertFinished": ("nodeId", "iteration", "attempt", "jjPointer", "success", "error?"),
    "RetryTaskStarted": ("nodeId", "iteration", "resetDependents", "resetNodes"),
    "RetryTaskFinished": ("nodeId", "iteration", "resetNodes", "success", "error?"),
    "TimeTravelStarted": ("nodeId", "iteration", "attempt", "jjPointer?"),
    "TimeTravelFinished": (
        "nodeId",
        "iteration",
        "attempt",
        "jjPointer?",
        "success",
        "vcsRestored",
        "resetNodes",
        "error?",
    ),
    "VoiceStarted": ("nodeId", "iteration", "operation", "provider"),
    "VoiceFinished": ("nodeId", "iteration", "operation", "provider", "durationMs"),
    "VoiceError": ("nodeId", "iteration", "operation", "provider", "error"),
    "RagIngested": ("documentCount", "chunkCount", "namespace"),
    "RagRetrieved": ("query", "resultCount", "namespace", "topScore"),
    "MemoryFactSet": ("namespace", "key"),
    "MemoryRecalled": ("namespace", "query", "resultCount"),
    "MemoryMessageSaved": ("threadId", "role"),
    "OpenApiToolCalled": ("operationId", "method", "path", "durationMs", "status"),
    "AgentEvent": ("nodeId", "iteration", "attempt", "engine", "event"),
    "WorkflowReloadDetected": ("changedFiles",),
    "WorkflowReloaded": ("generation", "changedFiles"),
    "WorkflowReloadFailed": ("error", "changedFiles"),
    "WorkflowReloadUnsafe": ("reason", "changedFiles"),
    "RunHijackRequested": ("target?",),
    "RunHijacked": ("nodeId", "iteration", "attempt", "engine", "mode", "resume?", "cwd"),
    "ScorerStarted": ("nodeId", "scorerId", "scorerName"),
    "ScorerFinished": ("nodeId", "scorerId", "scorerName", "score"),
    "ScorerFailed": ("nodeId", "scorerId", "scorerName", "error"),
    "TokenUsageReported": (
        "nodeId",
        "iteration",
        "attempt",
        "model",
        "agent",
        "inputTokens",
        "outputTokens",
        "cacheReadTokens?",
        "cacheWriteTokens?",
        "reasoningTokens?",
    ),
    "AlertFired": (
        "alertId",
        "policyName",
        "severity",
        "fingerprint",
        "nodeId?",
        "iteration?",
        "message",
    ),
    "AlertAcknowledged": ("alertId", "acknowledgedBy?"),
    "AlertSilenced": ("alertId", "silencedUntilMs?"),
    "AlertResolved": ("alertId", "resolvedBy?"),
    "AlertReopened": ("alertId", "fingerprint", "occurrenceCount"),
    "AlertEscalated": ("alertId", "fromSeverity", "toSeverity"),
    "BudgetExceeded": ("nodeId", "iteration", "budgetType", "limit", "actual"),
    "ProviderDisconnected": ("nodeId", "iteration", "attempt", "engine"),
    "ProviderReconnected": ("nodeId", "iteration", "attempt", "engine"),
}

# Events DESIGN §4 adds beyond Smithers' table: type -> every field (camelCase).
DESIGN_EVENTS: dict[str, tuple[str, ...]] = {
    "RunQueued": (
        "runId",
        "timestampMs",
        "workflowName",
        "workflowPath",
        "workflowHash",
        "input",
        "inputHash",
        "config",
        "queue",
        "priority",
        "actor",
    ),
    "RunsDeleted": (
        "runId",
        "timestampMs",
        "runIds",
        "finishedBeforeMs",
        "keepAudit",
        "includeForkedFrom",
        "deletedEvents",
        "actor",
    ),
    "RunRewound": ("runId", "timestampMs", "toFrameNo", "toSeq", "actor"),
    "RunCancelRequested": ("runId", "timestampMs", "source", "reason", "actor"),
    "NodeWaitingEvent": (
        "runId",
        "timestampMs",
        "nodeId",
        "iteration",
        "eventName",
        "correlationId",
        "timeoutAtMs",
    ),
    "SignalReceived": (
        "runId",
        "timestampMs",
        "signalName",
        "data",
        "correlationId",
        "sentBy",
        "actor",
    ),
    "ChildRunEnded": (
        "runId",
        "timestampMs",
        "nodeId",
        "iteration",
        "childRunId",
        "status",
    ),
    # ---- loops (issue 9)
    "LoopIterationStarted": ("runId", "timestampMs", "loopId", "iteration"),
    "LoopFinished": ("runId", "timestampMs", "loopId", "iteration", "reason"),
    "LoopRewound": ("runId", "timestampMs", "loopId", "iteration", "nodeIds"),
    "ContinuationLoaded": (
        "runId",
        "timestampMs",
        "fromRunId",
        "ancestryDepth",
        "iteration",
        "state",
        "loops",
        "outputs",
        "carryNodes",
    ),
}


# ---------------------------------------------------------------------------- samples


def _value(tp: Any, name: str) -> Any:
    """A deterministic, non-default sample value of type `tp` for field `name`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return typing.get_args(tp)[0]
    if origin in (typing.Union, types.UnionType):
        return _value(next(a for a in typing.get_args(tp) if a is not type(None)), name)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        return (_value(item, f"{name}-1"), _value(item, f"{name}-2"))
    if tp is msgspec.Raw:
        return msgspec.Raw(b'{"key":[1,"two",null]}')
    if tp is ev.ErrorInfo:
        return ev.ErrorInfo(
            name="ValueError",
            message="boom",
            code="INVALID_OUTPUT",
            retryable=False,
            details=msgspec.Raw(b'{"nodeId":"a"}'),
        )
    if tp is ev.Actor:
        return ev.Actor(name="alice", host="box", pid=42, interface="cli", reason="why")
    if tp is bool:
        return True
    if tp is int:
        return 3
    if tp is float:
        return 0.75
    if tp is str:
        return f"{name}-value"
    raise AssertionError(f"no sample for {name}: {tp!r}")


def sample(cls: type[ev.Event], *, full: bool = True) -> ev.Event:
    """An instance of `cls`: every field set (`full`) or only the required ones."""
    kwargs = {
        f.name: _value(f.type, f.name) for f in msgspec.structs.fields(cls) if full or f.required
    }
    kwargs.update(run_id="run-1", timestamp_ms=1_700_000_000_000)
    return cls(**kwargs)


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _all_subclasses(sub)
    return found


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _contains_mutable(tp: Any) -> bool:
    if tp in (list, dict, set, bytearray):
        return True
    origin = typing.get_origin(tp)
    if origin in (list, dict, set):
        return True
    return any(_contains_mutable(a) for a in typing.get_args(tp) if not isinstance(a, str))


# ---------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("cls", UNION_CLASSES + ABSTRACT_BASES, ids=lambda c: c.__name__)
def test_event_classes_are_keyword_only(cls: type[ev.Event]) -> None:
    assert cls.__match_args__ == ()


@pytest.mark.parametrize("cls", UNION_CLASSES, ids=lambda c: c.__name__)
def test_event_classes_are_frozen(cls: type[ev.Event]) -> None:
    assert cls.__struct_config__.frozen
    event = sample(cls)
    with pytest.raises(AttributeError):
        event.run_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("cls", UNION_CLASSES, ids=lambda c: c.__name__)
def test_the_tag_is_the_class_name_in_field_type(cls: type[ev.Event]) -> None:
    config = cls.__struct_config__
    assert (config.tag_field, config.tag) == ("type", cls.__name__)


@pytest.mark.parametrize("cls", UNION_CLASSES, ids=lambda c: c.__name__)
def test_event_fields_are_immutable_types(cls: type[ev.Event]) -> None:
    mutable = [f.name for f in msgspec.structs.fields(cls) if _contains_mutable(f.type)]
    assert mutable == []


def test_tags_are_unique() -> None:
    names = [cls.__name__ for cls in UNION_CLASSES]
    assert len(names) == len(set(names))
    assert set(EVENT_TYPES) == set(names)
    assert all(EVENT_TYPES[cls.__name__] is cls for cls in UNION_CLASSES)


def test_every_concrete_event_class_is_in_the_union() -> None:
    # The catalogue spans the package's modules (`events` re-exports the planned ones).
    defined = {
        cls
        for cls in _all_subclasses(ev.Event)
        if cls.__module__.rpartition(".")[0] == ev.__package__ and cls not in ABSTRACT_BASES
    }
    assert defined - set(UNION_CLASSES) == set()
    assert set(UNION_CLASSES) - defined == set()


def test_the_abstract_bases_are_not_in_the_union() -> None:
    assert set(ABSTRACT_BASES).isdisjoint(UNION_CLASSES)


# ---------------------------------------------------------------------------- the catalogue


def test_every_quick_reference_type_exists() -> None:
    assert sorted(set(QUICK_REFERENCE) - set(EVENT_TYPES)) == []


def test_the_catalogue_is_the_quick_reference_plus_design_events() -> None:
    assert set(EVENT_TYPES) == set(QUICK_REFERENCE) | set(DESIGN_EVENTS)


@pytest.mark.parametrize(("name", "fields"), QUICK_REFERENCE.items())
def test_quick_reference_fields_exist_and_optional_ones_have_defaults(
    name: str, fields: tuple[str, ...]
) -> None:
    info = {f.encode_name: f for f in msgspec.structs.fields(EVENT_TYPES[name])}
    for field in ("runId", "timestampMs", *fields):
        assert field.rstrip("?") in info, field
        if field.endswith("?"):
            assert not info[field.rstrip("?")].required, field


@pytest.mark.parametrize(("name", "fields"), DESIGN_EVENTS.items())
def test_design_events_have_exactly_their_fields(name: str, fields: tuple[str, ...]) -> None:
    assert tuple(f.encode_name for f in msgspec.structs.fields(EVENT_TYPES[name])) == fields


def test_retry_task_events_fields() -> None:
    started = {f.name: f for f in msgspec.structs.fields(ev.RetryTaskStarted)}
    finished = {f.name: f for f in msgspec.structs.fields(ev.RetryTaskFinished)}
    assert list(started) == [
        "run_id",
        "timestamp_ms",
        "node_id",
        "iteration",
        "reset_dependents",
        "reset_nodes",
        "actor",
    ]
    assert started["reset_nodes"].type == tuple[str, ...]
    assert list(finished) == [
        "run_id",
        "timestamp_ms",
        "node_id",
        "iteration",
        "reset_nodes",
        "success",
        "error",
    ]
    assert finished["error"].type == ev.ErrorInfo | None
    assert finished["error"].default is None


@pytest.mark.parametrize(
    ("cls", "field", "values"),
    [
        (ev.TimerCreated, "timer_type", ("duration", "absolute")),
        (ev.VoiceStarted, "operation", ("speak", "listen")),
        (ev.VoiceFinished, "operation", ("speak", "listen")),
        (ev.VoiceError, "operation", ("speak", "listen")),
        (ev.RunAutoResumeSkipped, "reason", ("pid-alive", "missing-workflow", "rate-limited")),
        (ev.LoopFinished, "reason", ("until", "max-iterations")),
    ],
)
def test_closed_vocabularies_are_literals(
    cls: type[ev.Event], field: str, values: tuple[str, ...]
) -> None:
    tp = next(f.type for f in msgspec.structs.fields(cls) if f.name == field)
    assert typing.get_origin(tp) is Literal
    assert typing.get_args(tp) == values
    bad = encode_event(sample(cls)).replace(values[0].encode(), b"something-else")
    with pytest.raises(msgspec.ValidationError):
        decode_event(cls.__name__, bad)


# ---------------------------------------------------------------------------- wire format


def test_json_is_camel_case_with_a_type_tag() -> None:
    event = ev.NodeStarted(run_id="r1", timestamp_ms=5, node_id="a", iteration=2, attempt=1)
    assert json.loads(encode_event(event)) == {
        "type": "NodeStarted",
        "runId": "r1",
        "timestampMs": 5,
        "nodeId": "a",
        "iteration": 2,
        "attempt": 1,
    }


@pytest.mark.parametrize("cls", UNION_CLASSES, ids=lambda c: c.__name__)
def test_no_snake_case_key_reaches_the_wire(cls: type[ev.Event]) -> None:
    keys = _keys(json.loads(encode_event(sample(cls))))
    assert {"type", "runId", "timestampMs"} <= keys
    assert [k for k in keys if "_" in k] == []


@pytest.mark.parametrize("full", [True, False], ids=["all-fields", "required-only"])
@pytest.mark.parametrize("cls", UNION_CLASSES, ids=lambda c: c.__name__)
def test_encode_decode_round_trip(cls: type[ev.Event], full: bool) -> None:
    event = sample(cls, full=full)
    data = encode_event(event)
    assert decode_event(cls.__name__, data) == event
    assert msgspec.json.decode(data, type=cls) == event


def test_decoding_ignores_fields_it_does_not_know() -> None:
    # A newer writer may add fields; older readers skip them (no forbid_unknown_fields).
    data = b'{"type":"NodeStarted","runId":"r","timestampMs":1,"nodeId":"a","attempt":1,"new":{}}'
    assert decode_event("NodeStarted", data) == ev.NodeStarted(
        run_id="r", timestamp_ms=1, node_id="a", attempt=1
    )


def test_decoding_a_known_type_with_a_bad_payload_raises() -> None:
    data = b'{"type":"NodeStarted","runId":"r","timestampMs":1,"nodeId":"a"}'
    with pytest.raises(msgspec.ValidationError, match="attempt"):
        decode_event("NodeStarted", data)


# ---------------------------------------------------------------------------- golden samples


def _golden_lines() -> list[tuple[str, str]]:
    return [
        (f"{path.name}:{number}", line)
        for path in sorted(GOLDEN_DIR.glob("*.jsonl"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.strip()
    ]


GOLDEN = _golden_lines()


@pytest.mark.parametrize(("where", "line"), GOLDEN, ids=[where for where, _ in GOLDEN])
def test_golden_samples_still_decode(where: str, line: str) -> None:
    obj = json.loads(line)
    event = decode_event(obj["type"], line.encode())
    assert type(event) is EVENT_TYPES[obj["type"]], where
    # Nothing was lost or renamed: every recorded field comes back with its value. Fields
    # added since (schema evolution) may appear too, but only with their defaults.
    again = json.loads(encode_event(event))
    assert {k: again.get(k) for k in obj} == obj, where
    defaults = json.loads(encode_event(decode_event(obj["type"], _required_only(obj))))
    for key in again.keys() - obj.keys():
        assert again[key] == defaults.get(key), f"{where}: new field {key} is not its default"


def test_every_event_type_has_a_golden_sample() -> None:
    # When adding an event type, append a sample line to the newest golden file.
    sampled = {json.loads(line)["type"] for _, line in GOLDEN}
    assert sorted(set(EVENT_TYPES) - sampled) == []


def _required_only(obj: dict[str, Any]) -> bytes:
    """`obj` minus every field that has a default: the event as an old writer would store it."""
    cls = EVENT_TYPES[obj["type"]]
    required = {
        f.encode_name
        for f in msgspec.structs.fields(cls)
        if f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
    }
    return json.dumps({k: v for k, v in obj.items() if k == "type" or k in required}).encode()
