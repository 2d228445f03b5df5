"""What every provider codec offers, and the shared pieces of the SSE + JSON codecs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import attrs
import orjson

from ..content import FilePart
from ..errors import UsageError, WireError
from ..models import ChatRequest, FinishEvent, StreamEvent, UsageEvent
from .sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent, SSEItem, failed_earlier

__all__ = [
    "DecoderBase",
    "HttpRequestSpec",
    "ProviderCodec",
    "SSEJsonDecoder",
    "StreamDecoder",
    "error_message_from_body",
    "inline_file_data",
    "json_body",
    "json_field",
    "tool_arguments_object",
]

_T = TypeVar("_T")


def json_body(obj: Any) -> bytes:
    """`orjson.dumps(obj)` in a bytes object of its own size. orjson's result keeps the 4 KiB
    (or more) buffer it wrote into, and a request holds its body for as long as it streams:
    4 KB per open stream for a 100-byte body, where the copy costs a fraction of a microsecond."""
    return memoryview(orjson.dumps(obj)).tobytes()


@attrs.frozen(slots=True)
class HttpRequestSpec:
    """An HTTP request described as data; the transport layer sends it."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)  # carries credentials
    body: bytes = attrs.field(repr=False)
    #: Request parameters the provider cannot honour, left out under `drop_params = true`.
    dropped: tuple[str, ...] = ()

    def with_headers(self, extra: Mapping[str, str]) -> HttpRequestSpec:
        """Return a copy with `extra` headers set (replacing same-named ones)."""
        lower = {k.lower() for k in extra}
        kept = tuple((k, v) for k, v in self.headers if k.lower() not in lower)
        return attrs.evolve(self, headers=kept + tuple(extra.items()))


class StreamDecoder(Protocol):
    """Turns one response body's bytes into normalized events (sans-IO).

    The contract, the same for every decoder:

    - `feed_into(data, out)` takes the next bytes of the body (a read of any size, cut
      anywhere) and appends to `out` the events they complete. `close_into(out)` marks the
      end of the body and appends the last events: usage (when the stream reported it),
      then the finish. Once the reply is complete (its terminator arrived, or
      `close_into` ran), later calls append nothing and bytes after the end are ignored.
    - A `WireError` found in a read is raised by that same call, right after the events
      decoded before it, which stay in `out` (the caller delivers them as the partial
      reply): it is never held back for a later call, which may not come while the
      upstream holds the connection open. `close_into` raises `WireError(kind="protocol")`
      when the body ended before the stream's terminator or finish reason.
    - Errors are sticky: after a `WireError`, every later call raises a new `WireError`,
      "the stream failed earlier: <message>", with the first error's kind, status,
      retryable and error_type, and the first error as its `__cause__`.
    """

    model: str | None
    unknown_events: set[str]

    @property
    def invalid_utf8(self) -> bool:
        """True once invalid UTF-8 was replaced by U+FFFD."""
        ...

    def feed_into(self, data: bytes, out: list[StreamEvent]) -> None:
        """Append to `out` the events `data` completes; raises `WireError` right after them."""
        ...

    def close_into(self, out: list[StreamEvent]) -> None:
        """End of body: append the last events (usage, finish), or raise `WireError` if the
        stream ended before its terminator or finish reason."""
        ...

    def held_into(self, out: list[StreamEvent]) -> None:
        """The reply failed before its end (the connection dropped, say): append what the
        decoder holds back for the end of the reply (Gemini's citations), once, since it
        belongs to the partial reply. A `WireError` raised by `feed_into` or `close_into`
        has appended it already."""
        ...


class ProviderCodec(Protocol):
    """Everything provider-specific that needs no I/O: request building, stream decoding,
    error-body parsing. One instance per configured provider."""

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        """Translate a request into the provider's exact HTTP request."""
        ...

    def new_decoder(self, model_id: str = "") -> StreamDecoder:
        """A fresh decoder for one streaming response."""
        ...

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        """(message, error type) from an HTTP error response body."""
        ...

    def must_fetch(self, url: str, model_id: str) -> bool:
        """Whether the library fetches the bytes of the remote image at `url` itself
        (`http.media`), before `build_request`, because this provider cannot take that URL
        for `model_id` (Bedrock and Claude on Vertex AI take no image URLs at all)."""
        ...


def refuse_part(part: str, where: str, provider: str) -> UsageError:
    """The error for a content part `provider` cannot take (audio on Anthropic, say): it names
    the part, where it is, the provider and the fix. Content is never dropped silently, so
    `drop_params` does not apply."""
    return UsageError(f"{where}: {part} input is not supported by {provider}; remove that content part")


def inline_file_data(part: FilePart, where: str, provider: str) -> str:
    """A file part's `file_data`, which every provider but the OpenAI family needs: an
    uploaded file's `file_id` is a `UsageError` naming `provider` and the fix, and so is a
    part that has neither."""
    if part.file_data is not None:
        return part.file_data
    if part.file_id is not None:
        raise UsageError(
            f"{where}: file_id (an uploaded file) is not supported by {provider}; "
            "send the document inline as file_data (a data URL)"
        )
    raise UsageError(f"{where}: a file part needs file_data (a data URL)")


def refuse_or_drop(param: str, provider: str, *, drop: bool, dropped: list[str]) -> None:
    """A request parameter `provider` cannot honour: a `UsageError` naming both and the fix,
    or, with `drop` (the provider's `drop_params = true`), noted in `dropped` and left out."""
    if not drop:
        raise UsageError(
            f"parameter {param!r} is not supported by {provider}; remove it from the request, "
            "or set drop_params = true in this provider's config to drop it"
        )
    dropped.append(param)


def refuse_given(
    request: ChatRequest, params: tuple[str, ...], provider: str, *, drop: bool, dropped: list[str]
) -> None:
    """`refuse_or_drop` each of `params` that `request` gives (is not None)."""
    for param in params:
        if getattr(request, param) is not None:
            refuse_or_drop(param, provider, drop=drop, dropped=dropped)


def with_passthrough(spec: HttpRequestSpec, request: ChatRequest) -> HttpRequestSpec:
    """`spec` with the request's `extra_body` merged last into its JSON body (top-level keys, as
    the openai SDK merges it) and its `extra_headers` set (replacing same-named ones)."""
    if request.extra_body:
        body = orjson.loads(spec.body) if spec.body else {}
        if not isinstance(body, dict):
            raise UsageError("extra_body: this provider's request body is not a JSON object")
        body.update(request.extra_body)
        spec = attrs.evolve(spec, body=json_body(body))
    if request.extra_headers:
        spec = spec.with_headers(request.extra_headers)
    return spec


def tool_arguments_object(arguments: str) -> dict[str, Any]:
    """A replayed tool call's arguments as the JSON object providers want back.

    Empty text is `{}`; text that is not a JSON object is kept visible, as
    `{"_raw_arguments": text}`, rather than failing the whole request over a bad replay.
    """
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def error_message_from_body(body: bytes) -> tuple[str, str | None]:
    """Extract (message, type) from the usual JSON error shapes, else the body text.

    Handles `{"error": {"message", "type"|"code"|"status"}}`, `{"error": "text"}`,
    `{"message": ...}` and a JSON list of such objects (Gemini sometimes sends one).
    """
    text = body[:4096].decode("utf-8", errors="replace").strip()
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return (text or "(empty body)", None)
    if isinstance(obj, list) and obj:
        obj = obj[0]
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, str):
            return (err, obj.get("type") if isinstance(obj.get("type"), str) else None)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("Message") or text
            etype = err.get("type") or err.get("status") or err.get("code")
            return (str(msg), str(etype) if etype is not None else None)
    return (text or "(empty body)", None)


class DecoderBase:
    """What every stream decoder shares: the bookkeeping of the `StreamDecoder` contract
    (sticky errors, nothing after the end) and the end of the reply (usage, then finish).

    A subclass implements `_feed(data, out)`, which decodes one read and raises `WireError`
    for what is wrong with the stream. It sets `_finish` when the provider states a finish
    reason, `_usage` when it reports usage and `_tool_calls_seen` once a tool call starts,
    and calls `_end_reply(out)` when the stream's terminator arrives. `close_into` ends the
    reply if a finish reason came, else fails with `_incomplete_message()`.
    """

    def __init__(self) -> None:
        self.model: str | None = None
        self.unknown_events: set[str] = set()
        self._finish: str | None = None
        self._usage: UsageEvent | None = None
        self._tool_calls_seen = False
        self._closed = False
        self._failed: WireError | None = None

    def feed_into(self, data: bytes, out: list[StreamEvent]) -> None:
        if self._failed is not None:
            raise failed_earlier(self._failed) from self._failed
        if self._closed:
            return
        try:
            self._feed(data, out)
        except WireError as exc:
            self._failed = exc
            self.held_into(out)
            raise

    def close_into(self, out: list[StreamEvent]) -> None:
        if self._failed is not None:
            raise failed_earlier(self._failed) from self._failed
        if self._closed:
            return
        if self._finish is None:
            self._failed = WireError(self._incomplete_message(), kind="protocol")
            self.held_into(out)
            raise self._failed
        self._end_reply(out)

    def held_into(self, out: list[StreamEvent]) -> None:
        """See `StreamDecoder.held_into`; a decoder that holds events back overrides it."""

    def _feed(self, data: bytes, out: list[StreamEvent]) -> None:
        raise NotImplementedError

    def _incomplete_message(self) -> str:
        return "stream ended before its terminator: the reply is incomplete"

    def _end_reply(self, out: list[StreamEvent]) -> None:
        """The reply is complete: append its usage (if reported) and its finish, once."""
        self._closed = True
        if self._usage is not None:
            out.append(self._usage)
        out.append(FinishEvent(self._final_reason()))

    def _final_reason(self) -> str:
        reason = self._finish or "stop"
        if reason == "stop" and self._tool_calls_seen:
            reason = "tool_calls"
        return reason


class SSEJsonDecoder(DecoderBase):
    """Base for providers whose stream is SSE with a JSON object per event.

    Subclasses implement `_on_event(event, data, out)` (`event` is the SSE event name, None
    when the stream gave none); besides what `DecoderBase` says, they set `self._done` when
    the provider's terminator arrives. Bytes after the terminator are ignored, even
    malformed ones.
    """

    terminator = "[DONE]"

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__()
        self._sse = SSEDecoder(max_event_bytes)
        self._done = False

    @property
    def invalid_utf8(self) -> bool:
        return self._sse.invalid_utf8

    def _feed(self, data: bytes, out: list[StreamEvent]) -> None:
        events: list[SSEItem] = []
        sse_error: WireError | None = None
        try:
            self._sse.feed_items_into(data, events)
        except WireError as exc:
            sse_error = exc  # the events before it come first
        self._dispatch(events, out)
        if self._done:
            self._end_reply(out)
        elif sse_error is not None:
            raise sse_error

    def _dispatch(self, events: list[SSEItem], out: list[StreamEvent]) -> None:
        on_event = self._on_event
        for item in events:
            if self._done:
                return
            if type(item) is str:
                event, data = None, item
            else:
                assert isinstance(item, SSEEvent)
                event, data = item.event, item.data
            try:
                on_event(event, data, out)
            except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
                # A payload of an unexpected shape that a subclass did not check for.
                raise WireError(
                    f"malformed stream event ({type(exc).__name__}: {exc}): {data[:200]!r}", kind="protocol"
                ) from exc

    def _on_event(self, event: str | None, data: str, out: list[StreamEvent]) -> None:
        raise NotImplementedError

    @staticmethod
    def _json(data: str) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            snippet = data[:200]
            raise WireError(f"invalid JSON in stream event: {exc}: {snippet!r}", kind="protocol") from exc


def json_field(obj: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T | None:
    """`obj[key]` if it is a JSON value of type `kind`; None if absent or null.

    Any other type is a `WireError(kind="protocol")`: a payload of the wrong shape must
    fail the stream loudly, never as an AttributeError deep in a codec. `bool` does not
    pass for `int`.
    """
    value = obj.get(key)
    if value is None or type(value) is kind:
        return value
    raise WireError(
        f"stream event field {where}.{key} is {type(value).__name__}, expected {kind.__name__}", kind="protocol"
    )
