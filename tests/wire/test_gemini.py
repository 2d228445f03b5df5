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
from streamactors.models import (
    ChatRequest,
    CitationEvent,
    Message,
    Reasoning,
    ResponseFormat,
    StreamEvent,
    TextEvent,
    Tool,
    ToolCall,
)
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


def usage(
    input_tokens: int | None, output_tokens: int | None, *, cache_read: int | None = None, reasoning: int | None = None
) -> dict[str, Any]:
    """A usage event as a dict: Gemini never reports cache writes."""
    return {
        "type": "usage",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": None,
        "reasoning_tokens": reasoning,
    }


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
        usage(9, 34, reasoning=30),
        {"type": "finish", "reason": "stop"},
    ]
    early = as_dicts(decode(sse(chunk([], "STOP", usageMetadata={"promptTokenCount": 9}))))
    assert early[0] == usage(9, None)


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
        usage(3, None),
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
        usage(7, None),
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
        usage(11, 9, reasoning=3),
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


# --- usage details and citations ----------------------------------------------------------


def test_usage_details_cached_and_thoughts() -> None:
    """`promptTokenCount` already counts the cached tokens: it is the input total as it is."""
    meta = {
        "promptTokenCount": 2053,
        "candidatesTokenCount": 74,
        "totalTokenCount": 2235,
        "cachedContentTokenCount": 1021,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 2053}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 1021}],
        "thoughtsTokenCount": 108,
    }
    events = as_dicts(decode(sse(chunk([{"text": "x"}], "STOP", usageMetadata=meta))))
    assert events[-2] == usage(2053, 182, cache_read=1021, reasoning=108)


def test_usage_last_chunk_wins_for_every_detail() -> None:
    first = {"promptTokenCount": 40, "cachedContentTokenCount": 32, "totalTokenCount": 40}
    last = {"promptTokenCount": 40, "candidatesTokenCount": 3, "totalTokenCount": 43, "cachedContentTokenCount": 0}
    events = as_dicts(
        decode(sse(chunk([{"text": "a"}], usageMetadata=first), chunk([{"text": "b"}], "STOP", usageMetadata=last)))
    )
    assert events[-2] == usage(40, 3, cache_read=0)  # a stated 0 stays 0; no thoughts: None


@pytest.mark.parametrize(
    ("meta", "output"),
    [
        # The documented rule: total = prompt + candidates + toolUsePrompt + thoughts.
        ({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 20, "totalTokenCount": 35}, 25),
        (
            {
                "promptTokenCount": 10,
                "candidatesTokenCount": 5,
                "toolUsePromptTokenCount": 7,
                "thoughtsTokenCount": 20,
                "totalTokenCount": 42,
            },
            25,
        ),
        # A total with no room for the thoughts: they are already inside candidatesTokenCount.
        ({"promptTokenCount": 10, "candidatesTokenCount": 25, "thoughtsTokenCount": 20, "totalTokenCount": 35}, 25),
        (
            {
                "promptTokenCount": 10,
                "candidatesTokenCount": 25,
                "toolUsePromptTokenCount": 7,
                "thoughtsTokenCount": 20,
                "totalTokenCount": 42,
            },
            25,
        ),
        # No total to check against: the documented rule.
        ({"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 20}, 25),
        ({"promptTokenCount": 10, "thoughtsTokenCount": 20, "totalTokenCount": 30}, 20),
    ],
)
def test_output_counts_thoughts_once(meta: dict[str, Any], output: int) -> None:
    events = as_dicts(decode(sse(chunk([{"text": "x"}], "STOP", usageMetadata=meta))))
    assert events[-2] == usage(10, output, reasoning=20)


def test_wrong_usage_detail_type_is_a_protocol_error() -> None:
    meta = {"promptTokenCount": 10, "cachedContentTokenCount": "5"}
    with pytest.raises(WireError, match="cachedContentTokenCount") as info:
        decode(sse(chunk([{"text": "x"}], "STOP", usageMetadata=meta)))
    assert info.value.kind == "protocol"


# Google Search grounding as the Gemini API streams it: the sources arrive only in the
# last chunk, together with the finish reason and the final usage.
GROUNDED = (
    'data: {"candidates": [{"content": {"parts": [{"text": "Node.js 24 is the active LTS"}],"role": "model"},'
    '"index": 0}],"usageMetadata": {"promptTokenCount": 131,"candidatesTokenCount": 8,"totalTokenCount": 139,'
    '"promptTokensDetails": [{"modality": "TEXT","tokenCount": 131}]},"modelVersion": "gemini-2.5-flash",'
    '"responseId": "uCdRasy1POqHz7IPsuT-kAs"}\r\n\r\n'
    'data: {"candidates": [{"content": {"parts": [{"text": " release; 26 is «Current» ✓."}],"role": "model"},'
    '"finishReason": "STOP","index": 0,"groundingMetadata": {"searchEntryPoint": {"renderedContent": '
    '"\\u003cstyle\\u003e.chip {}\\u003c/style\\u003e"},"groundingChunks": [{"web": {"uri": '
    '"https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQEq","title": "nodejs.org"}},'
    '{"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQFr",'
    '"title": "endoflife.date"}},{"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/'
    'AUZIYQGs","title": "github.com"}}],"groundingSupports": [{"segment": {"endIndex": 28,"text": '
    '"Node.js 24 is the active LTS"},"groundingChunkIndices": [1,0],"confidenceScores": [0.9,0.8]},'
    '{"segment": {"startIndex": 29,"endIndex": 62,"text": "26 is «Current» ✓."},"groundingChunkIndices": [0]},'
    '{"segment": {"startIndex": 10,"endIndex": 12,"text": "is"}}],"webSearchQueries": ["node js lts"]}}],'
    '"usageMetadata": {"promptTokenCount": 131,"candidatesTokenCount": 61,"totalTokenCount": 783,'
    '"promptTokensDetails": [{"modality": "TEXT","tokenCount": 131}],"thoughtsTokenCount": 591},'
    '"modelVersion": "gemini-2.5-flash","responseId": "uCdRasy1POqHz7IPsuT-kAs"}\r\n\r\n'
).encode()

GROUNDED_EVENTS = [
    {"type": "text", "text": "Node.js 24 is the active LTS"},
    {"type": "text", "text": " release; 26 is «Current» ✓."},
    {
        "type": "citation",
        "citation": {
            "url": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQEq",
            "title": "nodejs.org",
            "cited_text": "Node.js 24 is the active LTS",
        },
    },
    {
        "type": "citation",
        "citation": {
            "url": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQFr",
            "title": "endoflife.date",
            "cited_text": "Node.js 24 is the active LTS",
        },
    },
    {
        "type": "citation",
        "citation": {
            "url": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIYQGs",
            "title": "github.com",
            "cited_text": None,  # no support points at it
        },
    },
    usage(131, 652, reasoning=591),
    {"type": "finish", "reason": "stop"},
]


def test_citations_in_the_last_chunk_are_not_lost() -> None:
    """Sources in the chunk that finishes the reply: one event each, in order, before usage and finish."""
    dec = GeminiStreamDecoder()
    events = feed(dec, GROUNDED) + close(dec)
    assert as_dicts(events) == GROUNDED_EVENTS
    assert dec.unknown_events == set()


def test_citations_split_at_every_byte_offset() -> None:
    for i in range(len(GROUNDED) + 1):
        assert as_dicts(decode(GROUNDED[:i], GROUNDED[i:])) == GROUNDED_EVENTS, f"split at byte {i}"
    assert as_dicts(decode(*(GROUNDED[i : i + 1] for i in range(len(GROUNDED))))) == GROUNDED_EVENTS


def _grounding(*sources: tuple[str, str], supports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"groundingChunks": [{"web": {"uri": u, "title": t}} for u, t in sources]}
    if supports is not None:
        meta["groundingSupports"] = supports
    return meta


def grounded(
    parts: list[dict[str, Any]], meta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A chunk whose candidate carries `groundingMetadata`."""
    obj = chunk(parts, finish, **extra)
    obj["candidates"][0]["groundingMetadata"] = meta
    return obj


def _citations(events: list[StreamEvent]) -> list[tuple[str | None, str | None, str | None]]:
    return [(e.citation.url, e.citation.title, e.citation.cited_text) for e in events if isinstance(e, CitationEvent)]


def test_repeated_grounding_metadata_gives_each_source_once() -> None:
    """Google may resend the metadata gathered so far: a source already seen is not cited again,
    and a later support fills in the cited text a source lacked."""
    a, b, c = ("https://a.example/x", "a.example"), ("https://b.example/y", "b.example"), ("https://c.example", "c")
    first = grounded([{"text": "one "}], _grounding(a, b))
    supports = [{"segment": {"endIndex": 3, "text": "one"}, "groundingChunkIndices": [1, 2]}]
    second = grounded([{"text": "two"}], _grounding(a, b, c, supports=supports))
    last = grounded([], _grounding(c, a), "STOP", usageMetadata={"promptTokenCount": 5})
    trailing = {"candidates": [], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}}
    events = decode(sse(first, second, last, trailing))
    assert _citations(events) == [(*a, None), (*b, "one"), (*c, "one")]
    assert [e.type for e in events] == ["text", "text", "citation", "citation", "citation", "usage", "finish"]
    assert as_dicts(events)[-2] == usage(5, 2)


def test_retrieved_context_and_maps_sources() -> None:
    """A retrieved passage is the cited text when no support points at it; two passages of the
    same document are two citations. Maps places are sources too; unknown kinds are recorded."""
    meta = {
        "groundingChunks": [
            {"retrievedContext": {"uri": "gs://docs/a.pdf", "title": "a.pdf", "text": "first passage"}},
            {"retrievedContext": {"uri": "gs://docs/a.pdf", "title": "a.pdf", "text": "second passage"}},
            {"maps": {"uri": "https://maps.google.com/?cid=5678", "title": "Isoshin", "placeId": "places/x"}},
            {"futureKind": {"uri": "https://new.example"}},
        ],
        "groundingSupports": [{"segment": {"endIndex": 5, "text": "Reply"}, "groundingChunkIndices": [1]}],
    }
    dec = GeminiStreamDecoder()
    events = feed(dec, sse(grounded([{"text": "Reply"}], meta, "STOP"))) + close(dec)
    assert _citations(events) == [
        ("gs://docs/a.pdf", "a.pdf", "first passage"),
        ("gs://docs/a.pdf", "a.pdf", "Reply"),
        ("https://maps.google.com/?cid=5678", "Isoshin", None),
    ]
    assert dec.unknown_events == {"groundingChunk:futureKind"}


def test_a_reply_that_fails_keeps_the_citations_it_had() -> None:
    """Citations wait for the end of the reply; a reply that fails first (an error event, a
    body that ends early, a dropped connection) still hands them over, once, with its
    partial reply: before the error is raised, or by `held_into`."""
    a = ("https://a.example/x", "a.example")
    first = sse(grounded([{"text": "one "}], _grounding(a)))
    error = sse({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    dec = GeminiStreamDecoder()
    out: list[StreamEvent] = []
    with pytest.raises(WireError, match="overloaded"):
        dec.feed_into(first + error, out)
    assert [e.type for e in out] == ["text", "citation"] and _citations(out) == [(*a, None)]

    dec = GeminiStreamDecoder()
    out = []
    dec.feed_into(first, out)
    with pytest.raises(WireError, match="incomplete"):
        dec.close_into(out)
    assert [e.type for e in out] == ["text", "citation"]

    dec = GeminiStreamDecoder()
    out = []
    dec.feed_into(first, out)
    dec.held_into(out)  # the connection dropped
    dec.held_into(out)
    assert [e.type for e in out] == ["text", "citation"]


def test_grounding_of_other_candidates_is_ignored() -> None:
    other = {"content": {"parts": [{"text": "alt"}]}, "index": 1, "groundingMetadata": _grounding(("u", "t"))}
    events = decode(sse({"candidates": [other]}, chunk([{"text": "ok"}], "STOP")))
    assert _citations(events) == []


@pytest.mark.parametrize(
    "meta",
    [
        {"groundingChunks": {"web": {}}},
        {"groundingChunks": ["https://a.example"]},
        {"groundingChunks": [{"web": "https://a.example"}]},
        {"groundingChunks": [{"web": {"uri": 7}}]},
        {"groundingChunks": [], "groundingSupports": [{"groundingChunkIndices": ["0"]}]},
        {"groundingChunks": [], "groundingSupports": ["x"]},
    ],
)
def test_malformed_grounding_is_a_protocol_error(meta: dict[str, Any]) -> None:
    with pytest.raises(WireError) as info:
        decode(sse(grounded([{"text": "x"}], meta, "STOP")))
    assert info.value.kind == "protocol"


def test_fake_format_renders_usage_details_and_citations() -> None:
    """The fake's scenario with cache reads, cache writes, reasoning and citations: Gemini reports
    the cache reads (inside the prompt count) and the thoughts, has no cache writes to report,
    and sends the sources as grounding chunks in the last chunk, with finish and usage; each
    support's segment is the cited passage, at its byte offsets in the reply text."""
    sc = Scenario(
        model="gemini-2.5-flash", tokens=4, reasoning=3, input_tokens=100, cache_read=40, cache_write=8, citations=3
    )
    data = render(sc)
    *_, last_event = data.rstrip(b"\r\n").split(b"\r\n\r\n")
    last = orjson.loads(last_event.removeprefix(b"data: "))
    cand = last["candidates"][0]
    assert cand["finishReason"] == "STOP" and "usageMetadata" in last
    meta = cand["groundingMetadata"]
    assert meta["groundingChunks"][0] == {"web": {"uri": "https://example.com/source/0", "title": "Source 0"}}
    assert last["usageMetadata"]["cachedContentTokenCount"] == 40
    assert b"groundingMetadata" not in data[: -len(last_event)]  # only in the last chunk
    dec = GeminiStreamDecoder()
    events = feed(dec, data) + close(dec)
    assert dec.unknown_events == set()
    assert _citations(events) == [
        (f"https://example.com/source/{i}", f"Source {i}", f"cited passage {i}") for i in range(3)
    ]
    text = "".join(e.text for e in events if isinstance(e, TextEvent)).encode()
    assert text == b"t0 t1 t2 t3 cited passage 0 cited passage 1 cited passage 2 "
    for support in meta["groundingSupports"]:
        segment = support["segment"]
        assert text[segment.get("startIndex", 0) : segment["endIndex"]] == segment["text"].encode()
    assert as_dicts(events)[-5:] == [
        *(
            {"type": "citation", "citation": attrs.asdict(ev.citation)}
            for ev in events
            if isinstance(ev, CitationEvent)
        ),
        usage(100, 7, cache_read=40, reasoning=3),
        {"type": "finish", "reason": "stop"},
    ]
    for i in range(len(data) + 1):
        assert decode(data[:i], data[i:]) == events, f"split at byte {i}"


def test_fake_format_reports_only_what_the_scenario_has() -> None:
    data = render(Scenario(tokens=2, input_tokens=10))
    assert b"cachedContentTokenCount" not in data and b"thoughtsTokenCount" not in data
    assert b"groundingMetadata" not in data
    assert as_dicts(decode(data))[-2] == usage(10, 2)


# --- common parameters (issue 13) -----------------------------------------------------

PARAM_CODEC = GeminiCodec(gemini_api_url("https://g.example"), {})


def _params_request(**params: Any) -> ChatRequest:
    return ChatRequest(model="gemini/m", messages=(Message("user", "hi"),), **params)


def _generation_config(codec: GeminiCodec, model_id: str = "gemini-2.5-flash", **params: Any) -> Any:
    spec = codec.build_request(_params_request(**params), model_id)
    return orjson.loads(spec.body).get("generationConfig")


def test_common_parameters_go_into_generation_config_under_gemini_names() -> None:
    spec = PARAM_CODEC.build_request(
        _params_request(
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            max_tokens=100,
            stop=("END",),
            logprobs=True,
            top_logprobs=3,
            presence_penalty=0.25,
            frequency_penalty=-0.5,
            seed=7,
        ),
        "gemini-2.5-flash",
    )
    body = orjson.loads(spec.body)
    assert body == {
        "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.9,
            "topK": 40,
            "maxOutputTokens": 100,
            "stopSequences": ["END"],
            "responseLogprobs": True,
            "logprobs": 3,
            "presencePenalty": 0.25,
            "frequencyPenalty": -0.5,
            "seed": 7,
        },
    }
    # The google-genai SDK's key order (GenerateContentConfig -> generationConfig).
    assert list(body["generationConfig"]) == [
        "temperature",
        "topP",
        "topK",
        "maxOutputTokens",
        "stopSequences",
        "responseLogprobs",
        "logprobs",
        "presencePenalty",
        "frequencyPenalty",
        "seed",
    ]
    assert spec.dropped == ()


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"seed": 0}, {"seed": 0}),
        ({"top_k": 1}, {"topK": 1}),
        ({"logprobs": True}, {"responseLogprobs": True}),
        ({"logprobs": False}, {"responseLogprobs": False}),
        ({"logprobs": True, "top_logprobs": 5}, {"responseLogprobs": True, "logprobs": 5}),
        ({"presence_penalty": 1.0}, {"presencePenalty": 1.0}),
        ({"frequency_penalty": 0.0}, {"frequencyPenalty": 0.0}),
    ],
)
def test_each_common_parameter_alone(params: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _generation_config(PARAM_CODEC, **params) == expected


def test_no_parameters_no_generation_config() -> None:
    assert _generation_config(PARAM_CODEC) is None


def test_response_format_json_object_is_json_mode() -> None:
    fmt = ResponseFormat(type="json_object")
    assert _generation_config(PARAM_CODEC, response_format=fmt) == {"responseMimeType": "application/json"}


def test_response_format_json_schema_is_response_json_schema() -> None:
    """The full JSON Schema goes as `responseJsonSchema` (not `responseSchema`, an OpenAPI subset)."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}}},
        "required": ["city"],
        "additionalProperties": False,
        "$defs": {"tag": {"type": "string", "enum": ["a", "b"]}},
    }
    fmt = ResponseFormat(type="json_schema", schema=schema, name="place", strict=True)
    config = _generation_config(PARAM_CODEC, response_format=fmt, temperature=0.0, seed=1)
    assert config == {
        "temperature": 0.0,
        "seed": 1,
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert list(config) == ["temperature", "seed", "responseMimeType", "responseJsonSchema"]


def test_response_format_comes_before_thinking_config() -> None:
    fmt = ResponseFormat(type="json_object")
    config = _generation_config(PARAM_CODEC, response_format=fmt, reasoning=Reasoning(budget_tokens=512))
    assert list(config) == ["responseMimeType", "thinkingConfig"]


UNSUPPORTED: list[tuple[str, Any]] = [
    ("user", "user-42"),
    ("parallel_tool_calls", False),
    ("parallel_tool_calls", True),
    ("service_tier", "flex"),
    ("metadata", {"k": "v"}),
]


@pytest.mark.parametrize(("param", "value"), UNSUPPORTED)
def test_unsupported_parameter_is_a_usage_error_naming_it_and_gemini(param: str, value: Any) -> None:
    with pytest.raises(UsageError) as info:
        PARAM_CODEC.build_request(_params_request(**{param: value}), "gemini-2.5-flash")
    assert repr(param) in str(info.value)
    assert "Gemini" in str(info.value)
    assert "drop_params" in str(info.value)


@pytest.mark.parametrize(("param", "value"), UNSUPPORTED)
def test_unsupported_parameter_dropped_with_drop_params(param: str, value: Any) -> None:
    codec = GeminiCodec(gemini_api_url("https://g.example"), {}, drop_params=True)
    spec = codec.build_request(_params_request(seed=3, **{param: value}), "gemini-2.5-flash")
    assert spec.dropped == (param,)
    body = orjson.loads(spec.body)
    assert body == {"contents": [{"parts": [{"text": "hi"}], "role": "user"}], "generationConfig": {"seed": 3}}


def test_all_unsupported_parameters_dropped_together() -> None:
    codec = GeminiCodec(gemini_api_url("https://g.example"), {}, drop_params=True)
    request = _params_request(user="u", parallel_tool_calls=False, service_tier="auto", metadata={"a": "b"})
    spec = codec.build_request(request, "gemini-2.5-flash")
    assert spec.dropped == ("user", "parallel_tool_calls", "service_tier", "metadata")
    assert orjson.loads(spec.body) == {"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}


@pytest.mark.parametrize("model_id", ["gemini-3-pro-preview", "models/gemini-3-flash-preview"])
@pytest.mark.parametrize("param", ["presence_penalty", "frequency_penalty"])
def test_gemini_3_refuses_penalties(model_id: str, param: str) -> None:
    """Gemini 3 models reject presencePenalty / frequencyPenalty (PITFALLS.md)."""
    with pytest.raises(UsageError) as info:
        PARAM_CODEC.build_request(_params_request(**{param: 0.5}), model_id)
    assert repr(param) in str(info.value) and "Gemini" in str(info.value)
    codec = GeminiCodec(gemini_api_url("https://g.example"), {}, drop_params=True)
    spec = codec.build_request(_params_request(top_k=2, **{param: 0.5}), model_id)
    assert spec.dropped == (param,)
    assert orjson.loads(spec.body)["generationConfig"] == {"topK": 2}


def test_gemini_3_keeps_the_other_parameters() -> None:
    config = _generation_config(PARAM_CODEC, "gemini-3-pro-preview", seed=5, top_k=4, logprobs=True)
    assert config == {"topK": 4, "responseLogprobs": True, "seed": 5}


def test_provider_name_in_the_refusal_is_configurable() -> None:
    codec = GeminiCodec(gemini_api_url("https://g.example"), {}, provider="Vertex AI (Gemini)")
    with pytest.raises(UsageError, match=r"'user' is not supported by Vertex AI \(Gemini\)"):
        codec.build_request(_params_request(user="u"), "gemini-2.5-flash")


def test_vertex_style_construction_still_works() -> None:
    """VertexCodec's call, `GeminiCodec(url, headers, max_event_bytes=...)`, refuses by default."""
    codec = GeminiCodec(vertex_gemini_url("https://v.example", "p", "us-central1"), {}, max_event_bytes=1 << 20)
    assert codec.drop_params is False
    with pytest.raises(UsageError, match="'metadata'"):
        codec.build_request(_params_request(metadata={"a": "b"}), "gemini-2.5-flash")
