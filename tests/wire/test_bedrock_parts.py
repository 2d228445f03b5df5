"""Bedrock Converse content parts and prompt-caching cache points (issue 13), at the wire.

Each part kind's body is checked twice: byte for byte against the JSON written out here
from the service model's documented shapes, and against botocore's own serialization of
the same content given as boto3 users give it (raw bytes for blobs, which botocore
validates against its bedrock-runtime service model and writes as base64).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import botocore.session
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_bedrock import CLAUDE, ENDPOINT, boto3_request

from streamactors.content import AudioPart, CacheControl, ContentPart, FilePart, ImagePart, TextPart
from streamactors.errors import UsageError
from streamactors.models import ChatRequest, Message, Tool, ToolCall
from streamactors.wire.bedrock import (
    AUDIO_FORMATS,
    DEFAULT_DOCUMENT_NAME,
    DOCUMENT_FORMATS,
    IMAGE_FORMATS,
    BedrockCodec,
    cache_point,
    converse_body,
    document_name,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00fake jpeg"
GIF = b"GIF89a\x01\x00\x01\x00fake gif"
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 fake"
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"
CSV = "city,temp\nParis,21\nTōkyō,18\n".encode()
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt fake wav"
MP3 = b"ID3\x03\x00fake mp3"
EPHEMERAL = CacheControl()
HOUR = CacheControl("ephemeral", "1h")
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def data_url(mime: str, raw: bytes) -> str:
    return f"data:{mime};base64,{b64(raw)}"


def user(*parts: ContentPart) -> Message:
    return Message("user", parts)


def request(*messages: Message, tools: tuple[Tool, ...] = ()) -> ChatRequest:
    return ChatRequest("bedrock/x", messages, tools=tools)


def body_bytes(req: ChatRequest) -> bytes:
    return BedrockCodec(ENDPOINT).build_request(req, CLAUDE).body


def botocore_bytes(monkeypatch: pytest.MonkeyPatch, boto_input: dict[str, Any]) -> bytes:
    """The body botocore's bedrock-runtime client sends for `converse_stream(**boto_input)`."""
    sent: bytes = boto3_request(monkeypatch, CLAUDE, boto_input).body
    return sent


def expect(req: ChatRequest, sent: dict[str, Any], boto_input: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """`req`'s body is `sent` (the documented JSON, base64 blobs) byte for byte, and the bytes
    botocore sends for `boto_input` (the same content, raw-bytes blobs)."""
    ours = body_bytes(req)
    assert ours == json.dumps(sent).encode()
    assert ours == botocore_bytes(monkeypatch, boto_input)
    assert b"cache_control" not in ours


@pytest.fixture(scope="module")
def service_model() -> Any:
    return botocore.session.Session().get_service_model("bedrock-runtime")


# --- each part kind -------------------------------------------------------------------------


class TestPartKinds:
    def test_text_parts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        req = request(user(TextPart("Hello "), TextPart("there")))
        content = [{"text": "Hello "}, {"text": "there"}]
        sent = {"messages": [{"role": "user", "content": content}]}
        expect(req, sent, sent, monkeypatch)

    def test_exact_bytes_of_an_image(self) -> None:
        """The body as it goes on the wire, written out by hand once."""
        body = body_bytes(request(user(TextPart("What is it?"), ImagePart(data_url("image/png", PNG)))))
        assert body == (
            b'{"messages": [{"role": "user", "content": [{"text": "What is it?"}, '
            b'{"image": {"format": "png", "source": {"bytes": "' + b64(PNG).encode() + b'"}}}]}]}'
        )

    @pytest.mark.parametrize(
        ("mime", "raw", "fmt"),
        [
            ("image/png", PNG, "png"),
            ("image/jpeg", JPEG, "jpeg"),
            ("image/jpg", JPEG, "jpeg"),
            ("image/gif", GIF, "gif"),
            ("image/webp", WEBP, "webp"),
            ("IMAGE/PNG", PNG, "png"),
        ],
    )
    def test_image_data_urls(self, monkeypatch: pytest.MonkeyPatch, mime: str, raw: bytes, fmt: str) -> None:
        """`detail` (OpenAI's) has no Converse field and is not sent."""
        req = request(user(TextPart("Describe."), ImagePart(data_url(mime, raw), "high")))
        sent = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "Describe."},
                        {"image": {"format": fmt, "source": {"bytes": b64(raw)}}},
                    ],
                }
            ]
        }
        boto = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "Describe."},
                        {"image": {"format": fmt, "source": {"bytes": raw}}},
                    ],
                }
            ]
        }
        expect(req, sent, boto, monkeypatch)

    @pytest.mark.parametrize(
        ("mime", "fmt"),
        [
            ("application/pdf", "pdf"),
            ("text/csv", "csv"),
            ("application/msword", "doc"),
            ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
            ("application/vnd.ms-excel", "xls"),
            ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
            ("text/html", "html"),
            ("text/plain", "txt"),
            ("text/markdown", "md"),
        ],
    )
    def test_documents(self, monkeypatch: pytest.MonkeyPatch, mime: str, fmt: str) -> None:
        """Named from the filename without its extension (the format is in `format`)."""
        req = request(user(FilePart(data_url(mime, CSV), f"Q3 report.{fmt}"), TextPart("Summarize.")))
        sent = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"document": {"format": fmt, "name": "Q3 report", "source": {"bytes": b64(CSV)}}},
                        {"text": "Summarize."},
                    ],
                }
            ]
        }
        boto = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"document": {"format": fmt, "name": "Q3 report", "source": {"bytes": CSV}}},
                        {"text": "Summarize."},
                    ],
                }
            ]
        }
        expect(req, sent, boto, monkeypatch)

    def test_a_percent_encoded_text_document_travels_as_its_bytes(self) -> None:
        req = request(user(FilePart("data:text/plain,caf%C3%A9%20au%20lait", "menu.txt"), TextPart("Price?")))
        doc = converse_body(req)["messages"][0]["content"][0]["document"]
        assert doc == {"format": "txt", "name": "menu", "source": {"bytes": b64("café au lait".encode())}}

    def test_a_document_without_a_filename_gets_the_default_name(self) -> None:
        req = request(user(FilePart(data_url("application/pdf", PDF)), TextPart("Read it.")))
        doc = converse_body(req)["messages"][0]["content"][0]["document"]
        assert doc["name"] == DEFAULT_DOCUMENT_NAME == "document"

    @pytest.mark.parametrize(("given", "fmt", "raw"), [("wav", "wav", WAV), ("mp3", "mp3", MP3), ("WAV", "wav", WAV)])
    def test_audio(self, monkeypatch: pytest.MonkeyPatch, given: str, fmt: str, raw: bytes) -> None:
        """The installed service model's ContentBlock has an `audio` member (AudioBlock)."""
        req = request(user(TextPart("Transcribe."), AudioPart(b64(raw), given)))
        sent = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "Transcribe."},
                        {"audio": {"format": fmt, "source": {"bytes": b64(raw)}}},
                    ],
                }
            ]
        }
        boto = {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "Transcribe."},
                        {"audio": {"format": fmt, "source": {"bytes": raw}}},
                    ],
                }
            ]
        }
        expect(req, sent, boto, monkeypatch)

    def test_system_parts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each text part is a SystemContentBlock; an empty one is left out (NonEmptyString)."""
        req = request(
            Message("system", [TextPart("Be terse."), TextPart(""), TextPart("Use SI units.")]),
            Message("developer", "No lists."),
            Message("user", "hi"),
        )
        sent = {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "system": [{"text": "Be terse."}, {"text": "Use SI units."}, {"text": "No lists."}],
        }
        expect(req, sent, sent, monkeypatch)

    def test_assistant_text_parts_with_reasoning_and_tool_calls(self, monkeypatch: pytest.MonkeyPatch) -> None:
        req = request(
            Message("user", "Weather?"),
            Message(
                "assistant",
                [TextPart("Let me "), TextPart("check.")],
                tool_calls=[ToolCall("t1", "look", '{"city": "Paris"}')],
            ),
            Message("tool", "21 C", tool_call_id="t1"),
            tools=(Tool("look", None, SCHEMA),),
        )
        sent = {
            "messages": [
                {"role": "user", "content": [{"text": "Weather?"}]},
                {
                    "role": "assistant",
                    "content": [
                        {"text": "Let me "},
                        {"text": "check."},
                        {"toolUse": {"toolUseId": "t1", "name": "look", "input": {"city": "Paris"}}},
                    ],
                },
                {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "21 C"}]}}]},
            ],
            "toolConfig": {"tools": [{"toolSpec": {"name": "look", "inputSchema": {"json": SCHEMA}}}]},
        }
        expect(req, sent, sent, monkeypatch)

    def test_tool_result_parts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ToolResultContentBlocks: text, image, document; parallel results merge into one turn."""
        req = request(
            Message("user", "Look at both."),
            Message("assistant", None, tool_calls=[ToolCall("t1", "look", "{}"), ToolCall("t2", "look", "{}")]),
            Message("tool", [TextPart("a photo"), ImagePart(data_url("image/jpeg", JPEG))], tool_call_id="t1"),
            Message("tool", [FilePart(data_url("application/pdf", PDF), "scan.pdf")], tool_call_id="t2"),
            tools=(Tool("look", "Look", SCHEMA),),
        )
        tool_spec = {"toolSpec": {"name": "look", "description": "Look", "inputSchema": {"json": SCHEMA}}}
        call = [
            {"toolUse": {"toolUseId": "t1", "name": "look", "input": {}}},
            {"toolUse": {"toolUseId": "t2", "name": "look", "input": {}}},
        ]

        def body(jpeg: Any, pdf: Any) -> dict[str, Any]:
            return {
                "messages": [
                    {"role": "user", "content": [{"text": "Look at both."}]},
                    {"role": "assistant", "content": call},
                    {
                        "role": "user",
                        "content": [
                            {
                                "toolResult": {
                                    "toolUseId": "t1",
                                    "content": [
                                        {"text": "a photo"},
                                        {"image": {"format": "jpeg", "source": {"bytes": jpeg}}},
                                    ],
                                }
                            },
                            {
                                "toolResult": {
                                    "toolUseId": "t2",
                                    "content": [
                                        {"document": {"format": "pdf", "name": "scan", "source": {"bytes": pdf}}},
                                    ],
                                }
                            },
                        ],
                    },
                ],
                "toolConfig": {"tools": [tool_spec]},
            }

        expect(req, body(b64(JPEG), b64(PDF)), body(JPEG, PDF), monkeypatch)

    def test_a_document_given_before_its_question_in_the_next_user_message(self) -> None:
        """Consecutive user messages are one Converse turn: the text in the second counts."""
        req = request(user(FilePart(data_url("application/pdf", PDF), "a.pdf")), Message("user", "Summarize it."))
        assert converse_body(req)["messages"] == [
            {
                "role": "user",
                "content": [
                    {"document": {"format": "pdf", "name": "a", "source": {"bytes": b64(PDF)}}},
                    {"text": "Summarize it."},
                ],
            }
        ]

    def test_empty_parts_are_like_no_content(self) -> None:
        assert converse_body(request(Message("user", [])))["messages"] == [{"role": "user", "content": [{"text": ""}]}]
        assert converse_body(request(Message("system", []), Message("user", "hi"))) == {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}]
        }

    def test_every_kind_in_one_request_equals_botocores(self, monkeypatch: pytest.MonkeyPatch) -> None:
        req = request(
            Message("system", [TextPart("Be terse.", EPHEMERAL)]),
            user(
                TextPart("Compare these.", HOUR),
                ImagePart(data_url("image/png", PNG), cache_control=EPHEMERAL),
                FilePart(data_url("application/pdf", PDF), "report.pdf"),
                FilePart(data_url("text/csv", CSV), "report.csv", cache_control=EPHEMERAL),
                AudioPart(b64(WAV), "wav"),
            ),
            Message("assistant", None, tool_calls=[ToolCall("t1", "look", "{}")]),
            Message(
                "tool", [TextPart("seen"), ImagePart(data_url("image/gif", GIF), cache_control=HOUR)], tool_call_id="t1"
            ),
            tools=(Tool("look", "Look", SCHEMA, EPHEMERAL),),
        )

        def body(blob: Any) -> dict[str, Any]:
            return {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"text": "Compare these."},
                            {"cachePoint": {"type": "default", "ttl": "1h"}},
                            {"image": {"format": "png", "source": {"bytes": blob(PNG)}}},
                            {"cachePoint": {"type": "default"}},
                            {"document": {"format": "pdf", "name": "report", "source": {"bytes": blob(PDF)}}},
                            {"document": {"format": "csv", "name": "report (2)", "source": {"bytes": blob(CSV)}}},
                            {"cachePoint": {"type": "default"}},
                            {"audio": {"format": "wav", "source": {"bytes": blob(WAV)}}},
                        ],
                    },
                    {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "look", "input": {}}}]},
                    {
                        "role": "user",
                        "content": [
                            {
                                "toolResult": {
                                    "toolUseId": "t1",
                                    "content": [
                                        {"text": "seen"},
                                        {"image": {"format": "gif", "source": {"bytes": blob(GIF)}}},
                                    ],
                                }
                            },
                            {"cachePoint": {"type": "default", "ttl": "1h"}},
                        ],
                    },
                ],
                "system": [{"text": "Be terse."}, {"cachePoint": {"type": "default"}}],
                "toolConfig": {
                    "tools": [
                        {"toolSpec": {"name": "look", "description": "Look", "inputSchema": {"json": SCHEMA}}},
                        {"cachePoint": {"type": "default"}},
                    ]
                },
            }

        expect(req, body(b64), body(lambda raw: raw), monkeypatch)


# --- prompt caching -------------------------------------------------------------------------


class TestCachePoints:
    def test_cache_point_blocks(self) -> None:
        assert cache_point(EPHEMERAL) == {"cachePoint": {"type": "default"}}
        assert cache_point(CacheControl("ephemeral", "5m")) == {"cachePoint": {"type": "default", "ttl": "5m"}}
        assert cache_point(HOUR) == {"cachePoint": {"type": "default", "ttl": "1h"}}

    def test_the_service_model_takes_a_ttl(self, service_model: Any) -> None:
        """Why the ttl is sent: this botocore's CachePointBlock has the member, with our two values."""
        block = service_model.shape_for("CachePointBlock")
        assert list(block.members) == ["type", "ttl"]
        assert block.members["type"].enum == ["default"]
        assert block.members["ttl"].enum == ["5m", "1h"]
        for holder in ("ContentBlock", "SystemContentBlock", "Tool"):
            assert block.name == service_model.shape_for(holder).members["cachePoint"].name
        # A tool result's content takes none: its marker goes after the toolResult block.
        assert "cachePoint" not in service_model.shape_for("ToolResultContentBlock").members

    def test_after_the_marked_system_block(self, monkeypatch: pytest.MonkeyPatch) -> None:
        req = request(
            Message("system", [TextPart("Long context.", HOUR), TextPart("Short.")]),
            Message("system", [TextPart("Rules.", EPHEMERAL)]),
            Message("user", "hi"),
        )
        sent = {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "system": [
                {"text": "Long context."},
                {"cachePoint": {"type": "default", "ttl": "1h"}},
                {"text": "Short."},
                {"text": "Rules."},
                {"cachePoint": {"type": "default"}},
            ],
        }
        expect(req, sent, sent, monkeypatch)

    def test_a_marker_on_an_empty_system_part(self) -> None:
        """It caches what precedes it: nothing when it comes first, and no second cache point."""
        first = request(Message("system", [TextPart("", EPHEMERAL), TextPart("A.")]), Message("user", "hi"))
        assert converse_body(first)["system"] == [{"text": "A."}]
        after = request(
            Message("system", [TextPart("A.", EPHEMERAL), TextPart("", HOUR), TextPart("B.")]), Message("user", "hi")
        )
        assert converse_body(after)["system"] == [{"text": "A."}, {"cachePoint": {"type": "default"}}, {"text": "B."}]
        late = request(Message("system", [TextPart("A."), TextPart("", HOUR)]), Message("user", "hi"))
        assert converse_body(late)["system"] == [{"text": "A."}, {"cachePoint": {"type": "default", "ttl": "1h"}}]

    def test_after_each_marked_block_of_a_message(self, monkeypatch: pytest.MonkeyPatch) -> None:
        req = request(
            user(TextPart("Context.", EPHEMERAL), TextPart("Question?")),
            Message("assistant", [TextPart("Answer.", HOUR)]),
            Message("user", "More?"),
        )
        sent = {
            "messages": [
                {
                    "role": "user",
                    "content": [{"text": "Context."}, {"cachePoint": {"type": "default"}}, {"text": "Question?"}],
                },
                {
                    "role": "assistant",
                    "content": [{"text": "Answer."}, {"cachePoint": {"type": "default", "ttl": "1h"}}],
                },
                {"role": "user", "content": [{"text": "More?"}]},
            ]
        }
        expect(req, sent, sent, monkeypatch)

    def test_after_the_tool_result_that_holds_a_marked_part(self) -> None:
        """One cache point after the toolResult block, with the last marker's ttl."""
        req = request(
            Message("user", "go"),
            Message("assistant", None, tool_calls=[ToolCall("t1", "f", "{}")]),
            Message("tool", [TextPart("a", HOUR), TextPart("b", EPHEMERAL), TextPart("c")], tool_call_id="t1"),
            Message("user", "and?"),
            tools=(Tool("f"),),
        )
        assert converse_body(req)["messages"][2]["content"] == [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}},
            {"cachePoint": {"type": "default"}},
            {"text": "and?"},
        ]

    def test_after_the_marked_tool(self, monkeypatch: pytest.MonkeyPatch) -> None:
        tools = (Tool("a", "A", SCHEMA), Tool("b", None, SCHEMA, HOUR), Tool("c", "C", SCHEMA, EPHEMERAL))
        req = request(Message("user", "hi"), tools=tools)
        sent = {
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "toolConfig": {
                "tools": [
                    {"toolSpec": {"name": "a", "description": "A", "inputSchema": {"json": SCHEMA}}},
                    {"toolSpec": {"name": "b", "inputSchema": {"json": SCHEMA}}},
                    {"cachePoint": {"type": "default", "ttl": "1h"}},
                    {"toolSpec": {"name": "c", "description": "C", "inputSchema": {"json": SCHEMA}}},
                    {"cachePoint": {"type": "default"}},
                ]
            },
        }
        expect(req, sent, sent, monkeypatch)

    def test_no_cache_points_without_markers(self) -> None:
        req = request(user(TextPart("a"), ImagePart(data_url("image/png", PNG))), tools=(Tool("f"),))
        assert b"cachePoint" not in body_bytes(req)


# --- refusals -------------------------------------------------------------------------------

DOC = FilePart(data_url("application/pdf", PDF), "a.pdf")
HI = TextPart("hi")
SIGNED = "https://bucket.s3.amazonaws.com/cat.png?X-Amz-Signature=SECRET123&X-Amz-Expires=60"

# (messages, the whole error message)
REFUSED: list[tuple[tuple[Message, ...], str]] = [
    (
        (user(HI, ImagePart("data:image/bmp;base64,Qk0=")),),
        "messages[0].content[1]: image type 'image/bmp' is not supported by Bedrock; "
        "send image/jpeg, image/png, image/gif or image/webp",
    ),
    (
        (user(HI, ImagePart(SIGNED)),),
        "messages[0].content[1]: Bedrock takes no image URLs, and 'https://bucket.s3.amazonaws.com/cat.png' "
        "was not fetched; send the image as a data URL (data:image/png;base64,...)",
    ),
    (
        (user(HI, ImagePart("data:image/png;base64,")),),
        "messages[0].content[1]: the part holds no data; Bedrock rejects an empty one",
    ),
    (
        (user(HI, ImagePart("data:image/png;base64,!!!")),),
        "messages[0].content[1].image_url.url: the data URL's base64 data is invalid",
    ),
    (
        (user(HI, FilePart(None, None, "file-abc123")),),
        "messages[0].content[1]: file_id (an uploaded file) is not supported by Bedrock; "
        "send the document inline as file_data (a data URL)",
    ),
    (
        (user(HI, FilePart("data:application/zip;base64,UEsDBA==", "a.zip")),),
        "messages[0].content[1]: document type 'application/zip' is not supported by Bedrock; send "
        + ", ".join(DOCUMENT_FORMATS),
    ),
    (
        (user(HI, FilePart("data:application/pdf;base64,", "a.pdf")),),
        "messages[0].content[1]: the part holds no data; Bedrock rejects an empty one",
    ),
    (
        (user(HI, AudioPart(b64(WAV), "aiff")),),
        "messages[0].content[1]: audio format 'aiff' is not supported by Bedrock; send one of "
        + ", ".join(sorted(AUDIO_FORMATS)),
    ),
    (
        (user(HI, AudioPart("not base64!", "wav")),),
        "messages[0].content[1]: input_audio.data is not valid base64",
    ),
    (
        (user(HI, AudioPart("", "wav")),),
        "messages[0].content[1]: the part holds no data; Bedrock rejects an empty one",
    ),
    (
        (Message("system", [TextPart("a"), ImagePart(data_url("image/png", PNG))]), Message("user", "hi")),
        "messages[0].content[1]: a system prompt takes only text on Bedrock; move the image_url part to a user message",
    ),
    (
        (Message("user", "hi"), Message("assistant", [TextPart("see"), ImagePart(data_url("image/png", PNG))])),
        "messages[1].content[1]: an assistant message takes only text on Bedrock; "
        "move the image_url part to a user message",
    ),
    (
        (Message("user", "hi"), Message("assistant", [DOC])),
        "messages[1].content[0]: an assistant message takes only text on Bedrock; move the file part to a user message",
    ),
    (
        (
            Message("user", "go"),
            Message("assistant", None, tool_calls=[ToolCall("t1", "f", "{}")]),
            Message("tool", [TextPart("x"), AudioPart(b64(WAV), "wav")], tool_call_id="t1"),
        ),
        "messages[2].content[1]: a tool result takes text, images and documents on Bedrock; "
        "move the audio part to a user message",
    ),
    (
        (Message("system", "Be brief."), user(DOC)),
        "messages[1].content[0]: Bedrock rejects a message that holds a document and no text; "
        "add a text part to that message (the question or instruction about the document)",
    ),
    (
        (Message("user", "first"), Message("assistant", "ok"), user(TextPart(""), DOC, DOC)),
        "messages[2].content[1]: Bedrock rejects a message that holds a document and no text; "
        "add a text part to that message (the question or instruction about the document)",
    ),
]
REFUSED_IDS = [
    "bmp",
    "url",
    "empty-image",
    "bad-base64",
    "file_id",
    "zip",
    "empty-document",
    "audio-format",
    "audio-base64",
    "empty-audio",
    "system-image",
    "assistant-image",
    "assistant-document",
    "tool-result-audio",
    "document-without-text",
    "document-with-empty-text",
]


class TestRefusals:
    @pytest.mark.parametrize(("messages", "error"), REFUSED, ids=REFUSED_IDS)
    def test_usage_error_naming_the_part(self, messages: tuple[Message, ...], error: str) -> None:
        codec = BedrockCodec(ENDPOINT, drop_params=True)  # content is never dropped
        with pytest.raises(UsageError) as raised:
            codec.build_request(request(*messages), CLAUDE)
        assert str(raised.value) == error

    def test_the_url_error_shows_no_query(self) -> None:
        with pytest.raises(UsageError) as raised:
            converse_body(request(user(HI, ImagePart(SIGNED))))
        assert "SECRET123" not in str(raised.value)

    def test_the_provider_is_named(self) -> None:
        error = r"^messages\[0\]\.content\[0\]: image type .image/tiff. .* by Bedrock EU;"
        with pytest.raises(UsageError, match=error):
            converse_body(request(user(ImagePart("data:image/tiff;base64,SUkq"))), provider="Bedrock EU")


# --- document names -------------------------------------------------------------------------

# DocumentBlock.name (service model and API reference): alphanumerics, whitespace (no more than
# one in a row), hyphens, parentheses, square brackets; 1 to 200 characters. ASCII only, single
# spaces: Bedrock rejects non-ASCII letters and other whitespace (vercel/ai#20365).
BEDROCK_NAME = re.compile(r"[A-Za-z0-9()\[\]-]+( [A-Za-z0-9()\[\]-]+)*")


class TestDocumentNames:
    @pytest.mark.parametrize(
        ("filename", "name"),
        [
            ("report.pdf", "report"),
            ("Q3_results-v2 (final) [draft].docx", "Q3 results-v2 (final) [draft]"),
            ("John's report.pdf", "John s report"),
            ("invoice #123.pdf", "invoice 123"),
            ("résumé Ünïcode.pdf", "resume Unicode"),
            ("報告書.pdf", DEFAULT_DOCUMENT_NAME),
            ("報告書 2024.xlsx", "2024"),
            ("a   b\tc\u3000d.txt", "a b c d"),
            ("  padded  .md", "padded"),
            ("archive.tar.gz", "archive tar"),
            ("v1.2 release notes", "v1 2 release notes"),
            ("README", "README"),
            (".pdf", DEFAULT_DOCUMENT_NAME),
            ("...", DEFAULT_DOCUMENT_NAME),
            ("", DEFAULT_DOCUMENT_NAME),
            (None, DEFAULT_DOCUMENT_NAME),
            ("x" * 250 + ".pdf", "x" * 200),
            ("y" * 199 + " z.pdf", "y" * 199),
        ],
    )
    def test_cleaned(self, filename: str | None, name: str) -> None:
        assert document_name(filename) == name

    @given(st.one_of(st.none(), st.text(max_size=300)))
    def test_every_name_is_one_bedrock_takes(self, filename: str | None) -> None:
        name = document_name(filename)
        assert BEDROCK_NAME.fullmatch(name)
        assert 1 <= len(name) <= 200

    def test_unique_within_the_request_ignoring_case(self) -> None:
        """In user messages and tool results alike; a suffix keeps the name within 200 characters."""
        long = "n" * 210 + ".pdf"

        def doc(filename: str | None) -> FilePart:
            return FilePart(data_url("application/pdf", PDF), filename)

        req = request(
            user(doc("report.pdf"), doc("Report.docx"), doc(None), doc(None), doc(long), doc(long), TextPart("?")),
            Message("assistant", None, tool_calls=[ToolCall("t1", "f", "{}")]),
            Message("tool", [doc("report.pdf"), doc("report (2).pdf")], tool_call_id="t1"),
            tools=(Tool("f"),),
        )
        messages = converse_body(req)["messages"]
        names = [b["document"]["name"] for b in messages[0]["content"] if "document" in b]
        assert names == ["report", "Report (2)", "document", "document (2)", "n" * 200, "n" * 196 + " (2)"]
        result = messages[2]["content"][0]["toolResult"]["content"]
        assert [b["document"]["name"] for b in result] == ["report (3)", "report (2) (2)"]
        assert all(BEDROCK_NAME.fullmatch(n) and len(n) <= 200 for n in names)

    def test_names_start_afresh_for_each_request(self) -> None:
        req = request(user(FilePart(data_url("application/pdf", PDF), "a.pdf"), TextPart("?")))
        assert converse_body(req) == converse_body(req)


# --- the tables are the service model's ------------------------------------------------------


class TestServiceModel:
    def test_formats(self, service_model: Any) -> None:
        assert set(IMAGE_FORMATS.values()) == set(service_model.shape_for("ImageFormat").enum)
        assert set(DOCUMENT_FORMATS.values()) == set(service_model.shape_for("DocumentFormat").enum)
        assert len(DOCUMENT_FORMATS) == len(set(DOCUMENT_FORMATS.values()))
        assert set(service_model.shape_for("AudioFormat").enum) == AUDIO_FORMATS

    def test_the_blocks_we_send(self, service_model: Any) -> None:
        content = service_model.shape_for("ContentBlock").members
        assert {"text", "image", "document", "audio", "cachePoint"} <= set(content)
        assert list(service_model.shape_for("ImageBlock").members)[:2] == ["format", "source"]
        assert list(service_model.shape_for("DocumentBlock").members)[:3] == ["format", "name", "source"]
        assert list(service_model.shape_for("AudioBlock").members)[:2] == ["format", "source"]
        for source in ("ImageSource", "DocumentSource", "AudioSource"):
            assert service_model.shape_for(source).members["bytes"].type_name == "blob"
        assert set(service_model.shape_for("SystemContentBlock").members) == {"text", "guardContent", "cachePoint"}
        results = set(service_model.shape_for("ToolResultContentBlock").members)
        assert {"text", "image", "document"} <= results and "audio" not in results
        name = service_model.shape_for("DocumentBlockNameString")
        assert (name.metadata["min"], name.metadata["max"]) == (1, 200)
