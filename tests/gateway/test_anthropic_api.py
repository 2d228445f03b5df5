"""The gateway's Anthropic Messages dialect (sans-IO): requests parsed into ours, our events
encoded as the API streams them, whole replies, errors.

The oracles are the official anthropic SDK (the bodies it sends are parsed, and built again by
`wire.anthropic` into the same body; what it reads from our bytes is what we encoded; our
errors raise its exception classes) and our own Anthropic stream decoder.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamactors.content import CacheControl, FilePart, ImagePart, TextPart
from streamactors.errors import ProviderError, UsageError
from streamactors.gateway.anthropic_api import (
    PING,
    MessagesCall,
    MessageStreamEncoder,
    error_response,
    message_body,
    parse_request,
)
from streamactors.gateway.errors import GatewayError
from streamactors.models import (
    ChatRequest,
    Citation,
    CitationEvent,
    ErrorEvent,
    FinishEvent,
    LogprobsEvent,
    Message,
    Reasoning,
    ReasoningBlock,
    ReasoningEvent,
    Reply,
    ResponseFormat,
    StreamEvent,
    TextEvent,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from streamactors.reply import ReplyBuilder
from streamactors.wire.anthropic import AnthropicCodec, AnthropicStreamDecoder

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake png").decode()
PDF = base64.b64encode(b"%PDF-1.4 fake pdf").decode()
NOTES = "Meeting notes — 日本語.\nLine two."
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def body(**fields: Any) -> bytes:
    return orjson.dumps({"model": "claude-sonnet-4-5", "max_tokens": 256, **fields})


def parsed(**fields: Any) -> ChatRequest:
    return parse_request(body(**fields)).request


# --- requests: every block kind and field ---------------------------------------------------


def test_a_minimal_request() -> None:
    call = parse_request(body(messages=[{"role": "user", "content": "hi"}]))
    assert call == MessagesCall(
        ChatRequest("claude-sonnet-4-5", (Message("user", "hi"),), max_tokens=256), False, "claude-sonnet-4-5"
    )


def test_the_model_is_kept_as_given_and_stream_read() -> None:
    call = parse_request(body(model="gemini/gemini-2.5-pro", stream=True, messages=[{"role": "user", "content": "x"}]))
    assert (call.model, call.request.model, call.stream) == ("gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro", True)


def test_system_as_a_string_and_as_text_blocks_with_cache_control() -> None:
    user = [{"role": "user", "content": "hi"}]
    assert parsed(system="Be brief.", messages=user).messages == (Message("system", "Be brief."), Message("user", "hi"))
    assert parsed(system="", messages=user).messages == (Message("user", "hi"),)
    blocks = [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "Answer in English."},
    ]
    assert parsed(system=blocks, messages=user).messages[0] == Message(
        "system", (TextPart("You are terse.", CacheControl("ephemeral", "1h")), TextPart("Answer in English."))
    )


def test_user_blocks_text_image_and_document() -> None:
    content = [
        {"type": "text", "text": "Compare these.", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {
            "type": "image",
            "source": {"type": "url", "url": "https://example.com/a.jpg"},
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            "title": "report.pdf",
        },
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": NOTES}},
    ]
    notes = base64.b64encode(NOTES.encode()).decode()
    assert parsed(messages=[{"role": "user", "content": content}]).messages == (
        Message(
            "user",
            (
                TextPart("Compare these.", CacheControl()),
                ImagePart(f"data:image/png;base64,{PNG}"),
                ImagePart("https://example.com/a.jpg", None, CacheControl()),
                FilePart(f"data:application/pdf;base64,{PDF}", "report.pdf"),
                FilePart(f"data:text/plain;base64,{notes}"),
            ),
        ),
    )


def test_replayed_citations_on_a_text_block_are_left_out() -> None:
    cited = {
        "type": "web_search_result_location",
        "cited_text": "x",
        "url": "https://a.example",
        "title": "A",
        "encrypted_index": "abc",
    }
    turn = {"role": "assistant", "content": [{"type": "text", "text": "Per A, x.", "citations": [cited]}]}
    assert parsed(messages=[{"role": "user", "content": "q"}, turn]).messages[1] == Message(
        "assistant", (TextPart("Per A, x."),)
    )


def test_tool_results_become_tool_messages_in_order() -> None:
    content = [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": '{"temp": 21}'},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_b",
            "content": [
                {"type": "text", "text": "see image"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}},
            ],
            "is_error": True,
        },
        {"type": "tool_result", "tool_use_id": "toolu_c"},
        {"type": "text", "text": "Thanks"},
    ]
    assert parsed(messages=[{"role": "user", "content": content}]).messages == (
        Message("tool", '{"temp": 21}', tool_call_id="toolu_a"),
        Message("tool", (TextPart("see image"), ImagePart(f"data:image/jpeg;base64,{PNG}")), tool_call_id="toolu_b"),
        Message("tool", "", tool_call_id="toolu_c"),
        Message("user", (TextPart("Thanks"),)),
    )


def test_text_before_a_tool_result_stays_before_it() -> None:
    content = [{"type": "text", "text": "first"}, {"type": "tool_result", "tool_use_id": "t", "content": "r"}]
    assert parsed(messages=[{"role": "user", "content": content}]).messages == (
        Message("user", (TextPart("first"),)),
        Message("tool", "r", tool_call_id="t"),
    )


def test_a_tool_results_cache_control_marks_its_last_content_block() -> None:
    cc = {"type": "ephemeral", "ttl": "5m"}
    as_string = {"type": "tool_result", "tool_use_id": "t", "content": "r", "cache_control": cc}
    as_blocks = {
        "type": "tool_result",
        "tool_use_id": "t",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "cache_control": cc,
    }
    marked = CacheControl("ephemeral", "5m")
    assert parsed(messages=[{"role": "user", "content": [as_string]}]).messages == (
        Message("tool", (TextPart("r", marked),), tool_call_id="t"),
    )
    assert parsed(messages=[{"role": "user", "content": [as_blocks]}]).messages == (
        Message("tool", (TextPart("a"), TextPart("b", marked)), tool_call_id="t"),
    )


def test_an_assistant_turn_thinking_text_and_tool_use() -> None:
    content = [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque=="},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris", "n": [1, 2]}},
        {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}},
    ]
    assert parsed(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]).messages[
        1
    ] == Message(
        "assistant",
        (TextPart("Checking."),),
        (
            ToolCall("toolu_a", "get_weather", '{"city":"Paris","n":[1,2]}'),
            ToolCall("toolu_b", "get_time", "{}"),
        ),
        reasoning_blocks=(ReasoningBlock("Let me think.", "sig-1"), ReasoningBlock("", None, "opaque==")),
    )


def test_an_unsigned_thinking_block_keeps_its_text_without_a_signature() -> None:
    turn = {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""}]}
    assert parsed(messages=[{"role": "user", "content": "q"}, turn]).messages[1] == Message(
        "assistant", None, reasoning_blocks=(ReasoningBlock("t", None),)
    )


def test_assistant_blocks_out_of_our_order_start_a_new_message() -> None:
    content = [
        {"type": "text", "text": "a"},
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        {"type": "text", "text": "b"},
        {"type": "thinking", "thinking": "c", "signature": "s"},
        {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
    ]
    assert parsed(messages=[{"role": "assistant", "content": content}]).messages == (
        Message("assistant", (TextPart("a"),), (ToolCall("t1", "f", "{}"),)),
        Message("assistant", (TextPart("b"),)),
        Message("assistant", None, (ToolCall("t2", "f", "{}"),), reasoning_blocks=(ReasoningBlock("c", "s"),)),
    )


def test_every_parameter() -> None:
    request = parsed(
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END", "STOP"],
        tools=[
            {"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA},
            {
                "type": "custom",
                "name": "noop",
                "input_schema": {"type": "object"},
                "cache_control": {"type": "ephemeral"},
            },
        ],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 2048},
        metadata={"user_id": "user-42"},
        service_tier="standard_only",
        output_config={"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}},
    )
    assert request == ChatRequest(
        "claude-sonnet-4-5",
        (Message("user", "hi"),),
        max_tokens=256,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop=("END", "STOP"),
        tools=(
            Tool("get_weather", "Weather", WEATHER_SCHEMA),
            Tool("noop", None, {"type": "object"}, CacheControl()),
        ),
        tool_choice="required",
        parallel_tool_calls=False,
        reasoning=Reasoning(budget_tokens=2048),
        user="user-42",
        service_tier="default",
        response_format=ResponseFormat("json_schema", WEATHER_SCHEMA),
    )


@pytest.mark.parametrize(
    ("choice", "ours", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "auto", "disable_parallel_tool_use": False}, "auto", None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
        (
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
            {"type": "function", "function": {"name": "f"}},
            False,
        ),
    ],
)
def test_tool_choice(choice: dict[str, Any], ours: Any, parallel: bool | None) -> None:
    request = parsed(messages=[{"role": "user", "content": "hi"}], tool_choice=choice)
    assert (request.tool_choice, request.parallel_tool_calls) == (ours, parallel)


def test_thinking_disabled_and_the_other_service_tier() -> None:
    request = parsed(messages=[{"role": "user", "content": "hi"}], thinking={"type": "disabled"}, service_tier="auto")
    assert (request.reasoning, request.service_tier) == (None, "auto")


def test_metadata_without_a_user_and_output_config_without_a_format() -> None:
    request = parsed(messages=[{"role": "user", "content": "hi"}], metadata={}, output_config={})
    assert (request.user, request.response_format) == (None, None)


USER = [{"role": "user", "content": "hi"}]

BAD_REQUESTS: list[tuple[dict[str, Any], str, str]] = [
    ({"messages": USER, "max_tokens": None}, "max_tokens", "is required"),
    ({"messages": USER, "max_tokens": -1}, "max_tokens", "non-negative integer"),
    ({"messages": USER, "max_tokens": True}, "max_tokens", "non-negative integer"),
    ({"messages": USER, "container": "c1"}, "container", "unknown or unsupported field"),
    ({"messages": USER, "model": ""}, "model", "non-empty string"),
    ({"messages": []}, "messages", "non-empty list"),
    ({"messages": "hi"}, "messages", "non-empty list"),
    ({"messages": ["hi"]}, "messages[0]", "must be an object"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role", '"user" or "assistant"'),
    ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name", "unknown"),
    ({"messages": [{"role": "user", "content": []}]}, "messages[0].content", "non-empty list"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "string or a non-empty list"),
    (
        {"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "t", "signature": "s"}]}]},
        "messages[0].content[0].type",
        '"text", "image", "document" or "tool_result"',
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
        "must be a string",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "foo": 1}]}]},
        "messages[0].content[0].foo",
        "unknown",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "persistent"}}]}
            ]
        },
        "messages[0].content[0].cache_control",
        '"ephemeral"',
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}],
                }
            ]
        },
        "messages[0].content[0].cache_control.ttl",
        '"5m" or "1h"',
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}
                    ],
                }
            ]
        },
        "messages[0].content[0].source.media_type",
        "image/jpeg, image/png, image/gif, image/webp",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]}
            ]
        },
        "messages[0].content[0].source.type",
        "uploaded files are not supported",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "image", "source": "https://x"}]}]},
        "messages[0].content[0].source",
        "must be an object",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}
            ]
        },
        "messages[0].content[0].source.type",
        "URL, content and file sources are not supported",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "document", "source": {"type": "base64", "media_type": "application/zip", "data": PDF}}
                    ],
                }
            ]
        },
        "messages[0].content[0].source.media_type",
        '"application/pdf"',
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                            "citations": {"enabled": True},
                        }
                    ],
                }
            ]
        },
        "messages[0].content[0].citations",
        "not supported",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": "r"}]}]},
        "messages[0].content[0].tool_use_id",
        "must be a string",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]}]},
        "messages[0].content[0].is_error",
        "true or false",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 3}]}]},
        "messages[0].content[0].content",
        "string or a list",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "cache_control": {"type": "ephemeral"}}],
                }
            ]
        },
        "messages[0].content[0].cache_control",
        "empty tool_result",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [{"type": "tool_reference", "tool_name": "x"}],
                        }
                    ],
                }
            ]
        },
        "messages[0].content[0].content[0].type",
        "must be",
    ),
    (
        {
            "messages": [
                {"role": "assistant", "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}
            ]
        },
        "messages[0].content[0].type",
        "an assistant turn takes",
    ),
    (
        {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]}]},
        "messages[0].content[0].input",
        "must be an object",
    ),
    (
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t",
                            "name": "f",
                            "input": {},
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                }
            ]
        },
        "messages[0].content[0].cache_control",
        "unknown",
    ),
    (
        {"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "t"}]}]},
        "messages[0].content[0].signature",
        "must be a string",
    ),
    ({"messages": USER, "system": 3}, "system", "string or a list"),
    ({"messages": USER, "system": [{"type": "image", "source": {}}]}, "system[0].type", '"text"'),
    ({"messages": USER, "tools": {"name": "f"}}, "tools", "must be a list"),
    (
        {"messages": USER, "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        "tools[0].type",
        "server tool 'web_search_20250305' is not supported",
    ),
    ({"messages": USER, "tools": [{"name": "f"}]}, "tools[0].input_schema", "must be an object"),
    ({"messages": USER, "tools": [{"name": "f", "input_schema": {}, "strict": True}]}, "tools[0].strict", "unknown"),
    ({"messages": USER, "tool_choice": {"type": "required"}}, "tool_choice.type", '"auto", "any", "tool" or "none"'),
    ({"messages": USER, "tool_choice": {"type": "tool"}}, "tool_choice.name", "must be a string"),
    (
        {"messages": USER, "tool_choice": {"type": "none", "disable_parallel_tool_use": True}},
        "tool_choice.disable_parallel_tool_use",
        "unknown",
    ),
    (
        {"messages": USER, "tool_choice": {"type": "auto", "disable_parallel_tool_use": 1}},
        "tool_choice.disable_parallel_tool_use",
        "true or false",
    ),
    ({"messages": USER, "tool_choice": "auto"}, "tool_choice", "must be an object"),
    ({"messages": USER, "thinking": {"type": "adaptive"}}, "thinking.type", "adaptive thinking is not supported"),
    ({"messages": USER, "thinking": {"type": "enabled"}}, "thinking.budget_tokens", "positive integer"),
    (
        {"messages": USER, "thinking": {"type": "enabled", "budget_tokens": 2048, "display": "omitted"}},
        "thinking.display",
        "unknown",
    ),
    ({"messages": USER, "metadata": {"user_id": "u", "team": "t"}}, "metadata.team", "unknown"),
    ({"messages": USER, "metadata": {"user_id": 7}}, "metadata.user_id", "must be a string"),
    ({"messages": USER, "service_tier": "priority"}, "service_tier", '"auto" or "standard_only"'),
    ({"messages": USER, "output_config": {"effort": "high"}}, "output_config.effort", "unknown"),
    (
        {"messages": USER, "output_config": {"format": {"type": "json_object"}}},
        "output_config.format.type",
        '"json_schema"',
    ),
    (
        {"messages": USER, "output_config": {"format": {"type": "json_schema"}}},
        "output_config.format.schema",
        "must be an object",
    ),
    ({"messages": USER, "stop_sequences": "END"}, "stop_sequences", "list of strings"),
    ({"messages": USER, "temperature": "hot"}, "temperature", "must be a number"),
    ({"messages": USER, "top_p": True}, "top_p", "must be a number"),
    ({"messages": USER, "top_k": 2.5}, "top_k", "non-negative integer"),
    ({"messages": USER, "stream": "yes"}, "stream", "true or false"),
]


@pytest.mark.parametrize(("fields", "param", "says"), BAD_REQUESTS, ids=[p for _, p, _ in BAD_REQUESTS])
def test_a_bad_field_is_a_400_naming_it(fields: dict[str, Any], param: str, says: str) -> None:
    data = {"model": "claude-sonnet-4-5", "max_tokens": 256, **fields}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(GatewayError) as info:
        parse_request(orjson.dumps(data))
    err = info.value
    assert (err.status, err.type, err.param) == (400, "invalid_request_error", param)
    assert err.message.startswith(f"{param}: ")
    assert says in err.message


@pytest.mark.parametrize(
    ("raw", "says"),
    [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"), (b"", "not valid JSON")],
)
def test_a_body_that_is_not_a_json_object_is_a_400(raw: bytes, says: str) -> None:
    with pytest.raises(GatewayError, match=says) as info:
        parse_request(raw)
    assert (info.value.status, info.value.type) == (400, "invalid_request_error")


# --- requests as the anthropic SDK sends them, parsed and built again by wire.anthropic --------


def sdk_client(handler: Callable[[Any], Any]) -> anthropic.Anthropic:
    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(api_key="x", base_url="http://test", http_client=http_client, max_retries=0)


def sdk_body(**create: Any) -> bytes:
    """The body `anthropic.Anthropic().messages.create(stream=True, ...)` sends."""
    sent: list[bytes] = []

    def handler(request: Any) -> Any:
        sent.append(request.content)
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"")

    with sdk_client(handler) as client:
        client.messages.create(stream=True, **create).close()
    return sent[0]


def rebuilt(raw: bytes) -> dict[str, Any]:
    """The body `wire.anthropic` builds for the request parsed from `raw`."""
    call = parse_request(raw)
    codec = AnthropicCodec("https://api.anthropic.com/v1/messages", {})
    spec = codec.build_request(call.request, call.model)
    assert spec.dropped == ()
    result: dict[str, Any] = orjson.loads(spec.body)
    return result


CONVERSATION: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Compare these.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                "title": "report.pdf",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": NOTES}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "They want a comparison.", "signature": "EqQBCgIYAhIM"},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va=="},
            {"type": "text", "text": "Checking the weather first."},
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "東京", "days": [1, 2]}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": '{"temp": 21}'},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_b",
                "content": [
                    {"type": "text", "text": "rain"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            },
            {"type": "text", "text": "And now?"},
        ],
    },
    {"role": "assistant", "content": "It rains in Tokyo."},
    {"role": "user", "content": "Thanks — 日本語 too?"},
]

SDK_REQUESTS: dict[str, dict[str, Any]] = {
    "minimal": {"messages": [{"role": "user", "content": "hi"}]},
    "conversation with every block kind, thinking": {
        "messages": CONVERSATION,
        "system": "Be brief.",
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "max_tokens": 4096,
        "tools": [
            {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA},
            {
                "name": "get_time",
                "input_schema": {"type": "object", "properties": {}},
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    },
    "sampling and every parameter": {
        "messages": [{"role": "user", "content": "hi"}],
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Answer in English."},
        ],
        # This SDK's create() has no sampling parameters: its users send them so.
        "extra_body": {"temperature": 0.3, "top_p": 0.9, "top_k": 5},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "service_tier": "standard_only",
        "output_config": {"format": {"type": "json_schema", "schema": WEATHER_SCHEMA}},
        "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}],
        "tool_choice": {"type": "tool", "name": "get_weather"},
    },
    "tool choice any, auto tier": {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "service_tier": "auto",
    },
    "tool choice none": {
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}],
        "tool_choice": {"type": "none"},
    },
}


def normalized(data: dict[str, Any]) -> dict[str, Any]:
    """A Messages API body with each string content written as its one text block (the two
    forms the API takes as the same)."""
    out = dict(data)
    out["messages"] = [
        {**m, "content": [{"type": "text", "text": m["content"]}]} if isinstance(m["content"], str) else m
        for m in data["messages"]
    ]
    return out


@pytest.mark.parametrize("name", list(SDK_REQUESTS))
def test_an_sdk_request_parsed_and_built_again_is_the_same_body(name: str) -> None:
    raw = sdk_body(model="claude-sonnet-4-5", **{"max_tokens": 256, **SDK_REQUESTS[name]})
    assert normalized(rebuilt(raw)) == normalized(json.loads(raw))


def test_an_sdk_request_built_again_is_the_same_bytes() -> None:
    # wire.anthropic writes keys in the SDK's order: for string content the bytes are equal.
    raw = sdk_body(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        stop_sequences=["END"],
        system="Be brief.",
        extra_body={"temperature": 0.5},
    )
    call = parse_request(raw)
    spec = AnthropicCodec("https://api.anthropic.com/v1/messages", {}).build_request(call.request, call.model)
    assert spec.body == raw


def test_what_the_round_trip_changes_is_what_the_model_has_no_place_for() -> None:
    # An unmarked system prompt in blocks is sent as its text; a tool result's is_error is left out.
    raw = sdk_body(
        model="m",
        max_tokens=8,
        system=[{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        messages=[
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "boom", "is_error": True}],
            },
        ],
    )
    again = rebuilt(raw)
    assert again["system"] == "Be brief."
    assert again["messages"][1]["content"] == [{"type": "tool_result", "tool_use_id": "t", "content": "boom"}]


# --- the event stream: exact bytes --------------------------------------------------------------


def sse(name: str, obj: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(obj, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def start(model: str = "claude-x") -> bytes:
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    return sse("message_start", {"type": "message_start", "message": message})


def block_start(index: int, block: dict[str, Any]) -> bytes:
    return sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def delta(index: int, d: dict[str, Any]) -> bytes:
    return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})


def stop(index: int) -> bytes:
    return sse("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(reason: str, usage: dict[str, Any]) -> bytes:
    return sse(
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage},
    ) + sse("message_stop", {"type": "message_stop"})


EVERYTHING: list[StreamEvent] = [
    ReasoningEvent("Let me "),
    ReasoningEvent("think."),
    ReasoningEvent("", signature="sig-1"),
    ReasoningEvent("", redacted="opaque=="),
    TextEvent("Hello, "),
    TextEvent('wörld "quoted"\n'),
    CitationEvent(Citation("https://a.example/p", "Page A", "the cited text")),
    ToolCallEvent(0, "toolu_a", "get_weather", ""),
    ToolCallEvent(0, None, None, '{"city": '),
    ToolCallEvent(0, None, None, '"Paris"}'),
    ToolCallEvent(1, "toolu_b", "get_time", "{}"),
    UsageEvent(input_tokens=120, output_tokens=42, cache_read_tokens=80, cache_write_tokens=10, reasoning_tokens=7),
    FinishEvent("tool_calls"),
]

EVERYTHING_BYTES = b"".join(
    [
        start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": "Let me "}),
        delta(0, {"type": "thinking_delta", "thinking": "think."}),
        delta(0, {"type": "signature_delta", "signature": "sig-1"}),
        stop(0),
        block_start(1, {"type": "redacted_thinking", "data": "opaque=="}),
        stop(1),
        block_start(2, {"type": "text", "text": ""}),
        delta(2, {"type": "text_delta", "text": "Hello, "}),
        delta(2, {"type": "text_delta", "text": 'wörld "quoted"\n'}),
        delta(
            2,
            {
                "type": "citations_delta",
                "citation": {
                    "type": "web_search_result_location",
                    "cited_text": "the cited text",
                    "url": "https://a.example/p",
                    "title": "Page A",
                    "encrypted_index": "",
                },
            },
        ),
        stop(2),
        block_start(3, {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}),
        delta(3, {"type": "input_json_delta", "partial_json": '{"city": '}),
        delta(3, {"type": "input_json_delta", "partial_json": '"Paris"}'}),
        stop(3),
        block_start(4, {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}),
        delta(4, {"type": "input_json_delta", "partial_json": "{}"}),
        stop(4),
        message_delta(
            "tool_use",
            {
                "input_tokens": 30,
                "cache_creation_input_tokens": 10,
                "cache_read_input_tokens": 80,
                "output_tokens": 42,
                "output_tokens_details": {"thinking_tokens": 7},
            },
        ),
    ]
)


def encoded(events: list[StreamEvent], model: str = "claude-x") -> bytes:
    enc = MessageStreamEncoder("msg_1", model)
    return enc.encode(events) + enc.finish()


def test_every_event_kind_as_the_api_streams_it() -> None:
    assert encoded(EVERYTHING) == EVERYTHING_BYTES


def test_the_bytes_do_not_depend_on_how_events_are_batched() -> None:
    enc = MessageStreamEncoder("msg_1", "claude-x")
    pieces = [enc.encode([]), *(enc.encode([e]) for e in EVERYTHING), enc.finish()]
    assert pieces[0] == start()
    assert b"".join(pieces) == EVERYTHING_BYTES


def test_a_text_reply() -> None:
    assert encoded([TextEvent("Hi"), TextEvent(""), TextEvent("!"), FinishEvent("stop")]) == b"".join(
        [
            start(),
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "Hi"}),
            delta(0, {"type": "text_delta", "text": "!"}),
            stop(0),
            message_delta("end_turn", {"output_tokens": 0}),
        ]
    )


def test_blocks_switch_in_order_and_text_after_a_tool_call_opens_a_new_block() -> None:
    events: list[StreamEvent] = [
        TextEvent("a"),
        ToolCallEvent(0, "t0", "f", '{"x":1}'),
        TextEvent("b"),
        ReasoningEvent("r"),
        TextEvent("c"),
        FinishEvent("stop"),
    ]
    assert encoded(events) == b"".join(
        [
            start(),
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "a"}),
            stop(0),
            block_start(1, {"type": "tool_use", "id": "t0", "name": "f", "input": {}}),
            delta(1, {"type": "input_json_delta", "partial_json": '{"x":1}'}),
            stop(1),
            block_start(2, {"type": "text", "text": ""}),
            delta(2, {"type": "text_delta", "text": "b"}),
            stop(2),
            block_start(3, {"type": "thinking", "thinking": "", "signature": ""}),
            delta(3, {"type": "thinking_delta", "thinking": "r"}),
            stop(3),
            block_start(4, {"type": "text", "text": ""}),
            delta(4, {"type": "text_delta", "text": "c"}),
            stop(4),
            # A turn with tool calls ends with "tool_use", whatever the provider said.
            message_delta("tool_use", {"output_tokens": 0}),
        ]
    )


def test_a_signature_alone_is_a_thinking_block_with_no_text() -> None:
    assert encoded([ReasoningEvent("", signature="s"), ReasoningEvent("a", signature="t")]) == b"".join(
        [
            start(),
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            delta(0, {"type": "signature_delta", "signature": "s"}),
            stop(0),
            block_start(1, {"type": "thinking", "thinking": "", "signature": ""}),
            delta(1, {"type": "thinking_delta", "thinking": "a"}),
            delta(1, {"type": "signature_delta", "signature": "t"}),
            stop(1),
            message_delta("end_turn", {"output_tokens": 0}),
        ]
    )


def test_a_citation_opens_a_text_block_and_one_without_a_url_is_left_out() -> None:
    events: list[StreamEvent] = [
        ToolCallEvent(0, "t0", "f", ""),
        CitationEvent(Citation(None, "Doc", "text")),
        CitationEvent(Citation("https://b.example", None, None)),
        LogprobsEvent((TokenLogprob("a", -0.1),)),
    ]
    assert encoded(events) == b"".join(
        [
            start(),
            block_start(0, {"type": "tool_use", "id": "t0", "name": "f", "input": {}}),
            stop(0),
            block_start(1, {"type": "text", "text": ""}),
            delta(
                1,
                {
                    "type": "citations_delta",
                    "citation": {
                        "type": "web_search_result_location",
                        "cited_text": "",
                        "url": "https://b.example",
                        "title": None,
                        "encrypted_index": "",
                    },
                },
            ),
            stop(1),
            message_delta("tool_use", {"output_tokens": 0}),
        ]
    )


def test_a_tool_call_without_an_id_gets_one_the_client_can_answer() -> None:
    out = encoded([ToolCallEvent(0, None, "f", "{}")])
    assert block_start(0, {"type": "tool_use", "id": "toolu_msg_1_0", "name": "f", "input": {}}) in out


def test_a_tool_call_resumed_after_another_block_is_refused() -> None:
    enc = MessageStreamEncoder("msg_1", "m")
    enc.encode([ToolCallEvent(0, "a", "f", "{"), ToolCallEvent(1, "b", "g", "{}")])
    with pytest.raises(ValueError, match="tool call 0 resumed after another content block began"):
        enc.encode([ToolCallEvent(0, None, None, "}")])


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("error", "end_turn"),
        ("something_new", "end_turn"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, reason: str) -> None:
    events: list[StreamEvent] = [TextEvent("x")]
    if finish is not None:
        events.append(FinishEvent(finish))
    assert encoded(events).endswith(message_delta(reason, {"output_tokens": 0}))


@pytest.mark.parametrize(
    ("usage", "native"),
    [
        (UsageEvent(100, 5), {"input_tokens": 100, "output_tokens": 5}),
        (
            UsageEvent(100, 5, cache_read_tokens=60),
            {"input_tokens": 40, "cache_read_input_tokens": 60, "output_tokens": 5},
        ),
        (UsageEvent(None, 5, cache_write_tokens=3), {"cache_creation_input_tokens": 3, "output_tokens": 5}),
        (UsageEvent(10, None), {"input_tokens": 10, "output_tokens": 0}),
    ],
)
def test_usage_in_message_delta_counts_input_without_the_cache(usage: UsageEvent, native: dict[str, Any]) -> None:
    assert encoded([usage, FinishEvent("stop")]).endswith(message_delta("end_turn", native))


def test_finish_before_any_event_is_a_whole_empty_message_and_nothing_follows_it() -> None:
    enc = MessageStreamEncoder("msg_1", "claude-x")
    assert not enc.started
    assert enc.finish() == start() + message_delta("end_turn", {"output_tokens": 0})
    assert enc.started
    assert (enc.finish(), enc.encode([TextEvent("late")]), enc.error(RuntimeError())) == (b"", b"", b"")


def test_an_error_after_the_start_ends_the_stream() -> None:
    enc = MessageStreamEncoder("msg_1", "claude-x")
    head = enc.encode([TextEvent("par")])
    err = ProviderError("Overloaded", provider="anthropic", kind="upstream", status=529, error_type="overloaded_error")
    assert enc.error(err) == sse(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "anthropic: Overloaded"}}
    )
    assert head.startswith(start())
    assert (enc.encode([TextEvent("more")]), enc.finish()) == (b"", b"")


def test_an_error_event_among_the_events_ends_the_stream_there() -> None:
    err = ProviderError("read timed out", provider="gemini", kind="timeout")
    enc = MessageStreamEncoder("msg_1", "claude-x")
    out = enc.encode([TextEvent("a"), ErrorEvent(err), TextEvent("never")])
    assert out == b"".join(
        [
            start(),
            block_start(0, {"type": "text", "text": ""}),
            delta(0, {"type": "text_delta", "text": "a"}),
            sse("error", {"type": "error", "error": {"type": "timeout_error", "message": "gemini: read timed out"}}),
        ]
    )
    assert enc.finish() == b""


def test_ping() -> None:
    assert sse("ping", {"type": "ping"}) == PING


# --- the event stream read by the anthropic SDK, and by our own decoder ----------------------


def sdk_stream(data: bytes) -> anthropic.types.Message:
    """The final message `client.messages.stream(...)` builds from `data`."""

    def handler(request: Any) -> Any:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=data)

    with (
        sdk_client(handler) as client,
        client.messages.stream(model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream,
    ):
        return stream.get_final_message()


def test_the_sdk_reads_every_event_kind() -> None:
    message = sdk_stream(EVERYTHING_BYTES)
    assert message.to_dict() == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque=="},
            {
                "type": "text",
                "text": 'Hello, wörld "quoted"\n',
                "citations": [
                    {
                        "type": "web_search_result_location",
                        "cited_text": "the cited text",
                        "url": "https://a.example/p",
                        "title": "Page A",
                        "encrypted_index": "",
                    }
                ],
            },
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "stop_details": None,
        "usage": {
            "input_tokens": 30,
            "cache_creation_input_tokens": 10,
            "cache_read_input_tokens": 80,
            "output_tokens": 42,
            "output_tokens_details": {"thinking_tokens": 7},
        },
    }


def test_our_decoder_reads_back_the_events_we_encoded() -> None:
    decoder = AnthropicStreamDecoder()
    out: list[StreamEvent] = []
    decoder.feed_into(EVERYTHING_BYTES, out)
    decoder.close_into(out)
    builder, again = ReplyBuilder(), ReplyBuilder()
    builder.add_all(EVERYTHING)
    again.add_all(out)
    citation = Citation("https://a.example/p", "Page A", "the cited text")
    assert again.reply() == builder.reply()
    assert again.reply().citations == (citation,)


def test_an_error_in_the_stream_raises_in_the_sdk() -> None:
    enc = MessageStreamEncoder("msg_1", "claude-x")
    err = ProviderError("Overloaded", provider="anthropic", kind="upstream", status=529, error_type="overloaded_error")
    data = enc.encode([TextEvent("partial")]) + enc.error(err)
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_stream(data)
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "anthropic: Overloaded"},
    }
    assert "anthropic: Overloaded" in info.value.message


FRAGMENTS = st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=8)


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(min_size=1, max_size=30),
    thinking=st.text(min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10),
    batch=st.integers(min_value=1, max_value=6),
)
def test_any_split_of_the_fragments_gives_the_same_message_through_the_sdk(
    text: str, thinking: str, cuts: list[int], batch: int
) -> None:
    arguments = json.dumps({"q": text, "n": [1, 2]}, ensure_ascii=False)
    events: list[StreamEvent] = [ReasoningEvent(t) for t in split(thinking, cuts)]
    events.append(ReasoningEvent("", signature="sig"))
    events += [TextEvent(t) for t in split(text, cuts)]
    events.append(ToolCallEvent(0, "toolu_1", "search", ""))
    events += [ToolCallEvent(0, None, None, a) for a in split(arguments, cuts[::-1])]
    events += [UsageEvent(50, 9), FinishEvent("tool_calls")]
    enc = MessageStreamEncoder("msg_p", "m")
    data = b"".join(enc.encode(events[i : i + batch]) for i in range(0, len(events), batch)) + enc.finish()
    message = sdk_stream(data)
    assert [b.to_dict() for b in message.content] == [
        {"type": "thinking", "thinking": thinking, "signature": "sig"},
        {"type": "text", "text": text},
        {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": text, "n": [1, 2]}},
    ]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("tool_use", 50, 9)


# --- whole replies ----------------------------------------------------------------------------


REPLY = Reply(
    text="It rains.",
    reasoning="First.Second.Unsigned.",
    tool_calls=(ToolCall("toolu_a", "get_weather", '{"city": "Paris"}'), ToolCall("toolu_b", "noop", "")),
    finish_reason="tool_calls",
    usage=Usage(200, 30, cache_read_tokens=150, cache_write_tokens=None, reasoning_tokens=12),
    reasoning_blocks=(
        ReasoningBlock("First.", "s1"),
        ReasoningBlock("", None, "red=="),
        ReasoningBlock("Second.", "s2"),
    ),
    citations=(Citation("https://w.example", "W", "rains"), Citation(None, "doc", "x")),
)


def test_message_body_exact_json() -> None:
    assert json.loads(message_body(REPLY, "msg_9", "claude-x")) == {
        "id": "msg_9",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "First.", "signature": "s1"},
            {"type": "redacted_thinking", "data": "red=="},
            {"type": "thinking", "thinking": "Second.", "signature": "s2"},
            {"type": "thinking", "thinking": "Unsigned.", "signature": ""},
            {
                "type": "text",
                "text": "It rains.",
                "citations": [
                    {
                        "type": "web_search_result_location",
                        "cited_text": "rains",
                        "url": "https://w.example",
                        "title": "W",
                        "encrypted_index": "",
                    }
                ],
            },
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "noop", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 50,
            "cache_read_input_tokens": 150,
            "output_tokens": 30,
            "output_tokens_details": {"thinking_tokens": 12},
        },
    }


def sdk_create(status: int, headers: list[tuple[str, str]], content: bytes) -> Any:
    def handler(request: Any) -> Any:
        return httpx2.Response(status, headers=headers, content=content)

    with sdk_client(handler) as client:
        return client.messages.create(
            model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=False
        )


def test_the_sdk_parses_message_body() -> None:
    message = sdk_create(200, [("content-type", "application/json")], message_body(REPLY, "msg_9", "claude-x"))
    assert [b.type for b in message.content] == [
        "thinking",
        "redacted_thinking",
        "thinking",
        "thinking",
        "text",
        "tool_use",
        "tool_use",
    ]
    assert (message.content[0].thinking, message.content[0].signature) == ("First.", "s1")
    assert message.content[4].text == "It rains."
    assert message.content[4].citations[0].url == "https://w.example"
    assert (message.content[5].name, message.content[5].input) == ("get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        50,
        150,
        30,
    )


def test_a_plain_reply_and_an_empty_one() -> None:
    plain = json.loads(message_body(Reply(text="Hi", finish_reason="length", usage=Usage(3, 1)), "m1", "x"))
    assert (plain["content"], plain["stop_reason"], plain["usage"]) == (
        [{"type": "text", "text": "Hi"}],
        "max_tokens",
        {"input_tokens": 3, "output_tokens": 1},
    )
    empty = json.loads(message_body(Reply(), "m2", "x"))
    assert (empty["content"], empty["stop_reason"], empty["usage"]) == (
        [],
        "end_turn",
        {"input_tokens": 0, "output_tokens": 0},
    )


def test_reasoning_with_no_blocks_is_one_unsigned_thinking_block() -> None:
    data = json.loads(message_body(Reply(text="a", reasoning="hmm", finish_reason="stop"), "m", "x"))
    assert data["content"] == [{"type": "thinking", "thinking": "hmm", "signature": ""}, {"type": "text", "text": "a"}]


# --- errors -------------------------------------------------------------------------------------


def provider_error(kind: str, status: int | None = None, **kw: Any) -> ProviderError:
    return ProviderError("upstream said no", provider="p", kind=kind, status=status, **kw)


ERRORS: list[tuple[BaseException, int, str, type[anthropic.APIStatusError]]] = [
    (GatewayError("messages: bad"), 400, "invalid_request_error", anthropic.BadRequestError),
    (
        GatewayError("no key", status=401, type="authentication_error"),
        401,
        "authentication_error",
        anthropic.AuthenticationError,
    ),
    (
        GatewayError("unknown model", status=404, type="not_found_error"),
        404,
        "not_found_error",
        anthropic.NotFoundError,
    ),
    (
        GatewayError("too big", status=413, type="request_too_large"),
        413,
        "request_too_large",
        anthropic.RequestTooLargeError,
    ),
    (
        GatewayError("openai's type", status=400, type="invalid_value"),
        400,
        "invalid_request_error",
        anthropic.BadRequestError,
    ),
    (
        UsageError("messages[0].content[1]: audio is not supported"),
        400,
        "invalid_request_error",
        anthropic.BadRequestError,
    ),
    (provider_error("http_status", 401), 401, "authentication_error", anthropic.AuthenticationError),
    (provider_error("http_status", 403), 403, "permission_error", anthropic.PermissionDeniedError),
    (provider_error("http_status", 404), 404, "not_found_error", anthropic.NotFoundError),
    (provider_error("http_status", 413), 413, "request_too_large", anthropic.RequestTooLargeError),
    (provider_error("http_status", 429, retryable=True), 429, "rate_limit_error", anthropic.RateLimitError),
    (provider_error("http_status", 500), 500, "api_error", anthropic.InternalServerError),
    (
        provider_error("http_status", 529, error_type="overloaded_error"),
        529,
        "overloaded_error",
        anthropic.OverloadedError,
    ),
    (
        provider_error("http_status", 400, error_type="INVALID_ARGUMENT"),
        400,
        "invalid_request_error",
        anthropic.BadRequestError,
    ),
    (
        provider_error("upstream", 529, error_type="overloaded_error"),
        529,
        "overloaded_error",
        anthropic.OverloadedError,
    ),
    (provider_error("rate_limited", retry_after=2.5), 429, "rate_limit_error", anthropic.RateLimitError),
    (provider_error("circuit_open"), 503, "api_error", anthropic.ServiceUnavailableError),
    (provider_error("timeout"), 504, "timeout_error", anthropic.GatewayTimeoutError),
    (provider_error("connection"), 502, "api_error", anthropic.InternalServerError),
    (provider_error("protocol"), 502, "api_error", anthropic.InternalServerError),
    (provider_error("upstream"), 502, "api_error", anthropic.InternalServerError),
    (provider_error("internal"), 500, "api_error", anthropic.InternalServerError),
    (RuntimeError("secret detail"), 500, "api_error", anthropic.InternalServerError),
]


@pytest.mark.parametrize(("exc", "status", "error_type", "cls"), ERRORS, ids=[repr(e[0])[:60] for e in ERRORS])
def test_each_error_raises_the_sdks_class(
    exc: BaseException, status: int, error_type: str, cls: type[anthropic.APIStatusError]
) -> None:
    code, headers, content = error_response(exc)
    assert (code, headers[0]) == (status, ("content-type", "application/json"))
    error = json.loads(content)
    assert error["type"] == "error" and error["error"]["type"] == error_type
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk_create(code, headers, content)
    assert type(info.value) is cls
    assert (info.value.status_code, info.value.body) == (status, error)


def test_error_messages_and_headers() -> None:
    assert error_response(provider_error("rate_limited", retry_after=2.5, retryable=True)) == (
        429,
        [
            ("content-type", "application/json"),
            ("retry-after", "3"),
            ("retry-after-ms", "2500"),
            ("x-should-retry", "true"),
        ],
        b'{"type":"error","error":{"type":"rate_limit_error","message":"p: upstream said no"}}',
    )
    assert error_response(provider_error("http_status", 400)) == (
        400,
        [("content-type", "application/json"), ("x-should-retry", "false")],
        b'{"type":"error","error":{"type":"invalid_request_error","message":"p: upstream said no"}}',
    )
    # Our own failure names only its class: its text may hold anything.
    assert error_response(RuntimeError("secret detail")) == (
        500,
        [("content-type", "application/json")],
        b'{"type":"error","error":{"type":"api_error","message":"internal error: RuntimeError"}}',
    )
    status, _, content = error_response(GatewayError("max_tokens: is required", param="max_tokens"))
    assert (status, json.loads(content)["error"]["message"]) == (400, "max_tokens: is required")


def test_a_bad_request_reaches_the_sdk_as_bad_request_naming_the_field() -> None:
    with pytest.raises(GatewayError) as info:
        parse_request(body(messages=USER, thinking={"type": "adaptive"}))
    with pytest.raises(anthropic.BadRequestError, match=r"thinking\.type: must be \"enabled\""):
        sdk_create(*error_response(info.value))
