"""The Gemini wire format: request bodies, stream decoding, and the fake upstream's rendering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import orjson
import pytest
from wire_harness import close, feed

from streamactors.errors import UsageError, WireError
from streamactors.models import ChatRequest, Message, Reasoning, StreamEvent, Tool, ToolCall
from streamactors.reply import ReplyBuilder
from streamactors.testing.formats import gemini as fake_gemini
from streamactors.testing.routing import route_request
from streamactors.testing.script import Scenario, build_steps, token_text
from streamactors.wire.gemini import (
    GeminiCodec,
    GeminiStreamDecoder,
    gemini_api_url,
    gemini_body,
    vertex_gemini_url,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TRANSCRIPTS = sorted(FIXTURES.glob("gemini_*.sse"))


def as_dicts(events: list[StreamEvent]) -> list[dict[str, Any]]:
    return [{"type": ev.type, **attrs.asdict(ev)} for ev in events]


def decode(*pieces: bytes) -> list[StreamEvent]:
    dec = GeminiStreamDecoder()
    out: list[StreamEvent] = []
    for piece in pieces:
        dec.feed_into(piece, out)
    dec.close_into(out)
    return out


def sse(*objs: Any) -> bytes:
    return b"".join(b"data: " + orjson.dumps(o) + b"\r\n\r\n" for o in objs)


def chunk(parts: list[dict[str, Any]], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], **extra}


# --- request bodies -------------------------------------------------------------------

CONVERSATION = (
    Message("system", "Be brief."),
    Message("user", "Weather in Paris and Tokyo?"),
    Message(
        "assistant",
        "Checking.",
        tool_calls=(
            ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
            ToolCall("call_b", "get_time", '{"tz":"Asia/Tokyo"}'),
        ),
    ),
    Message("tool", '{"temp": 21, "sky": "clear"}', tool_call_id="call_a"),
    Message("tool", "noon", tool_call_id="call_b"),
    Message("developer", "Answer in French."),
    Message("user", "Thanks! And tomorrow?"),
)

# What google-genai 3.4 sent (captured off the wire) for the same conversation with
# system_instruction=[...], ToolConfig(mode="ANY") and ThinkingConfig(True, 8192).
SDK_BODY = (
    '{"contents": [{"parts": [{"text": "Weather in Paris and Tokyo?"}], "role": "user"}, {"parts": [{"text": '
    '"Checking."}, {"functionCall": {"args": {"city": "Paris"}, "name": "get_weather"}}, {"functionCall": '
    '{"args": {"tz": "Asia/Tokyo"}, "name": "get_time"}}], "role": "model"}, {"parts": [{"functionResponse": '
    '{"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}}, {"functionResponse": {"name": '
    '"get_time", "response": {"result": "noon"}}}], "role": "user"}, {"parts": [{"text": "Thanks! And '
    'tomorrow?"}], "role": "user"}], "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in '
    'French."}], "role": "user"}, "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}, "generationConfig": '
    '{"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"], "thinkingConfig": '
    '{"include_thoughts": true, "thinking_budget": 8192}}}'
)


def test_body_matches_the_sdk_byte_for_byte() -> None:
    """Same keys, same order, same values as python-genai sends (compared as compact JSON)."""
    req = ChatRequest(
        "gemini/gemini-2.5-flash",
        CONVERSATION,
        max_tokens=256,
        temperature=0.2,
        top_p=0.9,
        stop=("END",),
        tool_choice="required",
        reasoning=Reasoning(effort="medium"),
    )
    assert orjson.dumps(gemini_body(req)) == orjson.dumps(json.loads(SDK_BODY))


def test_minimal_body_has_only_contents() -> None:
    req = ChatRequest("gemini/g", [Message("user", "hi")])
    assert gemini_body(req) == {"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}


def test_tools_become_function_declarations() -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    req = ChatRequest(
        "gemini/g", [Message("user", "hi")], tools=[Tool("get_weather", "Weather now", params), Tool("ping")]
    )
    assert gemini_body(req)["tools"] == [
        {
            "functionDeclarations": [
                {"description": "Weather now", "name": "get_weather", "parameters": params},
                {"name": "ping", "parameters": {"type": "object", "properties": {}}},
            ]
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"functionCallingConfig": {"mode": "AUTO"}}),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}),
        ("required", {"functionCallingConfig": {"mode": "ANY"}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"functionCallingConfig": {"allowedFunctionNames": ["get_weather"], "mode": "ANY"}},
        ),
        (None, None),
        ("sometimes", None),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    req = ChatRequest("gemini/g", [Message("user", "hi")], tools=[Tool("get_weather")], tool_choice=choice)
    assert gemini_body(req).get("toolConfig") == expected


@pytest.mark.parametrize(
    ("reasoning", "expected"),
    [
        (Reasoning(effort="low"), {"include_thoughts": True, "thinking_budget": 1024}),
        (Reasoning(effort="medium"), {"include_thoughts": True, "thinking_budget": 8192}),
        (Reasoning(effort="high"), {"include_thoughts": True, "thinking_budget": 24576}),
        (Reasoning(budget_tokens=3000), {"include_thoughts": True, "thinking_budget": 3000}),
        (Reasoning(budget_tokens=0), {"thinking_budget": 0}),
    ],
)
def test_reasoning_sets_thinking_config(reasoning: Reasoning, expected: dict[str, Any]) -> None:
    req = ChatRequest("gemini/g", [Message("user", "hi")], reasoning=reasoning)
    assert gemini_body(req)["generationConfig"] == {"thinkingConfig": expected}


def test_tool_results_find_names_and_group() -> None:
    """Consecutive results share a user turn; a JSON object is the response, anything else is wrapped."""
    msgs = [
        Message("user", "go"),
        Message("assistant", None, tool_calls=[ToolCall("c1", "a", ""), ToolCall("c2", "b", "[1, 2]")]),
        Message("tool", "[1, 2]", tool_call_id="c2"),
        Message("tool", None, tool_call_id="c1"),
    ]
    contents = gemini_body(ChatRequest("gemini/g", msgs))["contents"]
    assert contents[1] == {
        "parts": [
            {"functionCall": {"args": {}, "name": "a"}},
            {"functionCall": {"args": {"_raw_arguments": "[1, 2]"}, "name": "b"}},
        ],
        "role": "model",
    }
    assert contents[2] == {
        "parts": [
            {"functionResponse": {"name": "b", "response": {"result": "[1, 2]"}}},
            {"functionResponse": {"name": "a", "response": {"result": ""}}},
        ],
        "role": "user",
    }
    assert len(contents) == 3


def test_thought_signatures_round_trip() -> None:
    """Gemini 3 refuses a replayed functionCall without the thoughtSignature it came with
    (the recorded transcript has one on its first call): decoded onto the call, sent back with it."""
    builder = ReplyBuilder("gemini", "g")
    for ev in decode((FIXTURES / "gemini_thinking_tools.sse").read_bytes()):
        builder.add(ev)
    calls = builder.reply().tool_calls
    assert calls[0].signature and calls[0].signature.startswith("CiQB") and calls[1].signature is None
    msgs = [Message("user", "go"), Message("assistant", None, tool_calls=calls)]
    parts = gemini_body(ChatRequest("gemini/g", msgs))["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == calls[0].signature and parts[0]["functionCall"]["name"] == calls[0].name
    assert "thoughtSignature" not in parts[1]


def test_tool_result_for_unknown_call_is_a_usage_error() -> None:
    msgs = [Message("user", "go"), Message("tool", "x", tool_call_id="nope")]
    with pytest.raises(UsageError, match="nope"):
        gemini_body(ChatRequest("gemini/g", msgs))
    named = [Message("user", "go"), Message("tool", "x", tool_call_id="nope", name="lookup")]
    assert (
        gemini_body(ChatRequest("gemini/g", named))["contents"][1]["parts"][0]["functionResponse"]["name"] == "lookup"
    )


def test_codec_urls_and_headers() -> None:
    req = ChatRequest("gemini/gemini-2.5-flash", [Message("user", "hi")])
    api = GeminiCodec(gemini_api_url("https://generativelanguage.googleapis.com/"), {"x-goog-api-key": "k"})
    spec = api.build_request(req, "gemini-2.5-flash")
    assert spec.method == "POST"
    assert spec.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert spec.headers == (("x-goog-api-key", "k"),)
    assert orjson.loads(spec.body) == gemini_body(req)
    assert api.build_request(req, "tunedModels/mine").url.endswith(
        "/v1beta/tunedModels/mine:streamGenerateContent?alt=sse"
    )
    vertex = GeminiCodec(vertex_gemini_url("https://us-central1-aiplatform.googleapis.com", "proj", "us-central1"), {})
    assert vertex.build_request(req, "gemini-2.5-pro").url == (
        "https://us-central1-aiplatform.googleapis.com/v1/projects/proj/locations/us-central1"
        "/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    template = GeminiCodec("http://h/v1/models/{model}:streamGenerateContent?alt=sse", {})
    assert template.build_request(req, "m").url == "http://h/v1/models/m:streamGenerateContent?alt=sse"


def test_parse_error_reads_google_error_bodies() -> None:
    codec = GeminiCodec(gemini_api_url("http://h"), {})
    body = fake_gemini.error_body(429, "Resource has been exhausted (e.g. check quota).")
    assert codec.parse_error(429, body) == ("Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED")
    assert codec.parse_error(400, b'[{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}]') == (
        "bad",
        "INVALID_ARGUMENT",
    )


# --- decoding recorded-format transcripts ---------------------------------------------


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript_decodes_to_expected_events(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert as_dicts(decode(path.read_bytes())) == expected


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript_split_at_every_byte_offset(path: Path) -> None:
    """Every two-piece split, including inside CRLF pairs and multi-byte characters, gives the same events."""
    data = path.read_bytes()
    assert b"\r\n\r\n" in data and any(b >= 0x80 for b in data)
    expected = as_dicts(decode(data))
    for i in range(len(data) + 1):
        assert as_dicts(decode(data[:i], data[i:])) == expected, f"split at byte {i}"
    assert as_dicts(decode(*(data[i : i + 1] for i in range(len(data))))) == expected


def test_transcript_sets_model_and_response_id() -> None:
    dec = GeminiStreamDecoder()
    feed(dec, (FIXTURES / "gemini_thinking_tools.sse").read_bytes())
    close(dec)
    assert dec.model == "gemini-2.5-flash"
    assert dec.response_id == "kXqUaJ2lNe2Ez7IPnL3D8Qc"
    assert dec.finish_reason_raw == "STOP"
    assert dec.unknown_events == set()
    assert not dec.invalid_utf8


# --- decoder behaviour ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("LANGUAGE", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"),
        ("UNEXPECTED_TOOL_CALL", "error"),
        ("OTHER", "error"),
        ("FINISH_REASON_UNSPECIFIED", "error"),
        ("SOMETHING_NEW", "error"),
    ],
)
def test_finish_reason_mapping(raw: str, reason: str) -> None:
    events = decode(sse(chunk([{"text": "x"}], raw)))
    assert as_dicts(events)[-1] == {"type": "finish", "reason": reason}


def test_stop_with_function_calls_is_tool_calls_and_ids_are_kept_or_made() -> None:
    parts: list[dict[str, Any]] = [
        {"functionCall": {"id": "fc_1", "name": "a", "args": {"q": "é"}}},
        {"functionCall": {"name": "b"}},
    ]
    events = as_dicts(decode(sse(chunk(parts, "STOP"))))
    assert events == [
        {"type": "tool_call", "index": 0, "id": "fc_1", "name": "a", "arguments": '{"q":"é"}', "signature": None},
        {"type": "tool_call", "index": 1, "id": "call_1", "name": "b", "arguments": "{}", "signature": None},
        {"type": "finish", "reason": "tool_calls"},
    ]


def test_usage_last_chunk_wins_and_counts_thoughts() -> None:
    data = sse(
        chunk([{"text": "a"}], usageMetadata={"promptTokenCount": 9, "totalTokenCount": 9}),
        chunk(
            [{"text": "b"}],
            "STOP",
            usageMetadata={
                "promptTokenCount": 9,
                "candidatesTokenCount": 4,
                "thoughtsTokenCount": 30,
                "totalTokenCount": 43,
            },
        ),
    )
    assert as_dicts(decode(data))[-2:] == [
        {"type": "usage", "input_tokens": 9, "output_tokens": 34},
        {"type": "finish", "reason": "stop"},
    ]
    early = as_dicts(decode(sse(chunk([], "STOP", usageMetadata={"promptTokenCount": 9}))))
    assert early[0] == {"type": "usage", "input_tokens": 9, "output_tokens": None}


def test_empty_candidate_chunks_do_not_crash() -> None:
    data = sse(
        {"candidates": [], "usageMetadata": {"promptTokenCount": 3}},
        {"usageMetadata": {"promptTokenCount": 3}, "modelVersion": "gemini-2.0-flash"},
        {"candidates": [{"index": 0}]},
        {"candidates": [{"content": {"role": "model"}, "index": 0}]},
        {"candidates": [{"content": {"parts": [], "role": "model"}, "index": 0}]},
        {"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": "c2ln"}]}}]},
        {"candidates": [{"content": {"parts": [{"text": "other"}]}, "index": 1}]},
        {"candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}]},
    )
    assert as_dicts(decode(data)) == [
        {"type": "text", "text": "ok"},
        {"type": "usage", "input_tokens": 3, "output_tokens": None},
        {"type": "finish", "reason": "stop"},
    ]


def test_blocked_prompt_finishes_with_content_filter() -> None:
    data = sse(
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
            "modelVersion": "gemini-2.5-flash",
        }
    )
    dec = GeminiStreamDecoder()
    events = feed(dec, data) + close(dec)
    assert as_dicts(events) == [
        {"type": "usage", "input_tokens": 7, "output_tokens": None},
        {"type": "finish", "reason": "content_filter"},
    ]
    assert dec.finish_reason_raw == "PROHIBITED_CONTENT"


def test_unknown_parts_are_recorded() -> None:
    dec = GeminiStreamDecoder()
    feed(dec, sse(chunk([{"executableCode": {"language": "PYTHON", "code": "1"}}], "STOP")))
    close(dec)
    assert dec.unknown_events == {"part:executableCode"}


@pytest.mark.parametrize("wrap", [False, True])
def test_error_object_mid_stream(wrap: bool) -> None:
    err: Any = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    dec = GeminiStreamDecoder()
    assert as_dicts(feed(dec, sse(chunk([{"text": "partial"}])))) == [{"type": "text", "text": "partial"}]
    with pytest.raises(WireError) as info:
        feed(dec, sse([err] if wrap else err))
    e = info.value
    assert (e.kind, e.status, e.error_type, e.retryable) == ("upstream", 503, "UNAVAILABLE", True)
    assert e.message == "The model is overloaded."


def test_client_error_mid_stream_is_not_retryable() -> None:
    err = {"error": {"code": 400, "message": "Bad tool schema", "status": "INVALID_ARGUMENT"}}
    with pytest.raises(WireError) as info:
        decode(sse(err))
    assert (info.value.status, info.value.retryable) == (400, False)


def test_truncated_stream_is_a_wire_error() -> None:
    dec = GeminiStreamDecoder()
    feed(dec, sse(chunk([{"text": "Once upon"}])))
    with pytest.raises(WireError, match="incomplete"):
        close(dec)


def test_half_event_at_eof_is_a_wire_error() -> None:
    data = sse(chunk([{"text": "x"}], "STOP"))
    with pytest.raises(WireError):
        decode(data[:-4])  # the finishing event never got its blank line


def test_invalid_json_is_a_protocol_error() -> None:
    with pytest.raises(WireError) as info:
        decode(b"data: {not json\r\n\r\n")
    assert info.value.kind == "protocol"


def test_oversized_event_is_a_protocol_error() -> None:
    dec = GeminiStreamDecoder(max_event_bytes=64)
    with pytest.raises(WireError, match="max_event_bytes"):
        feed(dec, b"data: " + b"x" * 100)


# --- the fake upstream's format, decoded back ---------------------------------------------


def render(sc: Scenario) -> bytes:
    items = list(fake_gemini.render(build_steps(sc), sc.model, {}))
    assert all(isinstance(i, bytes) for i in items)
    return b"".join(i for i in items if isinstance(i, bytes))


def test_fake_format_round_trips_through_the_decoder() -> None:
    sc = Scenario(model="gemini-2.5-flash", tokens=6, reasoning=3, tool_calls=2, unicode=True, input_tokens=11)
    data = render(sc)
    assert data.startswith(b'data: {"candidates": [{"content": {"parts": [{"text": ')
    assert data.endswith(b"\r\n\r\n") and b"\n\n" not in data.replace(b"\r\n", b"")
    dec = GeminiStreamDecoder()
    events = feed(dec, data) + close(dec)
    assert dec.model == "gemini-2.5-flash"
    text = "".join(e.text for e in events if e.type == "text")  # type: ignore[union-attr]
    reasoning = "".join(e.text for e in events if e.type == "reasoning")  # type: ignore[union-attr]
    assert text == "".join(token_text(i, True) for i in range(6))
    assert reasoning == "".join(token_text(i, True) for i in range(3))
    calls = [e for e in as_dicts(events) if e["type"] == "tool_call"]
    assert calls == [
        {
            "type": "tool_call",
            "index": i,
            "id": f"call_fakeResp0001_{i}",
            "name": "get_weather",
            "arguments": f'{{"city":"Paris {i}","units":"celsius","days":{i + 1}}}',
            "signature": None,
        }
        for i in range(2)
    ]
    assert as_dicts(events)[-2:] == [
        {"type": "usage", "input_tokens": 11, "output_tokens": 9},
        {"type": "finish", "reason": "tool_calls"},
    ]


@pytest.mark.parametrize(
    ("finish", "reason"), [("stop", "stop"), ("length", "length"), ("content_filter", "content_filter")]
)
def test_fake_format_finish_reasons(finish: str, reason: str) -> None:
    events = decode(render(Scenario(tokens=2, finish=finish)))
    assert as_dicts(events)[-1] == {"type": "finish", "reason": reason}


def test_fake_format_faults() -> None:
    with pytest.raises(WireError) as info:
        decode(render(Scenario(tokens=10, fail="midstream", fail_at=4)))
    assert (info.value.kind, info.value.status, info.value.error_type) == ("upstream", 503, "UNAVAILABLE")
    with pytest.raises(WireError, match="incomplete"):
        decode(render(Scenario(tokens=10, fail="truncate", fail_at=4)))


def test_fake_upstream_routes_gemini_and_vertex_paths() -> None:
    api = route_request("/v1beta/models/gemini-2.5-flash~tokens%3D3:streamGenerateContent", {})
    vertex = route_request(
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:streamGenerateContent", {}
    )
    assert api is not None and vertex is not None
    assert (api[0], api[1]) == (fake_gemini, "gemini-2.5-flash~tokens=3")
    assert (vertex[0], vertex[1]) == (fake_gemini, "gemini-2.5-pro")
