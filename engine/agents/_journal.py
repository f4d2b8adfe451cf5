"""The journal of one agent attempt: what it records, and what it replays.

An `AgentJournal` turns what an agent does into events of its attempt (sent through a
callback; the run loop's coordinator records them):

- each model request and response as an ``AgentEvent`` (``{"type": "request", ...}``
  with the new messages, ``{"type": "response", ...}`` with the response), and the
  response's usage as ``TokenUsageReported``;
- streamed text as ``NodeOutput``, coalesced (one event per `TEXT_COALESCE_MS` or
  `TEXT_COALESCE_CHARS`, not one per token);
- any other agent event as ``AgentEvent`` (``{"type": kind, ...}``).

It also holds the `AgentReplay` of the attempt a crash interrupted (folded from the log
by the projection): a model agent asks `replayed_response` before each request and gets
the recorded response while the conversation matches the recorded one (same
fingerprint), and `replayed_tool_result` gives a recorded tool result by the model's
call id. So a resumed attempt continues from the first request that has no recorded
response, paying for nothing twice.

No I/O and no clock of its own: `now_ms` and the callbacks come from the engine.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import msgspec
from smithers.eventstore import decode_json, to_raw
from smithers.eventstore.events import (
    NULL_RAW,
    AgentEvent,
    ErrorInfo,
    NodeOutput,
    TokenUsageReported,
    ToolCallFinished,
    ToolCallStarted,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from smithers.eventstore.events import Event
    from smithers.projections import AgentReplay

    from ._protocol import AgentUsage

__all__ = (
    "LIVENESS_BEAT_MS",
    "TEXT_COALESCE_CHARS",
    "TEXT_COALESCE_MS",
    "AgentJournal",
    "fingerprint",
)

TEXT_COALESCE_MS = 500
"""Streamed text is recorded at most once per this many ms per attempt (and at the end)."""
TEXT_COALESCE_CHARS = 4_000
"""…or as soon as this many characters are waiting."""
LIVENESS_BEAT_MS = 30_000
"""A heartbeat without data is passed on at most once per this many ms (see
`AgentJournal.heartbeat`); far below the 10-minute default heartbeat timeout."""


class _Recorded(msgspec.Struct, kw_only=True):
    """The part of a recorded ``{"type": "response"}`` agent event replay needs."""

    fingerprint: str = ""
    response: msgspec.Raw = msgspec.Raw(b"null")


_RECORDED = msgspec.json.Decoder(_Recorded)


def fingerprint(value: Any) -> str:
    """A short stable hash of a JSON value (a conversation, normalised by the caller).

    Returns:
        The first 16 hex digits of the SHA-256 of its canonical JSON (keys sorted).
    """
    data = msgspec.json.encode(value, order="sorted")
    return hashlib.sha256(data).hexdigest()[:16]


class AgentJournal:
    """Records an agent attempt's conversation and replays the interrupted one's.

    Args:
        run_id, node_id, iteration, attempt: The attempt the events belong to.
        engine: The agent engine recorded on each ``AgentEvent`` (e.g. ``"pydantic-ai"``).
        agent_id: The agent's id, recorded on ``TokenUsageReported``.
        send: Called with each event to record (synchronously, in the agent's task).
        beat: Called with a heartbeat payload (JSON value) or None for plain liveness.
        now_ms: Clock of the events' timestamps, Unix epoch ms.
        replay: What the interrupted attempt(s) of this node recorded; None or empty for
            a fresh attempt.
    """

    def __init__(
        self,
        *,
        run_id: str,
        node_id: str,
        iteration: int,
        attempt: int,
        engine: str,
        agent_id: str,
        send: Callable[[Event], None],
        beat: Callable[[Any], None],
        now_ms: Callable[[], int],
        replay: AgentReplay | None = None,
    ) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.iteration = iteration
        self.attempt = attempt
        self.engine = engine
        self.agent_id = agent_id
        self._send = send
        self._beat = beat
        self.now_ms = now_ms
        self._responses: list[msgspec.Raw] = list(replay.responses) if replay else []
        self._responses.reverse()  # popped from the end, oldest first
        self._tool_results: dict[str, msgspec.Raw] = dict(replay.tool_results) if replay else {}
        self.replayed_responses = 0
        """Model responses answered from the log in this attempt."""
        self.replayed_tools = 0
        """Tool results answered from the log in this attempt."""
        self.usage_reported = False
        """True once usage was recorded (the engine then skips `AgentResult.usage`)."""
        self._beat_at_ms = now_ms()  # the attempt just started: it is alive
        self._text: list[str] = []
        self._text_chars = 0
        self._text_since_ms = 0

    # ------------------------------------------------------------------ replay

    @property
    def replaying(self) -> bool:
        """True while recorded responses remain to be replayed."""
        return bool(self._responses)

    def replayed_response(self, request_fingerprint: str) -> Any | None:
        """The recorded response to the request with `request_fingerprint`, or None.

        Recorded responses are handed out in order while each recorded fingerprint
        matches the request being made; at the first mismatch (the conversation
        diverged, e.g. the prompt changed) the rest are dropped and the agent goes live.

        Returns:
            The recorded response as a JSON value, or None: make the request.
        """
        while self._responses:
            rec = _RECORDED.decode(self._responses.pop())
            if rec.fingerprint == request_fingerprint:
                self.replayed_responses += 1
                return decode_json(rec.response)
            self._responses.clear()
        return None

    def replayed_tool_result(self, call_id: str) -> tuple[bool, Any]:
        """``(True, result)`` if the interrupted attempt recorded call `call_id`'s result."""
        raw = self._tool_results.get(call_id)
        if raw is None:
            return False, None
        self.replayed_tools += 1
        return True, decode_json(raw)

    # ------------------------------------------------------------------ recording

    def _where(self) -> dict[str, Any]:
        """The fields every event of the attempt shares, stamped now."""
        return {
            "run_id": self.run_id,
            "timestamp_ms": self.now_ms(),
            "node_id": self.node_id,
            "iteration": self.iteration,
            "attempt": self.attempt,
        }

    def _agent_event(self, payload: dict[str, Any]) -> None:
        self._send(
            AgentEvent(
                **self._where(),
                engine=self.engine,
                event=to_raw(payload),
            )
        )

    def event(self, kind: str, payload: Any = None) -> None:
        """Record ``AgentEvent{"type": kind, ...payload}`` (a dict payload is merged).

        Raises:
            TypeError: if `payload` is not JSON-encodable.
        """
        body: dict[str, Any] = {"type": kind}
        if isinstance(payload, dict):
            body.update(payload)
        elif payload is not None:
            body["data"] = payload
        self.flush_text()
        self._agent_event(body)

    def model_request(self, request_fingerprint: str, messages: Any, **fields: Any) -> None:
        """Record a model request about to be sent: its new `messages` and fingerprint."""
        self._note_replayed()
        self._agent_event(
            {"type": "request", "fingerprint": request_fingerprint, "messages": messages, **fields}
        )

    def model_response(
        self, request_fingerprint: str, response: Any, usage: AgentUsage | None = None
    ) -> None:
        """Record a model's response (replayable by `replayed_response`) and its usage."""
        self.flush_text()
        self._agent_event(
            {"type": "response", "fingerprint": request_fingerprint, "response": response}
        )
        if usage is not None:
            self.usage(usage)

    def usage(self, usage: AgentUsage) -> None:
        """Record ``TokenUsageReported`` for one response (or a whole call)."""
        self.usage_reported = True
        self._send(
            TokenUsageReported(
                **self._where(),
                model=usage.model,
                agent=self.agent_id,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
            )
        )

    def text(self, chunk: str, stream: str = "stdout") -> None:
        """Buffer streamed text; record it as ``NodeOutput`` when enough has gathered."""
        if not chunk:
            return
        now = self.now_ms()
        if not self._text:
            self._text_since_ms = now
        self._text.append(chunk)
        self._text_chars += len(chunk)
        if self._text_chars >= TEXT_COALESCE_CHARS or now - self._text_since_ms >= (
            TEXT_COALESCE_MS
        ):
            self.flush_text(stream)

    def flush_text(self, stream: str = "stdout") -> None:
        """Record the buffered text now (before any other event, and at the end)."""
        if not self._text:
            return
        text = "".join(self._text)
        self._text.clear()
        self._text_chars = 0
        self._send(
            NodeOutput(
                **self._where(),
                text=text,
                stream=stream,
            )
        )

    def tool_started(self, seq: int, name: str, arguments: Any, call_id: str | None) -> None:
        """Record ``ToolCallStarted`` for a tool the agent ran itself (a CLI's own tool).

        Args:
            seq: The call's number in the attempt (`ToolContext.next_seq`).
            name: The tool's name as the agent calls it (e.g. ``"Bash"``).
            arguments: Its arguments (a JSON value).
            call_id: The agent's id for the call.
        """
        self.flush_text()
        self._send(
            ToolCallStarted(
                **self._where(),
                tool_name=name,
                seq=seq,
                arguments=to_raw(arguments),
                call_id=call_id,
            )
        )

    def tool_finished(
        self,
        seq: int,
        name: str,
        call_id: str | None,
        *,
        result: Any,
        error: str | None = None,
        duration_ms: int = 0,
    ) -> None:
        """Record ``ToolCallFinished`` for a tool the agent ran itself.

        Args:
            seq: As given to `tool_started`.
            name: As given to `tool_started`.
            call_id: As given to `tool_started`.
            result: What the tool returned (a JSON value).
            error: The tool's error text when it failed (then `result` is not kept).
            duration_ms: How long it ran, when known.
        """
        raw = to_raw(result) if error is None else NULL_RAW
        self._send(
            ToolCallFinished(
                **self._where(),
                tool_name=name,
                seq=seq,
                status="success" if error is None else "error",
                result_size_bytes=len(bytes(raw)) if error is None else 0,
                duration_ms=duration_ms,
                error=ErrorInfo(name="ToolError", message=error) if error is not None else None,
                result=raw,
                call_id=call_id,
            )
        )

    def heartbeat(self, data: Any = None) -> None:
        """Report liveness; a non-None `data` becomes the attempt's heartbeat payload.

        Without data (a streamed event, a token) it is passed on at most once per
        `LIVENESS_BEAT_MS`: recorded events (`NodeOutput`, agent events) already count as
        signs of life, so a long stream does not fill the log with ``TaskHeartbeat``.
        """
        if data is None:
            now = self.now_ms()
            if now - self._beat_at_ms < LIVENESS_BEAT_MS:
                return
            self._beat_at_ms = now
        self._beat(data)

    def close(self) -> None:
        """Flush buffered text and note what was replayed, at the attempt's end."""
        self._note_replayed()

    def _note_replayed(self) -> None:
        """Record ``{"type": "replayed", "responses": n, "toolResults": m}`` once, if any."""
        self.flush_text()
        if self.replayed_responses or self.replayed_tools:
            self._agent_event(
                {
                    "type": "replayed",
                    "responses": self.replayed_responses,
                    "toolResults": self.replayed_tools,
                }
            )
            self.replayed_responses = self.replayed_tools = 0
