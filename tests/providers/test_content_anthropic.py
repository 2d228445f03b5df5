"""Content parts and prompt caching on Claude's Messages API end to end over real sockets
(Anthropic's own, and Vertex AI's Claude models), issue 13: each OpenAI-style part reaches the
fake upstream as the Messages API block the anthropic SDK sends for it (text, image with a
base64 or url source, document), `cache_control` on system parts, content parts and tools;
a part the provider cannot take is a `UsageError` from `service.complete` before anything is
sent. The bodies are compared with the anthropic SDK's own for the same content."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from streamactors import Config, UsageError, open_service
from streamactors.testing import FakeUpstream

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
NAMES = {"anthropic": "Anthropic", "vertex": r"Vertex AI \(Claude\)"}

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n").decode()
NOTES = "Notes: 日本語 — line 1\nline 2\n"
IMAGE_URL = "https://example.com/cat.png"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


def config(fake: FakeUpstream, provider: str) -> Config:
    table = {
        "anthropic": {"kind": "anthropic", "api_key": "sk-ant-test-0123456789", "base_url": fake.base_url},
        "vertex": {
            "kind": "vertex",
            "access_token": "ya29.test-0123456789",
            "project": "test-project",
            "location": "us-central1",
            "base_url": fake.base_url,
        },
    }[provider]
    return Config.from_dict({"providers": {provider: {**table, **COMMON}}})


def model(provider: str) -> str:
    return f"{provider}/claude-fake~tokens=3"


def image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, **extra}


def file(data_url: str, filename: str | None = None, **extra: Any) -> dict[str, Any]:
    inner = {"file_data": data_url, **({"filename": filename} if filename else {})}
    return {"type": "file", "file": inner, **extra}


def conversation(*, image_url: bool) -> list[dict[str, Any]]:
    """Every part kind an OpenAI-style request can give Claude, with cache markers; the https
    image only where the API takes URL sources."""
    user_parts: list[dict[str, Any]] = [
        {"type": "text", "text": "Compare these.", "cache_control": HOUR},
        image(f"data:image/png;base64,{PNG}", cache_control=EPHEMERAL),
        file(f"data:application/pdf;base64,{PDF}", "report.pdf"),
        file(
            "data:text/plain;charset=utf-8;base64," + base64.b64encode(NOTES.encode()).decode(),
            "notes.txt",
            cache_control=EPHEMERAL,
        ),
    ]
    if image_url:
        user_parts.insert(2, image(IMAGE_URL))
    return [
        {"role": "system", "content": [{"type": "text", "text": "You are terse.", "cache_control": EPHEMERAL}]},
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": user_parts},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}],
        },
        {
            "role": "tool",
            "tool_call_id": "toolu_1",
            "content": [{"type": "text", "text": "a photo"}, image(f"data:image/jpeg;base64,{PNG}")],
        },
    ]


TOOLS = [
    {
        "type": "function",
        "function": {"name": "look", "description": "Look", "parameters": SCHEMA},
        "cache_control": EPHEMERAL,
    }
]


def expected_blocks(*, image_url: bool) -> dict[str, Any]:
    """The `system`, `messages` and `tools` of the Messages API body for `conversation()`."""
    user_blocks: list[dict[str, Any]] = [
        {"type": "text", "text": "Compare these.", "cache_control": HOUR},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
            "cache_control": EPHEMERAL,
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            "title": "report.pdf",
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": NOTES},
            "title": "notes.txt",
            "cache_control": EPHEMERAL,
        },
    ]
    if image_url:
        user_blocks.insert(2, {"type": "image", "source": {"type": "url", "url": IMAGE_URL}})
    return {
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": EPHEMERAL},
            {"type": "text", "text": "Answer in English."},
        ],
        "messages": [
            {"role": "user", "content": user_blocks},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "look", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [
                            {"type": "text", "text": "a photo"},
                            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}},
                        ],
                    },
                ],
            },
        ],
        "tools": [{"name": "look", "description": "Look", "input_schema": SCHEMA, "cache_control": EPHEMERAL}],
    }


@pytest.mark.parametrize("provider", ["anthropic", "vertex"])
async def test_every_part_kind_arrives_as_its_messages_api_block(fake: FakeUpstream, provider: str) -> None:
    """Vertex AI takes no URL sources, so its request has the data-URL parts only."""
    image_url = provider == "anthropic"
    request = {
        "model": model(provider),
        "messages": conversation(image_url=image_url),
        "tools": TOOLS,
        "max_tokens": 64,
    }
    async with open_service(config(fake, provider)) as service:
        reply = await service.complete(request)
    assert reply.finish_reason == "stop"
    body = fake.requests[-1].json()
    expected: dict[str, Any] = {"max_tokens": 64, **expected_blocks(image_url=image_url), "stream": True}
    if provider == "anthropic":
        expected["model"] = "claude-fake~tokens=3"
        assert fake.requests[-1].path == "/v1/messages"
    else:
        expected["anthropic_version"] = "vertex-2023-10-16"
        assert fake.requests[-1].path.endswith("/publishers/anthropic/models/claude-fake~tokens%3D3:streamRawPredict")
    assert body == expected


@pytest.mark.parametrize("provider", ["anthropic", "vertex"])
async def test_a_system_prompt_without_markers_stays_one_string(fake: FakeUpstream, provider: str) -> None:
    """Text parts of a system message are its text; messages are joined by blank lines, as before."""
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
        {"role": "developer", "content": "No lists."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    async with open_service(config(fake, provider)) as service:
        await service.complete({"model": model(provider), "messages": messages})
    body = fake.requests[-1].json()
    assert body["system"] == "Be brief.\n\nNo lists."
    assert body["messages"] == [{"role": "user", "content": "hi"}]


REFUSED = [
    (
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        r"messages\[0\]\.content\[1\]: audio input is not supported by {name}; remove that content part",
    ),
    (
        image("data:image/bmp;base64,Qk0="),
        r"messages\[0\]\.content\[1\]: image type 'image/bmp' is not supported by {name}; send image/jpeg",
    ),
    (
        file("data:application/zip;base64,UEsDBA==", "a.zip"),
        r"messages\[0\]\.content\[1\]: document type 'application/zip' is not supported by {name}",
    ),
    (
        {"type": "file", "file": {"file_id": "file-abc123"}},
        r"messages\[0\]\.content\[1\]: file_id \(an uploaded file\) is not supported by {name}; send the document "
        r"inline as file_data",
    ),
]


@pytest.mark.parametrize("provider", ["anthropic", "vertex"])
@pytest.mark.parametrize(("part", "error"), REFUSED, ids=["audio", "bmp", "zip", "file_id"])
async def test_a_part_claude_cannot_take_is_refused_before_anything_is_sent(
    fake: FakeUpstream, provider: str, part: dict[str, Any], error: str
) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "listen"}, part]}]
    async with open_service(config(fake, provider)) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=error.format(name=NAMES[provider])):
            await service.complete({"model": model(provider), "messages": messages})
        assert len(fake.requests) == before


async def test_an_image_in_a_system_message_is_refused(fake: FakeUpstream) -> None:
    messages = [
        {"role": "system", "content": [image(f"data:image/png;base64,{PNG}")]},
        {"role": "user", "content": "hi"},
    ]
    async with open_service(config(fake, "anthropic")) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=r"messages\[0\]\.content\[0\]: a system prompt takes only text"):
            await service.complete({"model": model("anthropic"), "messages": messages})
        assert len(fake.requests) == before


# --- the anthropic SDK's bodies for the same content ---------------------------------------


def sdk_body(vertex: bool = False, **create: Any) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of `anthropic.Anthropic().messages.create(..., stream=True)`, or of
    `anthropic.AnthropicVertex()`'s with `vertex`."""
    anthropic = pytest.importorskip("anthropic")
    httpx2 = pytest.importorskip("httpx2")
    sent: list[tuple[str, dict[str, Any]]] = []

    def handler(request: Any) -> Any:
        sent.append((request.url.path, json.loads(request.content)))
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"")

    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    if vertex:
        client = anthropic.AnthropicVertex(
            region="us-central1",
            project_id="test-project",
            access_token="ya29.test",
            http_client=http_client,
            max_retries=0,
        )
    else:
        client = anthropic.Anthropic(api_key="sk-ant-test", max_retries=0, http_client=http_client)
    client.messages.create(stream=True, **create).close()
    client.close()
    return sent[0]


def sdk_conversation(*, image_url: bool) -> dict[str, Any]:
    """`conversation()` written as the anthropic SDK's docs write each block."""
    user_blocks: list[dict[str, Any]] = [
        {"type": "text", "text": "Compare these.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            "title": "report.pdf",
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": NOTES},
            "title": "notes.txt",
            "cache_control": {"type": "ephemeral"},
        },
    ]
    if image_url:
        user_blocks.insert(2, {"type": "image", "source": {"type": "url", "url": IMAGE_URL}})
    return {
        "model": "claude-fake~tokens=3",
        "max_tokens": 64,
        "system": [
            {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Answer in English."},
        ],
        "messages": [
            {"role": "user", "content": user_blocks},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "look", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [
                            {"type": "text", "text": "a photo"},
                            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}},
                        ],
                    }
                ],
            },
        ],
        "tools": [
            {"name": "look", "description": "Look", "input_schema": SCHEMA, "cache_control": {"type": "ephemeral"}}
        ],
    }


@pytest.mark.parametrize("provider", ["anthropic", "vertex"])
async def test_the_blocks_equal_the_anthropic_sdks(fake: FakeUpstream, provider: str) -> None:
    image_url = provider == "anthropic"
    sdk_path, sdk = sdk_body(provider == "vertex", **sdk_conversation(image_url=image_url))
    request = {
        "model": model(provider),
        "messages": conversation(image_url=image_url),
        "tools": TOOLS,
        "max_tokens": 64,
    }
    async with open_service(config(fake, provider)) as service:
        await service.complete(request)
    ours = fake.requests[-1].json()
    assert fake.requests[-1].path == sdk_path.replace("=", "%3D")
    # anthropic_version aside: this SDK sends its API version there, where Vertex AI's Claude
    # docs (and this library) send "vertex-2023-10-16".
    ours.pop("anthropic_version", None)
    sdk.pop("anthropic_version", None)
    assert ours == sdk


async def test_a_cached_prompt_equals_the_sdks_minimal_form(fake: FakeUpstream) -> None:
    """The prompt-caching docs' example: a cached system block and a string user turn."""
    _, sdk = sdk_body(
        model="claude-fake~tokens=3",
        max_tokens=64,
        system=[{"type": "text", "text": "Long context.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    request = {
        "model": model("anthropic"),
        "max_tokens": 64,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Long context.", "cache_control": EPHEMERAL}]},
            {"role": "user", "content": "hi"},
        ],
    }
    async with open_service(config(fake, "anthropic")) as service:
        await service.complete(request)
    assert fake.requests[-1].json() == sdk
