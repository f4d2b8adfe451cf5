"""A scripted model-API server on 127.0.0.1 for offline agent tests (stdlib only).

It speaks two provider wire protocols, closely enough that the official ``openai`` and
``anthropic`` SDKs (and pydantic-ai's ``OpenAIChatModel`` / ``AnthropicModel`` built on
them) cannot tell it from the real thing:

- ``POST /v1/chat/completions``: OpenAI chat completions, JSON or SSE (``stream: true``:
  ``data: {chunk}`` lines, a usage-only chunk when ``stream_options.include_usage`` is
  set, which pydantic-ai always sets, then ``data: [DONE]``);
- ``POST /v1/messages``: Anthropic messages, JSON or SSE (``message_start``,
  ``content_block_start/delta/stop``, ``message_delta``, ``message_stop``);
- ``GET /_requests``: the request log as a JSON list; ``POST /_script``: append steps
  (a JSON list) to the script of a running server. Any other route (e.g. OpenAI's
  ``/v1/responses``, not served) gets a logged 404.

Replies are scripted. A script is one list of steps shared by both routes, consumed one
step per model request (an SDK retry is a request too, and takes a step). A step is a
dict, or, in-process only, a function ``(request_body) -> step dict`` (called, with the
stub's lock held, whenever it is the next candidate step; if it raises, the request gets
a 500 naming the exception):

- ``{"text": "..."}``: an assistant text reply;
- ``{"tool_calls": [{"name": "add", "arguments": {"a": 1}, "id": "call_1"}]}``: the model
  calls tools (``id`` defaults to ``call_<request>_<n>``). A ``str`` ``arguments`` is sent
  verbatim, so a test can send malformed JSON (OpenAI; for Anthropic only when streaming,
  as ``input_json_delta``; non-streaming Anthropic sends the JSON-decoded value if it
  decodes, else the string). ``text`` may accompany ``tool_calls``;
- ``{"error": 429, "retry_after": "1", "body": {...}, "headers": {...}}``: an HTTP error
  with the provider's error body (OpenAI ``{"error": {"message", "type", "param",
  "code"}}``, Anthropic ``{"type": "error", "error": {"type", "message"}}``; ``body``
  replaces it whole; ``message`` replaces only its message), a ``retry-after`` header
  when ``retry_after`` is given, and any ``headers`` (e.g. ``{"retry-after-ms": "5"}``);
- ``"usage": {"input": 10, "output": 5, "cache_read": 0, "cache_write": 0}`` on a reply
  overrides the default usage (``DEFAULT_USAGE``);
- ``"delay_ms": N`` on any step sleeps N ms before answering (the request is logged on
  arrival, before the delay, so a client killed mid-request still left its trace; a
  client that closes its connection during the delay is noticed at once and its request
  marked ``answered: false``);
- ``"error_in_stream": true`` with ``"error": N``: a streamed request gets a 200 event
  stream that starts the message (with ``text``, if given, as deltas) and then carries
  the provider's in-stream error event (OpenAI ``data: {"error": ...}``, Anthropic
  ``event: error``); a non-streamed request gets the plain HTTP error;
- ``"when_last_user_contains": "..."``: the step answers only a request whose last user
  text (the text parts of the last ``user`` message that has any; Anthropic tool-result
  blocks do not count) contains the string. Steps are tried in order and the first
  unconsumed match answers, so a script of guarded steps need not follow request order;
- ``"repeat": true``: the step is not consumed; it answers every request it matches.

When no step matches, the answer is a 500 in the provider's error shape with the message
``stub script exhausted after N requests`` (N = requests answered by steps), so a test
notices an unexpected extra request.

Every request is logged (in-process: `StubLLM.requests`; with ``log_path``: one JSON line
per request, flushed; the ``/_requests`` and ``/_script`` routes are not logged) as
``{"index", "method", "path", "api", "headers", "body", "fingerprint", "step", "status",
"answered"}``: ``index`` counts from 0; ``api`` is ``"openai"``, ``"anthropic"`` or null
(unknown path, answered 404); ``headers`` are the ones worth asserting on (API keys
masked); ``step`` is the script index that answered (null when none did); ``status`` is
the HTTP status sent (200 for an ``error_in_stream`` reply); ``answered`` is null while
the reply is pending, true once it was written, false if the client was gone by then (it
timed out or was killed during a ``delay_ms``). The request is logged on arrival and
``answered`` settled later (in the file by a second line ``{"index", "answered"}``, which
`read_log` merges). `fingerprint` hashes what the model was asked (route, model, system,
messages), so a test can assert that no identical request was sent twice
(`duplicate_fingerprints`).

As a script: ``python tests/agents/stub_llm.py --port 0 --script SCRIPT.json --log
LOG.ndjson`` prints ``listening on http://127.0.0.1:PORT`` as its first stdout line and
serves until killed. SCRIPT.json is a JSON list of steps.

Provider errors, as observed with pydantic-ai-slim 2.68.0, openai 3.57.0, anthropic 2.14.0
(each point is checked by a test in ``test_stub_llm.py``):

- An HTTP 4xx/5xx reaches the caller of ``agent.run`` as a
  ``pydantic_ai.exceptions.ModelHTTPError`` (a ``ModelAPIError``) carrying
  ``status_code``; ``body`` (OpenAI: the inner ``error`` object ``{"message", "type",
  "param", "code"}``; Anthropic: the whole ``{"type": "error", "error": {...}}``);
  ``headers`` (the response headers, lower-cased keys); ``retry_after`` (float seconds,
  from ``retry-after-ms`` or ``retry-after``; None if neither was sent);
  ``provider_error_code`` / ``provider_error_type``; and the SDK's exception as
  ``__cause__`` (``openai.RateLimitError``, ``anthropic.AuthenticationError``, ..., whose
  ``.response.headers`` hold the raw headers). The raised class is also a category:
  429 → ``ModelRateLimitError``; 401 → ``ModelAuthenticationError`` and 400 →
  ``ModelRequestRejectedError`` (the former is a subclass of the latter); 500 →
  ``ModelServerError``; Anthropic 529 ``overloaded_error`` → ``ModelOverloadedError``.
  So the engine reads the delay as ``exc.retry_after`` (or ``exc.headers["retry-after"]``),
  and ``classify_provider_error(exc.status_code, exc.body, exc.headers)`` classifies it.
- An error event inside an open stream (``error_in_stream``) raises the same categories
  with ``in_stream`` true and ``status_code`` the status the provider uses for that error
  (429 for a rate limit; OpenAI has no 529, so an in-stream 529 body there reads as 500).
- Both SDKs retry 429 and 5xx themselves before pydantic-ai sees anything: 2 retries by
  default (3 requests in all), sleeping ``retry-after-ms`` / ``retry-after`` when it is
  at most 60 s (else an exponential backoff from 0.5 s), each retry sending
  ``x-stainless-retry-count: N``. 400 and 401 are not retried. A durable engine that owns
  retries should turn this off, per request with ``model_settings={"max_retries": 0}``
  or per client: ``OpenAIProvider(openai_client=openai.AsyncOpenAI(max_retries=0,
  base_url=..., api_key=...))``, ``AnthropicProvider(anthropic_client=
  anthropic.AsyncAnthropic(max_retries=0, base_url=..., api_key=...))``.
- Usage: OpenAI ``prompt_tokens`` → ``usage.input_tokens`` (cached tokens included, as
  OpenAI counts them), ``prompt_tokens_details.cached_tokens`` → ``cache_read_tokens``.
  Anthropic's ``input_tokens`` excludes the cache, and pydantic-ai adds it back:
  ``usage.input_tokens = input_tokens + cache_read_input_tokens +
  cache_creation_input_tokens``.
- ``AnthropicProvider(api_key=...)`` sends the key as ``authorization: Bearer ...``, not
  ``x-api-key``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = (
    "DEFAULT_USAGE",
    "Step",
    "StubLLM",
    "duplicate_fingerprints",
    "fingerprint",
    "main",
    "read_log",
)

Step = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
"""One scripted answer: a step dict, or (in-process only) a function of the request body."""

DEFAULT_USAGE: dict[str, int] = {"input": 10, "output": 5, "cache_read": 0, "cache_write": 0}
"""Token counts reported when a step gives no ``usage``."""

CREATED_S = 1_700_000_000
"""The fixed ``created`` timestamp (epoch seconds) of every OpenAI response."""

_LOGGED_HEADERS = (
    "content-type",
    "accept",
    "user-agent",
    "anthropic-version",
    "anthropic-beta",
    "idempotency-key",
    "x-stainless-retry-count",
    "x-stainless-timeout",
    "authorization",
    "x-api-key",
)
_SECRET_HEADERS = ("authorization", "x-api-key")

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (stub)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided (stub)."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden (stub)."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist (stub)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests (stub)."),
    500: ("server_error", None, "The server had an error processing your request (stub)."),
    503: ("server_error", None, "The engine is currently overloaded (stub)."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request (stub)."),
    401: ("authentication_error", "invalid x-api-key (stub)"),
    403: ("permission_error", "Your API key does not have permission (stub)."),
    404: ("not_found_error", "model: not found (stub)"),
    413: ("request_too_large", "Request exceeds the maximum allowed size (stub)."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (stub)."),
    500: ("api_error", "Internal server error (stub)"),
    529: ("overloaded_error", "Overloaded (stub)"),
}


# ---------------------------------------------------------------------------- log helpers


def fingerprint(request: Mapping[str, Any]) -> str:
    """Hash what a model request asked, to spot the same request sent twice.

    Args:
        request: A logged request (a dict with ``path`` and ``body``) or a bare request
            body. Only the route, ``model``, ``system`` and ``messages`` count, so two
            sends of one conversation match even if headers or settings differ.

    Returns:
        A 64-character hex SHA-256 digest, stable across processes.
    """
    body = request.get("body", request) if "path" in request else request
    if not isinstance(body, Mapping):
        body = {"raw": body}
    key = {
        "path": request.get("path") if "path" in request else None,
        "model": body.get("model"),
        "system": body.get("system"),
        "messages": body.get("messages"),
    }
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def duplicate_fingerprints(
    requests: Iterable[Mapping[str, Any]], *, answered_only: bool = False
) -> list[str]:
    """The fingerprints of model requests that were sent more than once.

    Args:
        requests: Logged requests (from `StubLLM.requests` or `read_log`); requests
            without a model API (``api`` null: unknown paths) are skipped.
        answered_only: Count a request as a repeat only if an earlier identical request
            was answered. A client killed mid-request (its request unanswered) may then
            send it again after resuming without that counting as a duplicate.

    Returns:
        The repeated fingerprints in order of first repetition; empty if none repeated.
    """
    seen: set[str] = set()
    repeated: list[str] = []
    for request in requests:
        if request.get("api") is None:
            continue
        key = request.get("fingerprint") or fingerprint(request)
        if key in seen and key not in repeated:
            repeated.append(key)
        if not answered_only or request.get("answered"):
            seen.add(key)
    return repeated


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Read a request log written with ``--log``.

    The file holds one JSON line per request, then, once the reply is sent (or the client
    is found gone), a line ``{"index": i, "answered": true|false}`` that this merges into
    request ``i``. A last line cut short (the server was killed while writing) is ignored.

    Args:
        path: The log file.

    Returns:
        The logged requests in arrival order.

    Raises:
        OSError: if the file cannot be read.
    """
    records: list[dict[str, Any]] = []
    by_index: dict[int, dict[str, Any]] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            break
        if "path" in entry:
            records.append(entry)
            by_index[entry["index"]] = entry
        else:
            by_index[entry["index"]]["answered"] = entry["answered"]
    return records


def _last_user_text(api: str, body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [
                part["text"]
                for part in content
                if isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ]
            if texts:
                return "\n".join(texts)
    return ""


# ---------------------------------------------------------------------------- replies


def _usage(step: Mapping[str, Any]) -> dict[str, int]:
    return {**DEFAULT_USAGE, **step.get("usage", {})}


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _tool_calls(step: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    calls = []
    for n, call in enumerate(step.get("tool_calls", [])):
        arguments = call.get("arguments", {})
        calls.append(
            {
                "id": call.get("id") or f"call_{index}_{n}",
                "name": call["name"],
                "arguments": arguments,
                "json": arguments if isinstance(arguments, str) else json.dumps(arguments),
            }
        )
    return calls


def _openai_usage(step: Mapping[str, Any]) -> dict[str, Any]:
    usage = _usage(step)
    return {
        "prompt_tokens": usage["input"],
        "completion_tokens": usage["output"],
        "total_tokens": usage["input"] + usage["output"],
        "prompt_tokens_details": {"cached_tokens": usage["cache_read"]},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _openai_json(step: Mapping[str, Any], body: Mapping[str, Any], index: int) -> dict[str, Any]:
    calls = _tool_calls(step, index)
    message: dict[str, Any] = {"role": "assistant", "content": step.get("text"), "refusal": None}
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["json"]},
            }
            for c in calls
        ]
    return {
        "id": f"chatcmpl-stub-{index}",
        "object": "chat.completion",
        "created": CREATED_S,
        "model": body.get("model", "stub"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _openai_usage(step),
    }


def _openai_sse(step: Mapping[str, Any], body: Mapping[str, Any], index: int) -> list[bytes]:
    calls = _tool_calls(step, index)
    base = {
        "id": f"chatcmpl-stub-{index}",
        "object": "chat.completion.chunk",
        "created": CREATED_S,
        "model": body.get("model", "stub"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "choices": [choice]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if step.get("text"):
        chunks += [chunk({"content": piece}) for piece in _pieces(step["text"])]
    if step.get("error_in_stream"):
        failure = step.get("body") or _error_body("openai", int(step["error"]), step.get("message"))
        return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in [*chunks, failure]]
    for n, call in enumerate(calls):
        head = {"index": n, "id": call["id"], "type": "function"}
        head["function"] = {"name": call["name"], "arguments": ""}
        chunks.append(chunk({"tool_calls": [head]}))
        for piece in _pieces(call["json"]):
            delta = {"tool_calls": [{"index": n, "function": {"arguments": piece}}]}
            chunks.append(chunk(delta))
    chunks.append(chunk({}, "tool_calls" if calls else "stop"))
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _openai_usage(step)})
    lines = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    return [*lines, b"data: [DONE]\n\n"]


def _anthropic_usage(step: Mapping[str, Any]) -> dict[str, Any]:
    usage = _usage(step)
    return {
        "input_tokens": usage["input"],
        "output_tokens": usage["output"],
        "cache_read_input_tokens": usage["cache_read"],
        "cache_creation_input_tokens": usage["cache_write"],
    }


def _anthropic_blocks(step: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if step.get("text"):
        blocks.append({"type": "text", "text": step["text"]})
    for call in _tool_calls(step, index):
        arguments = call["arguments"]
        if isinstance(arguments, str):
            with contextlib.suppress(json.JSONDecodeError):
                arguments = json.loads(arguments)
        block = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": arguments}
        blocks.append({**block, "json": call["json"]})
    return blocks


def _anthropic_message(
    step: Mapping[str, Any], body: Mapping[str, Any], index: int, content: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": f"msg_stub_{index}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "stub"),
        "content": content,
        "stop_reason": "tool_use" if step.get("tool_calls") else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(step),
    }


def _anthropic_json(step: Mapping[str, Any], body: Mapping[str, Any], index: int) -> dict[str, Any]:
    blocks = [{k: v for k, v in b.items() if k != "json"} for b in _anthropic_blocks(step, index)]
    return _anthropic_message(step, body, index, blocks)


def _anthropic_sse(step: Mapping[str, Any], body: Mapping[str, Any], index: int) -> list[bytes]:
    start = _anthropic_message(step, body, index, [])
    start["stop_reason"] = None
    start["usage"] = {**start["usage"], "output_tokens": 1}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if step.get("error_in_stream"):
        status = int(step["error"])
        failure = step.get("body") or _error_body("anthropic", status, step.get("message"))
        if step.get("text"):
            text_block: dict[str, Any] = {"type": "text", "text": ""}
            start_block = {"type": "content_block_start", "index": 0, "content_block": text_block}
            events.append(start_block)
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(step["text"])]
            events += [{"type": "content_block_delta", "index": 0, "delta": d} for d in deltas]
        events.append(failure)
        return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
    for n, block in enumerate(_anthropic_blocks(step, index)):
        if block["type"] == "text":
            opened: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        else:
            opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": p} for p in _pieces(block["json"])
            ]
        events.append({"type": "content_block_start", "index": n, "content_block": opened})
        events += [{"type": "content_block_delta", "index": n, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": n})
    stop = {"stop_reason": "tool_use" if step.get("tool_calls") else "end_turn"}
    events.append(
        {
            "type": "message_delta",
            "delta": {**stop, "stop_sequence": None},
            "usage": _anthropic_usage(step),
        }
    )
    events.append({"type": "message_stop"})
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def _error_body(api: str | None, status: int, message: str | None = None) -> dict[str, Any]:
    if api == "anthropic":
        kind, default = _ANTHROPIC_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "Error (stub)")
        )
        return {"type": "error", "error": {"type": kind, "message": message or default}}
    kind, code, text = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error")
    )
    return {"error": {"message": message or text, "type": kind, "param": None, "code": code}}


# ---------------------------------------------------------------------------- the server


class StubLLM:
    """A scripted OpenAI + Anthropic API server on 127.0.0.1, run in a thread or a process.

    Example::

        with StubLLM([{"text": "hi"}]) as stub:
            model = OpenAIChatModel(
                "gpt-stub",
                provider=OpenAIProvider(base_url=stub.openai_base_url, api_key="dummy"),
            )
            ...
        assert stub.requests[0]["path"] == "/v1/chat/completions"

    Attributes:
        requests: Every request received, in arrival order (see the module docstring for
            the record's keys). Appended by the server threads; read it once the client
            is done.
    """

    def __init__(
        self,
        script: Iterable[Step] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: str | Path | None = None,
    ) -> None:
        """Bind the listening socket (nothing is served until `start` or `serve_forever`).

        Args:
            script: The steps, consumed one per model request (see the module docstring).
            host: Interface to bind; keep the default loopback address in tests.
            port: TCP port; 0 picks a free one (read it back from `port`).
            log_path: If set, each request is also appended to this file as a JSON line
                (flushed per line; the file is created or appended to).

        Raises:
            OSError: if the address cannot be bound.
        """
        self.requests: list[dict[str, Any]] = []
        self._steps: list[Step] = list(script)
        self._used: set[int] = set()
        self._answered = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log: IO[str] | None = (
            open(log_path, "a", encoding="utf-8") if log_path is not None else None  # noqa: SIM115
        )
        self._server = http.server.ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True

    # -- addresses

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, no trailing slash."""
        host = self._server.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for the OpenAI SDK / ``OpenAIProvider``: ``{url}/v1``."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for the Anthropic SDK / ``AnthropicProvider``: `url` itself."""
        return self.url

    # -- script

    def add(self, *steps: Step) -> None:
        """Append steps to the script (also allowed while serving)."""
        with self._lock:
            self._steps.extend(steps)

    @property
    def remaining(self) -> int:
        """How many steps are not consumed yet (``repeat`` steps always count)."""
        with self._lock:
            return len(self._steps) - len(self._used)

    def fingerprints(self) -> list[str]:
        """`fingerprint` of each model request received so far, in arrival order."""
        return [r["fingerprint"] for r in list(self.requests) if r["api"] is not None]

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies received so far, optionally only those sent to `path`."""
        return [r["body"] for r in list(self.requests) if path is None or r["path"] == path]

    # -- lifecycle

    def start(self) -> StubLLM:
        """Serve in a daemon thread and return self; requests are answered until `stop`."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(_POLL_S,),
            name=f"stub-llm-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop` is called from another thread."""
        self._server.serve_forever(_POLL_S)

    def stop(self) -> None:
        """Stop serving, wake requests sleeping in a ``delay_ms``, close socket and log."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def __enter__(self) -> StubLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- called by the handler threads

    def _choose(self, api: str | None, body: Any) -> tuple[int | None, dict[str, Any] | None]:
        """Pick (and consume) the step answering a request; called with the lock held."""
        if api is None:
            return None, None
        text = _last_user_text(api, body) if isinstance(body, dict) else ""
        for i, step in enumerate(self._steps):
            if i in self._used:
                continue
            try:
                resolved = step(body) if callable(step) else step
            except Exception as exc:  # a test's bug: answer it, don't drop the connection
                resolved = {"error": 500, "message": f"stub step {i} raised {exc!r}"}
            guard = resolved.get("when_last_user_contains")
            if guard is not None and guard not in text:
                continue
            if not resolved.get("repeat"):
                self._used.add(i)
            self._answered += 1
            return i, resolved
        return None, None

    def _receive(
        self, method: str, path: str, headers: Mapping[str, str], body: Any
    ) -> tuple[dict[str, Any], dict[str, Any] | None, int]:
        api = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}.get(path)
        if method != "POST":
            api = None
        logged = {}
        for name in _LOGGED_HEADERS:
            value = headers.get(name)
            if value is not None:
                logged[name] = "<masked>" if name in _SECRET_HEADERS else value
        own = (method, path) in _OWN_ROUTES
        with self._lock:
            step_index, step = self._choose(api, body)
            if api is None:
                status = 200 if own else 404
            elif step is None:
                status = 500
            elif (
                isinstance(body, dict)
                and body.get("stream") is True
                and step.get("error_in_stream")
            ):
                status = 200  # the error comes inside the event stream
            else:
                status = int(step.get("error", 200))
            record: dict[str, Any] = {
                "index": len(self.requests),
                "method": method,
                "path": path,
                "api": api,
                "headers": logged,
                "body": body,
                "fingerprint": fingerprint({"path": path, "body": body}),
                "step": step_index,
                "status": status,
                "answered": None,
            }
            if own:  # the control routes are not model traffic: not logged
                return record, step, self._answered
            self.requests.append(record)
            if self._log is not None:
                self._log.write(json.dumps(record) + "\n")
                self._log.flush()
            answered = self._answered
        return record, step, answered

    def _settle(self, record: dict[str, Any], *, answered: bool) -> None:
        """Record whether the reply reached the client (a second log line in the file)."""
        with self._lock:
            record["answered"] = answered
            if self._log is not None:
                self._log.write(json.dumps({"index": record["index"], "answered": answered}))
                self._log.write("\n")
                self._log.flush()


_OWN_ROUTES = {("GET", "/_requests"), ("POST", "/_script")}
_POLL_S = 0.02
"""How often a delayed reply checks for a departed client, and `stop` for shutdown (s)."""


def _peer_closed(connection: socket.socket) -> bool:
    """Whether the client has closed its end (the whole request was read already)."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _make_handler(stub: StubLLM) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "stub-llm/1"
        _before_last: Callable[[], None] = staticmethod(lambda: None)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the request log is the record

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            # The client may go away (killed, timed out): then there is nobody to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(method)

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            record, step, answered = stub._receive(method, path, headers, body)
            # Settled just before the reply's last bytes go out: a client holding a whole
            # reply then always finds ``answered: true`` in the log, even if it reads the log
            # right away. A write that fails after that settles it false again.
            if (method, path) in _OWN_ROUTES:  # not logged, so nothing to settle
                self._own_route(method, path, body, record["status"])
                return
            self._before_last = lambda: stub._settle(record, answered=True)
            try:
                self._route(method, path, body, record, step, answered)
            except (BrokenPipeError, ConnectionResetError):
                if record["answered"] is not False:
                    stub._settle(record, answered=False)
                raise

        def _route(
            self,
            method: str,
            path: str,
            body: Any,
            record: dict[str, Any],
            step: dict[str, Any] | None,
            answered: int,
        ) -> None:
            api = record["api"]
            if api is None:
                self._own_route(method, path, body, record["status"])
                return
            if step is None:
                message = f"stub script exhausted after {answered} requests"
                self._json(500, _error_body(api, 500, message))
                return
            deadline = time.monotonic() + step.get("delay_ms", 0) / 1000
            while True:  # sleep out delay_ms, watching for the client giving up meanwhile
                if _peer_closed(self.connection):
                    stub._settle(record, answered=False)  # timed out, killed: gone
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if stub._stopping.wait(min(left, _POLL_S)):
                    return  # stopping: the request stays unsettled (answered null)
            self._reply(api, step, body, record["index"])

        def _reply(self, api: str, step: dict[str, Any], body: Any, index: int) -> None:
            stream = isinstance(body, dict) and body.get("stream") is True
            if "error" in step and not (stream and step.get("error_in_stream")):
                status = int(step["error"])
                extra = dict(step.get("headers", {}))
                if step.get("retry_after") is not None:
                    extra["retry-after"] = str(step["retry_after"])
                failure = step.get("body") or _error_body(api, status, step.get("message"))
                self._json(status, failure, extra)
            elif api == "openai" and stream:
                self._sse(_openai_sse(step, body, index))
            elif api == "openai":
                self._json(200, _openai_json(step, body, index))
            elif stream:
                self._sse(_anthropic_sse(step, body, index))
            else:
                self._json(200, _anthropic_json(step, body, index))

        def _own_route(self, method: str, path: str, body: Any, status: int) -> None:
            if (method, path) == ("GET", "/_requests"):
                self._json(200, list(stub.requests))
            elif (method, path) == ("POST", "/_script") and isinstance(body, list):
                stub.add(*body)
                self._json(200, {"remaining": stub.remaining})
            elif (method, path) == ("POST", "/_script"):
                self._json(400, {"error": {"message": "POST /_script takes a JSON list"}})
            else:
                self._json(status, {"error": {"message": f"stub: no route {method} {path}"}})

        def _json(self, status: int, payload: Any, headers: Mapping[str, str] = {}) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", "req_stub")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data[:-1])
            self._before_last()
            self.wfile.write(data[-1:])

        def _sse(self, events: list[bytes]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.end_headers()
            for event in events[:-1]:
                self.wfile.write(event)
                self.wfile.flush()
            self._before_last()
            self.wfile.write(events[-1])

    return Handler


# ---------------------------------------------------------------------------- the script


def main(argv: list[str] | None = None) -> int:
    """Run the stub as a process: print the address line, serve until killed.

    Args:
        argv: Command-line arguments (default ``sys.argv[1:]``): ``--port`` (0 = any free
            port), ``--script`` (a JSON file holding a list of steps), ``--log`` (an
            NDJSON request log, appended to).

    Returns:
        The exit status, 0 (only reached if serving stops, e.g. on Ctrl-C).
    """
    parser = argparse.ArgumentParser(description="Scripted OpenAI/Anthropic API stub.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--script", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args(argv)
    script = json.loads(args.script.read_text(encoding="utf-8")) if args.script else []
    stub = StubLLM(script, host=args.host, port=args.port, log_path=args.log)
    print(f"listening on {stub.url}", flush=True)
    try:
        stub.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
