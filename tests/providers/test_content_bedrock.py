"""Content parts and prompt caching on Bedrock's ConverseStream end to end over real sockets
(issue 13): each OpenAI-style part reaches the fake upstream as the Converse ContentBlock of
botocore's service model (text, image, document, audio; tool results with their parts), a
`cache_control` marker as a `cachePoint` after the marked block (system, messages, tools), a
remote image as the bytes the library fetched; a part Converse cannot take is a `UsageError`
from `service.complete` before anything is sent. The body bytes are compared with botocore's
serialization of the same content, validated against its service model."""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.serialize
import botocore.session
import botocore.validate
import pytest

from streamactors import Config, UsageError, open_service
from streamactors.testing import FakeUpstream
from streamactors.testing.server import TINY_PNG

AWS_KEY_ID = "AKIATESTBEDROCK01234"
AWS_SECRET = "test/BEDROCK/secret+0123456789abcdefghij"
MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0~tokens=3"
MODEL = f"bedrock/{MODEL_ID}"
PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0~tokens%3D3/converse-stream"

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00fake jpeg"
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"
CSV = "city,temp\nParis,21\nTōkyō,18\n".encode()
DOCX = b"PK\x03\x04fake docx"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt fake wav"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def config(fake: FakeUpstream, **overrides: Any) -> Config:
    table: dict[str, Any] = {
        "kind": "bedrock",
        "region": "us-east-1",
        "endpoint_url": fake.base_url,
        "aws_access_key_id": AWS_KEY_ID,
        "aws_secret_access_key": AWS_SECRET,
        "max_retries": 0,
        "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0},
        **overrides,
    }
    return Config.from_dict({"providers": {"bedrock": table}})


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def data_url(mime: str, raw: bytes) -> str:
    return f"data:{mime};base64,{b64(raw)}"


def image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, **extra}


def file(data: str, filename: str | None = None, **extra: Any) -> dict[str, Any]:
    inner = {"file_data": data, **({"filename": filename} if filename else {})}
    return {"type": "file", "file": inner, **extra}


def audio(raw: bytes, fmt: str) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": b64(raw), "format": fmt}}


def botocore_body(params: dict[str, Any]) -> bytes:
    """What botocore's bedrock-runtime client sends for `converse_stream(modelId=..., **params)`:
    the parameters validated against its service model, then serialized (blobs as base64)."""
    model = botocore.session.Session().get_service_model("bedrock-runtime")
    op = model.operation_model("ConverseStream")
    full = {"modelId": MODEL_ID, **params}
    report = botocore.validate.ParamValidator().validate(full, op.input_shape)
    assert not report.has_errors(), report.generate_report()
    body: bytes = botocore.serialize.create_serializer("rest-json").serialize_to_request(full, op)["body"]
    return body


# Every part kind, with cache markers on system parts, message parts, a tool result and a tool.
MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": [{"type": "text", "text": "You are terse.", "cache_control": EPHEMERAL}, "Use SI units."],
    },
    {"role": "developer", "content": "No lists."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Compare these.", "cache_control": HOUR},
            image(data_url("image/png", TINY_PNG), cache_control=EPHEMERAL),
            file(data_url("application/pdf", PDF), "Q3_report (final).pdf"),
            file(data_url("text/csv", CSV), "temps.csv", cache_control=EPHEMERAL),
            file(data_url(DOCX_TYPE, DOCX), "Q3 report (final).docx"),
            audio(WAV, "wav"),
        ],
    },
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "Looking."}],
        "tool_calls": [{"id": "tooluse_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}],
    },
    {
        "role": "tool",
        "tool_call_id": "tooluse_1",
        "content": [
            {"type": "text", "text": "a photo"},
            image(data_url("image/jpeg", JPEG), cache_control=EPHEMERAL),
            file(data_url("text/markdown", b"# Notes\n"), "notes.md"),
        ],
    },
]
TOOLS = [
    {"type": "function", "function": {"name": "look", "description": "Look", "parameters": SCHEMA}},
    {"type": "function", "function": {"name": "note", "parameters": SCHEMA}, "cache_control": HOUR},
]


def converse(blob: Any) -> dict[str, Any]:
    """The ConverseStream parameters for `MESSAGES` and `TOOLS`, as the service model documents
    them; `blob` writes a blob (base64 as on the wire, or the raw bytes boto3 users give)."""
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Compare these."},
                    {"cachePoint": {"type": "default", "ttl": "1h"}},
                    {"image": {"format": "png", "source": {"bytes": blob(TINY_PNG)}}},
                    {"cachePoint": {"type": "default"}},
                    {"document": {"format": "pdf", "name": "Q3 report (final)", "source": {"bytes": blob(PDF)}}},
                    {"document": {"format": "csv", "name": "temps", "source": {"bytes": blob(CSV)}}},
                    {"cachePoint": {"type": "default"}},
                    {"document": {"format": "docx", "name": "Q3 report (final) (2)", "source": {"bytes": blob(DOCX)}}},
                    {"audio": {"format": "wav", "source": {"bytes": blob(WAV)}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"text": "Looking."},
                    {"toolUse": {"toolUseId": "tooluse_1", "name": "look", "input": {}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_1",
                            "content": [
                                {"text": "a photo"},
                                {"image": {"format": "jpeg", "source": {"bytes": blob(JPEG)}}},
                                {
                                    "document": {
                                        "format": "md",
                                        "name": "notes",
                                        "source": {"bytes": blob(b"# Notes\n")},
                                    }
                                },
                            ],
                        }
                    },
                    {"cachePoint": {"type": "default"}},
                ],
            },
        ],
        "system": [
            {"text": "You are terse."},
            {"cachePoint": {"type": "default"}},
            {"text": "Use SI units."},
            {"text": "No lists."},
        ],
        "inferenceConfig": {"maxTokens": 64},
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "look", "description": "Look", "inputSchema": {"json": SCHEMA}}},
                {"toolSpec": {"name": "note", "inputSchema": {"json": SCHEMA}}},
                {"cachePoint": {"type": "default", "ttl": "1h"}},
            ]
        },
    }


async def test_every_part_kind_arrives_as_its_converse_block(fake: FakeUpstream) -> None:
    request = {"model": MODEL, "messages": MESSAGES, "tools": TOOLS, "max_tokens": 64}
    async with open_service(config(fake)) as service:
        reply = await service.complete(request)
    assert reply.finish_reason == "stop"
    sent = fake.requests[-1]
    assert sent.path == PATH
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
    assert sent.json() == converse(b64)
    assert sent.body == json.dumps(converse(b64)).encode()
    assert sent.body == botocore_body(converse(lambda raw: raw))
    assert b"cache_control" not in sent.body


async def test_a_remote_image_arrives_as_the_fetched_bytes(fake: FakeUpstream) -> None:
    """Converse takes no URLs: the library downloads the image first and sends its bytes."""
    url = f"{fake.base_url}/media/cat.png?sig=abc"
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image(url)]}]
    async with open_service(config(fake)) as service:
        before = len(fake.requests)
        await service.complete({"model": MODEL, "messages": messages})
    fetch, converse_request = list(fake.requests)[before:]
    assert (fetch.method, fetch.target) == ("GET", "/media/cat.png?sig=abc")
    assert converse_request.path == PATH

    def params(blob: Any) -> dict[str, Any]:
        content = [{"text": "What is it?"}, {"image": {"format": "png", "source": {"bytes": blob(TINY_PNG)}}}]
        return {"messages": [{"role": "user", "content": content}]}

    assert converse_request.json() == params(b64)
    assert converse_request.body == botocore_body(params(lambda raw: raw))


async def test_string_content_is_unchanged(fake: FakeUpstream) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    async with open_service(config(fake)) as service:
        await service.complete({"model": MODEL, "messages": messages})
    assert fake.requests[-1].body == (
        b'{"messages": [{"role": "user", "content": [{"text": "hi"}]}], "system": [{"text": "Be brief."}]}'
    )


def user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "see"}, *parts]}]


CALL = {"id": "tooluse_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
PNG_URL = data_url("image/png", TINY_PNG)
NO_TEXT = "Bedrock rejects a message that holds a document and no text; add a text part to that message"

REFUSED: list[tuple[list[dict[str, Any]], str]] = [
    (user(image("data:image/bmp;base64,Qk0=")), r"messages\[0\]\.content\[1\]: image type 'image/bmp' is not"),
    (
        user(file("data:application/zip;base64,UEsDBA==", "a.zip")),
        r"messages\[0\]\.content\[1\]: document type 'application/zip' is not supported by Bedrock",
    ),
    (
        user({"type": "file", "file": {"file_id": "file-abc123"}}),
        r"messages\[0\]\.content\[1\]: file_id \(an uploaded file\) is not supported by Bedrock; send the document "
        r"inline as file_data",
    ),
    (user(audio(WAV, "aiff")), r"messages\[0\]\.content\[1\]: audio format 'aiff' is not supported by Bedrock"),
    (
        [{"role": "system", "content": [image(PNG_URL)]}, {"role": "user", "content": "hi"}],
        r"messages\[0\]\.content\[0\]: a system prompt takes only text on Bedrock",
    ),
    (
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [image(PNG_URL)]}],
        r"messages\[1\]\.content\[0\]: an assistant message takes only text on Bedrock",
    ),
    (
        [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "tooluse_1", "content": [audio(WAV, "wav")]},
        ],
        r"messages\[2\]\.content\[0\]: a tool result takes text, images and documents on Bedrock",
    ),
    (
        [{"role": "user", "content": [file(data_url("application/pdf", PDF), "a.pdf")]}],
        rf"messages\[0\]\.content\[0\]: {NO_TEXT}",
    ),
]
REFUSED_IDS = ["bmp", "zip", "file_id", "audio-format", "system-image", "assistant-image", "tool-audio", "no-text"]


@pytest.mark.parametrize("drop_params", [False, True])
@pytest.mark.parametrize(("messages", "error"), REFUSED, ids=REFUSED_IDS)
async def test_a_part_converse_cannot_take_is_refused_before_anything_is_sent(
    fake: FakeUpstream, messages: list[dict[str, Any]], error: str, drop_params: bool
) -> None:
    """Content is never dropped, `drop_params` or not."""
    async with open_service(config(fake, drop_params=drop_params)) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=error):
            await service.complete({"model": MODEL, "messages": messages, "tools": TOOLS})
        assert len(fake.requests) == before
