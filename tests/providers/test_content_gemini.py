"""Content parts and logprobs on Gemini end to end over real sockets (issue 13), for the Gemini
API and Gemini models on Vertex AI: service -> provider actor -> the fake upstream, which records
the exact request. Each OpenAI-style part arrives as the part the google-genai SDK sends for it
(googleapis/python-genai `google/genai/models.py` `_Part_to_mldev`, `_Blob_to_mldev`,
`_FileData_to_mldev`; `types.py` `FunctionResponse`, `FunctionResponseBlob`): text as `text`,
data as `inlineData {data, mimeType}`, an image URL whose type its path shows as `fileData
{fileUri, mimeType}`, one whose type it does not show fetched by the library and sent as
`inlineData`, a Gemini 3 tool result's image in `functionResponse.parts`; `cache_control` is
stripped from parts, system parts and tools. A part Gemini cannot take is a `UsageError` from
`service.complete` with no request sent; `logprobs: true` brings `Reply.logprobs` back."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from conftest import user
from streamactors import Config, UsageError, open_service
from streamactors.models import TokenLogprob, TopLogprob
from streamactors.testing import FakeUpstream
from streamactors.testing.server import TINY_PNG

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
NAMES = {"gemini": "gemini", "vertex": "Vertex AI"}  # kind gemini is named by its config name
PNG = base64.b64encode(TINY_PNG).decode()
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n").decode()
WAV = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()
NOTES = "Notes: 日本語 — line 1\n"
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
EPHEMERAL = {"type": "ephemeral"}
IMAGE_URL = "https://example.com/photos/cat.png?X-Amz-Signature=abc"


def config(fake: FakeUpstream, provider: str) -> Config:
    table = {
        "gemini": {"kind": "gemini", "api_key": "AIza-test-0123456789abcdef", "base_url": fake.base_url},
        "vertex": {
            "kind": "vertex",
            "access_token": "ya29.test-0123456789abcdef",
            "project": "test-project",
            "location": "us-central1",
            "base_url": fake.base_url,
        },
    }[provider]
    return Config.from_dict({"providers": {provider: {**table, **COMMON}}})


def image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, **extra}


def conversation(untyped_url: str) -> list[dict[str, Any]]:
    """Every part kind an OpenAI-style request can give Gemini, with cache markers."""
    return [
        {"role": "system", "content": [{"type": "text", "text": "You are terse.", "cache_control": EPHEMERAL}]},
        {"role": "developer", "content": "Answer in English."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these.", "cache_control": EPHEMERAL},
                image(f"data:image/png;base64,{PNG}", cache_control=EPHEMERAL),
                image(IMAGE_URL),
                image(untyped_url),
                {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "r.pdf"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:text/plain;base64," + base64.b64encode(NOTES.encode()).decode()},
                },
                {"type": "input_audio", "input_audio": {"data": WAV, "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Looking."}],
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
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

EXPECTED: dict[str, Any] = {
    "contents": [
        {
            "parts": [
                {"text": "Compare these."},
                {"inlineData": {"data": PNG, "mimeType": "image/png"}},
                {"fileData": {"fileUri": IMAGE_URL, "mimeType": "image/png"}},
                {"inlineData": {"data": PNG, "mimeType": "image/png"}},  # fetched by the library
                {"inlineData": {"data": PDF, "mimeType": "application/pdf"}},
                {"inlineData": {"data": base64.b64encode(NOTES.encode()).decode(), "mimeType": "text/plain"}},
                {"inlineData": {"data": WAV, "mimeType": "audio/wav"}},
            ],
            "role": "user",
        },
        {"parts": [{"text": "Looking."}, {"functionCall": {"args": {}, "name": "look"}}], "role": "model"},
        {
            "parts": [
                {
                    "functionResponse": {
                        "parts": [{"inlineData": {"mimeType": "image/jpeg", "data": PNG}}],
                        "name": "look",
                        "response": {"result": "a photo"},
                    }
                }
            ],
            "role": "user",
        },
    ],
    "systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in English."}], "role": "user"},
    "tools": [{"functionDeclarations": [{"description": "Look", "name": "look", "parameters": SCHEMA}]}],
}


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
async def test_every_part_kind_arrives_as_the_sdk_sends_it(fake: FakeUpstream, provider: str) -> None:
    """The image URL with an extension goes as it is; the one without is fetched (one GET, its
    signature not needed here) and sent as bytes; nothing else is fetched."""
    untyped = f"{fake.base_url}/media/photo?sig=s1"
    request = {
        "model": f"{provider}/gemini-3-pro-preview~tokens=3",
        "messages": conversation(untyped),
        "tools": TOOLS,
    }
    async with open_service(config(fake, provider)) as service:
        before = len(fake.requests)
        reply = await service.complete(request)
    assert reply.finish_reason == "stop" and reply.text == "t0 t1 t2 "
    sent = list(fake.requests)[before:]
    assert [(r.method, r.target) for r in sent[:-1]] == [("GET", "/media/photo?sig=s1")]
    assert sent[-1].method == "POST" and sent[-1].path.endswith("gemini-3-pro-preview~tokens%3D3:streamGenerateContent")
    assert sent[-1].json() == EXPECTED
    assert b"cache_control" not in sent[-1].body


REFUSED = [
    (
        [{"role": "user", "content": [{"type": "text", "text": "x"}, image("data:image/gif;base64,R0lGODlh")]}],
        r"messages\[0\]\.content\[1\]: image type 'image/gif' is not supported by {name}; send image/png",
    ),
    (
        [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc123"}}]}],
        r"messages\[0\]\.content\[0\]: file_id \(an uploaded file\) is not supported by {name}; send the document "
        r"inline as file_data",
    ),
    (
        [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": WAV, "format": "m4a"}}]}],
        r"messages\[0\]\.content\[0\]: audio format 'm4a' is not supported by {name}; send wav, mp3",
    ),
    (
        [
            {"role": "system", "content": [image(f"data:image/png;base64,{PNG}")]},
            {"role": "user", "content": "hi"},
        ],
        r"messages\[0\]\.content\[0\]: a system instruction takes only text on {name}; move the image_url part",
    ),
    (
        [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [image(f"data:image/png;base64,{PNG}")]},
        ],
        r"messages\[2\]\.content\[0\]: {name} takes images and documents in a tool result from Gemini 3 on, not on "
        r"gemini-2\.5-flash~tokens=2",
    ),
]


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
@pytest.mark.parametrize(
    ("messages", "error"), REFUSED, ids=["gif", "file_id", "m4a", "system-image", "tool-image-gemini-2.5"]
)
async def test_a_part_gemini_cannot_take_is_refused_before_anything_is_sent(
    fake: FakeUpstream, provider: str, messages: list[dict[str, Any]], error: str
) -> None:
    async with open_service(config(fake, provider)) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=error.format(name=NAMES[provider])):
            await service.complete({"model": f"{provider}/gemini-2.5-flash~tokens=2", "messages": messages})
        assert len(fake.requests) == before


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
async def test_a_fetched_image_of_a_type_gemini_refuses_is_not_sent(fake: FakeUpstream, provider: str) -> None:
    """The URL's path does not show its type, so it is fetched; it is a GIF: refused, no POST."""
    url = f"{fake.base_url}/media/anim?type=image/gif"
    messages = [{"role": "user", "content": [image(url)]}]
    async with open_service(config(fake, provider)) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=r"messages\[0\]\.content\[0\]: image type 'image/gif' is not supported"):
            await service.complete({"model": f"{provider}/gemini-2.5-flash~tokens=2", "messages": messages})
    assert [(r.method, r.target) for r in list(fake.requests)[before:]] == [("GET", "/media/anim?type=image/gif")]


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
async def test_logprobs_come_back_in_openais_shape(fake: FakeUpstream, provider: str) -> None:
    async with open_service(config(fake, provider)) as service:
        reply = await service.complete(
            {
                "model": f"{provider}/gemini-2.5-flash~tokens=3",
                "messages": user(),
                "logprobs": True,
                "top_logprobs": 2,
            }
        )
        plain = await service.complete({"model": f"{provider}/gemini-2.5-flash~tokens=3", "messages": user()})
    assert fake.requests[-2].json()["generationConfig"] == {"responseLogprobs": True, "logprobs": 2}
    expected = []
    for n in range(3):
        token, logprob = f"t{n} ", -0.01 * (n + 1)
        tops = (
            TopLogprob(token, logprob, tuple(token.encode())),
            TopLogprob(f"{token}~1", logprob - 1, tuple(f"{token}~1".encode())),
        )
        expected.append(TokenLogprob(token, logprob, tuple(token.encode()), tops))
    assert reply.logprobs == tuple(expected)
    assert reply.text == "t0 t1 t2 "
    assert plain.logprobs is None
