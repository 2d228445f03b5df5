"""Content parts and logprobs on the Gemini codec (issue 13), for the Gemini API and for Gemini
models on Vertex AI: exact request bodies for every part kind and every refusal, `must_fetch`
for each URL shape, and `logprobsResult` decoded to `LogprobsEvent`s for every split of the
bytes, malformed shapes included.

The shapes are the google-genai SDK's (googleapis/python-genai `google/genai/models.py`:
`_Part_to_mldev` puts `inlineData` / `fileData` / `text` on a part, `_Blob_to_mldev` writes
`{"data", "mimeType"}`, `_FileData_to_mldev` `{"fileUri", "mimeType"}`; `google/genai/types.py`:
`FunctionResponse` fields in the order parts, id, name, response, `FunctionResponseBlob`
mime_type then data, `LogprobsResult` with `chosenCandidates` and `topCandidates[].candidates`
of `{token, logProbability, tokenId}`), with the media types Google's docs list
(ai.google.dev/gemini-api/docs/image-understanding: png, jpeg, webp, heic, heif;
/docs/audio: wav, mp3, aiff, aac, ogg, flac as audio/<format>; /docs/file-input-methods:
public https URLs as `fileData`; Vertex AI also reads gs:// URIs)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from wire_harness import close, decode, event_dicts, every_split, feed

from streamactors.content import AudioPart, FilePart, ImagePart, TextPart
from streamactors.errors import UsageError, WireError
from streamactors.models import ChatRequest, LogprobsEvent, Message, StreamEvent, TextEvent, TokenLogprob, TopLogprob
from streamactors.request_dict import request_from_dict
from streamactors.testing.formats import gemini as fake_gemini
from streamactors.testing.script import Scenario, build_steps
from streamactors.wire.anthropic import AnthropicCodec
from streamactors.wire.gemini import GeminiCodec, GeminiStreamDecoder, gemini_api_url, url_image_type
from streamactors.wire.vertex import VertexCodec

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF").decode()
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n").decode()
WAV = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()
MP3 = base64.b64encode(b"ID3\x04\x00\x00\x00\x00\x00\x00").decode()
NOTES = "Notes: 日本語 — line 1\n"
EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
SIGNED = "https://bucket.s3.amazonaws.com/photos/cat.PNG?X-Amz-Signature=secret0123"
NAMES = {"gemini": "Gemini", "vertex": "Vertex AI"}


def image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def file(data_url: str, filename: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "file", "file": {"file_data": data_url, **({"filename": filename} if filename else {})}, **extra}


def audio(data: str, fmt: str) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def codec(provider: str) -> GeminiCodec | VertexCodec:
    if provider == "gemini":
        return GeminiCodec(gemini_api_url("https://generativelanguage.googleapis.com"), {})
    return VertexCodec("https://v", "p", "us-central1", "v1", {}, max_event_bytes=1 << 20)


def built(provider: str, request: ChatRequest, model: str = "gemini-2.5-flash") -> bytes:
    return codec(provider).build_request(request, model).body


def body_of(provider: str, messages: list[Any], model: str = "gemini-2.5-flash", **extra: Any) -> bytes:
    return built(provider, request_from_dict({"model": f"{provider}/{model}", "messages": messages, **extra}), model)


def compact(obj: Any) -> bytes:
    """`obj` as the codec serializes it: compact JSON, key order kept (so order is compared)."""
    return orjson.dumps(obj)


PROVIDERS = pytest.mark.parametrize("provider", ["gemini", "vertex"])


# --- user messages: every part kind ----------------------------------------------------------

USER_PARTS: list[dict[str, Any]] = [
    {"type": "text", "text": "Compare these.", "cache_control": HOUR},
    {"type": "text", "text": ""},  # empty text: Gemini rejects it, so it is not sent
    image(f"data:image/png;base64,{PNG}", detail="high"),  # detail is OpenAI's: not sent
    image(f"data:image/jpg;base64,{JPEG}", cache_control=EPHEMERAL),  # image/jpg goes as jpeg
    image(SIGNED),
    image("https://example.com/a/photo.jpeg"),
    image("https://example.com/b.webp#frag"),
    image("http://example.com/c.heic"),
    image("https://example.com/d.HEIF"),
    file(f"data:application/pdf;base64,{PDF}", "report.pdf", cache_control=EPHEMERAL),
    file("data:text/plain;charset=utf-8;base64," + base64.b64encode(NOTES.encode()).decode(), "notes.txt"),
    file("data:text/csv,a%2Cb%0A1%2C2%0A"),  # percent-encoded: sent as base64
    audio(WAV, "wav"),
    audio(MP3, "MP3"),
    audio(WAV, "flac"),
]

USER_EXPECTED: list[dict[str, Any]] = [
    {"text": "Compare these."},
    {"inlineData": {"data": PNG, "mimeType": "image/png"}},
    {"inlineData": {"data": JPEG, "mimeType": "image/jpeg"}},
    {"fileData": {"fileUri": SIGNED, "mimeType": "image/png"}},
    {"fileData": {"fileUri": "https://example.com/a/photo.jpeg", "mimeType": "image/jpeg"}},
    {"fileData": {"fileUri": "https://example.com/b.webp#frag", "mimeType": "image/webp"}},
    {"fileData": {"fileUri": "http://example.com/c.heic", "mimeType": "image/heic"}},
    {"fileData": {"fileUri": "https://example.com/d.HEIF", "mimeType": "image/heif"}},
    {"inlineData": {"data": PDF, "mimeType": "application/pdf"}},
    {"inlineData": {"data": base64.b64encode(NOTES.encode()).decode(), "mimeType": "text/plain"}},
    {"inlineData": {"data": base64.b64encode(b"a,b\n1,2\n").decode(), "mimeType": "text/csv"}},
    {"inlineData": {"data": WAV, "mimeType": "audio/wav"}},
    {"inlineData": {"data": MP3, "mimeType": "audio/mp3"}},
    {"inlineData": {"data": WAV, "mimeType": "audio/flac"}},
]


@PROVIDERS
def test_every_part_kind_of_a_user_message(provider: str) -> None:
    """Text as `text`, data as `inlineData {data, mimeType}`, an image URL as `fileData
    {fileUri, mimeType}` with the type its path names: the SDK's keys in the SDK's order."""
    body = body_of(provider, [{"role": "user", "content": USER_PARTS}])
    assert body == compact({"contents": [{"parts": USER_EXPECTED, "role": "user"}]})


@PROVIDERS
def test_string_content_is_unchanged(provider: str) -> None:
    body = body_of(provider, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert body == compact(
        {
            "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
            "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        }
    )


@PROVIDERS
def test_a_user_message_of_empty_text_parts_is_not_sent(provider: str) -> None:
    """As an empty string content is not: Gemini rejects a turn without parts."""
    messages = [{"role": "user", "content": [{"type": "text", "text": ""}]}, {"role": "user", "content": "hi"}]
    assert body_of(provider, messages) == compact({"contents": [{"parts": [{"text": "hi"}], "role": "user"}]})


def test_vertex_sends_a_gs_uri_as_file_data() -> None:
    request = ChatRequest("vertex/gemini-2.5-flash", [Message("user", [ImagePart("gs://bucket/dir/cat.png")])])
    assert built("vertex", request) == compact(
        {
            "contents": [
                {
                    "parts": [{"fileData": {"fileUri": "gs://bucket/dir/cat.png", "mimeType": "image/png"}}],
                    "role": "user",
                }
            ]
        }
    )


def test_the_gemini_api_refuses_a_gs_uri() -> None:
    """The Gemini API reads a Cloud Storage object only once registered with its Files API."""
    request = ChatRequest("gemini/g", [Message("user", [TextPart("x"), ImagePart("gs://bucket/cat.png?generation=1")])])
    with pytest.raises(UsageError) as info:
        built("gemini", request)
    assert str(info.value) == (
        "messages[0].content[1]: Gemini takes no gs:// URI ('gs://bucket/cat.png') in a request; register the "
        "object with the Files API and send its URI, or send the image as a data URL"
    )


# --- system, assistant and tool messages ------------------------------------------------------


@PROVIDERS
def test_system_parts_are_system_instruction_text_without_cache_markers(provider: str) -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "You are terse.", "cache_control": EPHEMERAL}]},
        {"role": "developer", "content": [{"type": "text", "text": "Cite."}, {"type": "text", "text": ""}]},
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "hi"},
    ]
    assert body_of(provider, messages) == compact(
        {
            "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
            "systemInstruction": {
                "parts": [{"text": "You are terse."}, {"text": "Cite."}, {"text": "Answer in English."}],
                "role": "user",
            },
        }
    )


@PROVIDERS
def test_tools_lose_their_cache_control(provider: str) -> None:
    """Gemini has no cache markers (its caching is the cachedContents API)."""
    tools = [
        {
            "type": "function",
            "function": {"name": "look", "description": "Look", "parameters": SCHEMA},
            "cache_control": EPHEMERAL,
        }
    ]
    body = body_of(provider, [{"role": "user", "content": "hi"}], tools=tools)
    assert body == compact(
        {
            "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
            "tools": [{"functionDeclarations": [{"description": "Look", "name": "look", "parameters": SCHEMA}]}],
        }
    )


CALL = {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": "cat"}'}}
CALL_2 = {"id": "call_2", "type": "function", "function": {"name": "read", "arguments": "{}"}}


@PROVIDERS
def test_assistant_text_parts_then_its_calls_and_tool_results_with_media(provider: str) -> None:
    """A Gemini 3 tool result: its text is the response, its images and documents
    `functionResponse.parts` (the SDK's FunctionResponse order: parts, name, response;
    FunctionResponseBlob's: mimeType, data)."""
    messages = [
        {"role": "user", "content": "look"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Looking", "cache_control": EPHEMERAL}, {"type": "text", "text": "."}],
            "tool_calls": [CALL, CALL_2],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [
                {"type": "text", "text": '{"found": '},
                image(f"data:image/png;base64,{PNG}"),
                {"type": "text", "text": "true}"},
                file(f"data:application/pdf;base64,{PDF}", "r.pdf"),
            ],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "plain"}]},
    ]
    body = body_of(provider, messages, model="gemini-3-pro-preview")
    assert body == compact(
        {
            "contents": [
                {"parts": [{"text": "look"}], "role": "user"},
                {
                    "parts": [
                        {"text": "Looking"},
                        {"text": "."},
                        {"functionCall": {"args": {"q": "cat"}, "name": "look"}},
                        {"functionCall": {"args": {}, "name": "read"}},
                    ],
                    "role": "model",
                },
                {
                    "parts": [
                        {
                            "functionResponse": {
                                "parts": [
                                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                                    {"inlineData": {"mimeType": "application/pdf", "data": PDF}},
                                ],
                                "name": "look",
                                "response": {"found": True},
                            }
                        },
                        {"functionResponse": {"name": "read", "response": {"result": "plain"}}},
                    ],
                    "role": "user",
                },
            ]
        }
    )


@PROVIDERS
def test_a_text_only_tool_result_is_the_string_result(provider: str) -> None:
    """Any model: text parts are the response, as a string content is."""
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "a "}, "cat"]},
    ]
    body = orjson.loads(body_of(provider, messages))
    assert body["contents"][2] == {
        "parts": [{"functionResponse": {"name": "look", "response": {"result": "a cat"}}}],
        "role": "user",
    }


# --- refusals ---------------------------------------------------------------------------------

IMAGE_TYPES_FIX = "send image/png, image/jpeg, image/webp, image/heic or image/heif"
# What follows "messages[0].content[1]" in the error, for each part Gemini cannot take.
REFUSED = [
    (
        image("data:image/gif;base64,R0lGODlh"),
        f": image type 'image/gif' is not supported by {{name}}; {IMAGE_TYPES_FIX}",
    ),
    (image("data:image/bmp;base64,Qk0="), f": image type 'image/bmp' is not supported by {{name}}; {IMAGE_TYPES_FIX}"),
    (
        image("https://example.com/anim.gif?v=2"),
        f": image type 'image/gif' is not supported by {{name}}; {IMAGE_TYPES_FIX}",
    ),
    (
        image("https://example.com/render?id=7&sig=secret0123"),
        ": {name} needs the image's type, which 'https://example.com/render' does not show (its path has no png, "
        "jpg, jpeg, webp, heic or heif extension), and it was not fetched; send the image as a data URL "
        "(data:image/png;base64,...)",
    ),
    (
        {"type": "file", "file": {"file_id": "file-abc123"}},
        ": file_id (an uploaded file) is not supported by {name}; send the document inline as file_data (a data URL)",
    ),
    (
        file("data:application/zip;base64,UEsDBA==", "a.zip"),
        ": document type 'application/zip' is not supported by {name}; send application/pdf or a text type "
        "(text/plain, ...)",
    ),
    (audio(WAV, "m4a"), ": audio format 'm4a' is not supported by {name}; send wav, mp3, aiff, aac, ogg or flac"),
    (image("data:image/png;base64,@@@"), ".image_url.url: the data URL's base64 data is invalid"),
]


@PROVIDERS
@pytest.mark.parametrize(
    ("part", "error"), REFUSED, ids=["gif", "bmp", "gif-url", "untyped-url", "file_id", "zip", "m4a", "bad-base64"]
)
def test_a_part_gemini_cannot_take_is_a_usage_error_naming_it(provider: str, part: dict[str, Any], error: str) -> None:
    with pytest.raises(UsageError) as info:
        body_of(provider, [{"role": "user", "content": [{"type": "text", "text": "x"}, part]}])
    assert str(info.value) == "messages[0].content[1]" + error.format(name=NAMES[provider])
    assert "secret0123" not in str(info.value)


@PROVIDERS
@pytest.mark.parametrize(
    ("role", "what"),
    [("system", "a system instruction"), ("developer", "a system instruction"), ("assistant", "an assistant message")],
)
@pytest.mark.parametrize(
    ("part", "kind"),
    [
        (image(f"data:image/png;base64,{PNG}"), "image_url"),
        (file(f"data:application/pdf;base64,{PDF}"), "file"),
        (audio(WAV, "wav"), "input_audio"),
    ],
)
def test_system_and_assistant_messages_take_text_only(
    provider: str, role: str, what: str, part: dict[str, Any], kind: str
) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": role, "content": [{"type": "text", "text": "x"}, part]}]
    with pytest.raises(UsageError) as info:
        body_of(provider, messages)
    assert str(info.value) == (
        f"messages[1].content[1]: {what} takes only text on {NAMES[provider]}; move the {kind} part to a user message"
    )


def tool_messages(part: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "seen"}, part]},
    ]


@PROVIDERS
@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-2.0-flash-001", "gemini-1.5-pro", "gemini-2.5-pro@001"])
def test_media_in_a_tool_result_before_gemini_3_is_refused(provider: str, model: str) -> None:
    with pytest.raises(UsageError) as info:
        body_of(provider, tool_messages(image(f"data:image/png;base64,{PNG}")), model=model)
    assert str(info.value) == (
        f"messages[2].content[1]: {NAMES[provider]} takes images and documents in a tool result from Gemini 3 on, "
        f"not on {model}; move the image_url part to a user message"
    )


@PROVIDERS
@pytest.mark.parametrize("model", ["gemini-3-pro-preview", "gemini-3.1-flash", "gemini-flash-latest"])
def test_media_in_a_tool_result_is_sent_for_gemini_3_and_unknown_models(provider: str, model: str) -> None:
    """Only the generations known to reject `functionResponse.parts` are refused."""
    body = orjson.loads(body_of(provider, tool_messages(image(f"data:image/webp;base64,{PNG}")), model=model))
    assert body["contents"][2]["parts"][0]["functionResponse"]["parts"] == [
        {"inlineData": {"mimeType": "image/webp", "data": PNG}}
    ]


@PROVIDERS
@pytest.mark.parametrize(
    ("part", "error"),
    [
        (audio(WAV, "wav"), "audio in a tool result input is not supported by {name}; remove that content part"),
        (
            image("https://example.com/cat.png"),
            "a tool result takes no image URL on {name}; send the image as a data URL (data:image/png;base64,...)",
        ),
    ],
    ids=["audio", "url"],
)
def test_audio_or_an_image_url_in_a_tool_result_is_refused(provider: str, part: dict[str, Any], error: str) -> None:
    with pytest.raises(UsageError) as info:
        body_of(provider, tool_messages(part), model="gemini-3-pro-preview")
    assert str(info.value) == "messages[2].content[1]: " + error.format(name=NAMES[provider])


def test_a_url_of_another_scheme_is_refused() -> None:
    """`request_from_dict` takes http(s) and data URLs only; a Message built in code may hold any."""
    request = ChatRequest("gemini/g", [Message("user", [ImagePart("ftp://example.com/cat.png")])])
    with pytest.raises(
        UsageError,
        match=r"messages\[0\]\.content\[0\]: image URL 'ftp://example.com/cat.png' is "
        "neither https nor a data URL",
    ):
        built("gemini", request)


def test_parts_built_in_code_map_like_parsed_ones() -> None:
    request = ChatRequest(
        "gemini/g",
        [Message("user", ["hi", AudioPart(WAV, "ogg"), FilePart(f"data:application/pdf;base64,{PDF}")])],
    )
    assert built("gemini", request) == compact(
        {
            "contents": [
                {
                    "parts": [
                        {"text": "hi"},
                        {"inlineData": {"data": WAV, "mimeType": "audio/ogg"}},
                        {"inlineData": {"data": PDF, "mimeType": "application/pdf"}},
                    ],
                    "role": "user",
                }
            ]
        }
    )


# --- must_fetch ---------------------------------------------------------------------------------

MUST_FETCH = [
    ("https://example.com/cat.png", False),
    ("https://example.com/cat.PNG?X-Amz-Signature=abc", False),
    ("https://example.com/a/b.jpg#x", False),
    ("https://example.com/a.jpeg", False),
    ("https://example.com/a.webp", False),
    ("https://example.com/a.heic", False),
    ("https://example.com/a.heif", False),
    ("http://example.com/a.png", False),
    ("https://example.com/anim.gif", False),  # its type is told (and refused): fetching would not help
    ("https://example.com/render?id=7", True),
    ("https://example.com/download?file=cat.png", True),  # the query names a file; the path does not
    ("https://example.com/images/cat", True),
    ("https://example.com/images/cat.png/", True),
    ("https://example.com/.png", True),
    ("https://example.com/archive.tar.gz", True),
    ("https://example.com/doc.pdf", True),
    ("HTTP://EXAMPLE.COM/PHOTO", True),
    ("https://[::1/cat", True),  # malformed: its type cannot be told
    ("gs://bucket/cat", False),  # never: only Google reads Cloud Storage
    ("gs://bucket/cat.png", False),
    ("data:image/png;base64,AAAA", False),
    ("ftp://example.com/cat", False),
]


@pytest.mark.parametrize(("url", "fetch"), MUST_FETCH)
def test_must_fetch_is_true_for_an_http_url_whose_type_its_path_does_not_show(url: str, fetch: bool) -> None:
    assert codec("gemini").must_fetch(url, "gemini-2.5-flash") is fetch
    assert codec("vertex").must_fetch(url, "gemini-2.5-flash") is fetch


def test_claude_on_vertex_still_fetches_every_url() -> None:
    assert codec("vertex").must_fetch("https://example.com/cat.png", "claude-sonnet-4-5@20250929") is True
    assert AnthropicCodec("https://a", {}).must_fetch("https://example.com/render", "claude") is False


@pytest.mark.parametrize(
    ("url", "mime"),
    [
        ("https://e.x/a.JPG", "image/jpeg"),
        ("https://e.x/a.b.webp?q=.png", "image/webp"),
        ("https://e.x/a", None),
        ("https://e.x/a.svg", None),
        ("gs://b/c.heif", "image/heif"),
    ],
)
def test_url_image_type(url: str, mime: str | None) -> None:
    assert url_image_type(url) == mime


# --- logprobs -------------------------------------------------------------------------------------


def cand(token: str, logprob: float, token_id: int) -> dict[str, Any]:
    return {"token": token, "logProbability": logprob, "tokenId": token_id}


def lp_chunk(text: str, result: Any, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        c["finishReason"] = finish
    c["index"] = 0
    if result is not None:
        c["logprobsResult"] = result
    return {"candidates": [c], **extra, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}


def sse(*objs: Any) -> bytes:
    return b"".join(b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objs)


STREAM = sse(
    lp_chunk(
        "Hel",
        {
            "topCandidates": [{"candidates": [cand("Hel", -0.1, 7), cand("Hi", -2.5, 9)]}],
            "chosenCandidates": [cand("Hel", -0.1, 7)],
        },
    ),
    lp_chunk(
        "lo é",
        {
            "topCandidates": [
                {"candidates": [cand("lo", -0.2, 11)]},
                {"candidates": [cand(" é", -1, 12), cand(" e", -1.5, 13)]},
            ],
            "chosenCandidates": [cand("lo", -0.2, 11), cand(" é", -1, 12)],
        },
    ),
    lp_chunk("", {}, "STOP", usageMetadata={"promptTokenCount": 3, "candidatesTokenCount": 3, "totalTokenCount": 6}),
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
            TokenLogprob("lo", -0.2, (108, 111), (TopLogprob("lo", -0.2, (108, 111)),)),
            TokenLogprob(
                " é",
                -1.0,
                (32, 195, 169),
                (TopLogprob(" é", -1.0, (32, 195, 169)), TopLogprob(" e", -1.5, (32, 101))),
            ),
        )
    ),
]
TAIL = [
    {
        "type": "usage",
        "input_tokens": 3,
        "output_tokens": 3,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
    },
    {"type": "finish", "reason": "stop"},
]


def test_logprobs_follow_their_chunks_text_for_every_split() -> None:
    """One `LogprobsEvent` per chunk, after its text; an empty `logprobsResult` gives none."""
    want = [*event_dicts(EXPECTED), *TAIL]
    assert decode(GeminiStreamDecoder, [STREAM]) == want
    for pieces in every_split(STREAM):
        assert decode(GeminiStreamDecoder, pieces) == want


def test_logprob_values_are_floats_and_bytes_are_utf8() -> None:
    events = feed(GeminiStreamDecoder(), STREAM)
    lp = [e for e in events if type(e) is LogprobsEvent]
    token = lp[1].content[1]
    assert token.logprob == -1.0 and type(token.logprob) is float
    assert token.bytes == tuple(" é".encode())


def test_absent_fields_are_proto3_defaults_and_missing_top_candidates_are_empty() -> None:
    """Proto3 JSON leaves out a default value: an absent log probability is 0 (a certain
    token), an absent token the empty string. A step without `topCandidates` has none."""
    result = {
        "chosenCandidates": [{"token": "a", "tokenId": 1}, {"logProbability": -0.5}, cand("c", -1, 3)],
        "topCandidates": [{"candidates": [cand("a", 0, 1)]}],
    }
    events = feed(GeminiStreamDecoder(), sse(lp_chunk("abc", result)))
    assert events[1] == LogprobsEvent(
        (
            TokenLogprob("a", 0.0, (97,), (TopLogprob("a", 0.0, (97,)),)),
            TokenLogprob("", -0.5, (), ()),
            TokenLogprob("c", -1.0, (99,), ()),
        )
    )


def test_logprobs_of_other_candidates_are_ignored() -> None:
    chunk = lp_chunk("a", {"chosenCandidates": [cand("a", -1, 1)]})
    chunk["candidates"][0]["index"] = 1
    assert feed(GeminiStreamDecoder(), sse(chunk)) == []


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "x",
        {"chosenCandidates": {"token": "a"}},
        {"chosenCandidates": ["a"]},
        {"chosenCandidates": [{"token": 1, "logProbability": -1}]},
        {"chosenCandidates": [{"token": "a", "logProbability": "low"}]},
        {"chosenCandidates": [{"token": "a", "logProbability": True}]},
        {"chosenCandidates": [{"token": "a", "logProbability": -1, "tokenId": "7"}]},
        {"chosenCandidates": [cand("a", -1, 1)], "topCandidates": {"candidates": []}},
        {"chosenCandidates": [cand("a", -1, 1)], "topCandidates": [[cand("a", -1, 1)]]},
        {"chosenCandidates": [cand("a", -1, 1)], "topCandidates": [{"candidates": cand("a", -1, 1)}]},
        {"chosenCandidates": [cand("a", -1, 1)], "topCandidates": [{"candidates": [None]}]},
        {"chosenCandidates": [cand("a", -1, 1)], "topCandidates": [{"candidates": [{"logProbability": []}]}]},
    ],
)
def test_malformed_logprobs_result_is_a_protocol_error_after_the_chunks_text(bad: Any) -> None:
    dec = GeminiStreamDecoder()
    out: list[StreamEvent] = []
    with pytest.raises(WireError) as info:
        dec.feed_into(sse(lp_chunk("a", bad)), out)
    assert info.value.kind == "protocol"
    assert out == [TextEvent("a")]


# --- the fake upstream renders logprobsResult -------------------------------------------------------


def rendered(body: dict[str, Any], tokens: int = 3) -> bytes:
    items = list(fake_gemini.render(build_steps(Scenario(model="gemini-2.5-flash", tokens=tokens)), "m", body))
    return b"".join(i for i in items if isinstance(i, bytes))


def test_fake_upstream_renders_logprobs_only_when_asked() -> None:
    assert b"logprobsResult" not in rendered({})
    assert b"logprobsResult" not in rendered({"generationConfig": {"logprobs": 2}})
    asked = rendered({"generationConfig": {"responseLogprobs": True, "logprobs": 2}})
    first = asked.split(b"\r\n\r\n")[0]
    assert first == (
        b'data: {"candidates": [{"content": {"parts": [{"text": "t0 "}],"role": "model"},"index": 0,'
        b'"logprobsResult": {"topCandidates": [{"candidates": [{"token": "t0 ","logProbability": -0.01,'
        b'"tokenId": 1000},{"token": "t0 ~1","logProbability": -1.01,"tokenId": 2001}]}],'
        b'"chosenCandidates": [{"token": "t0 ","logProbability": -0.01,"tokenId": 1000}]}}],'
        b'"modelVersion": "m","responseId": "fakeResp0001"}'
    )


def test_fake_upstream_logprobs_decode_to_one_event_per_text_chunk() -> None:
    for top_n in (0, 1, 3):
        config: dict[str, Any] = {"responseLogprobs": True, **({"logprobs": top_n} if top_n else {})}
        dec = GeminiStreamDecoder()
        events = feed(dec, rendered({"generationConfig": config})) + close(dec)
        lp = [e for e in events if type(e) is LogprobsEvent]
        assert [e.content[0].token for e in lp] == ["t0 ", "t1 ", "t2 "]
        assert [e.content[0].logprob for e in lp] == pytest.approx([-0.01, -0.02, -0.03])
        assert all(len(e.content[0].top_logprobs) == top_n for e in lp)
        if top_n:
            assert lp[0].content[0].top_logprobs[0] == TopLogprob("t0 ", -0.01, tuple(b"t0 "))
