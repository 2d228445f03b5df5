"""Content parts and logprobs on the OpenAI chat-completions codec (issue 13): the `messages` and
`tools` JSON equal to what the openai SDK sends for the same dicts, cache_control stripped
(kept on OpenRouter's text parts and tools), per-kind refusals before anything is sent, and
`logprobs.content` decoded to `LogprobsEvent`s for every split of the bytes."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from wire_harness import decode, event_dicts, every_split, feed

from streamactors.errors import UsageError, WireError
from streamactors.models import LogprobsEvent, StreamEvent, TextEvent, TokenLogprob, TopLogprob
from streamactors.request_dict import request_from_dict
from streamactors.wire.openai import OpenAICodec, OpenAIStreamDecoder

URL = "https://api.openai.com/v1/chat/completions"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n").decode()
WAV = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()
EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

# Every part kind, as a user of the openai SDK (or LiteLLM) writes it, with cache markers.
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": [{"type": "text", "text": "Be terse.", "cache_control": EPHEMERAL}]},
    {"role": "developer", "content": [{"type": "text", "text": "Cite sources."}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Compare these.", "cache_control": HOUR},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "r.pdf"}},
            {"type": "file", "file": {"file_id": "file-abc123"}},
            {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
        ],
    },
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "Looking."}],
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "a cat"}]},
    {"role": "user", "content": "And now?"},
]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {"name": "look", "description": "Look", "parameters": SCHEMA},
        "cache_control": EPHEMERAL,
    }
]


def without_cache(obj: Any) -> Any:
    """`obj` with every `cache_control` key removed (what a provider that caches by itself gets)."""
    if isinstance(obj, dict):
        return {k: without_cache(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [without_cache(v) for v in obj]
    return obj


def only_text_cache(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with cache_control kept on text parts only (OpenRouter's documented place)."""
    out = copy.deepcopy(messages)
    for m in out:
        if isinstance(m["content"], list):
            for p in m["content"]:
                if p["type"] != "text":
                    p.pop("cache_control", None)
    return out


def sdk_body(**create: Any) -> dict[str, Any]:
    """The JSON body of `openai.OpenAI().chat.completions.create(..., stream=True)`."""
    openai = pytest.importorskip("openai")
    httpx2 = pytest.importorskip("httpx2")
    sent: list[dict[str, Any]] = []

    def handler(request: Any) -> Any:
        sent.append(json.loads(request.content))
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"data: [DONE]\n\n")

    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    client = openai.OpenAI(api_key="sk-test", max_retries=0, http_client=http_client)
    client.chat.completions.create(stream=True, **create).close()
    client.close()
    return sent[0]


def our_body(kind: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    request = request_from_dict({"model": "x/gpt-4o", "messages": messages, **({"tools": tools} if tools else {})})
    spec = OpenAICodec(URL, {}, kind=kind, provider=kind).build_request(request, "gpt-4o")
    body: dict[str, Any] = orjson.loads(spec.body)
    return body


@pytest.mark.parametrize("kind", ["openai", "azure", "openai_compatible"])
def test_parts_equal_what_the_openai_sdk_sends_cache_control_stripped(kind: str) -> None:
    sdk = sdk_body(model="gpt-4o", messages=without_cache(MESSAGES), tools=without_cache(TOOLS))
    ours = our_body(kind, MESSAGES, TOOLS)
    assert ours["messages"] == sdk["messages"]
    assert ours["tools"] == sdk["tools"]
    assert "cache_control" not in json.dumps(ours)


def test_openrouter_keeps_cache_control_on_text_parts_and_tools() -> None:
    messages = copy.deepcopy(MESSAGES)
    messages[2]["content"][1]["cache_control"] = EPHEMERAL  # an image's: stripped
    sdk = sdk_body(model="gpt-4o", messages=only_text_cache(messages), tools=TOOLS)
    ours = our_body("openrouter", messages, TOOLS)
    assert ours["messages"] == sdk["messages"]
    assert ours["tools"] == sdk["tools"]
    assert ours["messages"][0]["content"][0]["cache_control"] == EPHEMERAL
    assert ours["messages"][2]["content"][0]["cache_control"] == HOUR
    assert "cache_control" not in ours["messages"][2]["content"][1]
    assert ours["tools"][0]["cache_control"] == EPHEMERAL


def test_string_content_stays_a_string() -> None:
    body = our_body("openai", [{"role": "user", "content": "hi"}])
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_litellm_image_url_string_is_sent_in_openai_shape() -> None:
    body = our_body("openai", [{"role": "user", "content": [{"type": "image_url", "image_url": "https://e.x/a.png"}]}])
    assert body["messages"][0]["content"] == [{"type": "image_url", "image_url": {"url": "https://e.x/a.png"}}]


def test_perplexity_file_goes_as_file_url_with_the_bare_base64() -> None:
    part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "r.pdf"}}
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    body = our_body("perplexity", [{"role": "user", "content": [{"type": "text", "text": "sum"}, image, part]}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "sum"},
        image,
        {"type": "file_url", "file_url": {"url": PDF}, "file_name": "r.pdf"},
    ]


def test_perplexity_file_id_is_refused() -> None:
    with pytest.raises(UsageError, match=r"messages\[0\]\.content\[0\]: file_id .* perplexity"):
        our_body("perplexity", [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}])


IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
FILE = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "r.pdf"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}}


@pytest.mark.parametrize(
    ("kind", "part", "name"),
    [
        ("groq", FILE, "file"),
        ("groq", AUDIO, "audio"),
        ("xai", AUDIO, "audio"),
        ("perplexity", AUDIO, "audio"),
    ],
)
def test_part_kinds_a_provider_cannot_take_are_refused(kind: str, part: dict[str, Any], name: str) -> None:
    with pytest.raises(UsageError) as info:
        our_body(kind, [{"role": "user", "content": [{"type": "text", "text": "x"}, part]}])
    assert str(info.value) == (
        f"messages[0].content[1]: {name} input is not supported by provider {kind!r} (kind {kind}); "
        "remove that content part"
    )


@pytest.mark.parametrize(
    ("kind", "part"),
    [("groq", IMAGE), ("xai", IMAGE), ("xai", FILE), ("perplexity", IMAGE), ("openrouter", AUDIO), ("azure", AUDIO)],
)
def test_part_kinds_a_provider_takes_are_sent(kind: str, part: dict[str, Any]) -> None:
    body = our_body(kind, [{"role": "user", "content": [part]}])
    assert body["messages"][0]["content"] == [part]


@pytest.mark.parametrize("role", ["system", "developer", "assistant", "tool"])
@pytest.mark.parametrize("part", [IMAGE, FILE, AUDIO])
def test_non_user_messages_take_text_parts_only(role: str, part: dict[str, Any]) -> None:
    message: dict[str, Any] = {"role": role, "content": [{"type": "text", "text": "x"}, part]}
    if role == "tool":
        message["tool_call_id"] = "call_1"
    with pytest.raises(UsageError, match=rf"messages\[0\]\.content\[1\]: a {role} message takes only text parts"):
        our_body("openai", [message])


# --- logprobs decoding -----------------------------------------------------------------------


def lp_chunk(text: str, logprobs: Any, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": text} if text else {}
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [choice]}


def entry(token: str, logprob: float, tops: Sequence[tuple[str, float]] = ()) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode()),
        "top_logprobs": [{"token": t, "logprob": p, "bytes": list(t.encode())} for t, p in tops],
    }


def sse(*objs: Any) -> bytes:
    return b"".join(b"data: " + orjson.dumps(o) + b"\n\n" for o in objs) + b"data: [DONE]\n\n"


STREAM = sse(
    lp_chunk("", None) | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None}]},
    lp_chunk("Hel", {"content": [entry("Hel", -0.1, [("Hel", -0.1), ("Hi", -2.5)])], "refusal": None}),
    lp_chunk("lo é", {"content": [entry("lo", -0.2), entry(" é", -1, [(" é", -1)])], "refusal": None}),
    lp_chunk("", {"content": [], "refusal": None}, "stop"),
)
EXPECTED: list[StreamEvent] = [
    TextEvent("Hel"),
    LogprobsEvent(
        (
            TokenLogprob(
                "Hel",
                -0.1,
                (72, 101, 108),
                (TopLogprob("Hel", -0.1, (72, 101, 108)), TopLogprob("Hi", -2.5, (72, 105))),
            ),
        )
    ),
    TextEvent("lo é"),
    LogprobsEvent(
        (
            TokenLogprob("lo", -0.2, (108, 111)),
            TokenLogprob(" é", -1.0, (32, 195, 169), (TopLogprob(" é", -1.0, (32, 195, 169)),)),
        )
    ),
]


def test_logprobs_follow_their_chunks_text_for_every_split() -> None:
    want = [*event_dicts(EXPECTED), {"type": "finish", "reason": "stop"}]
    assert decode(OpenAIStreamDecoder, [STREAM]) == want
    for pieces in every_split(STREAM):
        assert decode(OpenAIStreamDecoder, pieces) == want


def test_logprob_values_are_typed() -> None:
    events = feed(OpenAIStreamDecoder(), STREAM)
    lp = [e for e in events if type(e) is LogprobsEvent]
    assert lp[1].content[1].logprob == -1.0 and type(lp[1].content[1].logprob) is float
    assert lp[1].content[1].bytes == (32, 195, 169)


def test_a_plain_chunk_with_null_logprobs_stays_on_the_fast_path() -> None:
    assert decode(OpenAIStreamDecoder, [sse(lp_chunk("hi", None), lp_chunk("", None, "stop"))]) == [
        {"type": "text", "text": "hi"},
        {"type": "finish", "reason": "stop"},
    ]


def test_null_bytes_and_missing_top_logprobs_are_accepted() -> None:
    chunk = lp_chunk("a", {"content": [{"token": "a", "logprob": -0.5, "bytes": None}]})
    events = feed(OpenAIStreamDecoder(), sse(chunk))
    assert events[1] == LogprobsEvent((TokenLogprob("a", -0.5, None, ()),))


@pytest.mark.parametrize(
    "bad",
    [
        {"content": ["x"]},
        {"content": [{"token": "a"}]},
        {"content": [{"token": "a", "logprob": "low"}]},
        {"content": [{"token": "a", "logprob": True}]},
        {"content": [{"token": "a", "logprob": -1, "bytes": "ab"}]},
        {"content": [{"token": "a", "logprob": -1, "top_logprobs": [1]}]},
        {"content": "a"},
    ],
)
def test_malformed_logprobs_are_protocol_errors(bad: Any) -> None:
    with pytest.raises(WireError) as info:
        feed(OpenAIStreamDecoder(), sse(lp_chunk("a", bad)))
    assert info.value.kind == "protocol"
