"""The OpenAI Chat Completions dialect of the gateway, sans-IO: bytes and objects in, bytes out.

- `parse_request(body)`: a `POST /v1/chat/completions` body as a `ChatCompletionsCall`, or a
  `GatewayError` (400, naming the field) for a body that cannot be served.
- `ChunkEncoder`: stream events as `chat.completion.chunk` server-sent events, as OpenAI
  streams them (the per-token path: a text event is the constant JSON around it, precomputed,
  with its escaped text spliced in).
- `completion_body(reply, ...)`: a whole `chat.completion`, for `stream: false`.
- `error_response(exc)`: any error as the status, headers and `{"error": {...}}` body the
  openai SDK maps to its exception classes and retry decisions.

Beyond OpenAI's own fields, as LiteLLM and DeepSeek send them: reasoning as
`reasoning_content`, Claude's signed and redacted thinking blocks as `thinking_blocks` (the
shape `request_from_dict` takes back in an assistant message), a Gemini tool call's thought
signature as `extra_content.google.thought_signature` (Gemini's OpenAI-compatible API), and a
finish reason "error" for a reply the provider ended abnormally (Gemini's
MALFORMED_FUNCTION_CALL, say). Usage is `prompt_tokens` (cached tokens included),
`completion_tokens` (reasoning included), `total_tokens`, `prompt_tokens_details.cached_tokens`
and `.cache_write_tokens`, `completion_tokens_details.reasoning_tokens`, each only when known.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
import orjson

from ..errors import ProviderError, UsageError
from ..models import (
    ChatRequest,
    Citation,
    CitationEvent,
    ErrorEvent,
    FinishEvent,
    LogprobsEvent,
    ReasoningEvent,
    Reply,
    StreamEvent,
    TextEvent,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from ..reply import TextBuffer
from ..request_dict import _KEYS as REQUEST_KEYS
from ..request_dict import request_from_dict
from .errors import GatewayError

__all__ = [
    "ChatCompletionsCall",
    "ChunkEncoder",
    "completion_body",
    "error_response",
    "new_completion_id",
    "parse_request",
    "usage_error_param",
]

_dumps = orjson.dumps


# --- requests ------------------------------------------------------------------------


@attrs.frozen(slots=True)
class ChatCompletionsCall:
    """A parsed `POST /v1/chat/completions`: the request, and how the client wants the reply.

    `include_usage` is `stream_options.include_usage` (False when not given, as OpenAI's
    default): whether the stream ends with a usage chunk.
    """

    request: ChatRequest
    stream: bool = False
    include_usage: bool = False

    @property
    def model(self) -> str:
        """The model as the client named it ("<provider>/<model-id>" or a route alias)."""
        return self.request.model


def parse_request(body: bytes) -> ChatCompletionsCall:
    """Parse and validate a Chat Completions request body.

    Raises `GatewayError` (status 400, type "invalid_request_error") for a body that is not
    a JSON object, a `stream` that is not a boolean, a malformed `stream_options`, and for
    everything `request_from_dict` refuses (its message kept, `param` the field it names).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    if type(data) is not dict:
        raise GatewayError(f"the request body must be a JSON object, got {_json_type(data)}", code="invalid_json")
    stream = data.get("stream")
    if stream is None:
        stream = False
    elif type(stream) is not bool:
        raise GatewayError(f"stream must be true or false, got {stream!r:.60}", param="stream")
    include_usage = False
    options = data.get("stream_options")
    if options is not None:
        if type(options) is not dict:
            raise GatewayError(
                f'stream_options must be an object such as {{"include_usage": true}}, got {_json_type(options)}',
                param="stream_options",
            )
        value = options.get("include_usage")
        if value is not None and type(value) is not bool:
            raise GatewayError(
                f"stream_options.include_usage must be true or false, got {value!r:.60}",
                param="stream_options.include_usage",
            )
        include_usage = bool(value) and stream
    try:
        request = request_from_dict(data)
    except UsageError as exc:
        raise GatewayError(str(exc), param=usage_error_param(str(exc))) from None
    return ChatCompletionsCall(request, stream, include_usage)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def new_completion_id() -> str:
    """A fresh completion id in OpenAI's form ("chatcmpl-" and 32 hex digits)."""
    return f"chatcmpl-{uuid.uuid4().hex}"


# Where a `UsageError` names the field at fault: "invalid request: messages[2].role must be...",
# "model 'x': no provider named ...", "parameter 'seed' is not supported by groq; ...".
_PATH = re.compile(r'"?([A-Za-z_]+(?:\[\d+\]|\.[A-Za-z_]+)*)"?(?=[ :]|$)')
_NAMED = re.compile(r"^(?:invalid request: )?(?:unknown field|parameter) '([^']+)'")


def usage_error_param(message: str) -> str | None:
    """The request field a `UsageError`'s message names (e.g. "messages[2].content[1]"),
    or None when it names none."""
    named = _NAMED.match(message)
    if named:
        return named.group(1)
    match = _PATH.match(message.removeprefix("invalid request: "))
    if match is None:
        return None
    path = match.group(1)
    return path if re.split(r"[.\[]", path, maxsplit=1)[0] in REQUEST_KEYS else None


# --- errors ----------------------------------------------------------------------------

#: OpenAI's error `type` for each status the gateway answers (others: 4xx invalid_request_error,
#: 5xx server_error). OpenAI answers an unknown model 404 with invalid_request_error.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
#: Status and code for a `ProviderError` without an upstream HTTP error status.
_KINDS: dict[str, tuple[int, str]] = {
    "rate_limited": (429, "rate_limited"),
    "circuit_open": (503, "circuit_open"),
    "timeout": (504, "timeout"),
    "internal": (500, "internal_error"),
    "connection": (502, "connection_error"),
    "protocol": (502, "protocol_error"),
    "upstream": (502, "upstream_error"),
    "http_status": (502, "upstream_error"),
    "content_filter": (400, "content_filter"),  # a stream transform (BlockList) refused the reply
}
_DEFAULT_TYPE = "invalid_request_error"  # GatewayError's default
#: A `GatewayError` is shared by the dialects: the Anthropic names of its types, in OpenAI's.
_ANTHROPIC_TYPES = {
    "not_found_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "api_error": "server_error",
    "overloaded_error": "server_error",
}


def _type_for(status: int) -> str:
    return _TYPES.get(status) or ("server_error" if status >= 500 else "invalid_request_error")


@attrs.frozen(slots=True)
class _Error:
    status: int
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _classify(exc: BaseException) -> _Error:
    if isinstance(exc, GatewayError):
        etype = _ANTHROPIC_TYPES.get(exc.type, exc.type)
        if etype == _DEFAULT_TYPE and exc.status != 400:
            etype = _type_for(exc.status)  # the default was not chosen for this status
        return _Error(exc.status, exc.message, etype, exc.param, exc.code)
    if isinstance(exc, UsageError):
        message = str(exc)
        no_retry = (("x-should-retry", "false"),)
        if message.startswith("model ") and "no provider named" in message:  # routing.plan
            return _Error(404, message, "invalid_request_error", "model", "model_not_found", no_retry)
        return _Error(400, message, "invalid_request_error", usage_error_param(message), None, no_retry)
    if isinstance(exc, ProviderError):
        status = exc.status
        if status is not None and 400 <= status <= 599:
            code = exc.error_type
        else:
            status, code = _KINDS[exc.kind]
        headers = [("x-should-retry", "true" if exc.retryable else "false")]
        if exc.retry_after is not None and math.isfinite(exc.retry_after) and exc.retry_after >= 0:
            headers.append(("retry-after", str(math.ceil(exc.retry_after))))
            headers.append(("retry-after-ms", str(round(exc.retry_after * 1000))))
        return _Error(status, f"{exc.provider}: {exc.message}", _type_for(status), None, code, tuple(headers))
    # A bug of ours: its text may hold anything, so only its class is told.
    return _Error(500, f"internal error in the gateway ({type(exc).__name__})", "server_error", None, "internal_error")


def error_response(exc: BaseException) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of OpenAI's error response for `exc`, as the openai SDK reads it.

    - `GatewayError`: its status, message, param and code; its type, in OpenAI's name when it
      is an Anthropic one ("request_too_large": "invalid_request_error"), or OpenAI's type for
      its status when it kept the default "invalid_request_error" on another status.
    - `UsageError`: 400 invalid_request_error with `param` the field the message names; an
      unknown provider or route (`routing.plan`) is 404 with code "model_not_found".
    - `ProviderError` with an upstream HTTP error status: that status, with the provider's
      error type as `code`; without one, by kind: rate_limited 429, circuit_open 503, timeout
      504, internal 500, connection/protocol/upstream 502, content_filter 400 (code the
      kind, e.g. "circuit_open"). `x-should-retry` says whether sending again may succeed, and
      `retry-after` / `retry-after-ms` carry the wait the upstream asked for.
    - Anything else: 500 server_error naming only the exception's class.

    The message of a `ProviderError` is its provider's name and its (already scrubbed) message.
    """
    err = _classify(exc)
    headers = [("content-type", "application/json"), *err.headers]
    return err.status, headers, _json(err.body())


# --- shared JSON pieces -----------------------------------------------------------------


def _json(value: Any) -> bytes:
    """`value` as JSON; a string with a lone surrogate (which UTF-8 cannot hold, so orjson
    refuses it) with the surrogate as its `\\u` escape, as Python's json writes it."""
    try:
        return _dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def _usage(usage: Usage | UsageEvent) -> dict[str, Any] | None:
    """OpenAI's `usage` object with the counts known (None when none is)."""
    out: dict[str, Any] = {}
    prompt, completion = usage.input_tokens, usage.output_tokens
    if prompt is not None:
        out["prompt_tokens"] = prompt
    if completion is not None:
        out["completion_tokens"] = completion
    if prompt is not None and completion is not None:
        out["total_tokens"] = prompt + completion
    details: dict[str, int] = {}
    if usage.cache_read_tokens is not None:
        details["cached_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens is not None:
        details["cache_write_tokens"] = usage.cache_write_tokens
    if details:
        out["prompt_tokens_details"] = details
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out or None


def _logprobs(content: Sequence[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": list(t.bytes) if t.bytes is not None else None,
                "top_logprobs": [
                    {"token": top.token, "logprob": top.logprob, "bytes": list(top.bytes) if top.bytes else None}
                    for top in t.top_logprobs
                ],
            }
            for t in content
        ],
        "refusal": None,
    }


def _annotation(citation: Citation, text: str, fallback: int) -> dict[str, Any]:
    """A `url_citation` annotation. Its span is where the reply holds the citation's text
    (its first occurrence), else the empty span at `fallback`."""
    start = end = fallback
    cited = citation.cited_text
    if cited:
        found = text.find(cited)
        if found >= 0:
            start, end = found, found + len(cited)
    return {
        "type": "url_citation",
        "url_citation": {"url": citation.url, "title": citation.title, "start_index": start, "end_index": end},
    }


def _tool_call_extra(signature: str | None) -> dict[str, Any]:
    return {"extra_content": {"google": {"thought_signature": signature}}} if signature else {}


# --- streaming -------------------------------------------------------------------------


class ChunkEncoder:
    """Stream events as OpenAI's `chat.completion.chunk` server-sent events, for one reply.

    Call `encode(events)` for each batch as it arrives (the first call also sends the chunk
    with `delta.role = "assistant"`), then `finish()` for the usage chunk and `data: [DONE]`,
    or `error(exc)` if the stream failed after it began. Each returns the bytes to send.

    One chunk per event, as OpenAI sends them:
    - text: `delta.content`; reasoning: `delta.reasoning_content`;
    - a tool call's first fragment: `delta.tool_calls[0]` with `index`, `id`, `type` and
      `function.name` and `function.arguments`; later ones `index` and `function.arguments`;
    - a Claude thinking block, when its signature (or its redacted data) arrives: one entry
      of `delta.thinking_blocks`, `{"index", "type": "thinking", "thinking", "signature"}` (or
      `{"index", "type": "redacted_thinking", "data"}`), complete, numbered so that
      accumulating the deltas keeps the blocks apart. A reasoning event with nothing to say
      sends nothing;
    - log probabilities: `choices[0].logprobs` of the chunk of the text they came with (or
      of a chunk of their own when a batch boundary separates them);
    - a finish: an empty delta with `finish_reason`.

    Citations are held and sent together as `delta.annotations` in one chunk before the
    finish chunk (as OpenAI sends them), since the openai SDK's stream accumulator cannot
    merge annotations that arrive in several chunks. Each is a `url_citation`; its
    `start_index`/`end_index` are the span of the reply text equal to the citation's cited
    text when the reply holds it (OpenAI's and Gemini's cited text is a span of the reply:
    their indices come back exactly, but for a repeated span, whose first occurrence is
    taken), else the empty span where the reply text stood when the citation arrived (for
    Claude, whose cited text is the source's, that is where the cited text begins).
    Citations without a URL (a document's) have no place in a `url_citation` and are not sent.

    With `include_usage`, every chunk carries `"usage": null` and `finish()` sends the usage
    chunk (`choices: []`) when a `UsageEvent` arrived. The text is kept (in blocks, about a
    byte per character) to place citations.
    """

    __slots__ = (
        "_after_finish",
        "_after_logprobs",
        "_annotations",
        "_between_texts",
        "_blocks",
        "_chars",
        "_ended",
        "_head",
        "_include_usage",
        "_reasoning",
        "_reasoning_prefix",
        "_started",
        "_tail",
        "_text",
        "_text_prefix",
        "_text_suffix",
        "_tool_args_prefix",
        "_tools",
        "_usage",
        "_usage_head",
    )

    def __init__(self, completion_id: str, model: str, created: int, include_usage: bool = False) -> None:
        head = b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b,' % (
            _json(completion_id),
            created,
            _json(model),
        )
        self._usage_head = head
        self._head = head + b'"choices":[{"index":0,"delta":'
        self._tail = (
            b',"logprobs":null,"finish_reason":null}]' + (b',"usage":null' if include_usage else b"") + b"}\n\n"
        )
        self._after_logprobs = self._tail[len(b',"logprobs":null') :]
        self._after_finish = self._tail[len(b',"logprobs":null,"finish_reason":null') :]
        self._text_prefix = self._head + b'{"content":'
        self._text_suffix = b"}" + self._tail
        self._between_texts = self._text_suffix + self._text_prefix
        self._reasoning_prefix = self._head + b'{"reasoning_content":'
        self._tool_args_prefix = self._head + b'{"tool_calls":[{"index":'
        self._include_usage = include_usage
        self._started = False
        self._ended = False
        self._chars = 0  # characters of reply text sent so far
        self._text = TextBuffer()
        self._reasoning = TextBuffer()  # the reasoning of the thinking block not signed yet
        self._blocks = 0  # thinking blocks sent
        self._tools: set[int] = set()  # tool-call indices started
        self._annotations: list[tuple[Citation, int]] = []  # (citation, characters before it)
        self._usage: UsageEvent | None = None

    # The chunk that opens the reply, as OpenAI's: role and an empty content.
    def start(self) -> bytes:
        """The first chunk (`delta: {"role": "assistant", "content": ""}`), once; then b""."""
        if self._started:
            return b""
        self._started = True
        return self._head + b'{"role":"assistant","content":""}' + self._tail

    def encode(self, events: Sequence[StreamEvent]) -> bytes:
        """The chunks for `events` (after the first chunk, on the first call)."""
        if len(events) == 1 and self._started and not self._ended:  # one token per read: no lists
            ev = events[0]
            if type(ev) is TextEvent and ev.text:
                text = ev.text
                self._text.append(text)
                self._chars += len(text)
                return self._text_prefix + _json(text) + self._text_suffix
        if self._ended:
            return b""
        out: list[bytes] = [] if self._started else [self.start()]
        # A run of text events is one join: each text's JSON string between the constant end
        # of a chunk and the constant start of the next.
        run: list[bytes] = []
        add = run.append
        keep = self._text.fragments.append
        chars = 0
        for ev in events:
            if type(ev) is TextEvent:
                text = ev.text
                if text:
                    try:
                        add(_dumps(text))
                    except TypeError:
                        add(json.dumps(text).encode())
                    keep(text)
                    chars += len(text)
                continue
            if run:
                out.append(self._text_prefix + self._between_texts.join(run))
                out.append(self._text_suffix)  # alone, for the logprobs to take its place
                run.clear()
            if type(ev) is ReasoningEvent and ev.signature is None and ev.redacted is None:
                if ev.text:
                    out.append(self._reasoning_prefix + _json(ev.text) + self._text_suffix)
                    self._reasoning.append(ev.text)
                continue
            self._chars += chars
            chars = 0
            self._other(ev, out)
            if self._ended:
                break
        if run:
            out.append(self._text_prefix + self._between_texts.join(run))
            out.append(self._text_suffix)
        self._chars += chars
        self._text.compact()
        return b"".join(out)

    def _other(self, ev: StreamEvent, out: list[bytes]) -> None:
        cls = type(ev)
        if cls is ReasoningEvent:
            assert isinstance(ev, ReasoningEvent)
            self._reason(ev, out)
        elif cls is ToolCallEvent:
            assert isinstance(ev, ToolCallEvent)
            self._tool(ev, out)
        elif cls is LogprobsEvent:
            assert isinstance(ev, LogprobsEvent)
            logprobs = _json(_logprobs(ev.content))
            if out and out[-1] is self._text_suffix:  # the chunk of the text they came with
                out[-1] = b'},"logprobs":' + logprobs + self._after_logprobs
            else:
                out.append(self._head + b'{},"logprobs":' + logprobs + self._after_logprobs)
        elif cls is CitationEvent:
            assert isinstance(ev, CitationEvent)
            if ev.citation.url is not None:
                self._annotations.append((ev.citation, self._chars))
        elif cls is UsageEvent:
            assert isinstance(ev, UsageEvent)
            self._usage = ev
        elif cls is FinishEvent:
            assert isinstance(ev, FinishEvent)
            self._flush_annotations(out)
            out.append(
                self._head
                + b'{},"logprobs":null,"finish_reason":'
                + _json(ev.reason)  # our reasons are OpenAI's names ("error" goes as it is)
                + self._after_finish
            )
        elif cls is ErrorEvent:
            assert isinstance(ev, ErrorEvent)
            out.append(self.error(ev.error))

    def _reason(self, ev: ReasoningEvent, out: list[bytes]) -> None:
        delta: dict[str, Any] = {}
        if ev.text:
            delta["reasoning_content"] = ev.text
            self._reasoning.append(ev.text)
        if ev.signature is not None:
            block = {"index": self._blocks, "type": "thinking", "thinking": self._reasoning.join()}
            delta["thinking_blocks"] = [{**block, "signature": ev.signature}]
            self._blocks += 1
            self._reasoning.clear()
        elif ev.redacted is not None:
            delta["thinking_blocks"] = [{"index": self._blocks, "type": "redacted_thinking", "data": ev.redacted}]
            self._blocks += 1
        if delta:
            out.append(self._head + _json(delta) + self._tail)

    def _tool(self, ev: ToolCallEvent, out: list[bytes]) -> None:
        if ev.index in self._tools:
            if ev.id is None and ev.name is None and ev.signature is None:
                if ev.arguments:
                    out.append(
                        self._tool_args_prefix
                        + b'%d,"function":{"arguments":%b}}]}' % (ev.index, _json(ev.arguments))
                        + self._tail
                    )
                return
            call: dict[str, Any] = {"index": ev.index}
            if ev.id is not None:
                call["id"] = ev.id
            function: dict[str, str] = {}
            if ev.name is not None:
                function["name"] = ev.name
            if ev.arguments:
                function["arguments"] = ev.arguments
            if function:
                call["function"] = function
        else:
            self._tools.add(ev.index)
            call = {"index": ev.index}
            if ev.id is not None:
                call["id"] = ev.id
            call["type"] = "function"
            call["function"] = {"name": ev.name, "arguments": ev.arguments} if ev.name else {"arguments": ev.arguments}
        call.update(_tool_call_extra(ev.signature))
        out.append(self._head + _json({"tool_calls": [call]}) + self._tail)

    def _flush_annotations(self, out: list[bytes]) -> None:
        if not self._annotations:
            return
        text = self._text.join()
        annotations = [_annotation(citation, text, at) for citation, at in self._annotations]
        self._annotations.clear()
        out.append(self._head + _json({"annotations": annotations}) + self._tail)

    def finish(self) -> bytes:
        """The end of a stream: citations not sent yet, the usage chunk (with `include_usage`,
        when usage is known), and `data: [DONE]`."""
        if self._ended:
            return b""
        out = [self.start()]
        self._flush_annotations(out)
        usage = _usage(self._usage) if self._usage is not None else None
        if self._include_usage and usage is not None:
            out.append(self._usage_head + b'"choices":[],"usage":' + _json(usage) + b"}\n\n")
        out.append(b"data: [DONE]\n\n")
        self._ended = True
        return b"".join(out)

    def error(self, exc: BaseException) -> bytes:
        """The stream failed after it began: `data: {"error": {...}}` (the body
        `error_response` gives), which the openai SDK raises as `APIError`; no [DONE] follows."""
        if self._ended:
            return b""
        self._ended = True
        return b"data: " + _json(_classify(exc).body()) + b"\n\n"


# --- whole replies ---------------------------------------------------------------------


def _tool_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
        **_tool_call_extra(call.signature),
    }


def completion_body(reply: Reply, completion_id: str, model: str, created: int) -> bytes:
    """A `chat.completion` for `reply`, as OpenAI answers `stream: false`.

    The message has `content` (null when the reply has no text), `reasoning_content` and
    `thinking_blocks` when it reasoned, `tool_calls` and `annotations` when it has them; a
    citation's span is placed as `ChunkEncoder` says, with the end of the text as the
    fallback (a reply does not record where its citations arrived). `usage` holds the counts
    known (none: no `usage`); `logprobs` is null unless the request asked for them.
    """
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.reasoning_blocks:
        message["thinking_blocks"] = [
            {"type": "redacted_thinking", "data": b.redacted}
            if b.redacted is not None
            else {"type": "thinking", "thinking": b.text, "signature": b.signature}
            for b in reply.reasoning_blocks
        ]
    if reply.tool_calls:
        message["tool_calls"] = [_tool_call(call) for call in reply.tool_calls]
    message["refusal"] = None
    annotations = [_annotation(c, reply.text, len(reply.text)) for c in reply.citations if c.url is not None]
    if annotations:
        message["annotations"] = annotations
    choice = {
        "index": 0,
        "message": message,
        "logprobs": _logprobs(reply.logprobs) if reply.logprobs is not None else None,
        "finish_reason": reply.finish_reason,
    }
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }
    usage = _usage(reply.usage)
    if usage is not None:
        body["usage"] = usage
    return _json(body)
