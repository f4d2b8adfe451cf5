"""The authoring API: `workflow`, `Task`, `Sequence`, `Parallel`, `Branch` (DESIGN §12).

A workflow is a function of `ctx` returning a tree of these components. Components are
plain descriptions; the engine renders, schedules and executes them.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, overload

import msgspec
from smithers.eventstore import JsonValueError, decode_json, encode_json_strict

from ..errors import (
    InvalidInputError,
    TaskIdRequiredError,
    TaskMissingOutputError,
    UnsupportedFeatureError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = (
    "Backoff",
    "Branch",
    "Component",
    "Parallel",
    "Sequence",
    "WAIT_KINDS",
    "Task",
    "TaskKind",
    "Workflow",
    "MAX_INPUT_BYTES",
    "check_input",
    "encode_input",
    "workflow",
)

_UNSET: Any = object()


class Backoff(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Delay between a failed attempt and the next one.

    ``delay_ms(n)`` after the n-th failed attempt: fixed ``initial_ms``; linear
    ``initial_ms * n``; exponential ``initial_ms * factor ** (n - 1)``; capped at ``max_ms``.
    """

    kind: Literal["fixed", "linear", "exponential"] = "exponential"
    initial_ms: int = 1_000
    """Delay after the first failure, in milliseconds."""
    max_ms: int = 60_000
    """Cap on any delay, in milliseconds."""
    factor: float = 2.0
    """Growth factor for exponential backoff."""

    def delay_ms(self, failed_attempt: int) -> int:
        """Return the delay in ms before the attempt following `failed_attempt` (from 1)."""
        n = max(failed_attempt, 1)
        if self.kind == "fixed":
            delay = float(self.initial_ms)
        elif self.kind == "linear":
            delay = float(self.initial_ms * n)
        else:
            delay = self.initial_ms * self.factor ** (n - 1)
        return int(min(delay, self.max_ms))


DEFAULT_BACKOFF = Backoff()

TaskKind = Literal["static", "compute", "agent", "approval", "event", "timer", "subflow"]
"""What a leaf does: the three kinds of `Task`, and the nodes that wait (`Approval`,
`WaitForEvent`, `Timer`) or run a child workflow (`Subflow`)."""

WAIT_KINDS: frozenset[str] = frozenset({"approval", "event", "timer"})
"""Kinds of leaves that wait for something outside the run instead of executing."""


class Component:
    """Base of everything a workflow builder may return."""

    __slots__ = ()


def _schema_name(schema: Any) -> str:
    return getattr(schema, "__name__", None) or repr(schema)


def _arity(fn: Callable[..., Any]) -> int:
    plain = not hasattr(fn, "__wrapped__") and not hasattr(fn, "__signature__")
    if type(fn) is types.FunctionType and plain:
        # What inspect.signature says, ~50x faster (it costs ~15 us per Task, in
        # every render): positional parameters without a default.
        return 1 if fn.__code__.co_argcount > len(fn.__defaults__ or ()) else 0
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return 1 if positional else 0


AGENT_HEARTBEAT_TIMEOUT_MS = 600_000
"""Default `Task.heartbeat_timeout_ms` of agent tasks: 10 minutes without a streamed event."""
BUILTIN_TOOL_NAMES: frozenset[str] = frozenset({"read", "write", "edit", "grep", "bash"})
"""Names `Task(tools=[...])` accepts for the built-in tools (`smithers.tools`)."""


def _agent_chain(task_id: str, agent: Any, prompt: Any) -> tuple[Any, ...]:
    """`agent` as a fallback chain (a tuple of at least one agent), checked.

    Raises:
        UnsupportedFeatureError: if the chain is empty, an item is not an agent (no
            ``generate`` method and not a ``pydantic_ai.Agent``), or `prompt` is missing.
    """
    chain = tuple(agent) if isinstance(agent, list | tuple) else (agent,)
    if not chain:
        raise UnsupportedFeatureError(
            f"Task {task_id!r}: agent= needs at least one agent.", details={"nodeId": task_id}
        )
    for item in chain:
        pydantic = type(item).__module__.startswith("pydantic_ai") and callable(
            getattr(item, "run", None)
        )
        if not callable(getattr(item, "generate", None)) and not pydantic:
            raise UnsupportedFeatureError(
                f"Task {task_id!r}: {type(item).__name__} is not an agent (it needs an "
                "async generate(request) method, or must be a pydantic_ai.Agent).",
                details={"nodeId": task_id, "option": "agent"},
            )
    if prompt is None or not (isinstance(prompt, str) or callable(prompt)):
        raise UnsupportedFeatureError(
            f"Task {task_id!r}: an agent task needs prompt= (a str, or a callable of ctx "
            "returning one).",
            details={"nodeId": task_id, "option": "prompt"},
        )
    return chain


def _tool_list(task_id: str, tools: Iterable[Any]) -> tuple[Any, ...]:
    """`tools` checked: built-in names or tool objects (``name`` and ``call``), unique.

    Raises:
        UnsupportedFeatureError: for an unknown name, a non-tool, or a name given twice.
    """
    out: list[Any] = []
    seen: set[str] = set()
    for item in tools:
        if isinstance(item, str):
            if item not in BUILTIN_TOOL_NAMES:
                known = ", ".join(sorted(BUILTIN_TOOL_NAMES))
                raise UnsupportedFeatureError(
                    f"Task {task_id!r}: no built-in tool {item!r} (built-ins: {known}).",
                    details={"nodeId": task_id, "option": "tools"},
                )
            name = item
        elif isinstance(getattr(item, "name", None), str) and callable(getattr(item, "call", None)):
            name = item.name
        else:
            raise UnsupportedFeatureError(
                f"Task {task_id!r}: tools= takes built-in tool names and define_tool() "
                f"tools, got {type(item).__name__}.",
                details={"nodeId": task_id, "option": "tools"},
            )
        if name in seen:
            raise UnsupportedFeatureError(
                f"Task {task_id!r}: tool {name!r} is given twice.",
                details={"nodeId": task_id, "option": "tools"},
            )
        seen.add(name)
        out.append(item)
    return tuple(out)


def _allowed_tools(task_id: str, allow: Iterable[str] | None) -> frozenset[str] | None:
    if allow is None:
        return None
    if isinstance(allow, str):
        raise UnsupportedFeatureError(
            f"Task {task_id!r}: allow_tools= takes a list of tool names, not a str.",
            details={"nodeId": task_id, "option": "allow_tools"},
        )
    return frozenset(allow)


class Task(Component):
    """One unit of work with a validated output, as Smithers' ``<Task>``.

    Exactly one of `value` (static), `run` (compute) or `agent` (agent) says what it does.

    Args:
        id: Node id, unique within the workflow (``TASK_ID_REQUIRED`` if empty).
        output: msgspec Struct type (or ``dict``) the output must validate against
            (``TASK_MISSING_OUTPUT`` if missing).
        value: Static output (a dict or an instance of `output`).
        run: Callable returning the output; sync or async, with no argument or one
            `TaskContext`. Sync callables run in a worker thread.
        agent: An agent (anything with ``async generate(request) -> AgentResult``, see
            `smithers.agents`, or a ``pydantic_ai.Agent``), or a list of them: a fallback
            chain where attempt n uses the n-th agent and the last one from then on.
        prompt: The agent's prompt: a str, or a callable of the `TaskContext` returning
            one (read ``ctx.input`` and upstream outputs there). Required with `agent`.
        tools: Tools the agent may call: `smithers.tools.define_tool` tools and/or the
            names of built-ins (``"read"``, ``"write"``, ``"edit"``, ``"grep"``,
            ``"bash"``), sandboxed to the run's root. Default: none.
        allow_tools: Names of `tools` the agent may actually use (None: all of them).
        retries: Extra attempts after a failure (default 0 for static/compute, 2 for
            agent tasks). Non-retryable errors (e.g. bad configuration) are not retried.
        backoff: Delay policy between attempts (default exponential from 1 s, cap 60 s).
        timeout_ms: Fail an attempt after this many milliseconds (``TASK_TIMEOUT``).
        continue_on_fail: Let the workflow go on when this task finally fails.
        skip_if: Skip the task when true at the render that mounts it (``NodeSkipped``);
            once skipped it stays skipped.
        depends_on: Node ids that must be done before this task starts, beyond its
            position in the tree.
        label: Human-readable label shown by ``inspect``.
        heartbeat_timeout_ms: Fail an attempt (``TASK_HEARTBEAT_TIMEOUT``, retryable) when
            its `run` callable has not called ``ctx.heartbeat()`` for this many ms. Agent
            tasks default to 10 minutes, and every event an agent streams counts.
        needs_approval: Ask a person before the first attempt: the task waits
            (``waiting-approval``, the run parks) until ``smithers approve``/``deny``
            decides; denied, it fails with ``APPROVAL_DENIED`` (or is let go with
            `continue_on_fail`). As Smithers' ``needsApproval``.
        cache: not supported yet (raises).

    Raises:
        TaskIdRequiredError: if `id` is not a non-empty string.
        TaskMissingOutputError: if `output` is missing.
        UnsupportedFeatureError: for an option this version does not implement.
    """

    __slots__ = (
        "agent",
        "agents",
        "allow_tools",
        "backoff",
        "continue_on_fail",
        "depends_on",
        "heartbeat_timeout_ms",
        "id",
        "kind",
        "label",
        "needs_approval",
        "output",
        "prompt",
        "retries",
        "run",
        "run_arity",
        "skip_if",
        "timeout_ms",
        "tools",
        "value",
    )

    def __init__(
        self,
        id: str,
        *,
        output: Any = None,
        value: Any = _UNSET,
        run: Callable[..., Any] | None = None,
        agent: Any = None,
        prompt: str | Callable[[Any], str] | None = None,
        tools: Iterable[Any] = (),
        allow_tools: Iterable[str] | None = None,
        retries: int | None = None,
        backoff: Backoff | None = None,
        timeout_ms: int | None = None,
        heartbeat_timeout_ms: int | None = None,
        continue_on_fail: bool = False,
        skip_if: bool = False,
        needs_approval: bool = False,
        depends_on: Iterable[str] = (),
        cache: Any = None,
        label: str | None = None,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise TaskIdRequiredError(id)
        if output is None:
            raise TaskMissingOutputError(id)
        given = sum(x is not None for x in (run, agent)) + (value is not _UNSET)
        if given != 1:
            raise UnsupportedFeatureError(
                f"Task {id!r} needs exactly one of value=, run= or agent= (got {given}).",
                details={"nodeId": id},
            )
        unsupported = {"cache": cache is not None}
        for name, used in unsupported.items():
            if used:
                raise UnsupportedFeatureError(
                    f"Task {id!r}: {name}= is not supported by this version of smithers-py yet.",
                    details={"nodeId": id, "option": name},
                )
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            raise UnsupportedFeatureError(
                f"Task {id!r}: retries must be an int >= 0, got {retries!r}.",
                details={"nodeId": id},
            )
        if heartbeat_timeout_ms is not None and heartbeat_timeout_ms <= 0:
            raise UnsupportedFeatureError(
                f"Task {id!r}: heartbeat_timeout_ms must be > 0, got {heartbeat_timeout_ms!r}.",
                details={"nodeId": id},
            )
        if timeout_ms is not None and timeout_ms <= 0:
            raise UnsupportedFeatureError(
                f"Task {id!r}: timeout_ms must be > 0, got {timeout_ms!r}.",
                details={"nodeId": id},
            )
        self.id = id
        self.output = output
        self.value = value
        self.run = run
        self.agent = agent
        self.agents = _agent_chain(id, agent, prompt) if agent is not None else ()
        self.prompt = prompt
        self.tools = _tool_list(id, tools)
        self.allow_tools = _allowed_tools(id, allow_tools)
        self.kind: TaskKind = (
            "compute" if run is not None else "agent" if agent is not None else "static"
        )
        is_agent = self.kind == "agent"
        self.retries = retries if retries is not None else (2 if is_agent else 0)
        self.backoff = backoff or DEFAULT_BACKOFF
        self.timeout_ms = timeout_ms
        if heartbeat_timeout_ms is None and is_agent:
            heartbeat_timeout_ms = AGENT_HEARTBEAT_TIMEOUT_MS
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.continue_on_fail = bool(continue_on_fail)
        self.skip_if = bool(skip_if)
        self.depends_on = tuple(depends_on)
        self.label = label
        self.run_arity = _arity(run) if run is not None else 0
        self.needs_approval = bool(needs_approval)

    def _init_node(
        self,
        id: str,
        *,
        kind: TaskKind,
        output: Any,
        label: str | None,
        depends_on: Iterable[str],
        skip_if: bool,
    ) -> None:
        """Set the fields of a node that runs no callable (`Approval`, `Timer`, ...).

        Such nodes are leaves of the tree like tasks, so they share Task's attributes;
        what they do is decided by the engine from `kind`.

        Raises:
            TaskIdRequiredError: if `id` is not a non-empty string.
        """
        if not isinstance(id, str) or not id:
            raise TaskIdRequiredError(id)
        self.id = id
        self.output = output
        self.value = _UNSET
        self.run = None
        self.agent = None
        self.agents = ()
        self.prompt = None
        self.tools = ()
        self.allow_tools = None
        self.kind = kind
        self.retries = 0
        self.backoff = DEFAULT_BACKOFF
        self.timeout_ms = None
        self.heartbeat_timeout_ms = None
        self.continue_on_fail = False
        self.skip_if = bool(skip_if)
        self.depends_on = tuple(depends_on)
        self.label = label
        self.run_arity = 0
        self.needs_approval = False

    @property
    def output_name(self) -> str:
        """Name of the output schema, e.g. ``"Count"``."""
        return _schema_name(self.output)

    def __repr__(self) -> str:
        return f"Task({self.id!r}, kind={self.kind!r}, output={self.output_name})"


def _children(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(items)


class Sequence(Component):
    """Children run one after another, as Smithers' ``<Sequence>``. A list means the same.

    ``None`` and ``False`` children are skipped (conditional mounting).
    """

    __slots__ = ("children",)

    def __init__(self, *children: Any) -> None:
        self.children = _children(children)


class Parallel(Component):
    """Children run concurrently, at most `max_concurrency` at once (None: run-wide cap)."""

    __slots__ = ("children", "max_concurrency")

    def __init__(self, *children: Any, max_concurrency: int | None = None) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise UnsupportedFeatureError(
                f"Parallel max_concurrency must be >= 1, got {max_concurrency!r}."
            )
        self.children = _children(children)
        self.max_concurrency = max_concurrency


class Branch(Component):
    """Mounts `then` when `condition` is truthy at render time, else `else_`."""

    __slots__ = ("condition", "else_", "then")

    def __init__(self, condition: Any, *, then: Any = None, else_: Any = None) -> None:
        self.condition = bool(condition)
        self.then = then
        self.else_ = else_


class Workflow:
    """A named workflow: a builder function of `ctx` returning a component tree.

    Made by the `workflow` decorator. Attributes: `name`, `build`, `input_type` (a
    msgspec Struct type or None), `source_path` (file defining the builder, or None).
    """

    __slots__ = ("build", "input_type", "name", "source_path")

    def __init__(
        self, name: str, build: Callable[[Any], Any], *, input_type: type[Any] | None = None
    ) -> None:
        self.name = name
        self.build = build
        self.input_type = input_type
        module = sys.modules.get(getattr(build, "__module__", ""), None)
        path = getattr(module, "__file__", None)
        self.source_path: str | None = str(path) if path else None

    def __call__(self, ctx: Any) -> Any:
        """Render the tree for `ctx` (calls the builder)."""
        return self.build(ctx)

    def __repr__(self) -> str:
        return f"Workflow({self.name!r})"


@overload
def workflow(name: Callable[[Any], Any], *, input: type[Any] | None = None) -> Workflow: ...


@overload
def workflow(
    name: str | None = None, *, input: type[Any] | None = None
) -> Callable[[Callable[[Any], Any]], Workflow]: ...


def workflow(
    name: str | Callable[[Any], Any] | None = None, *, input: type[Any] | None = None
) -> Workflow | Callable[[Callable[[Any], Any]], Workflow]:
    """Declare a workflow, as Smithers' ``smithers(...)``.

    Usable as ``@workflow``, ``@workflow("count")`` or
    ``@workflow(name="count", input=InputStruct)``. The name defaults to the function's.

    Returns:
        A `Workflow` (or a decorator producing one).
    """
    if callable(name):
        fn = name
        return Workflow(fn.__name__, fn, input_type=input)

    def decorate(fn: Callable[[Any], Any]) -> Workflow:
        return Workflow(name or fn.__name__, fn, input_type=input)

    return decorate


MAX_INPUT_BYTES = 64 * 1024 * 1024
"""Default cap on a run's input as JSON, in bytes (64 MiB, as task outputs)."""


def encode_input(value: Any, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """A run's input `value` as strict JSON (`encode_json_strict`) of at most `max_bytes`.

    Raises:
        InvalidInputError: naming what is wrong (a lone surrogate, NaN, a tree deeper
            than `MAX_JSON_DEPTH`, a type JSON cannot hold, or the size and the limit).
    """
    try:
        raw = encode_json_strict(value)
    except JsonValueError as e:
        details: dict[str, Any] = {"errors": e.reason}
        if e.max_depth is not None:
            details["maxDepth"] = e.max_depth
        raise InvalidInputError(
            f"Workflow input cannot be stored: {e.reason}.",
            details=details,
            hint="Fix the --input JSON.",
        ) from e
    except (TypeError, msgspec.EncodeError) as e:
        raise InvalidInputError(
            f"Workflow input is not JSON-serialisable: {e}.", details={"errors": str(e)}
        ) from e
    if len(raw) > max_bytes:
        raise InvalidInputError(
            f"Workflow input is {len(raw):,} bytes of JSON; the limit is {max_bytes:,}.",
            details={"sizeBytes": len(raw), "maxBytes": max_bytes},
            hint="Pass large data as a file path in the input, not the data itself.",
        )
    return raw


def check_input(wf: Workflow, value: Any, *, max_bytes: int = MAX_INPUT_BYTES) -> tuple[Any, bytes]:
    """Validate a run's input against `wf`'s input type, as `run_workflow` does.

    Args:
        wf: The workflow.
        value: A mapping (or None for ``{}``), or an instance of ``wf.input_type``.
        max_bytes: Largest input JSON accepted, in bytes (default `MAX_INPUT_BYTES`).

    Returns:
        ``(value for ctx.input, canonical JSON bytes)``: a dict, or an instance of the
        workflow's input Struct.

    Raises:
        InvalidInputError: if `value` is not a JSON object, is not JSON-serialisable
            (a lone surrogate in a string, NaN or infinity, a tree deeper than
            `MAX_JSON_DEPTH` (details ``maxDepth``) included), is over `max_bytes`
            (details ``sizeBytes``, ``maxBytes``), or does not match the workflow's
            input type.
    """
    if value is None:
        value = {}
    if wf.input_type is not None and isinstance(value, wf.input_type):
        return value, encode_input(value, max_bytes)
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"Workflow input must be a JSON object, got {type(value).__name__}.",
            details={"errors": f"expected object, got {type(value).__name__}"},
            hint='Pass --input \'{"key": "value"}\'.',
        )
    raw = encode_input(dict(value), max_bytes)
    if wf.input_type is None:
        return decode_json(raw), raw
    try:
        typed = msgspec.json.decode(raw, type=wf.input_type)
    except msgspec.ValidationError as e:
        raise InvalidInputError(
            f"Input of workflow {wf.name!r} does not match {wf.input_type.__name__}: {e}.",
            details={"errors": str(e)},
            hint="Fix the --input JSON to match the workflow's input type.",
        ) from e
    return typed, encode_input(typed, max_bytes)
