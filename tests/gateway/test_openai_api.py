"""The OpenAI Chat Completions dialect of the gateway (issue 14): request parsing, the chunk
stream, whole completions and error responses, byte for byte, and read back by the official
openai SDK (its stream objects, `chat.completions.stream()` accumulation, its exception
classes and retry decisions) and by our own OpenAI stream decoder."""

from __future__ import annotations

import ast
import itertools
import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageFunctionToolCall

import streamactors
from streamactors.errors import ProviderError, UsageError
from streamactors.gateway.errors import GatewayError
from streamactors.gateway.openai_api import (
    ChatCompletionsCall,
    ChunkEncoder,
    completion_body,
    error_response,
    new_completion_id,
    parse_request,
    usage_error_param,
)
from streamactors.models import (
    Citation,
    CitationEvent,
    ErrorEvent,
    FinishEvent,
    LogprobsEvent,
    ReasoningBlock,
    ReasoningEvent,
    Reply,
    StreamEvent,
    TextEvent,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
    TopLogprob,
    Usage,
    UsageEvent,
)
from streamactors.reply import ReplyBuilder
from streamactors.request_dict import request_from_dict
from streamactors.routing import plan
from streamactors.wire.base import refuse_or_drop, refuse_part
from streamactors.wire.openai import OpenAIStreamDecoder

ID = "chatcmpl-1"
MODEL = "openai/gpt-4o"
CREATED = 1700000000
MESSAGES = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def chunk(
    delta: dict[str, Any],
    *,
    finish: str | None = None,
    logprobs: dict[str, Any] | None = None,
    usage_null: bool = True,
) -> bytes:
    """One chunk as OpenAI streams it (built as a dict, independently of the encoder's splicing)."""
    body: dict[str, Any] = {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
    }
    if usage_null:
        body["usage"] = None
    return b"data: " + orjson.dumps(body) + b"\n\n"


ROLE = chunk({"role": "assistant", "content": ""})
DONE = b"data: [DONE]\n\n"


def encoder(include_usage: bool = True) -> ChunkEncoder:
    return ChunkEncoder(ID, MODEL, CREATED, include_usage)


def encode_all(batches: Sequence[Sequence[StreamEvent]], include_usage: bool = True) -> bytes:
    enc = encoder(include_usage)
    return b"".join(enc.encode(batch) for batch in batches) + enc.finish()


# --- the official SDK as the client ---------------------------------------------------


def client_for(handler: Callable[[httpx2.Request], httpx2.Response], max_retries: int = 0) -> openai.OpenAI:
    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    return openai.OpenAI(api_key="x", base_url="http://test/v1", max_retries=max_retries, http_client=http_client)


def sse_client(data: bytes) -> openai.OpenAI:
    return client_for(lambda request: httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data))


def sdk_chunks(data: bytes) -> list[ChatCompletionChunk]:
    """The chunks `chat.completions.create(stream=True)` yields for the stream `data`."""
    with sse_client(data) as client:
        return list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))  # type: ignore[arg-type]


def sdk_final(data: bytes, tools: list[dict[str, Any]] | None = None) -> Any:
    """The completion `chat.completions.stream(...)` accumulates from the stream `data`."""
    with (
        sse_client(data) as client,
        client.chat.completions.stream(model=MODEL, messages=MESSAGES, tools=tools or openai.omit) as stream,  # type: ignore[arg-type]
    ):
        for _ in stream:
            pass
        return stream.get_final_completion()


def extra(model: Any) -> dict[str, Any]:
    """The fields of an SDK object its type does not declare (reasoning_content, ...)."""
    fields = model.model_extra
    assert fields is not None
    return dict(fields)


# --- parse_request --------------------------------------------------------------------


def test_parse_request_gives_the_request_and_how_to_answer() -> None:
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    call = parse_request(orjson.dumps(body))
    assert call == ChatCompletionsCall(request_from_dict(body), stream=True, include_usage=True)
    assert call.model == MODEL


@pytest.mark.parametrize(
    ("extra", "stream", "include_usage"),
    [
        ({}, False, False),
        ({"stream": False}, False, False),
        ({"stream": True}, True, False),
        ({"stream": True, "stream_options": None}, True, False),
        ({"stream": True, "stream_options": {}}, True, False),
        ({"stream": True, "stream_options": {"include_usage": False}}, True, False),
        # A usage chunk belongs to a stream: without one there is nothing to add it to.
        ({"stream": False, "stream_options": {"include_usage": True}}, False, False),
        ({"stream": None}, False, False),
    ],
)
def test_parse_request_stream_and_include_usage(extra: dict[str, Any], stream: bool, include_usage: bool) -> None:
    call = parse_request(orjson.dumps({"model": MODEL, "messages": MESSAGES, **extra}))
    assert (call.stream, call.include_usage) == (stream, include_usage)


@pytest.mark.parametrize(
    ("body", "message", "param", "code"),
    [
        (b"", "the request body is not valid JSON: ", None, "invalid_json"),
        (b'{"model": ', "the request body is not valid JSON: ", None, "invalid_json"),
        (b"[1]", "the request body must be a JSON object, got an array", None, "invalid_json"),
        (b'"hi"', "the request body must be a JSON object, got a string", None, "invalid_json"),
        (b"3", "the request body must be a JSON object, got a number", None, "invalid_json"),
        (b"null", "the request body must be a JSON object, got null", None, "invalid_json"),
        (b'{"model": "a/b", "messages": [], "x": NaN}', "the request body is not valid JSON: ", None, "invalid_json"),
        (b'{"model": "a/b", "stream": "yes"}', "stream must be true or false, got 'yes'", "stream", None),
        (
            b'{"model": "a/b", "stream": true, "stream_options": true}',
            'stream_options must be an object such as {"include_usage": true}, got a boolean',
            "stream_options",
            None,
        ),
        (
            b'{"model": "a/b", "stream": true, "stream_options": {"include_usage": 1}}',
            "stream_options.include_usage must be true or false, got 1",
            "stream_options.include_usage",
            None,
        ),
    ],
)
def test_parse_request_refuses_a_malformed_body(body: bytes, message: str, param: str | None, code: str | None) -> None:
    with pytest.raises(GatewayError) as info:
        parse_request(body)
    err = info.value
    assert err.message.startswith(message)
    assert (err.status, err.type, err.param, err.code) == (400, "invalid_request_error", param, code)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "messages": MESSAGES, "temprature": 1}, "temprature"),
        ({"model": "", "messages": MESSAGES}, "model"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL, "messages": MESSAGES, "n": 2}, "n"),
        ({"model": MODEL, "messages": [*MESSAGES, {"role": "bot", "content": "x"}]}, "messages[1].role"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "messages[0].content[0].type",
        ),
        ({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
        ({"model": MODEL, "messages": MESSAGES, "reasoning": {}}, "reasoning"),
        ({"model": MODEL, "messages": MESSAGES, "response_format": {"type": "xml"}}, "response_format.type"),
        ({"model": MODEL, "messages": MESSAGES, "tools": [{"type": "function"}]}, "tools[0]"),
    ],
)
def test_parse_request_turns_a_usage_error_into_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UsageError) as expected:
        request_from_dict(body)
    with pytest.raises(GatewayError) as info:
        parse_request(orjson.dumps(body))
    err = info.value
    assert (err.status, err.type, err.param, err.code) == (400, "invalid_request_error", param, None)
    assert err.message == str(expected.value)


def test_usage_error_param_reads_the_other_messages_that_name_a_field() -> None:
    dropped: list[str] = []
    with pytest.raises(UsageError) as refused:
        refuse_or_drop("seed", "groq", drop=False, dropped=dropped)
    assert usage_error_param(str(refused.value)) == "seed"
    assert usage_error_param(str(refuse_part("audio", "messages[1].content[0]", "xai"))) == "messages[1].content[0]"
    assert usage_error_param("invalid request: expected a dict, got list") is None
    assert usage_error_param("request must be a ChatRequest or a dict, got int") is None
    assert usage_error_param("image URL 'https://x/a.png': fetch failed: ConnectError") is None


def test_new_completion_ids_are_openais_form_and_distinct() -> None:
    ids = {new_completion_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("chatcmpl-") and len(i) == 41 for i in ids)


# --- the chunk stream, byte for byte ---------------------------------------------------


def test_text_chunks_exact_bytes() -> None:
    head = b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"openai/gpt-4o",'
    assert encoder(include_usage=False).encode([TextEvent('He said "hi"\n'), TextEvent("é")]) == (
        head
        + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}'
        b"\n\n"
        + head
        + b'"choices":[{"index":0,"delta":{"content":"He said \\"hi\\"\\n"},"logprobs":null,"finish_reason":null}]}'
        b"\n\n"
        + head
        + '"choices":[{"index":0,"delta":{"content":"é"},"logprobs":null,"finish_reason":null}]}\n\n'.encode()
    )


def test_the_first_chunk_goes_once_even_before_any_event() -> None:
    enc = encoder()
    assert enc.start() == ROLE
    assert enc.start() == b""
    assert enc.encode([]) == b""
    assert enc.encode([TextEvent("a"), TextEvent(""), TextEvent("b")]) == chunk({"content": "a"}) + chunk(
        {"content": "b"}
    )
    fresh = encoder()
    assert fresh.encode([]) == ROLE
    assert fresh.finish() == DONE  # no usage reported: no usage chunk


def test_a_stream_with_no_event_at_all_still_opens_and_ends() -> None:
    assert encoder().finish() == ROLE + DONE


def test_reasoning_chunks() -> None:
    enc = encoder()
    assert enc.encode(
        [
            ReasoningEvent("Let me "),
            ReasoningEvent("think."),
            ReasoningEvent(""),  # nothing to say: nothing sent
            ReasoningEvent("", signature="sig-1"),
            ReasoningEvent("Again", signature="sig-2"),
            ReasoningEvent("", redacted="opaque"),
            TextEvent("Done"),
        ]
    ) == (
        ROLE
        + chunk({"reasoning_content": "Let me "})
        + chunk({"reasoning_content": "think."})
        + chunk(
            {"thinking_blocks": [{"index": 0, "type": "thinking", "thinking": "Let me think.", "signature": "sig-1"}]}
        )
        + chunk(
            {
                "reasoning_content": "Again",
                "thinking_blocks": [{"index": 1, "type": "thinking", "thinking": "Again", "signature": "sig-2"}],
            }
        )
        + chunk({"thinking_blocks": [{"index": 2, "type": "redacted_thinking", "data": "opaque"}]})
        + chunk({"content": "Done"})
    )


def test_tool_call_chunks_as_openai_streams_them() -> None:
    enc = encoder()
    assert enc.encode(
        [
            ToolCallEvent(0, "call_a", "get_weather"),
            ToolCallEvent(0, arguments='{"city":'),
            ToolCallEvent(0, arguments=""),  # an empty fragment says nothing
            ToolCallEvent(1, "call_b", "get_weather", '{"city": "Oslo"}', signature="c2ln"),
            ToolCallEvent(0, arguments=' "Paris"}'),
            ToolCallEvent(2, None, "late_id"),  # a server that gives the id after the name
            ToolCallEvent(2, "call_c"),
        ]
    ) == (
        ROLE
        + chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        )
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]})
        + chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        "extra_content": {"google": {"thought_signature": "c2ln"}},
                    }
                ]
            }
        )
        + chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]})
        + chunk({"tool_calls": [{"index": 2, "type": "function", "function": {"name": "late_id", "arguments": ""}}]})
        + chunk({"tool_calls": [{"index": 2, "id": "call_c"}]})
    )


def test_logprobs_ride_on_the_chunk_of_their_text() -> None:
    first = TokenLogprob("Hi", -0.25, (72, 105), (TopLogprob("Hi", -0.25, (72, 105)), TopLogprob("Yo", -1.5, None)))
    second = TokenLogprob("!", -0.5)
    enc = encoder()
    data = enc.encode([TextEvent("Hi"), LogprobsEvent((first,)), TextEvent("!")])
    data += enc.encode([LogprobsEvent((second,))])  # a batch boundary between text and logprobs
    lp1 = {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.25,
                "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                    {"token": "Yo", "logprob": -1.5, "bytes": None},
                ],
            }
        ],
        "refusal": None,
    }
    lp2: dict[str, Any] = {
        "content": [{"token": "!", "logprob": -0.5, "bytes": None, "top_logprobs": []}],
        "refusal": None,
    }
    assert data == ROLE + chunk({"content": "Hi"}, logprobs=lp1) + chunk({"content": "!"}) + chunk({}, logprobs=lp2)


def test_finish_usage_and_done() -> None:
    enc = encoder()
    data = enc.encode([TextEvent("ok"), UsageEvent(10, 4, 3, 2, 1), FinishEvent("length")]) + enc.finish()
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    assert data == (
        ROLE
        + chunk({"content": "ok"})
        + chunk({}, finish="length")
        + b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"openai/gpt-4o",'
        + b'"choices":[],"usage":'
        + orjson.dumps(usage)
        + b"}\n\n"
        + DONE
    )
    assert enc.finish() == b""
    assert enc.encode([TextEvent("late")]) == b""


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (UsageEvent(7, None), {"prompt_tokens": 7}),
        (
            UsageEvent(None, 3, reasoning_tokens=2),
            {"completion_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 2}},
        ),
        (
            UsageEvent(5, 0, cache_read_tokens=0),
            {
                "prompt_tokens": 5,
                "completion_tokens": 0,
                "total_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        ),
    ],
)
def test_usage_has_only_the_counts_known(usage: UsageEvent, expected: dict[str, Any]) -> None:
    enc = encoder()
    data = enc.encode([usage, FinishEvent("stop")]) + enc.finish()
    assert data.endswith(b'"choices":[],"usage":' + orjson.dumps(expected) + b"}\n\n" + DONE)


def test_without_include_usage_no_usage_anywhere() -> None:
    enc = encoder(include_usage=False)
    data = enc.encode([TextEvent("ok"), UsageEvent(1, 1), FinishEvent("stop")]) + enc.finish()
    assert data == (
        chunk({"role": "assistant", "content": ""}, usage_null=False)
        + chunk({"content": "ok"}, usage_null=False)
        + chunk({}, finish="stop", usage_null=False)
        + DONE
    )


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "content_filter", "error"])
def test_every_finish_reason_goes_as_it_is(reason: str) -> None:
    assert encoder().encode([FinishEvent(reason)]) == ROLE + chunk({}, finish=reason)


def test_citations_go_together_before_the_finish_with_their_span() -> None:
    enc = encoder()
    data = enc.encode(
        [
            TextEvent("Paris is the capital. "),
            CitationEvent(Citation("https://a.example", "A", "the capital")),  # found in the reply
            CitationEvent(Citation("https://b.example", None, "a quote from the source")),  # not: where it arrived
            CitationEvent(Citation(None, "doc.pdf", "page 3")),  # no URL: no url_citation
            TextEvent("It is big."),
        ]
    )
    data += enc.encode([CitationEvent(Citation("https://c.example", "C", None)), FinishEvent("stop")])
    assert data == (
        ROLE
        + chunk({"content": "Paris is the capital. "})
        + chunk({"content": "It is big."})
        + chunk(
            {
                "annotations": [
                    {
                        "type": "url_citation",
                        "url_citation": {"url": "https://a.example", "title": "A", "start_index": 9, "end_index": 20},
                    },
                    {
                        "type": "url_citation",
                        "url_citation": {"url": "https://b.example", "title": None, "start_index": 22, "end_index": 22},
                    },
                    {
                        "type": "url_citation",
                        "url_citation": {"url": "https://c.example", "title": "C", "start_index": 32, "end_index": 32},
                    },
                ]
            }
        )
        + chunk({}, finish="stop")
    )


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_a_long_reply_one_event_at_a_time_or_in_batches(batch: int) -> None:
    """The same bytes however the events are batched; the text kept (in blocks) places a
    citation 600 fragments in."""
    words = [TextEvent(f"w{i} ") for i in range(600)]
    events = [*words, CitationEvent(Citation("https://a.example", "A", "w299 w300")), FinishEvent("stop")]
    enc = encoder()
    data = b"".join(enc.encode(events[i : i + batch]) for i in range(0, len(events), batch))
    start = len("".join(w.text for w in words[:299]))
    annotation = {
        "type": "url_citation",
        "url_citation": {"url": "https://a.example", "title": "A", "start_index": start, "end_index": start + 9},
    }
    assert data == (
        ROLE
        + b"".join(chunk({"content": w.text}) for w in words)
        + chunk({"annotations": [annotation]})
        + chunk({}, finish="stop")
    )


def test_citations_without_a_finish_go_out_with_finish() -> None:
    enc = encoder()
    data = enc.encode([TextEvent("x"), CitationEvent(Citation("https://a.example", "A"))]) + enc.finish()
    annotation = {
        "type": "url_citation",
        "url_citation": {"url": "https://a.example", "title": "A", "start_index": 1, "end_index": 1},
    }
    assert data == ROLE + chunk({"content": "x"}) + chunk({"annotations": [annotation]}) + DONE


def test_error_after_the_stream_began() -> None:
    enc = encoder()
    enc.encode([TextEvent("par")])
    err = ProviderError("Overloaded", provider="anthropic", kind="upstream", status=529, error_type="overloaded_error")
    assert enc.error(err) == (
        b'data: {"error":{"message":"anthropic: Overloaded","type":"server_error","param":null,'
        b'"code":"overloaded_error"}}\n\n'
    )
    assert enc.finish() == b""  # no [DONE] after an error
    assert enc.error(err) == b""


def test_an_error_event_among_the_events_ends_the_stream() -> None:
    enc = encoder()
    err = ProviderError("reset", provider="openai", kind="connection", retryable=True)
    data = enc.encode([TextEvent("a"), ErrorEvent(err), TextEvent("b")])
    assert data == ROLE + chunk({"content": "a"}) + (
        b'data: {"error":{"message":"openai: reset","type":"server_error","param":null,"code":"connection_error"}}\n\n'
    )
    assert enc.encode([TextEvent("c")]) == b""
    assert enc.finish() == b""


def test_a_lone_surrogate_is_sent_escaped() -> None:
    enc = encoder()
    data = enc.encode([TextEvent("a\ud83d"), ToolCallEvent(0, "c", "f", "\udc00")])
    assert b'{"content":"a\\ud83d"}' in data
    chunks = sdk_chunks(data + enc.finish())
    assert chunks[1].choices[0].delta.content == "a\ud83d"


# --- the chunk stream, as the openai SDK reads it ----------------------------------------


def test_the_sdk_reads_text_reasoning_tool_calls_usage_and_finish() -> None:
    data = encode_all(
        [
            [ReasoningEvent("Hmm"), ReasoningEvent("", signature="sig")],
            [TextEvent("Let me check. ")],
            [ToolCallEvent(0, "call_a", "get_weather"), ToolCallEvent(0, arguments='{"ci')],
            [ToolCallEvent(0, arguments='ty": "Paris"}'), ToolCallEvent(1, "call_b", "get_weather", '{"city": ')],
            [ToolCallEvent(1, arguments='"Oslo"}'), UsageEvent(20, 9, 5, None, 4), FinishEvent("tool_calls")],
        ]
    )
    chunks = sdk_chunks(data)
    assert [c.id for c in chunks] == [ID] * len(chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (20, 9, 29)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 5
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 4

    final = sdk_final(data, tools=[WEATHER_TOOL])
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check. "
    assert extra(choice.message)["reasoning_content"] == "Hmm"
    assert extra(choice.message)["thinking_blocks"] == [
        {"index": 0, "type": "thinking", "thinking": "Hmm", "signature": "sig"}
    ]
    calls = choice.message.tool_calls
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "function", "get_weather", '{"city": "Paris"}'),
        ("call_b", "function", "get_weather", '{"city": "Oslo"}'),
    ]
    assert [c.function.parsed_arguments for c in calls] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert final.usage.total_tokens == 29
    assert final.usage.prompt_tokens_details.cached_tokens == 5


def test_the_sdk_accumulates_logprobs_annotations_and_thinking_blocks() -> None:
    data = encode_all(
        [
            [ReasoningEvent("a"), ReasoningEvent("b"), ReasoningEvent("", signature="s1")],
            [ReasoningEvent("", redacted="r"), ReasoningEvent("c", signature="s2")],
            [TextEvent("Hello"), LogprobsEvent((TokenLogprob("Hello", -0.1),)), TextEvent(" world")],
            [LogprobsEvent((TokenLogprob(" world", -0.2, (32,), (TopLogprob(" world", -0.2),)),))],
            [CitationEvent(Citation("https://w.example", "W", "world")), FinishEvent("stop")],
        ]
    )
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for c in sdk_chunks(data):
        state.handle_chunk(c)
    final = state.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Hello world"
    assert extra(message)["reasoning_content"] == "abc"
    assert extra(message)["thinking_blocks"] == [
        {"index": 0, "type": "thinking", "thinking": "ab", "signature": "s1"},
        {"index": 1, "type": "redacted_thinking", "data": "r"},
        {"index": 2, "type": "thinking", "thinking": "c", "signature": "s2"},
    ]
    assert message.annotations is not None
    [annotation] = message.annotations
    cite = annotation.url_citation
    assert (annotation.type, cite.url, cite.title, cite.start_index, cite.end_index) == (
        "url_citation",
        "https://w.example",
        "W",
        6,
        11,
    )
    logprobs = final.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [(t.token, t.logprob, t.bytes) for t in logprobs.content] == [("Hello", -0.1, None), (" world", -0.2, [32])]
    assert [(t.token, t.logprob) for t in logprobs.content[1].top_logprobs] == [(" world", -0.2)]
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is None  # no usage reported: none invented


def test_thinking_blocks_go_back_as_an_assistant_message() -> None:
    """The blocks the SDK accumulates are what `request_from_dict` takes back (for Claude)."""
    data = encode_all(
        [[ReasoningEvent("ab"), ReasoningEvent("", signature="s1"), ReasoningEvent("", redacted="r"), TextEvent("x")]]
    )
    message = sdk_final(data).choices[0].message
    turn = {"role": "assistant", "content": message.content, "thinking_blocks": extra(message)["thinking_blocks"]}
    request = request_from_dict({"model": MODEL, "messages": [*MESSAGES, turn, {"role": "user", "content": "go on"}]})
    assert request.messages[1].reasoning_blocks == (ReasoningBlock("ab", "s1"), ReasoningBlock("", None, "r"))


def test_an_error_in_the_stream_raises_api_error_in_the_sdk() -> None:
    enc = encoder()
    data = enc.encode([TextEvent("partial")])
    data += enc.error(ProviderError("upstream hung up", provider="openai", kind="timeout", retryable=True))
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for c in sdk_chunks_lazy(data):
            seen.append(c.choices[0].delta.content or "")
    assert seen == ["", "partial"]
    assert info.value.message == "openai: upstream hung up"
    assert info.value.body == {
        "message": "openai: upstream hung up",
        "type": "server_error",
        "param": None,
        "code": "timeout",
    }
    assert info.value.code == "timeout"
    assert info.value.type == "server_error"


def sdk_chunks_lazy(data: bytes) -> Any:
    client = sse_client(data)
    yield from client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.text(max_size=6), max_size=25), data=st.data())
def test_any_split_of_text_round_trips_through_the_sdk(pieces: list[str], data: st.DataObject) -> None:
    events: list[StreamEvent] = [TextEvent(p) for p in pieces]
    events.append(FinishEvent("stop"))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=4)))
    bounds = [0, *cuts, len(events)]
    encoded = encode_all([events[a:b] for a, b in itertools.pairwise(bounds)])
    chunks = sdk_chunks(encoded)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(pieces)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == sum(1 for p in pieces if p)
    final = sdk_final(encoded)
    assert final.choices[0].message.content == "".join(pieces)
    assert final.choices[0].finish_reason == "stop"


# --- our own decoder reads back what the encoder wrote -----------------------------------


def decoded(data: bytes) -> list[StreamEvent]:
    decoder = OpenAIStreamDecoder()
    out: list[StreamEvent] = []
    decoder.feed_into(data, out)
    decoder.close_into(out)
    assert not decoder.unknown_events
    return out


def reply_of(events: Sequence[StreamEvent]) -> Reply:
    builder = ReplyBuilder()
    builder.add_all(events)
    return builder.reply()


@settings(max_examples=80, deadline=None)
@given(
    parts=st.lists(
        st.one_of(
            st.builds(TextEvent, st.text(max_size=5)),
            st.builds(ReasoningEvent, st.text(max_size=5)),
            st.tuples(st.integers(0, 2), st.text(max_size=5)),
        ),
        max_size=20,
    ),
    usage=st.one_of(st.none(), st.builds(UsageEvent, st.integers(0, 99), st.integers(0, 99), st.integers(0, 9))),
    batch=st.integers(1, 7),
)
def test_our_openai_decoder_reads_back_the_same_reply(
    parts: list[TextEvent | ReasoningEvent | tuple[int, str]], usage: UsageEvent | None, batch: int
) -> None:
    events: list[StreamEvent] = []
    started: set[int] = set()
    for part in parts:
        if isinstance(part, tuple):  # a tool-call fragment; calls start in order of index
            index = min(part[0], len(started))
            if index in started:
                events.append(ToolCallEvent(index, arguments=part[1]))
            else:
                started.add(index)
                events.append(ToolCallEvent(index, f"call_{index}", f"fn{index}", part[1]))
        else:
            events.append(part)
    if usage is not None:
        events.append(usage)
    events.append(FinishEvent("tool_calls" if started else "stop"))
    data = encode_all([events[i : i + batch] for i in range(0, len(events), batch)])
    assert reply_of(decoded(data)) == reply_of(events)


def test_our_openai_decoder_reads_back_citations_and_logprobs() -> None:
    lp = TokenLogprob("Hi", -0.5, (72, 105), (TopLogprob("Hi", -0.5, (72, 105)),))
    events: list[StreamEvent] = [
        TextEvent("Hi there"),
        LogprobsEvent((lp,)),
        CitationEvent(Citation("https://a.example", "A", "there")),
        UsageEvent(3, 2, 1, None, 0),
        FinishEvent("stop"),
    ]
    assert reply_of(decoded(encode_all([events]))) == reply_of(events)


# --- whole completions -----------------------------------------------------------------


def json_client(
    status: int, headers: list[tuple[str, str]], body: bytes, calls: list[int] | None = None, max_retries: int = 0
) -> openai.OpenAI:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if calls is not None:
            calls.append(1)
        return httpx2.Response(status, headers=headers, content=body)

    return client_for(handler, max_retries)


def test_completion_body_exact_bytes() -> None:
    reply = Reply(text="Hi", finish_reason="stop", usage=Usage(5, 1))
    assert completion_body(reply, ID, MODEL, CREATED) == (
        b'{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"openai/gpt-4o",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},'
        b'"logprobs":null,"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
    )


def test_the_sdk_reads_a_whole_completion() -> None:
    reply = Reply(
        text="It is sunny in Paris.",
        reasoning="check weather",
        tool_calls=(
            ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
            ToolCall("call_b", "get_weather", '{"city": "Oslo"}', signature="c2ln"),
        ),
        finish_reason="tool_calls",
        usage=Usage(30, 12, 10, 4, 6),
        reasoning_blocks=(ReasoningBlock("check weather", "sig"), ReasoningBlock("", None, "opaque")),
        citations=(
            Citation("https://m.example", "Meteo", "sunny"),
            Citation("https://n.example", None, "elsewhere"),
            Citation(None, "doc"),
        ),
        logprobs=(TokenLogprob("It", -0.01, (73, 116)),),
    )
    body = completion_body(reply, ID, MODEL, CREATED)
    with json_client(200, [("content-type", "application/json")], body) as client:
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert (completion.id, completion.object, completion.created, completion.model) == (
        ID,
        "chat.completion",
        CREATED,
        MODEL,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    message = choice.message
    assert (message.role, message.content, message.refusal) == ("assistant", "It is sunny in Paris.", None)
    assert extra(message)["reasoning_content"] == "check weather"
    assert extra(message)["thinking_blocks"] == [
        {"type": "thinking", "thinking": "check weather", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    assert message.tool_calls is not None
    calls = [c for c in message.tool_calls if isinstance(c, ChatCompletionMessageFunctionToolCall)]
    assert [(c.id, c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_a", "function", "get_weather", {"city": "Paris"}),
        ("call_b", "function", "get_weather", {"city": "Oslo"}),
    ]
    assert extra(message.tool_calls[1])["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert message.annotations is not None
    assert [
        (a.url_citation.url, a.url_citation.title, a.url_citation.start_index, a.url_citation.end_index)
        for a in message.annotations
    ] == [("https://m.example", "Meteo", 6, 11), ("https://n.example", None, 21, 21)]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert [(t.token, t.logprob, t.bytes, t.top_logprobs) for t in choice.logprobs.content] == [
        ("It", -0.01, [73, 116], [])
    ]
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (30, 12, 42)
    assert usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens_details.cache_write_tokens) == (10, 4)
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 6


def test_a_completion_with_only_tool_calls_has_null_content_and_no_usage_unknown() -> None:
    reply = Reply(tool_calls=(ToolCall("c", "f", "{}"),), finish_reason="tool_calls")
    body = orjson.loads(completion_body(reply, ID, MODEL, CREATED))
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        "refusal": None,
    }
    assert "usage" not in body


# --- error responses, as the SDK raises them ---------------------------------------------


def raised(exc: BaseException) -> openai.APIStatusError:
    status, headers, body = error_response(exc)
    with json_client(status, headers, body) as client, pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize(
    ("exc", "cls", "status", "body"),
    [
        (
            UsageError("invalid request: messages[1].role must be one of [...], got 'bot'"),
            openai.BadRequestError,
            400,
            {
                "message": "invalid request: messages[1].role must be one of [...], got 'bot'",
                "type": "invalid_request_error",
                "param": "messages[1].role",
                "code": None,
            },
        ),
        (
            GatewayError("the request body is not valid JSON: x", code="invalid_json"),
            openai.BadRequestError,
            400,
            {
                "message": "the request body is not valid JSON: x",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_json",
            },
        ),
        (
            GatewayError("invalid or missing API key", status=401, type="authentication_error", code="invalid_api_key"),
            openai.AuthenticationError,
            401,
            {
                "message": "invalid or missing API key",
                "type": "authentication_error",
                "param": None,
                "code": "invalid_api_key",
            },
        ),
        (
            GatewayError("bad key", status=401),  # the default type, on a 401: OpenAI's type for it
            openai.AuthenticationError,
            401,
            {"message": "bad key", "type": "authentication_error", "param": None, "code": None},
        ),
        (
            GatewayError("model 'x/y' not found", status=404, param="model", code="model_not_found"),
            openai.NotFoundError,
            404,
            {
                "message": "model 'x/y' not found",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            },
        ),
        (
            GatewayError("the body exceeds 1048576 bytes", status=413, type="request_too_large"),
            openai.APIStatusError,
            413,
            {"message": "the body exceeds 1048576 bytes", "type": "invalid_request_error", "param": None, "code": None},
        ),
        (
            ProviderError("too many requests queued", provider="openai", kind="rate_limited", retryable=True),
            openai.RateLimitError,
            429,
            {
                "message": "openai: too many requests queued",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limited",
            },
        ),
        (
            ProviderError("circuit open", provider="anthropic", kind="circuit_open", retryable=True),
            openai.InternalServerError,
            503,
            {"message": "anthropic: circuit open", "type": "server_error", "param": None, "code": "circuit_open"},
        ),
        (
            ProviderError("no first byte within 30 s", provider="gemini", kind="timeout", retryable=True),
            openai.InternalServerError,
            504,
            {"message": "gemini: no first byte within 30 s", "type": "server_error", "param": None, "code": "timeout"},
        ),
        (
            ProviderError("connection refused", provider="openai", kind="connection", retryable=True),
            openai.InternalServerError,
            502,
            {
                "message": "openai: connection refused",
                "type": "server_error",
                "param": None,
                "code": "connection_error",
            },
        ),
        (
            ProviderError("unexpected content-type 'text/html'", provider="openai", kind="protocol", status=200),
            openai.InternalServerError,
            502,
            {
                "message": "openai: unexpected content-type 'text/html'",
                "type": "server_error",
                "param": None,
                "code": "protocol_error",
            },
        ),
        (
            ProviderError("boom", provider="openai", kind="internal"),
            openai.InternalServerError,
            500,
            {"message": "openai: boom", "type": "server_error", "param": None, "code": "internal_error"},
        ),
        (
            ProviderError(
                "Incorrect API key provided",
                provider="openai",
                kind="http_status",
                status=401,
                error_type="invalid_api_key",
            ),
            openai.AuthenticationError,
            401,
            {
                "message": "openai: Incorrect API key provided",
                "type": "authentication_error",
                "param": None,
                "code": "invalid_api_key",
            },
        ),
        (
            ProviderError(
                "Overloaded",
                provider="anthropic",
                kind="http_status",
                status=529,
                retryable=True,
                error_type="overloaded_error",
            ),
            openai.InternalServerError,
            529,
            {"message": "anthropic: Overloaded", "type": "server_error", "param": None, "code": "overloaded_error"},
        ),
        (
            RuntimeError("secret sk-123 in a bug"),
            openai.InternalServerError,
            500,
            {
                "message": "internal error in the gateway (RuntimeError)",
                "type": "server_error",
                "param": None,
                "code": "internal_error",
            },
        ),
    ],
)
def test_each_error_is_the_sdks_exception(
    exc: BaseException, cls: type[openai.APIStatusError], status: int, body: dict[str, Any]
) -> None:
    err = raised(exc)
    assert type(err) is cls
    assert err.status_code == status
    assert err.body == body
    assert (err.code, err.param, err.type) == (body["code"], body["param"], body["type"])


async def test_an_unknown_provider_is_a_404_model_not_found() -> None:
    request = request_from_dict({"model": "opneai/gpt-4o", "messages": MESSAGES})
    with pytest.raises(UsageError) as info:
        await plan(request, {}, None, ["openai", "anthropic"])  # type: ignore[arg-type]
    err = raised(info.value)
    assert type(err) is openai.NotFoundError
    assert err.body == {
        "message": str(info.value),
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert "did you mean 'openai'?" in err.message


async def test_a_model_without_a_model_id_is_a_400_on_model() -> None:
    request = request_from_dict({"model": "openai", "messages": MESSAGES})
    with pytest.raises(UsageError) as info:
        await plan(request, {}, None, ["openai"])  # type: ignore[arg-type]
    err = raised(info.value)
    assert type(err) is openai.BadRequestError
    assert (err.param, err.code) == ("model", None)


def test_error_headers() -> None:
    status, headers, _ = error_response(
        ProviderError("slow down", provider="openai", kind="http_status", status=429, retryable=True, retry_after=1.25)
    )
    assert status == 429
    assert headers == [
        ("content-type", "application/json"),
        ("x-should-retry", "true"),
        ("retry-after", "2"),
        ("retry-after-ms", "1250"),
    ]
    assert error_response(UsageError("invalid request: n must be 1 (a reply has one choice), got 2"))[1] == [
        ("content-type", "application/json"),
        ("x-should-retry", "false"),
    ]
    assert error_response(GatewayError("x", status=503))[1] == [("content-type", "application/json")]


@pytest.mark.parametrize(
    ("exc", "calls"),
    [
        # a 5xx the SDK would retry by its status, but sending again cannot help: one call
        (ProviderError("bug", provider="openai", kind="internal", retryable=False), 1),
        (ProviderError("Bad Gateway", provider="openai", kind="http_status", status=502, retryable=False), 1),
        # a 4xx the SDK would not retry, yet the upstream says it may: retried
        (ProviderError("busy", provider="x", kind="http_status", status=400, retryable=True, retry_after=0.001), 3),
        (ProviderError("circuit open", provider="x", kind="circuit_open", retryable=True, retry_after=0.001), 3),
        # the SDK honours retry-after-ms before retry-after
        (ProviderError("slow down", provider="x", kind="rate_limited", retryable=True, retry_after=0.002), 3),
        (UsageError("invalid request: n must be 1"), 1),
    ],
)
def test_the_sdk_retries_as_the_headers_say(exc: BaseException, calls: int) -> None:
    status, headers, body = error_response(exc)
    seen: list[int] = []
    with json_client(status, headers, body, seen, max_retries=2) as client, pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert len(seen) == calls


def test_a_retry_after_beyond_the_sdks_cap_stops_its_retries() -> None:
    status, headers, body = error_response(
        ProviderError("quota", provider="openai", kind="http_status", status=429, retryable=True, retry_after=3600)
    )
    seen: list[int] = []
    with json_client(status, headers, body, seen, max_retries=2) as client, pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert len(seen) == 1


# --- sans-IO ---------------------------------------------------------------------------

FORBIDDEN = frozenset({"trio", "httpx", "httpx2", "socket", "anyio", "ssl", "asyncio", "selectors"})
PACKAGE = pathlib.Path(streamactors.__file__).parent


def _imports(path: pathlib.Path) -> list[str]:
    """Every module the module at `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(PACKAGE.parent).parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_the_dialect_is_sans_io_through_every_module_it_imports() -> None:
    todo = ["streamactors.gateway.openai_api"]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        base = PACKAGE.parent.joinpath(*name.split("."))
        path = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
        if path is None:
            continue  # a name imported from a module, not a module
        for imported in _imports(path):
            assert imported.split(".")[0] not in FORBIDDEN, f"{name} imports {imported}"
            if imported.startswith("streamactors."):
                todo.append(imported)
    assert "streamactors.request_dict" in seen and "streamactors.models" in seen
