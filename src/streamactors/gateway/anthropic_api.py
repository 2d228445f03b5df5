"""The Anthropic Messages dialect of the gateway (`POST /v1/messages`), sans-IO.

Bytes and objects in, bytes out: `parse_request` (from `anthropic_request`) turns a Messages
API request body into a `ChatRequest`; `MessageStreamEncoder` turns our stream events into the API's server-sent
events, as api.anthropic.com streams them; `message_body` writes a whole `Reply` as a
Message; `error_response` writes an error as the API's error body, with the status the
anthropic SDK maps to its exception classes. The model string is kept as given: the app
resolves it, and any provider (Gemini, Bedrock...) may answer in Anthropic's shape.

This is the reverse of `wire.anthropic`, which writes our request in Anthropic's shape and
reads Anthropic's stream into our events: a request parsed here and built there again is
the body the client sent (tests/gateway/test_anthropic_api.py checks it with the SDK).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from ..errors import ProviderError, UsageError
from ..models import (
    Citation,
    CitationEvent,
    ErrorEvent,
    FinishEvent,
    ReasoningEvent,
    Reply,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from ..wire.anthropic import ERROR_STATUS
from ..wire.base import tool_arguments_object
from .anthropic_request import MessagesCall, parse_request
from .errors import GatewayError

__all__ = [
    "PING",
    "MessageStreamEncoder",
    "MessagesCall",
    "error_response",
    "message_body",
    "parse_request",
]


# --- the stream ---------------------------------------------------------------------------

#: A `ping` event, for the app to send while it waits (the SDK skips them).
PING = b'event: ping\ndata: {"type":"ping"}\n\n'

#: Our finish reasons -> Anthropic's `stop_reason` ("error", an abnormal end the upstream
#: still reported as a finish, has no counterpart and ends the turn).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}

_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA_END = b"}}\n\n"
_TEXT, _THINKING, _TOOL = 1, 2, 3  # the kind of the open content block (0: none)


def _event(name: bytes, obj: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def _delta_prefix(index: int, kind: bytes, field: bytes) -> bytes:
    return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"%s","%s":' % (
        index,
        kind,
        field,
    )


def _citation(citation: Citation) -> dict[str, Any] | None:
    """A citation as a `web_search_result_location`, the one kind that a URL maps to (the
    document kinds need the cited document's index in the request, which we do not have).
    `encrypted_index` is the upstream's opaque reference, which our events do not carry."""
    if citation.url is None:
        return None
    return {
        "type": "web_search_result_location",
        "cited_text": citation.cited_text or "",
        "url": citation.url,
        "title": citation.title,
        "encrypted_index": "",
    }


def _usage(usage: Usage, *, start: bool = False) -> dict[str, Any]:
    """Usage in Anthropic's shape: its `input_tokens` excludes the cached tokens ours include."""
    out: dict[str, Any] = {}
    if usage.input_tokens is not None:
        cached = (usage.cache_read_tokens or 0) + (usage.cache_write_tokens or 0)
        out["input_tokens"] = max(usage.input_tokens - cached, 0)
    elif start:
        out["input_tokens"] = 0
    if usage.cache_write_tokens is not None:
        out["cache_creation_input_tokens"] = usage.cache_write_tokens
    if usage.cache_read_tokens is not None:
        out["cache_read_input_tokens"] = usage.cache_read_tokens
    out["output_tokens"] = usage.output_tokens or 0
    if usage.reasoning_tokens is not None:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def _stop_reason(finish: str | None, tool_calls: bool) -> str:
    reason = STOP_REASONS.get(finish or "stop", "end_turn")
    # A client runs its tools on stop_reason "tool_use": a provider that ends a turn with
    # calls as a plain stop still asks for them.
    return "tool_use" if tool_calls and reason == "end_turn" else reason


class MessageStreamEncoder:
    """Our stream events as the Messages API's server-sent events (sans-IO).

    `encode(events)` returns the bytes of the events given (the first call starts with
    `message_start`); `finish()` the closing `message_delta` (stop reason and usage) and
    `message_stop`; `error(exc)` an `error` event, for a failure after the stream began.

    Content blocks open and close in order, one at a time: text as `text_delta`s, reasoning
    as a `thinking` block (`thinking_delta`s, then the `signature_delta` that ends it), a
    redacted block as `redacted_thinking`, each tool call as a `tool_use` block with its
    arguments as `input_json_delta`s, citations with a URL as `citations_delta`s on a text
    block. A tool call's fragments must not resume after another block began (Anthropic's
    blocks cannot reopen): that is a `ValueError`.

    The usage is known at the end only: `message_start` reports zeros, `message_delta` the
    figures (input tokens without the cached ones, as Anthropic counts them).
    """

    __slots__ = (
        "_done",
        "_finish",
        "_index",
        "_kind",
        "_model",
        "_started",
        "_text_prefix",
        "_thinking_prefix",
        "_tool",
        "_tool_prefix",
        "_tools_seen",
        "_usage",
        "message_id",
    )

    def __init__(self, message_id: str, model: str) -> None:
        self.message_id = message_id
        self._model = model
        self._started = False
        self._done = False
        self._index = -1  # the current content block's index
        self._kind = 0  # the open block's kind, 0 when none is open
        self._tool = -1  # the open tool_use block's call position
        self._tools_seen = -1  # the highest call position that had a block
        self._text_prefix = b""
        self._thinking_prefix = b""
        self._tool_prefix = b""
        self._usage = Usage()
        self._finish: str | None = None

    @property
    def started(self) -> bool:
        """Whether `message_start` was encoded (after that, errors go in the stream)."""
        return self._started

    def _start(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event(b"message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        """Close the open block, if any."""
        if not self._kind:
            return b""
        self._kind = 0
        return b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % self._index

    def _open(self, kind: int, block: dict[str, Any]) -> bytes:
        head = self._close()
        self._index += 1
        self._kind = kind
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return head + _event(b"content_block_start", start)

    def _open_text(self) -> bytes:
        self._text_prefix = _delta_prefix(self._index + 1, b"text_delta", b"text")
        return self._open(_TEXT, {"type": "text", "text": ""})

    def encode(self, events: Sequence[StreamEvent]) -> bytes:
        """The bytes of `events`; nothing once the stream finished or failed."""
        if self._kind == _TEXT and len(events) == 1:
            # The most common call: one text fragment into the open text block (an open
            # block implies a stream begun and not ended).
            ev = events[0]
            if type(ev) is TextEvent and ev.text:
                return self._text_prefix + orjson.dumps(ev.text) + _DELTA_END
        if self._done:
            return b""
        out: list[bytes] = [] if self._started else [self._start()]
        append = out.append
        dumps = orjson.dumps
        for ev in events:
            cls = type(ev)
            if cls is TextEvent:
                text = ev.text  # type: ignore[union-attr]
                if text:
                    if self._kind != _TEXT:
                        append(self._open_text())
                    append(self._text_prefix + dumps(text) + _DELTA_END)
            elif cls is ToolCallEvent:
                self._tool_call(ev, out)  # type: ignore[arg-type]
            elif cls is ReasoningEvent:
                self._reasoning(ev, out)  # type: ignore[arg-type]
            elif cls is CitationEvent:
                citation = _citation(ev.citation)  # type: ignore[union-attr]
                if citation is not None:
                    if self._kind != _TEXT:
                        append(self._open_text())
                    delta = {"type": "citations_delta", "citation": citation}
                    append(
                        _event(
                            b"content_block_delta",
                            {"type": "content_block_delta", "index": self._index, "delta": delta},
                        )
                    )
            elif cls is UsageEvent:
                u: UsageEvent = ev  # type: ignore[assignment]
                self._usage = Usage(
                    u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens
                )
            elif cls is FinishEvent:
                self._finish = ev.reason  # type: ignore[union-attr]
            elif cls is ErrorEvent:
                append(self.error(ev.error))  # type: ignore[union-attr]
                break
            # LogprobsEvent: the Messages API has no log probabilities.
        return b"".join(out)

    def _tool_call(self, ev: ToolCallEvent, out: list[bytes]) -> None:
        if self._kind != _TOOL or self._tool != ev.index:
            if ev.index <= self._tools_seen:
                raise ValueError(
                    f"tool call {ev.index} resumed after another content block began: "
                    "an Anthropic stream cannot reopen its block"
                )
            # A provider that gives no call id (none of ours does) still needs one the client
            # can answer with a tool_result.
            tool_id = ev.id or f"toolu_{self.message_id}_{ev.index}"
            block = {"type": "tool_use", "id": tool_id, "name": ev.name or "", "input": {}}
            out.append(self._open(_TOOL, block))
            self._tool = self._tools_seen = ev.index
            self._tool_prefix = _delta_prefix(self._index, b"input_json_delta", b"partial_json")
        if ev.arguments:
            out.append(self._tool_prefix + orjson.dumps(ev.arguments) + _DELTA_END)

    def _reasoning(self, ev: ReasoningEvent, out: list[bytes]) -> None:
        if ev.redacted is not None:
            out.append(self._open(0, {"type": "redacted_thinking", "data": ev.redacted}))
            out.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % self._index)
            return
        if ev.text:
            if self._kind != _THINKING:
                self._open_thinking(out)
            out.append(self._thinking_prefix + orjson.dumps(ev.text) + _DELTA_END)
        if ev.signature is not None:
            if self._kind != _THINKING:  # a signed block with no text of its own
                self._open_thinking(out)
            delta = {"type": "signature_delta", "signature": ev.signature}
            out.append(
                _event(b"content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})
            )
            out.append(self._close())  # the signature ends its block

    def _open_thinking(self, out: list[bytes]) -> None:
        self._thinking_prefix = _delta_prefix(self._index + 1, b"thinking_delta", b"thinking")
        out.append(self._open(_THINKING, {"type": "thinking", "thinking": "", "signature": ""}))

    def finish(self) -> bytes:
        """The end of the stream: the open block closed, `message_delta` (the stop reason from
        the `FinishEvent`, "end_turn" if none came; the usage) and `message_stop`."""
        if self._done:
            return b""
        head = b"" if self._started else self._start()
        self._done = True
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(self._finish, self._tools_seen >= 0), "stop_sequence": None},
            "usage": _usage(self._usage),
        }
        return head + self._close() + _event(b"message_delta", delta) + _MESSAGE_STOP

    def error(self, exc: BaseException) -> bytes:
        """An `error` event for `exc` (`{"type": "error", "error": {"type", "message"}}`), which
        ends the stream: the anthropic SDK raises it as an `APIStatusError`."""
        if self._done:
            return b""
        self._done = True
        self._kind = 0  # the block stays open (as the API leaves it): nothing more goes in
        _, _, error_type, message = _error_of(exc)
        return _event(b"error", {"type": "error", "error": {"type": error_type, "message": message}})


# --- whole replies ------------------------------------------------------------------------


def message_body(reply: Reply, message_id: str, model: str) -> bytes:
    """A whole reply as the Messages API's Message JSON (the answer to `stream: false`):
    thinking blocks (signed, redacted, then any reasoning not signed), the text with its
    citations, the tool calls with their input parsed; the stop reason and usage."""
    content: list[dict[str, Any]] = []
    signed = 0
    for block in reply.reasoning_blocks:
        if block.redacted is not None:
            content.append({"type": "redacted_thinking", "data": block.redacted})
        else:
            content.append({"type": "thinking", "thinking": block.text, "signature": block.signature or ""})
            signed += len(block.text)
    unsigned = reply.reasoning[signed:]
    if unsigned:
        content.append({"type": "thinking", "thinking": unsigned, "signature": ""})
    citations = [c for c in map(_citation, reply.citations) if c is not None]
    if reply.text or citations:
        text: dict[str, Any] = {"type": "text", "text": reply.text}
        if citations:
            text["citations"] = citations
        content.append(text)
    for call in reply.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_arguments_object(call.arguments)}
        )
    usage = _usage(reply.usage, start=True)
    return orjson.dumps(
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": _stop_reason(reply.finish_reason, bool(reply.tool_calls)),
            "stop_sequence": None,
            "usage": usage,
        }
    )


# --- errors -------------------------------------------------------------------------------

#: HTTP status -> Anthropic's error type (the inverse of `wire.anthropic.ERROR_STATUS`).
ERROR_TYPES = {status: error_type for error_type, status in ERROR_STATUS.items()}
#: Our ProviderError kinds without an upstream status -> the status we answer with.
KIND_STATUS = {
    "rate_limited": 429,
    "circuit_open": 503,
    "timeout": 504,
    "connection": 502,
    "protocol": 502,
    "upstream": 502,
    "http_status": 502,
    "internal": 500,
    "content_filter": 400,  # a stream transform (BlockList) refused the reply
}


def _error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def _error_of(exc: BaseException) -> tuple[int, list[tuple[str, str]], str, str]:
    """(status, headers, Anthropic error type, message) for `exc`."""
    headers: list[tuple[str, str]] = []
    if isinstance(exc, GatewayError):
        error_type = exc.type if exc.type in ERROR_STATUS else _error_type(exc.status)
        return exc.status, headers, error_type, exc.message
    if isinstance(exc, UsageError):
        return 400, headers, "invalid_request_error", str(exc)
    if isinstance(exc, ProviderError):
        # An upstream's status is passed on as received (with its own error type, when it is
        # one of Anthropic's); our own refusals and failures have one per kind.
        own = exc.kind in ("rate_limited", "circuit_open", "timeout", "internal")
        status = exc.status if exc.status is not None and not own else KIND_STATUS[exc.kind]
        error_type = exc.error_type if exc.error_type in ERROR_STATUS else _error_type(status)
        if exc.retry_after is not None and exc.retry_after >= 0:
            headers.append(("retry-after", str(math.ceil(exc.retry_after))))
            headers.append(("retry-after-ms", str(math.ceil(exc.retry_after * 1000))))
        headers.append(("x-should-retry", "true" if exc.retryable else "false"))
        return status, headers, error_type, f"{exc.provider}: {exc.message}"
    return 500, headers, "api_error", f"internal error: {type(exc).__name__}"


def error_response(exc: BaseException) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the error response for `exc`, in Anthropic's shape
    `{"type": "error", "error": {"type", "message"}}`.

    A `GatewayError` keeps its status; a `UsageError` (a request no provider can take) is
    400 invalid_request_error; a `ProviderError` carries the upstream's status as received,
    else one per kind: rate_limited 429, circuit_open 503, timeout 504, internal 500,
    connection, protocol and upstream failures 502, content_filter 400 (a stream transform
    refused the reply); with `retry-after` (and `retry-after-ms`) when the wait is known, and
    `x-should-retry` from its `retryable`. Anything else is a
    500 api_error naming only the exception's class. The error type follows the status as
    the anthropic SDK maps it (400 invalid_request_error, 401 authentication_error, 403
    permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error, 500
    api_error, 504 timeout_error, 529 overloaded_error).
    """
    status, headers, error_type, message = _error_of(exc)
    body = orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    return status, [("content-type", "application/json"), *headers], body
