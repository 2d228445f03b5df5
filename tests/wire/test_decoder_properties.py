"""Properties every stream decoder must have, whatever the upstream sends (hypothesis).

For each provider decoder (OpenAI, Anthropic, Gemini, Bedrock), fed JSON-ish payloads of
every plausible and implausible shape inside valid framing:

- nothing but the library's own `WireError` is ever raised;
- every event it emits is well typed, so it folds into a `Reply` (a `TextEvent` whose
  text is an int would blow up in the consumer's hands, far from its cause);
- any split of the same bytes gives the same events and the same error.

Arbitrary bytes are covered for the decoders whose tests in `tests/wire/` do not already
(Gemini, and Bedrock's binary event stream: corrupted, truncated and oversized frames);
the SSE layer's own properties (reference decoder, size limits) live in `tests/wire/test_sse.py`,
and the OpenAI and Anthropic byte-level ones beside their codecs. Here the SSE decoder gets
one more: whether invalid UTF-8 was seen does not depend on how the bytes were split.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamactors.errors import WireError
from streamactors.models import (
    FINISH_REASONS,
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    UsageEvent,
)
from streamactors.reply import ReplyBuilder
from streamactors.testing.formats.bedrock import encode_frame
from streamactors.wire.anthropic import AnthropicStreamDecoder
from streamactors.wire.bedrock import BedrockStreamDecoder
from streamactors.wire.gemini import GeminiStreamDecoder
from streamactors.wire.openai import OpenAIStreamDecoder
from streamactors.wire.sse import SSEDecoder

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Decoder(Protocol):
    model: str | None

    def feed_into(self, data: bytes, out: list[StreamEvent]) -> None: ...

    def close_into(self, out: list[StreamEvent]) -> None: ...


Outcome = tuple[list[StreamEvent], tuple[str, int | None, bool, str | None] | None, Any]


def run(factory: Callable[[], Decoder], pieces: Sequence[bytes]) -> Outcome:
    """(events, the error as (kind, status, retryable, type) or None, the reported model).

    Anything but a `WireError` propagates, and fails the property.
    """
    dec = factory()
    out: list[StreamEvent] = []
    error = None
    try:
        for piece in pieces:
            dec.feed_into(piece, out)
        dec.close_into(out)
    except WireError as exc:
        assert exc.kind in ("protocol", "upstream"), exc.kind
        error = (exc.kind, exc.status, exc.retryable, exc.error_type)
    return out, error, dec.model


def split_at(data: bytes, offsets: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(offsets), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def assert_well_typed(events: list[StreamEvent], model: Any) -> None:
    """Each event has the field types its class promises, and the stream folds into a Reply."""
    for ev in events:
        if isinstance(ev, TextEvent):
            assert type(ev.text) is str and ev.text, ev
        elif isinstance(ev, ReasoningEvent):
            # Text, or (with no text) one signature or one redacted block: never an empty event.
            marks = [m for m in (ev.signature, ev.redacted) if m is not None]
            assert type(ev.text) is str and all(type(m) is str and m for m in marks), ev
            assert (ev.text and not marks) or (not ev.text and len(marks) == 1), ev
        elif isinstance(ev, ToolCallEvent):
            assert type(ev.index) is int and ev.index >= 0, ev
            assert ev.id is None or type(ev.id) is str, ev
            assert ev.name is None or type(ev.name) is str, ev
            assert type(ev.arguments) is str, ev
        elif isinstance(ev, UsageEvent):
            for n in (ev.input_tokens, ev.output_tokens):
                assert n is None or type(n) is int, ev
        elif isinstance(ev, FinishEvent):
            assert ev.reason in FINISH_REASONS, ev
        else:
            raise AssertionError(f"unexpected event {ev!r}")
    finishes = [i for i, ev in enumerate(events) if isinstance(ev, FinishEvent)]
    assert finishes in ([], [len(events) - 1]), "one finish, and last"
    assert model is None or type(model) is str, model
    builder = ReplyBuilder("p", "m")
    for ev in events:
        builder.add(ev)
    builder.reply()


# --- JSON-ish payloads ----------------------------------------------------------------------

_WORDS = ["", "x", "héllo", "0", "stop", "STOP", "end_turn", "tool_use", "text", "error", "null", "[DONE]"]
# Values of every JSON type, each about as likely: most are the wrong type wherever they land.
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(_WORDS),
    st.lists(st.none() | st.integers(0, 2) | st.sampled_from(_WORDS[:3]), max_size=2),
    st.dictionaries(
        st.sampled_from(_WORDS[1:6]), st.none() | st.integers(0, 2) | st.sampled_from(_WORDS[:3]), max_size=2
    ),
)


def shaped(schema: Any) -> st.SearchStrategy[Any]:
    """Values that mostly follow `schema`, with any node sometimes replaced by junk.

    A schema is a dict (keys written "+key" are always there, "!key" rarely, others half
    the time), a one-element list (a list of such items) or a leaf strategy.
    """
    if isinstance(schema, dict):
        real: st.SearchStrategy[Any] = _object(
            {k[1:]: shaped(v) for k, v in schema.items() if k[0] == "+"},
            {k: shaped(v) for k, v in schema.items() if k[0] not in "+!"},
            {k[1:]: shaped(v) for k, v in schema.items() if k[0] == "!"},
        )
    elif isinstance(schema, list):
        real = st.lists(shaped(schema[0]), min_size=1, max_size=3)
    else:
        real = schema
    return st.integers(0, 11).flatmap(lambda n: JUNK if n == 0 else real)


@st.composite
def _object(
    draw: st.DrawFn,
    required: dict[str, st.SearchStrategy[Any]],
    optional: dict[str, st.SearchStrategy[Any]],
    rare: dict[str, st.SearchStrategy[Any]],
) -> dict[str, Any]:
    out = {k: draw(v) for k, v in required.items()}
    out.update({k: draw(v) for k, v in optional.items() if draw(st.booleans())})
    out.update({k: draw(v) for k, v in rare.items() if draw(st.integers(0, 14)) == 0})
    return out


TEXT = st.sampled_from(["", "a", "héllo ", "日本語", "🎉", " "])
INT = st.integers(-1, 3)
IDS = st.sampled_from(["", "call_0", "call_1", "toolu_x"])

OPENAI_CHUNK = {
    "model": st.sampled_from(["gpt-x", ""]),
    "+choices": [
        {
            "index": INT,
            "+delta": {
                "role": st.just("assistant"),
                "content": TEXT,
                "reasoning_content": TEXT,
                "reasoning": TEXT,
                "refusal": TEXT,
                "tool_calls": [
                    {"index": INT, "id": IDS, "type": st.just("function"), "function": {"name": IDS, "arguments": TEXT}}
                ],
            },
            "finish_reason": st.sampled_from(["stop", "length", "tool_calls", "content_filter", "weird"]),
        }
    ],
    "usage": {"prompt_tokens": INT, "completion_tokens": INT},
    "!error": {"message": TEXT, "code": st.sampled_from([429, "500", None])},
}

_BLOCK = {
    "+type": st.sampled_from(["text", "thinking", "tool_use", "redacted_thinking", "x"]),
    "id": IDS,
    "name": IDS,
    "input": {"a": INT},
    "text": TEXT,
    "thinking": TEXT,
}
_DELTA = {
    "+type": st.sampled_from(["text_delta"] * 2 + ["input_json_delta", "thinking_delta", "signature_delta", "x"]),
    "text": TEXT,
    "partial_json": TEXT,
    "thinking": TEXT,
    "stop_reason": st.sampled_from(["end_turn", "x"]),
}
_USAGE = {"input_tokens": INT, "output_tokens": INT, "cache_read_input_tokens": INT}
ANTHROPIC_EVENT = {
    "index": INT,
    "message": {"model": st.sampled_from(["claude-x", ""]), "usage": _USAGE},
    "+content_block": _BLOCK,
    "+delta": _DELTA,
    "usage": _USAGE,
    "!error": {"type": st.sampled_from(["overloaded_error", "invalid_request_error"]), "message": TEXT},
}
ANTHROPIC_TYPES = [
    *["content_block_delta"] * 4,
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "x_future",
]

GEMINI_CHUNK = {
    "+candidates": [
        {
            "index": INT,
            "+content": {
                "role": st.just("model"),
                "+parts": [
                    {
                        "text": TEXT,
                        "thought": st.booleans(),
                        "functionCall": {"name": IDS, "id": IDS, "args": {"a": INT}},
                        "thoughtSignature": TEXT,
                    }
                ],
            },
            "finishReason": st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER"]),
        }
    ],
    "usageMetadata": {"promptTokenCount": INT, "candidatesTokenCount": INT, "thoughtsTokenCount": INT},
    "modelVersion": st.sampled_from(["gemini-x", ""]),
    "responseId": IDS,
    "!promptFeedback": {"blockReason": st.sampled_from(["SAFETY", ""])},
    "!error": {"code": st.sampled_from([429, 503, 400]), "message": TEXT, "status": TEXT},
}

BEDROCK_EVENT = {
    "contentBlockIndex": INT,
    "+delta": {"text": TEXT, "toolUse": {"input": TEXT}, "reasoningContent": {"text": TEXT, "signature": TEXT}},
    "start": {"+toolUse": {"toolUseId": IDS, "name": IDS}},
    "stopReason": st.sampled_from(["end_turn", "tool_use", "max_tokens", "guardrail_intervened", "x"]),
    "usage": {"inputTokens": INT, "outputTokens": INT, "cacheReadInputTokens": INT},
    "message": TEXT,
    "p": st.just("abc"),
}
BEDROCK_TYPES = [
    *["contentBlockDelta"] * 4,
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "x_future",
]


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


@st.composite
def openai_stream(draw: st.DrawFn) -> bytes:
    out = []
    for obj in draw(st.lists(shaped(OPENAI_CHUNK), max_size=4)):
        event = b"event: error\n" if draw(st.integers(0, 15)) == 0 else b""
        out.append(event + b"data: " + _json(obj) + b"\n\n")
    if draw(st.booleans()):
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


@st.composite
def anthropic_stream(draw: st.DrawFn) -> bytes:
    out = []
    for obj in draw(st.lists(shaped(ANTHROPIC_EVENT), max_size=6)):
        etype = draw(st.sampled_from(ANTHROPIC_TYPES))
        if isinstance(obj, dict) and draw(st.integers(0, 5)):
            obj = {"type": etype, **obj}
        out.append(b"event: " + etype.encode() + b"\ndata: " + _json(obj) + b"\n\n")
    return b"".join(out)


@st.composite
def gemini_stream(draw: st.DrawFn) -> bytes:
    objs = draw(st.lists(shaped(GEMINI_CHUNK), max_size=4))
    if draw(st.integers(0, 9)) == 0:
        objs = [objs]  # Google sometimes wraps a chunk in a list
    return b"".join(b"data: " + _json(obj) + b"\r\n\r\n" for obj in objs)


@st.composite
def bedrock_stream(draw: st.DrawFn) -> bytes:
    out = []
    for obj in draw(st.lists(shaped(BEDROCK_EVENT), max_size=6)):
        kind = draw(st.sampled_from(["event"] * 6 + ["exception", "error", "other"]))
        headers = {":message-type": kind, ":content-type": "application/json"}
        if kind == "event":
            headers[":event-type"] = draw(st.sampled_from(BEDROCK_TYPES))
        elif kind == "exception":
            headers[":exception-type"] = draw(st.sampled_from(["throttlingException", "validationException", "x"]))
        elif kind == "error":
            headers[":error-code"] = "InternalFailure"
        payload = _json(obj) if draw(st.integers(0, 9)) else draw(st.sampled_from([b"", b"{", b"\xff{}", b"[]"]))
        out.append(encode_frame(headers, payload))
    return b"".join(out)


DECODERS: dict[str, tuple[Callable[[], Decoder], Any]] = {
    "openai": (lambda: OpenAIStreamDecoder(max_event_bytes=4096), openai_stream()),
    "anthropic": (lambda: AnthropicStreamDecoder(max_event_bytes=4096), anthropic_stream()),
    "gemini": (lambda: GeminiStreamDecoder(max_event_bytes=4096), gemini_stream()),
    "bedrock": (lambda: BedrockStreamDecoder(max_event_bytes=4096), bedrock_stream()),
}


def cuts(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=6)


@pytest.mark.parametrize("provider", list(DECODERS))
@settings(SETTINGS, max_examples=250)
@given(data=st.data())
def test_any_payload_shape_is_a_wire_error_or_well_typed_events_under_any_split(
    provider: str, data: st.DataObject
) -> None:
    factory, streams = DECODERS[provider]
    raw = data.draw(streams, label="stream")
    whole = run(factory, [raw])
    assert_well_typed(whole[0], whole[2])
    assert run(factory, split_at(raw, data.draw(cuts(raw), label="cuts"))) == whole
    if len(raw) < 400:
        assert run(factory, [raw[i : i + 1] for i in range(len(raw))]) == whole


# --- arbitrary bytes ------------------------------------------------------------------------

_GEMINI_PIECES = [
    b"data: ",
    b"data:",
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b": keepalive\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\xff",
    b'{"candidates":[{"content":{"parts":[{"text":"h\xc3\xa9"}]},"index":0}]}',
    b'{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP"}]}',
    b'{"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2}}',
    b'{"error":{"code":503}}',
]
_GEMINI_BYTES = st.lists(st.sampled_from(_GEMINI_PIECES) | st.binary(max_size=4), max_size=25).map(b"".join)


@SETTINGS
@given(data=st.data())
def test_gemini_arbitrary_bytes_raise_only_wire_errors_under_any_split(data: st.DataObject) -> None:
    raw = data.draw(_GEMINI_BYTES)

    def factory() -> GeminiStreamDecoder:
        return GeminiStreamDecoder(max_event_bytes=128)

    whole = run(factory, [raw])
    assert_well_typed(whole[0], whole[2])
    assert run(factory, split_at(raw, data.draw(cuts(raw)))) == whole


def _frame(event: str, obj: Any) -> bytes:
    headers = {":event-type": event, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, orjson.dumps(obj))


_GOOD_FRAMES = [
    _frame("messageStart", {"role": "assistant"}),
    _frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hé"}}),
    _frame("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}}),
    _frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a'}}}),
    _frame("messageStop", {"stopReason": "end_turn"}),
    _frame("metadata", {"usage": {"inputTokens": 1, "outputTokens": 2}}),
]


@st.composite
def mangled_frame(draw: st.DrawFn) -> bytes:
    """A valid frame, then maybe cut short, a byte flipped (prelude, headers, payload or
    CRC), or its declared lengths rewritten with a correct prelude CRC."""
    frame = bytearray(draw(st.sampled_from(_GOOD_FRAMES)))
    how = draw(st.sampled_from(["keep", "keep", "cut", "flip", "lengths"]))
    if how == "cut":
        return bytes(frame[: draw(st.integers(0, len(frame) - 1))])
    if how == "flip":
        i = draw(st.integers(0, len(frame) - 1))
        frame[i] ^= draw(st.integers(1, 255))
    elif how == "lengths":
        total = draw(st.sampled_from([0, 15, 16, len(frame) - 1, len(frame) + 1, 2**24, 2**32 - 1]))
        headers_len = draw(st.sampled_from([0, 1, struct.unpack("!I", frame[4:8])[0], 2**17, 2**32 - 1]))
        head = struct.pack("!II", total, headers_len)
        frame[:12] = head + struct.pack("!I", zlib.crc32(head))
    return bytes(frame)


_BEDROCK_BYTES = st.lists(mangled_frame() | st.binary(max_size=6), max_size=8).map(b"".join)


@SETTINGS
@given(data=st.data())
def test_event_stream_arbitrary_and_corrupted_frames_raise_only_wire_errors_under_any_split(
    data: st.DataObject,
) -> None:
    raw = data.draw(_BEDROCK_BYTES)

    def factory() -> BedrockStreamDecoder:
        return BedrockStreamDecoder(max_event_bytes=4096)

    whole = run(factory, [raw])
    assert_well_typed(whole[0], whole[2])
    assert run(factory, split_at(raw, data.draw(cuts(raw)))) == whole


@SETTINGS
@given(frames=st.lists(st.sampled_from(_GOOD_FRAMES), max_size=8), data=st.data())
def test_event_stream_valid_frames_decode_identically_under_any_split(frames: list[bytes], data: st.DataObject) -> None:
    raw = b"".join(frames)
    whole = run(BedrockStreamDecoder, [raw])
    assert_well_typed(whole[0], whole[2])
    assert run(BedrockStreamDecoder, split_at(raw, data.draw(cuts(raw)))) == whole


# --- SSE: the invalid-UTF-8 flag ----------------------------------------------------------------

_UTF8_PIECES = st.sampled_from(
    [b"data: ", b"\n", b"\n\n", b"\r\n", b"x", "é".encode(), "🎉".encode(), b"\xff", b"\xe3\x81", b"\x80", b": c"]
)


@SETTINGS
@given(raw=st.lists(_UTF8_PIECES, max_size=30).map(b"".join), data=st.data())
def test_sse_invalid_utf8_flag_and_replacement_do_not_depend_on_the_split(raw: bytes, data: st.DataObject) -> None:
    def decode(pieces: list[bytes]) -> tuple[list[Any], bool]:
        dec = SSEDecoder()
        events: list[Any] = []
        for piece in pieces:
            dec.feed_into(piece, events)
        return events, dec.invalid_utf8

    whole = decode([raw])
    assert decode(split_at(raw, data.draw(cuts(raw)))) == whole
    if not whole[1]:
        assert all("\ufffd" not in ev.data for ev in whole[0])
