"""Request dicts (OpenAI chat-completions shape, as LiteLLM users write them) -> `ChatRequest`:
what is accepted, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from streamactors import ReasoningBlock, UsageError
from streamactors.content import AudioPart, CacheControl, FilePart, ImagePart, TextPart
from streamactors.models import Message, ResponseFormat
from streamactors.request_dict import request_from_dict


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"model": "o/m"}, '"messages" must be a non-empty list'),
        ({"model": "o/m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "o/m", "messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"model": "o/m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
        (
            {"model": "o/m", "messages": [{"role": "user", "content": "x"}], "reasoning": {"effort": "max"}},
            "reasoning.effort",
        ),
        (
            {"model": "o/m", "messages": [{"role": "user", "content": "x"}], "temprature": 1},
            "did you mean 'temperature'",
        ),
        ({"model": "o/m", "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]}, "tools[0]"),
    ],
)
def test_request_dict_errors(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        request_from_dict(data)
    assert fragment in str(info.value)


def test_request_dict_accepts_openai_shapes() -> None:
    req = request_from_dict(
        {
            "model": "openrouter/anthropic/claude-3.5-sonnet",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
            "max_completion_tokens": 9,
            "stop": "END",
            "reasoning_effort": "high",
        }
    )
    assert req.split_model() == ("openrouter", "anthropic/claude-3.5-sonnet")
    assert req.messages[0].content == (TextPart("a"), TextPart("b"))  # kept as parts, as sent
    assert req.max_tokens == 9 and req.stop == ("END",)
    assert req.reasoning is not None and req.reasoning.effort == "high"


def test_request_dict_takes_geminis_thought_signature_on_a_tool_call() -> None:
    """Gemini's OpenAI-compatible API carries it in extra_content.google.thought_signature."""
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [{**call, "extra_content": {"google": {"thought_signature": "sig=="}}}, call],
        },
    ]
    req = request_from_dict({"model": "gemini/g", "messages": messages})
    assert [tc.signature for tc in req.messages[1].tool_calls] == ["sig==", None]
    bad = [
        messages[0],
        {"role": "assistant", "tool_calls": [{**call, "extra_content": {"google": {"thought_signature": 5}}}]},
    ]
    with pytest.raises(UsageError, match=r"messages\[1\]\.tool_calls\[0\]\.extra_content\.google\.thought_signature"):
        request_from_dict({"model": "gemini/g", "messages": bad})


def test_request_dict_takes_thinking_blocks_on_an_assistant_message() -> None:
    """LiteLLM's `thinking_blocks` (Anthropic's own block shapes) carry signed thinking back."""
    blocks = [
        {"type": "thinking", "thinking": "Let me see.", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "EmwK"},
    ]
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "ok", "thinking_blocks": blocks}]
    req = request_from_dict({"model": "anthropic/c", "messages": messages})
    assert req.messages[1].reasoning_blocks == (ReasoningBlock("Let me see.", "c2ln"), ReasoningBlock("", None, "EmwK"))
    assert req.messages[0].reasoning_blocks == ()


@pytest.mark.parametrize(
    ("message", "where"),
    [
        (
            {"role": "user", "content": "x", "thinking_blocks": [{"type": "redacted_thinking", "data": "a"}]},
            r"messages\[0\]\.thinking_blocks: a list, on assistant messages only",
        ),
        (
            {"role": "assistant", "content": "x", "thinking_blocks": {"type": "thinking"}},
            r"messages\[0\]\.thinking_blocks: a list",
        ),
        (
            {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "thinking", "thinking": "t"}]},
            r"messages\[0\]\.thinking_blocks\[0\] must be .*signature",
        ),
        (
            {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "redacted_thinking", "data": 5}]},
            r"messages\[0\]\.thinking_blocks\[0\] must be",
        ),
    ],
)
def test_request_dict_names_a_bad_thinking_block(message: dict[str, object], where: str) -> None:
    with pytest.raises(UsageError, match=where):
        request_from_dict({"model": "anthropic/c", "messages": [message]})


def test_the_common_parameters_are_taken_under_openais_names() -> None:
    req = request_from_dict(
        {
            "model": "o/m",
            "messages": [{"role": "user", "content": "x"}],
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": -1,
            "top_k": 40,
            "user": "u-1",
            "parallel_tool_calls": False,
            "logprobs": True,
            "top_logprobs": 3,
            "service_tier": "flex",
            "metadata": {"team": "a"},
            "n": 1,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
            "extra_body": {"x_custom": {"a": 1}},
            "extra_headers": {"anthropic-beta": "b1"},
        }
    )
    assert (req.seed, req.presence_penalty, req.frequency_penalty, req.top_k) == (7, 0.5, -1, 40)
    assert (req.user, req.parallel_tool_calls, req.logprobs, req.top_logprobs) == ("u-1", False, True, 3)
    assert (req.service_tier, req.metadata) == ("flex", {"team": "a"})
    assert req.response_format == ResponseFormat("json_schema", {"type": "object"}, "r", None)
    assert req.extra_body == {"x_custom": {"a": 1}} and req.extra_headers == {"anthropic-beta": "b1"}
    plain = request_from_dict({"model": "o/m", "messages": [{"role": "user", "content": "x"}]})
    assert plain.seed is plain.response_format is plain.extra_body is None
    assert request_from_dict({**_BASE, "response_format": {"type": "json_object"}}).response_format == ResponseFormat(
        "json_object"
    )
    assert request_from_dict({**_BASE, "response_format": {"type": "text"}}).response_format is None


_BASE: dict[str, Any] = {"model": "o/m", "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"n": 2}, "n must be 1"),
        ({"seed": "7"}, "seed must be int"),
        ({"seed": True}, "seed must be int"),
        ({"top_k": 1.5}, "top_k must be int"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls must be bool"),
        ({"metadata": {"a": 1}}, "metadata must be an object of strings"),
        ({"extra_headers": ["x"]}, "extra_headers must be an object of strings"),
        ({"extra_body": "x"}, "extra_body must be an object"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}, "strict": "y"}}}, "strict"),
    ],
)
def test_bad_parameters_name_the_field(extra: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        request_from_dict({**_BASE, **extra})


def test_has_parameters_sees_each_optional_parameter() -> None:
    """The codecs skip the parameters' mapping when `has_parameters()` is False, so it must see
    every one of them: each field of ChatRequest beyond the core ones is in PARAMETERS."""
    import attrs

    from streamactors.models import PARAMETERS, ChatRequest, Message

    core = {"model", "messages", "max_tokens", "temperature", "top_p", "stop", "tools", "tool_choice"}
    core |= {"reasoning", "request_id", "extra_body", "extra_headers"}  # passthrough is applied apart
    assert set(PARAMETERS) == {f.name for f in attrs.fields(ChatRequest)} - core
    plain = ChatRequest("o/m", (Message("user", "x"),))
    assert not plain.has_parameters()
    values = {"metadata": {"a": "b"}, "response_format": ResponseFormat("json_object"), "parallel_tool_calls": False}
    for name in PARAMETERS:
        assert attrs.evolve(plain, **{name: values.get(name, 0)}).has_parameters(), name


def test_request_dict_content_parts_of_every_kind() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    pdf = "data:application/pdf;base64,JVBERi0="
    req = request_from_dict(
        {
            "model": "anthropic/claude",
            "messages": [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                },
                {
                    "role": "user",
                    "content": [
                        "plain",
                        {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
                        {"type": "image_url", "image_url": "https://example.com/cat.jpg"},
                        {
                            "type": "file",
                            "file": {"file_data": pdf, "filename": "a.pdf"},
                        },
                        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    ],
                },
            ],
            "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}],
        }
    )
    assert req.messages[0].content == (TextPart("rules", CacheControl("ephemeral", "1h")),)
    assert req.messages[1].content == (
        TextPart("plain"),
        ImagePart(png, "low"),
        ImagePart("https://example.com/cat.jpg"),
        FilePart(pdf, "a.pdf"),
        AudioPart("UklGRg==", "wav"),
    )
    assert req.tools[0].cache_control == CacheControl()


@pytest.mark.parametrize(
    ("part", "fragment"),
    [
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "messages[0].content[0].image_url.url"),
        ({"type": "image_url", "image_url": {"url": "data:,x", "detail": "huge"}}, "detail"),
        ({"type": "file", "file": {"filename": "a.pdf"}}, "messages[0].content[0].file needs file_data"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA"}}, "input_audio.format"),
        ({"type": "text", "text": "x", "cache_control": {"type": "permanent"}}, "cache_control"),
        ({"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "2h"}}, "ttl"),
        ({"type": "video", "video": {}}, '"text", "image_url", "file" or "input_audio"'),
        (7, "must be a content part object"),
    ],
)
def test_request_dict_content_part_errors(part: Any, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        request_from_dict({"model": "o/m", "messages": [{"role": "user", "content": [part]}]})
    assert fragment in str(info.value)


def test_a_cloud_storage_image_url_is_taken_as_it_is() -> None:
    """Vertex AI's Gemini models read gs:// objects themselves (the other providers refuse them)."""
    req = request_from_dict(
        {
            "model": "vertex/gemini",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "gs://b/cat.png"}}]}],
        }
    )
    assert req.messages[0].content == (ImagePart("gs://b/cat.png"),)


def test_message_content_converter_makes_parts_a_tuple() -> None:
    m = Message("user", ["a", ImagePart("data:image/png;base64,AAAA")])
    assert m.content == (TextPart("a"), ImagePart("data:image/png;base64,AAAA"))
    with pytest.raises(TypeError):
        Message("user", [{"type": "text", "text": "dicts go through request_from_dict"}])
