"""Content parts and logprobs on the OpenAI family end to end over real sockets (issue 13):
service -> provider actor -> the fake upstream, which records the exact request. Every part
kind arrives as the openai SDK sends it (cache_control stripped, kept on OpenRouter's text
parts and tools); a part a provider kind cannot take is a `UsageError` from
`service.complete` with no request sent; `logprobs: true` brings `Reply.logprobs` back in
OpenAI's shape."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from conftest import user
from streamactors import Config, UsageError, open_service
from streamactors.models import TokenLogprob, TopLogprob
from streamactors.testing import FakeUpstream

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n").decode()
WAV = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()
EPHEMERAL = {"type": "ephemeral"}

TEXT = {"type": "text", "text": "Compare these.", "cache_control": EPHEMERAL}
IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}
IMAGE_URL = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
FILE = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "r.pdf"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "look", "description": "Look", "parameters": {"type": "object", "properties": {}}},
        "cache_control": EPHEMERAL,
    }
]


def table(fake: FakeUpstream, provider: str) -> dict[str, Any]:
    base = fake.base_url
    t = {
        "openai": {"kind": "openai", "api_key": "sk-test-0123456789", "base_url": f"{base}/v1"},
        "azure": {"kind": "azure", "endpoint": base, "api_key": "azure-test-0123456789"},
        "openrouter": {"kind": "openrouter", "api_key": "sk-or-v1-test-0123456789", "base_url": f"{base}/api/v1"},
        "groq": {"kind": "groq", "api_key": "gsk_test-0123456789", "base_url": f"{base}/openai/v1"},
        "xai": {"kind": "xai", "api_key": "xai-test-0123456789", "base_url": f"{base}/v1"},
        "openai_compatible": {"kind": "openai_compatible", "base_url": f"{base}/compat/v1"},
        "perplexity": {"kind": "perplexity", "api_key": "pplx-test-0123456789", "base_url": base},
    }[provider]
    return {"providers": {provider: {**t, **COMMON}}}


def conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "Be terse.", "cache_control": EPHEMERAL}]},
        {"role": "user", "content": [TEXT, IMAGE, IMAGE_URL, FILE, AUDIO]},
    ]


@pytest.mark.parametrize("provider", ["openai", "azure", "openai_compatible"])
async def test_every_part_kind_arrives_as_the_sdk_sends_it(provider: str, fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, provider))) as service:
        reply = await service.complete({"model": f"{provider}/m~tokens=2", "messages": conversation(), "tools": TOOLS})
    assert reply.finish_reason == "stop"
    body = fake.requests[-1].json()
    assert body["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "Be terse."}]},
        {"role": "user", "content": [{"type": "text", "text": "Compare these."}, IMAGE, IMAGE_URL, FILE, AUDIO]},
    ]
    assert "cache_control" not in body["tools"][0]


async def test_openrouter_receives_cache_control_on_text_parts_and_tools(fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, "openrouter"))) as service:
        await service.complete({"model": "openrouter/m~tokens=2", "messages": conversation(), "tools": TOOLS})
    body = fake.requests[-1].json()
    assert body["messages"] == conversation()
    assert body["tools"] == TOOLS


@pytest.mark.parametrize(
    ("provider", "part", "name"),
    [("groq", FILE, "file"), ("groq", AUDIO, "audio"), ("xai", AUDIO, "audio"), ("perplexity", AUDIO, "audio")],
)
async def test_a_part_the_provider_cannot_take_is_refused_before_sending(
    provider: str, part: dict[str, Any], name: str, fake: FakeUpstream
) -> None:
    async with open_service(Config.from_dict(table(fake, provider))) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError) as info:
            await service.complete(
                {"model": f"{provider}/m~tokens=2", "messages": [{"role": "user", "content": [TEXT, part]}]}
            )
        assert len(fake.requests) == before
    assert str(info.value) == (
        f"messages[0].content[1]: {name} input is not supported by provider {provider!r} (kind {provider}); "
        "remove that content part"
    )


async def test_an_image_in_a_system_message_is_refused_before_sending(fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, "openai"))) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=r"messages\[0\]\.content\[0\]: a system message takes only text parts"):
            await service.complete({"model": "openai/m~tokens=2", "messages": [{"role": "system", "content": [IMAGE]}]})
        assert len(fake.requests) == before


async def test_perplexity_receives_a_file_as_its_file_url_chunk(fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, "perplexity"))) as service:
        await service.complete(
            {"model": "perplexity/m~tokens=2", "messages": [{"role": "user", "content": [IMAGE, FILE]}]}
        )
    assert fake.requests[-1].json()["messages"][0]["content"] == [
        IMAGE,
        {"type": "file_url", "file_url": {"url": PDF}, "file_name": "r.pdf"},
    ]


@pytest.mark.parametrize("provider", ["openai", "azure", "openrouter"])
async def test_logprobs_come_back_on_the_reply(provider: str, fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, provider))) as service:
        reply = await service.complete(
            {"model": f"{provider}/m~tokens=3", "messages": user(), "logprobs": True, "top_logprobs": 2}
        )
    assert fake.requests[-1].json()["logprobs"] is True
    assert reply.logprobs is not None and len(reply.logprobs) == 3
    assert "".join(t.token for t in reply.logprobs) == reply.text
    first = reply.logprobs[0]
    raw = first.token.encode()
    assert first == TokenLogprob(
        first.token,
        -0.01,
        tuple(raw),
        (
            TopLogprob(first.token, -0.01, tuple(raw)),
            TopLogprob(f"{first.token}~1", -1.01, tuple(f"{first.token}~1".encode())),
        ),
    )
    assert [t.logprob for t in reply.logprobs] == [-0.01, -0.02, -0.03]


async def test_no_logprobs_asked_none_on_the_reply(fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, "openai"))) as service:
        reply = await service.complete({"model": "openai/m~tokens=3", "messages": user()})
    assert reply.logprobs is None
