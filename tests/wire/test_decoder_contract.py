"""The `StreamDecoder` contract (`streamactors.wire.base`), the same for every decoder:
a `WireError` is raised by the read that finds it, right after the events before it (which
stay in `out`), and errors are sticky, with the same repeat error everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
import pytest
from wire_harness import IntoDecoder

from streamactors.errors import WireError
from streamactors.models import FinishEvent, StreamEvent, TextEvent, UsageEvent
from streamactors.testing.formats.bedrock import encode_frame
from streamactors.wire.anthropic import AnthropicStreamDecoder
from streamactors.wire.bedrock import BedrockStreamDecoder
from streamactors.wire.gemini import GeminiStreamDecoder
from streamactors.wire.openai import OpenAIStreamDecoder
from streamactors.wire.sse import SSEDecoder, SSEEvent


def sse(*events: tuple[str | None, Any]) -> bytes:
    return b"".join((f"event: {name}\n".encode() if name else b"") + b"data: " + orjson.dumps(obj) + b"\n\n"
                    for name, obj in events)


def frame(mtype: str, name: str, obj: Any) -> bytes:
    kind = ":exception-type" if mtype == "exception" else ":event-type"
    headers = {kind: name, ":content-type": "application/json", ":message-type": mtype}
    return encode_frame(headers, orjson.dumps(obj))


class Case(NamedTuple):
    """A reply "a" in one provider's format, in pieces: `text` (the text event), `error` (an
    error event), `finish` (the finish reason; the terminator would follow) and `rest` (usage
    1/2 and the terminator: `text + finish + rest` is the whole reply)."""

    factory: Callable[[], IntoDecoder]
    text: bytes
    error: bytes
    finish: bytes
    rest: bytes


_BEDROCK_TEXT = frame("event", "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "a"}})
_GEMINI_TEXT = sse((None, {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}))

CASES = {
    "openai": Case(
        OpenAIStreamDecoder,
        sse((None, {"choices": [{"delta": {"content": "a"}}]})),
        sse((None, {"error": {"message": "boom", "code": 500}})),
        sse((None, {"choices": [{"delta": {}, "finish_reason": "stop"}]})),
        sse((None, {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})) + b"data: [DONE]\n\n",
    ),
    "anthropic": Case(
        AnthropicStreamDecoder,
        sse(("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 1}}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "a"}})),
        sse(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "boom"}})),
        sse(("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                               "usage": {"output_tokens": 2}})),
        sse(("message_stop", {"type": "message_stop"})),
    ),
    "gemini": Case(  # Gemini's stream has no terminator: its finish reason ends it
        GeminiStreamDecoder,
        _GEMINI_TEXT,
        sse((None, {"error": {"code": 503, "message": "boom", "status": "UNAVAILABLE"}})),
        sse((None, {"candidates": [{"finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2}})),
        b"",
    ),
    "bedrock": Case(
        BedrockStreamDecoder,
        _BEDROCK_TEXT,
        frame("exception", "modelStreamErrorException", {"message": "boom"}),
        frame("event", "messageStop", {"stopReason": "end_turn"}),
        frame("event", "metadata", {"usage": {"inputTokens": 1, "outputTokens": 2}}),
    ),
}


def fields(exc: WireError) -> tuple[str, int | None, bool, str | None]:
    return exc.kind, exc.status, exc.retryable, exc.error_type


def assert_sticky(dec: IntoDecoder, first: WireError, out: list[Any]) -> None:
    """Every later call raises the same repeat error, and appends nothing."""
    held = list(out)
    for call in (lambda: dec.feed_into(b"", out), lambda: dec.feed_into(b"data: x\n\n", out),
                 lambda: dec.close_into(out), lambda: dec.close_into(out)):
        with pytest.raises(WireError) as again:
            call()
        assert again.value.message == f"the stream failed earlier: {first.message}"
        assert fields(again.value) == fields(first)
        assert again.value.__cause__ is first
    assert out == held


@pytest.mark.parametrize("name", CASES)
def test_an_error_comes_right_after_the_events_of_its_read_and_sticks(name: str) -> None:
    case = CASES[name]
    dec = case.factory()
    out: list[StreamEvent] = []
    with pytest.raises(WireError) as first:
        dec.feed_into(case.text + case.error, out)
    assert out == [TextEvent("a")]
    assert first.value.kind == "upstream" and "boom" in first.value.message
    assert_sticky(dec, first.value, out)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("cut", [0, 1, -1], ids=["before-finish", "finish-begun", "finish-nearly-whole"])
def test_a_body_ended_before_the_finish_fails_at_close_and_sticks(name: str, cut: int) -> None:
    case = CASES[name]
    dec = case.factory()
    out: list[StreamEvent] = []
    dec.feed_into(case.text + case.finish[:cut], out)
    with pytest.raises(WireError, match="ended before its terminator") as first:
        dec.close_into(out)
    assert first.value.kind == "protocol"
    assert_sticky(dec, first.value, out)
    assert out == [TextEvent("a")]


@pytest.mark.parametrize("name", CASES)
def test_close_ends_a_reply_whose_finish_came(name: str) -> None:
    case = CASES[name]
    dec = case.factory()
    out: list[StreamEvent] = []
    dec.feed_into(case.text + case.finish, out)
    dec.close_into(out)
    assert out[0] == TextEvent("a") and out[-1] == FinishEvent("stop")
    end = list(out)
    dec.feed_into(case.rest, out)  # after the end: ignored
    dec.close_into(out)
    assert out == end


@pytest.mark.parametrize("name", CASES)
def test_the_end_is_usage_then_finish_once_and_bytes_after_it_are_ignored(name: str) -> None:
    case = CASES[name]
    whole = case.text + case.finish + case.rest
    dec = case.factory()
    out: list[StreamEvent] = []
    for i in range(len(whole)):
        dec.feed_into(whole[i : i + 1], out)
    reply = [TextEvent("a"), UsageEvent(1, 2), FinishEvent("stop")]
    if case.rest:  # ended by its terminator
        assert out == reply
    dec.close_into(out)
    dec.feed_into(b"\x00 trailing garbage\n\n", out)
    dec.close_into(out)
    assert out == reply


def test_the_sse_tokenizer_follows_the_same_rules() -> None:
    dec = SSEDecoder(max_event_bytes=20)
    out: list[SSEEvent] = []
    with pytest.raises(WireError, match="max_event_bytes") as first:
        dec.feed_into(b"data: a\n\ndata: " + b"z" * 30 + b"\n\n", out)
    assert out == [SSEEvent(None, "a")]
    for call in (lambda: dec.feed_into(b"data: b\n\n", out), lambda: dec.feed_items_into(b"", [])):
        with pytest.raises(WireError) as again:
            call()
        assert again.value.message == f"the stream failed earlier: {first.value.message}"
        assert fields(again.value) == fields(first.value) and again.value.__cause__ is first.value
    assert out == [SSEEvent(None, "a")]
