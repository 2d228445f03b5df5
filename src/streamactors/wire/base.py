"""What every provider codec offers, and the shared pieces of the SSE + JSON codecs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import attrs
import orjson

from ..errors import WireError
from ..models import ChatRequest, FinishEvent, StreamEvent, UsageEvent
from .sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent, SSEItem

__all__ = [
    "HttpRequestSpec",
    "ProviderCodec",
    "SSEJsonDecoder",
    "StreamDecoder",
    "error_message_from_body",
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

    def with_headers(self, extra: Mapping[str, str]) -> HttpRequestSpec:
        """Return a copy with `extra` headers set (replacing same-named ones)."""
        lower = {k.lower() for k in extra}
        kept = tuple((k, v) for k, v in self.headers if k.lower() not in lower)
        return attrs.evolve(self, headers=kept + tuple(extra.items()))


class StreamDecoder(Protocol):
    """Turns one response body's bytes into normalized events (sans-IO)."""

    model: str | None
    unknown_events: set[str]

    @property
    def invalid_utf8(self) -> bool:
        """True once invalid UTF-8 was replaced by U+FFFD."""
        ...

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Take body bytes; return the events they complete. Raises `WireError`."""
        ...

    def close(self) -> list[StreamEvent]:
        """End of body. Returns the last events (usage, finish) or raises `WireError`
        if the stream ended before its terminator or finish reason."""
        ...

    def feed_into(self, data: bytes, out: list[StreamEvent]) -> None:
        """Like `feed`, appending to `out`; on `WireError`, `out` keeps the events before it."""
        ...

    def close_into(self, out: list[StreamEvent]) -> None:
        """Like `close`, appending to `out`."""
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


class SSEJsonDecoder:
    """Base for providers whose stream is SSE with a JSON object per event.

    Subclasses implement `_on_event(event, data, out)` (`event` is the SSE event name, None
    when the stream gave none); they set `self._finish` when the
    provider states a finish reason, and `self._done` when its terminator arrives.
    Bytes after the terminator are ignored, even malformed ones.

    `feed_into(data, out)` and `close_into(out)` append to a list the caller owns: when
    they raise `WireError`, `out` still holds the events decoded before the error in the
    same read (with `feed`, those are lost along with its return value). After a
    `WireError` the decoder is spent: every later call raises again.
    """

    terminator = "[DONE]"

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SSEDecoder(max_event_bytes)
        self.model: str | None = None
        self.unknown_events: set[str] = set()
        self._finish: str | None = None
        self._usage: UsageEvent | None = None
        self._done = False
        self._closed = False
        self._failed: WireError | None = None
        self._tool_calls_seen = False

    @property
    def invalid_utf8(self) -> bool:
        return self._sse.invalid_utf8

    def feed(self, data: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self.feed_into(data, out)
        return out

    def feed_into(self, data: bytes, out: list[StreamEvent]) -> None:
        """Like `feed`, appending to `out`."""
        if self._failed is not None:
            raise self._already_failed()
        if self._closed:
            return
        events: list[SSEItem] = []
        sse_error: WireError | None = None
        try:
            self._sse.feed_items_into(data, events)
        except WireError as exc:
            sse_error = exc  # the events before it come first
        self._dispatch(events, out)
        if self._done:
            self._close_into(out)
        elif sse_error is not None:
            self._failed = sse_error
            raise sse_error

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self.close_into(out)
        return out

    def close_into(self, out: list[StreamEvent]) -> None:
        """Like `close`, appending to `out`."""
        if self._failed is not None:
            raise self._already_failed()
        if self._closed:
            return
        events: list[SSEItem] = []
        self._sse.close_into([])  # which never completes an event
        self._dispatch(events, out)
        if self._done:
            self._close_into(out)
            return
        if self._finish is None:
            self._failed = WireError("stream ended before its terminator: the reply is incomplete", kind="protocol")
            raise self._failed
        self._close_into(out)

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
            except WireError as exc:
                self._failed = exc
                raise
            except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
                # A payload of an unexpected shape that a subclass did not check for.
                self._failed = WireError(
                    f"malformed stream event ({type(exc).__name__}: {exc}): {data[:200]!r}", kind="protocol"
                )
                raise self._failed from exc

    def _already_failed(self) -> WireError:
        assert self._failed is not None
        failed = self._failed
        return WireError(
            f"the stream failed earlier: {failed.message}",
            kind=failed.kind,
            status=failed.status,
            retryable=failed.retryable,
            error_type=failed.error_type,
        )

    def _close_into(self, out: list[StreamEvent]) -> None:
        self._closed = True
        if self._usage is not None:
            out.append(self._usage)
        out.append(FinishEvent(self._final_reason()))

    def _final_reason(self) -> str:
        reason = self._finish or "stop"
        if reason == "stop" and self._tool_calls_seen:
            reason = "tool_calls"
        return reason

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
