"""The Anthropic Messages codec: request bodies as the anthropic SDK sends them, and
stream decoding that is exact for every split of the bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_harness import (
    assert_every_split,
    assert_feed_and_close,
    assert_three_way_and_bytes,
    close,
    decode,
    every_split,
    feed,
    load,
    split_at,
    transcripts,
)

from streamactors.content import AudioPart, CacheControl, FilePart, ImagePart, TextPart
from streamactors.errors import UsageError, WireError
from streamactors.models import (
    ChatRequest,
    Citation,
    CitationEvent,
    Message,
    Reasoning,
    ReasoningBlock,
    ResponseFormat,
    StreamEvent,
    TextEvent,
    Tool,
    ToolCall,
)
from streamactors.testing.formats import anthropic as fake_anthropic
from streamactors.testing.script import Delay, Drop, Scenario, build_steps, citation_for
from streamactors.wire.anthropic import (
    AnthropicCodec,
    AnthropicStreamDecoder,
    anthropic_body,
)
from streamactors.wire.claude import DEFAULT_MAX_TOKENS
from streamactors.wire.vertex import VertexCodec

TRANSCRIPTS = transcripts("anthropic")
URL = "https://api.anthropic.com/v1/messages"


def run(*pieces: bytes) -> list[dict[str, Any]]:
    return decode(AnthropicStreamDecoder, pieces)


def ev(name: str, **fields: Any) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps({"type": name, **fields}) + b"\n\n"


def start(usage: dict[str, Any] | None = None, model: str = "claude-x") -> bytes:
    return ev("message_start", message={"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                                        "content": [], "stop_reason": None, "stop_sequence": None,
                                        "usage": usage or {"input_tokens": 10, "output_tokens": 1}})


def block(index: int, **content_block: Any) -> bytes:
    return ev("content_block_start", index=index, content_block=content_block)


def delta(index: int, **d: Any) -> bytes:
    return ev("content_block_delta", index=index, delta=d)


def stop_block(index: int) -> bytes:
    return ev("content_block_stop", index=index)


def message_delta(stop_reason: str | None = "end_turn", **usage: Any) -> bytes:
    return ev("message_delta", delta={"stop_reason": stop_reason, "stop_sequence": None},
              usage=usage or {"output_tokens": 5})


END = message_delta() + ev("message_stop")


def reasoning(t: str, signature: str | None = None, redacted: str | None = None) -> dict[str, Any]:
    return {"type": "reasoning", "text": t, "signature": signature, "redacted": redacted}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tc_ev(index: int, args: str = "", id: str | None = None, name: str | None = None) -> dict[str, Any]:
    return {"type": "tool_call", "index": index, "id": id, "name": name, "arguments": args, "signature": None}


def usage(inp: int | None, out: int | None, cache_read: int | None = None, cache_write: int | None = None,
          reasoning: int | None = None) -> dict[str, Any]:
    return {"type": "usage", "input_tokens": inp, "output_tokens": out, "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write, "reasoning_tokens": reasoning}


def cite(url: str | None, title: str | None, cited_text: str | None) -> dict[str, Any]:
    return {"type": "citation", "citation": {"url": url, "title": title, "cited_text": cited_text}}


def fin(reason: str) -> dict[str, Any]:
    return {"type": "finish", "reason": reason}


# --- request side -----------------------------------------------------------------------

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
    Message("tool", '{"temp": 21}', tool_call_id="call_a"),
    Message("tool", "noon", tool_call_id="call_b"),
    Message("user", "Thanks — 日本語 too?"),
)
TOOLS = (
    Tool("get_weather", "Current weather",
         {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    Tool("get_time"),
)

# What anthropic 2.12.0 (`Anthropic().messages.create(..., stream=True)`) put on the wire
# for the same conversation, with system="Be brief.", thinking enabled (1024) and
# tool_choice auto; captured with an httpx2 MockTransport.
SDK_BODY = (
    '{"max_tokens":2048,"messages":[{"role":"user","content":"Weather in Paris and Tokyo?"},{"role":"assi'
    'stant","content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"call_a","name":"get_we'
    'ather","input":{"city":"Paris"}},{"type":"tool_use","id":"call_b","name":"get_time","input":{"tz":"A'
    'sia/Tokyo"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_a","content":"{\\"'
    'temp\\": 21}"},{"type":"tool_result","tool_use_id":"call_b","content":"noon"},{"type":"text","text":"'
    'Thanks — 日本語 too?"}]}],"model":"claude-sonnet-4-5","stop_sequences":["END"],"stream":true,"system":"'
    'Be brief.","thinking":{"type":"enabled","budget_tokens":1024},"tool_choice":{"type":"auto"},"tools":'
    '[{"name":"get_weather","description":"Current weather","input_schema":{"type":"object","properties":'
    '{"city":{"type":"string"}},"required":["city"]}},{"name":"get_time","input_schema":{"type":"object",'
    '"properties":{}}}]}'
)
# anthropic-sdk-python v0.121.0 `resources/messages/messages.py` create(): the body's key order.
SDK_KEY_ORDER = ["max_tokens", "messages", "model", "stop_sequences", "stream", "system", "temperature", "thinking",
                 "tool_choice", "tools", "top_k", "top_p"]


def request(**kw: Any) -> ChatRequest:
    args: dict[str, Any] = {"model": "anthropic/claude-sonnet-4-5", "messages": (Message("user", "hi"),)}
    args.update(kw)
    return ChatRequest(**args)


def full_request() -> ChatRequest:
    return request(messages=CONVERSATION, max_tokens=2048, temperature=0.5, stop=("END",), tools=TOOLS,
                   tool_choice="auto", reasoning=Reasoning(budget_tokens=1024))


def test_body_equals_what_the_sdk_sends() -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    spec = AnthropicCodec(URL, headers).build_request(full_request(), "claude-sonnet-4-5")
    assert orjson.loads(spec.body) == json.loads(SDK_BODY)  # temperature is dropped: thinking requires 1
    assert (spec.method, spec.url, dict(spec.headers)) == ("POST", URL, headers)


def test_body_keys_follow_the_sdk_order() -> None:
    body = anthropic_body(full_request(), "m")
    assert list(body) == [k for k in SDK_KEY_ORDER if k in body]
    body = anthropic_body(request(temperature=0.2, top_p=0.9, stop=("x",), tool_choice="none"), "m")
    assert list(body) == [k for k in SDK_KEY_ORDER if k in body]


def test_minimal_body_has_the_default_max_tokens() -> None:
    assert anthropic_body(request(), "m") == {"max_tokens": DEFAULT_MAX_TOKENS,
                                              "messages": [{"role": "user", "content": "hi"}], "model": "m",
                                              "stream": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
     ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
     ({"type": "tool", "name": "g", "disable_parallel_tool_use": True},
      {"type": "tool", "name": "g", "disable_parallel_tool_use": True})],
)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    assert anthropic_body(request(tool_choice=choice), "m")["tool_choice"] == expected


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "thinking", "sent_max"),
    [(Reasoning(effort="low"), None, 1024, DEFAULT_MAX_TOKENS),
     (Reasoning(effort="medium"), 8000, 4096, 8000),
     (Reasoning(effort="high"), None, 16384, 16384 + DEFAULT_MAX_TOKENS),
     (Reasoning(budget_tokens=100), 2000, 1024, 2000),
     (Reasoning(budget_tokens=4096), 4096, 4096, 8192)],
)
def test_reasoning_becomes_thinking(reasoning: Reasoning, max_tokens: int | None, thinking: int, sent_max: int) -> None:
    body = anthropic_body(request(reasoning=reasoning, max_tokens=max_tokens, temperature=0.3, top_p=0.5), "m")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": thinking}
    assert body["max_tokens"] == sent_max and body["max_tokens"] > thinking  # the API requires budget < max_tokens
    assert "temperature" not in body and "top_p" not in body


def test_messages_merge_turns_and_keep_the_system_prompt_apart() -> None:
    msgs = (Message("developer", "Rule 1."), Message("user", "a"), Message("user", "b"), Message("system", "Rule 2."),
            Message("assistant", None, tool_calls=(ToolCall("t1", "f", ""), ToolCall("t2", "g", "{bad"))),
            Message("tool", "r1", tool_call_id="t1"), Message("tool", None, tool_call_id="t2"))
    body = anthropic_body(request(messages=msgs), "m")
    assert body["system"] == "Rule 1.\n\nRule 2."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                                          {"type": "tool_use", "id": "t2", "name": "g",
                                           "input": {"_raw_arguments": "{bad"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r1"},
                                     {"type": "tool_result", "tool_use_id": "t2", "content": ""}]},
    ]


def test_signed_and_redacted_thinking_lead_the_assistant_turn() -> None:
    """Replayed as the API sent them, before the text and tool calls; unsigned reasoning is not sent."""
    blocks = (ReasoningBlock("Plan.", "c2ln"), ReasoningBlock("", None, "EmwK"), ReasoningBlock("unsigned"))
    msgs = (Message("user", "a"),
            Message("assistant", "On it.", tool_calls=(ToolCall("t1", "f", "{}"),), reasoning_blocks=blocks),
            Message("tool", "r1", tool_call_id="t1"))
    assert anthropic_body(request(messages=msgs), "m")["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "Plan.", "signature": "c2ln"},
                    {"type": "redacted_thinking", "data": "EmwK"},
                    {"type": "text", "text": "On it."},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
    }


def test_parse_error_reads_anthropic_error_bodies() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}'
    assert AnthropicCodec(URL, {}).parse_error(529, body) == ("Overloaded", "overloaded_error")


# --- transcripts at every split --------------------------------------------------------


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript_split_at_every_byte_offset(path: Path) -> None:
    assert_every_split(AnthropicStreamDecoder, path)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript_in_three_pieces_and_byte_by_byte(path: Path) -> None:
    assert_three_way_and_bytes(AnthropicStreamDecoder, path)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript_through_feed_and_close(path: Path) -> None:
    """A fresh list per call (`feed`/`close`) gives the same events when nothing fails."""
    assert_feed_and_close(AnthropicStreamDecoder, path)


def test_transcript_metadata() -> None:
    dec = AnthropicStreamDecoder()
    data, _ = load(TRANSCRIPTS[0].parent / "anthropic_thinking.sse")
    feed(dec, data)
    assert dec.model == "claude-opus-4-1-20250805"
    assert dec.unknown_events == set() and dec.invalid_utf8 is False


# --- tool calls (PITFALL 4) ----------------------------------------------------------------


def test_tool_positions_count_tool_blocks_only() -> None:
    raw = (start() + block(0, type="thinking", thinking="", signature="")
           + delta(0, type="thinking_delta", thinking="t") + stop_block(0)
           + block(1, type="text", text="") + delta(1, type="text_delta", text="x") + stop_block(1)
           + block(2, type="tool_use", id="toolu_a", name="f", input={})
           + block(5, type="tool_use", id="toolu_b", name="g", input={})  # interleaved, as a proxy may
           + delta(5, type="input_json_delta", partial_json='{"b":')
           + delta(2, type="input_json_delta", partial_json="{}")
           + delta(5, type="input_json_delta", partial_json="1}") + stop_block(2) + stop_block(5)
           + message_delta("tool_use", output_tokens=9) + ev("message_stop"))
    assert run(raw) == [reasoning("t"), text("x"), tc_ev(0, "", "toolu_a", "f"),
                        tc_ev(1, "", "toolu_b", "g"), tc_ev(1, '{"b":'), tc_ev(0, "{}"), tc_ev(1, "1}"),
                        usage(10, 9), fin("tool_calls")]


def test_input_deltas_of_server_tool_blocks_are_not_tool_calls() -> None:
    dec = AnthropicStreamDecoder()
    raw = (start() + block(0, type="server_tool_use", id="srvtoolu_1", name="web_search", input={})
           + delta(0, type="input_json_delta", partial_json='{"query": "x"}') + stop_block(0)
           + block(1, type="web_search_tool_result", tool_use_id="srvtoolu_1", content=[])
           + block(2, type="text", text="") + delta(2, type="text_delta", text="Found.")
           + delta(2, type="citations_delta", citation={"type": "web_search_result_location", "cited_text": "x",
                                                        "url": "https://a.example", "title": "A",
                                                        "encrypted_index": "Eo8B"}) + END)
    assert decode(lambda: dec, [raw]) == [text("Found."), cite("https://a.example", "A", "x"), usage(10, 5),
                                          fin("stop")]
    assert dec.unknown_events == {"content_block_start:server_tool_use", "content_block_start:web_search_tool_result"}


def test_tool_input_given_whole_in_the_start_block() -> None:
    raw = start() + block(0, type="tool_use", id="t", name="f", input={"a": "é"}) + message_delta("tool_use")
    assert run(raw)[:2] == [tc_ev(0, "", "t", "f"), tc_ev(0, '{"a":"é"}')]


def test_empty_input_json_deltas_are_skipped() -> None:
    raw = (start() + block(0, type="tool_use", id="t", name="f", input={})
           + delta(0, type="input_json_delta", partial_json="") + delta(0, type="input_json_delta", partial_json="{}")
           + message_delta("tool_use"))
    assert run(raw) == [tc_ev(0, "", "t", "f"), tc_ev(0, "{}"), usage(10, 5), fin("tool_calls")]


@pytest.mark.parametrize(("stop", "reason"), [("end_turn", "tool_calls"), ("tool_use", "tool_calls"),
                                              ("max_tokens", "length")])
def test_finish_after_tool_use(stop: str, reason: str) -> None:
    raw = start() + block(0, type="tool_use", id="t", name="f", input={}) + message_delta(stop) + ev("message_stop")
    assert run(raw)[-1] == fin(reason)


# --- usage ----------------------------------------------------------------------------------


def test_message_delta_output_tokens_keep_the_start_input_and_cache_tokens() -> None:
    raw = (start({"input_tokens": 3, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000,
                  "output_tokens": 1}) + message_delta(output_tokens=42) + ev("message_stop"))
    assert run(raw) == [usage(2103, 42, cache_read=2000, cache_write=100), fin("stop")]


def test_message_delta_fields_replace_the_same_fields_only() -> None:
    # As the SDK's accumulate_event: each field present in message_delta replaces its value.
    raw = (start({"input_tokens": 3, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 0,
                  "output_tokens": 1})
           + message_delta(input_tokens=5, cache_read_input_tokens=50, output_tokens=9) + ev("message_stop"))
    assert run(raw) == [usage(5 + 100 + 50, 9, cache_read=50, cache_write=100), fin("stop")]


def test_null_usage_fields_are_ignored() -> None:
    raw = start({"input_tokens": 7, "cache_creation_input_tokens": None, "cache_read_input_tokens": None,
                 "output_tokens": 1}) + message_delta(output_tokens=2, input_tokens=None) + ev("message_stop")
    assert run(raw) == [usage(7, 2), fin("stop")]


def test_no_usage_anywhere_gives_no_usage_event() -> None:
    raw = (ev("message_start", message={"id": "m", "model": "x"})
           + ev("message_delta", delta={"stop_reason": "end_turn"}) + ev("message_stop"))
    assert run(raw) == [fin("stop")]


def assert_at_every_split(raw: bytes, expected: list[dict[str, Any]]) -> None:
    assert run(raw) == expected
    bad = [len(pieces[0]) for pieces in every_split(raw) if run(*pieces) != expected]
    assert bad == []


def test_cache_and_thinking_tokens_at_every_split() -> None:
    """input_tokens is input + cache creation + cache read (as LiteLLM reports it); the cache
    fields are the writes and reads; output_tokens_details.thinking_tokens the reasoning."""
    raw = (start({"input_tokens": 12, "cache_creation_input_tokens": 1024, "cache_read_input_tokens": 2048,
                  "cache_creation": {"ephemeral_5m_input_tokens": 1024, "ephemeral_1h_input_tokens": 0},
                  "output_tokens": 4, "service_tier": "standard"})
           + block(0, type="text", text="") + delta(0, type="text_delta", text="Hi") + stop_block(0)
           + message_delta(input_tokens=12, cache_creation_input_tokens=1024, cache_read_input_tokens=2048,
                           output_tokens=291, output_tokens_details={"thinking_tokens": 240})
           + ev("message_stop"))
    assert_at_every_split(raw, [text("Hi"), usage(12 + 1024 + 2048, 291, cache_read=2048, cache_write=1024,
                                                  reasoning=240), fin("stop")])


def test_zero_cache_counts_are_reported_as_zero() -> None:
    raw = start({"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                 "output_tokens": 1}) + END
    assert run(raw) == [usage(25, 5, cache_read=0, cache_write=0), fin("stop")]


def test_cache_counts_given_only_in_message_delta() -> None:
    raw = (start({"input_tokens": 7, "output_tokens": 1})
           + message_delta(cache_read_input_tokens=30, output_tokens=3) + ev("message_stop"))
    assert run(raw) == [usage(37, 3, cache_read=30), fin("stop")]


def test_thinking_tokens_in_message_start_are_replaced_by_message_delta() -> None:
    raw = (start({"input_tokens": 7, "output_tokens": 1, "output_tokens_details": {"thinking_tokens": 0}})
           + message_delta(output_tokens=30, output_tokens_details={"thinking_tokens": 20}) + ev("message_stop"))
    assert run(raw) == [usage(7, 30, reasoning=20), fin("stop")]
    raw = (start({"input_tokens": 7, "output_tokens": 1, "output_tokens_details": {"thinking_tokens": 0}})
           + message_delta(output_tokens=30, output_tokens_details={}) + ev("message_stop"))
    assert run(raw) == [usage(7, 30, reasoning=0), fin("stop")]


# --- citations --------------------------------------------------------------------------------

WEB = {"type": "web_search_result_location", "cited_text": "Paris is the capital", "url": "https://fr.example/p",
       "title": "Paris", "encrypted_index": "Eo8BCioIAhgB"}
CHAR = {"type": "char_location", "cited_text": "The grass is green.", "document_index": 0,
        "document_title": "Lawn care", "start_char_index": 0, "end_char_index": 19, "file_id": None}
PAGE = {"type": "page_location", "cited_text": "p. 3 text", "document_index": 1, "document_title": None,
        "start_page_number": 3, "end_page_number": 4}
BLOCK = {"type": "content_block_location", "cited_text": "The sky is blue.", "document_index": 0,
         "document_title": "Sky", "start_block_index": 1, "end_block_index": 2}
SEARCH = {"type": "search_result_location", "cited_text": "result text", "source": "https://kb.example/a",
          "title": "KB article", "search_result_index": 0, "start_block_index": 0, "end_block_index": 1}


def test_every_citation_kind_is_one_event_in_order_at_every_split() -> None:
    raw = (start() + block(0, type="text", text="")
           + b"".join(delta(0, type="citations_delta", citation=c) for c in (WEB, CHAR, PAGE, BLOCK))
           + delta(0, type="text_delta", text="Cited.") + delta(0, type="citations_delta", citation=SEARCH)
           + stop_block(0) + END)
    assert_at_every_split(raw, [
        cite("https://fr.example/p", "Paris", "Paris is the capital"),
        cite(None, "Lawn care", "The grass is green."),
        cite(None, None, "p. 3 text"),
        cite(None, "Sky", "The sky is blue."),
        text("Cited."),
        cite("https://kb.example/a", "KB article", "result text"),
        usage(10, 5),
        fin("stop"),
    ])


def test_citations_in_the_last_read_are_not_lost() -> None:
    """The last citations, the block's end, the usage and message_stop in one read."""
    dec = AnthropicStreamDecoder()
    first = start() + block(0, type="text", text="") + delta(0, type="text_delta", text="Done.")
    last = (delta(0, type="citations_delta", citation=WEB) + delta(0, type="citations_delta", citation=CHAR)
            + stop_block(0) + END)
    assert feed(dec, first) == [TextEvent("Done.")]
    got = feed(dec, last)
    assert got[:2] == [CitationEvent(Citation("https://fr.example/p", "Paris", "Paris is the capital")),
                       CitationEvent(Citation(None, "Lawn care", "The grass is green."))]
    assert [ev.type for ev in got[2:]] == ["usage", "finish"]
    assert close(dec) == []


def test_the_same_source_cited_twice_is_two_citations() -> None:
    """Each citations_delta is a new citation (the API does not repeat them): both are kept."""
    raw = (start() + block(0, type="text", text="") + delta(0, type="citations_delta", citation=WEB)
           + delta(0, type="text_delta", text="a") + stop_block(0) + block(1, type="text", text="")
           + delta(1, type="citations_delta", citation=WEB) + delta(1, type="text_delta", text="b") + END)
    web = cite("https://fr.example/p", "Paris", "Paris is the capital")
    assert run(raw) == [web, text("a"), web, text("b"), usage(10, 5), fin("stop")]


def test_citations_of_a_text_block_sent_whole() -> None:
    raw = start() + block(0, type="text", text="Whole.", citations=[WEB, CHAR]) + block(1, type="text", text="",
                                                                                       citations=[]) + END
    assert run(raw) == [text("Whole."), cite("https://fr.example/p", "Paris", "Paris is the capital"),
                        cite(None, "Lawn care", "The grass is green."), usage(10, 5), fin("stop")]


def test_unknown_citation_kinds_keep_their_known_fields() -> None:
    dec = AnthropicStreamDecoder()
    future = {"type": "future_location", "cited_text": "t", "url": "https://x.example"}
    raw = (start() + block(0, type="text", text="") + delta(0, type="citations_delta", citation=future)
           + delta(0, type="citations_delta", citation={"type": "future_location"}) + END)
    assert decode(lambda: dec, [raw]) == [cite("https://x.example", None, "t"), usage(10, 5), fin("stop")]
    assert dec.unknown_events == {"citation:future_location"}


# --- the fake upstream's format ---------------------------------------------------------------


def fake_bytes(sc: Scenario) -> bytes:
    items = list(fake_anthropic.render(build_steps(sc), sc.model, {}))
    assert not [i for i in items if isinstance(i, (Delay, Drop))]
    return b"".join(i for i in items if isinstance(i, bytes))


def fake_citations(n: int) -> list[dict[str, Any]]:
    return [cite(c.url, c.title, c.cited_text) for c in map(citation_for, range(n))]


def sse_payloads(raw: bytes, name: str) -> list[dict[str, Any]]:
    events = raw.split(b"\n\n")
    return [orjson.loads(e.split(b"\ndata: ", 1)[1]) for e in events if e.startswith(b"event: " + name.encode())]


def test_fake_format_renders_cache_thinking_and_citations() -> None:
    sc = Scenario(model="claude-fake", tokens=3, reasoning=2, cache_read=40, cache_write=8, citations=2,
                  input_tokens=100)
    raw = fake_bytes(sc)
    (msg_start,) = sse_payloads(raw, "message_start")
    assert msg_start["message"]["usage"] == {"input_tokens": 52, "cache_creation_input_tokens": 8,
                                             "cache_read_input_tokens": 40, "output_tokens": 1}
    (msg_delta,) = sse_payloads(raw, "message_delta")
    assert msg_delta["usage"] == {"input_tokens": 52, "cache_creation_input_tokens": 8,
                                  "cache_read_input_tokens": 40, "output_tokens": 5,
                                  "output_tokens_details": {"thinking_tokens": 2}}
    assert_at_every_split(raw, [
        reasoning("t0 "), reasoning("t1 "), reasoning("", "c2lnbmF0dXJl"),
        text("t0 "), text("t1 "), text("t2 "),
        *fake_citations(2),
        usage(100, 5, cache_read=40, cache_write=8, reasoning=2),
        fin("stop"),
    ])
    # The citations are on the text block, before it stops.
    kinds = [(p["type"], p.get("delta", {}).get("type")) for p in map(orjson.loads, (
        e.split(b"\ndata: ", 1)[1] for e in raw.split(b"\n\n") if e))]
    assert kinds[-5:] == [("content_block_delta", "citations_delta"), ("content_block_delta", "citations_delta"),
                          ("content_block_stop", None), ("message_delta", None), ("message_stop", None)]


def test_fake_format_without_cache_or_thinking_reports_neither() -> None:
    raw = fake_bytes(Scenario(tokens=2, input_tokens=30))
    (msg_start,) = sse_payloads(raw, "message_start")
    assert msg_start["message"]["usage"] == {"input_tokens": 30, "output_tokens": 1}
    assert run(raw)[-2:] == [usage(30, 2), fin("stop")]


def test_fake_format_citations_after_tool_calls_get_a_text_block() -> None:
    raw = fake_bytes(Scenario(tokens=0, tool_calls=1, citations=3, cache_read=5))
    got = run(raw)
    calls = [e for e in got if e["type"] == "tool_call"]
    assert got[: len(calls)] == calls and calls[0]["name"] == "get_weather"
    assert got[len(calls):] == [*fake_citations(3), usage(10, 0, cache_read=5, cache_write=0), fin("tool_calls")]
    assert b'"content_block_start","index":1,"content_block":{"type":"text","text":""}' in raw


def test_fake_format_usage_beyond_the_read_ahead_comes_in_message_delta() -> None:
    sc = Scenario(tokens=fake_anthropic.LOOKAHEAD_STEPS + 10, cache_read=40, cache_write=8, input_tokens=100)
    raw = fake_bytes(sc)
    (msg_start,) = sse_payloads(raw, "message_start")
    assert msg_start["message"]["usage"] == {"input_tokens": fake_anthropic.DEFAULT_INPUT_TOKENS, "output_tokens": 1}
    assert run(raw)[-2:] == [usage(100, sc.tokens, cache_read=40, cache_write=8), fin("stop")]


def test_fake_format_faults_still_render() -> None:
    raw = fake_bytes(Scenario(tokens=5, fail="midstream", fail_at=2, cache_read=3))
    got = run(raw)
    assert got[:2] == [text("t0 "), text("t1 ")] and got[-1]["status"] == 529


# --- stop reasons, ping, unknown events -------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "reason"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
     ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")],
)
def test_stop_reasons(stop: str, reason: str) -> None:
    assert run(start() + message_delta(stop) + ev("message_stop"))[-1] == fin(reason)


def test_unknown_stop_reason_and_events_are_recorded() -> None:
    dec = AnthropicStreamDecoder()
    raw = (start() + ev("ping") + ev("future_event", x=1) + block(0, type="text", text="")
           + delta(0, type="future_delta", x=1) + message_delta("brand_new") + ev("message_stop"))
    assert decode(lambda: dec, [raw]) == [usage(10, 5), fin("stop")]
    assert dec.unknown_events == {"future_event", "content_block_delta:future_delta", "stop_reason:brand_new"}


def test_redacted_thinking_and_signatures_are_reasoning_events_without_text() -> None:
    dec = AnthropicStreamDecoder()
    raw = (start() + block(0, type="redacted_thinking", data="EmwKAhgBEgy3") + stop_block(0)
           + block(1, type="thinking", thinking="", signature="") + delta(1, type="thinking_delta", thinking="Hm")
           + delta(1, type="signature_delta", signature="c2ln") + stop_block(1)
           + block(2, type="thinking", thinking="Whole", signature="c2lnMg==") + stop_block(2)  # as a proxy may
           + END)
    assert decode(lambda: dec, [raw]) == [
        reasoning("", redacted="EmwKAhgBEgy3"),
        reasoning("Hm"),
        reasoning("", "c2ln"),
        reasoning("Whole"),
        reasoning("", "c2lnMg=="),
        usage(10, 5),
        fin("stop"),
    ]
    assert dec.unknown_events == set()


def test_the_event_name_is_used_when_data_has_no_type() -> None:
    untyped = b'event: content_block_start\ndata: {"index":0,"content_block":{"type":"text","text":"hi"}}\n\n'
    raw = start() + untyped + END
    assert run(raw)[0] == text("hi")


# --- errors (PITFALL 9) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "status", "retryable"),
    [("overloaded_error", 529, True), ("api_error", 500, True), ("rate_limit_error", 429, True),
     ("timeout_error", 504, True), ("invalid_request_error", 400, False), ("authentication_error", 401, False),
     ("billing_error", 402, False), ("permission_error", 403, False), ("not_found_error", 404, False),
     ("request_too_large", 413, False), ("something_new", None, True)],
)
def test_error_event_mid_stream(error_type: str, status: int | None, retryable: bool) -> None:
    raw = (start() + block(0, type="text", text="") + delta(0, type="text_delta", text="Hi")
           + ev("error", error={"type": error_type, "message": "it failed"}) + END)
    assert run(raw) == [text("Hi"), {"type": "error", "kind": "upstream", "status": status, "retryable": retryable,
                                     "error_type": error_type, "message": "it failed"}]


def test_error_event_with_text_data() -> None:
    got = run(start() + b"event: error\ndata: upstream connect error\n\n")
    assert got == [{"type": "error", "kind": "upstream", "status": None, "retryable": True, "error_type": None,
                    "message": "upstream connect error"}]


@pytest.mark.parametrize("error", ["plain", None, {"message": "no type"}])
def test_error_event_odd_shapes(error: Any) -> None:
    got = run(ev("error", error=error))
    assert got[-1]["kind"] == "upstream" and got[-1]["retryable"] is True


def test_events_before_an_error_in_the_same_read_are_kept() -> None:
    dec = AnthropicStreamDecoder()
    out: list[StreamEvent] = []
    raw = start() + block(0, type="text", text="") + delta(0, type="text_delta", text="a") + ev(
        "error", error={"type": "overloaded_error", "message": "Overloaded"})
    with pytest.raises(WireError) as info:
        dec.feed_into(raw, out)
    assert out == [TextEvent("a")] and info.value.status == 529
    with pytest.raises(WireError):
        close(dec)


# --- end of stream ------------------------------------------------------------------------------


def test_truncated_stream_is_a_protocol_error() -> None:
    got = run(start() + block(0, type="text", text="") + delta(0, type="text_delta", text="Hel"))
    assert got[:-1] == [text("Hel")] and got[-1]["kind"] == "protocol"


def test_stop_reason_without_message_stop_is_complete() -> None:
    assert run(start() + message_delta("max_tokens", output_tokens=3)) == [usage(10, 3), fin("length")]


def test_message_delta_without_stop_reason_is_not_a_finish() -> None:
    assert run(start() + message_delta(None))[-1]["kind"] == "protocol"


def test_events_after_message_stop_are_ignored() -> None:
    raw = start() + END + delta(0, type="text_delta", text="late") + b"data: {broken\n\n"
    assert run(raw) == [usage(10, 5), fin("stop")]


# --- malformed payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"event: message_start\ndata: {oops\n\n",
        b"event: ping\ndata: [1]\n\n",
        ev("message_start", message=[]),
        ev("message_start", message={"usage": {"input_tokens": "12"}}),
        ev("message_start", message={"model": 5}),
        ev("content_block_start", index="0", content_block={"type": "tool_use"}),
        ev("content_block_start", index=0, content_block="text"),
        ev("content_block_start", index=0, content_block={"type": "tool_use", "id": 5}),
        ev("content_block_start", index=0, content_block={"type": "tool_use", "input": "{}"}),
        ev("content_block_start", index=0, content_block={"type": "text", "text": ["a"]}),
        ev("content_block_delta", index=0, delta="x"),
        ev("content_block_delta", index=0, delta={"type": "text_delta", "text": 1}),
        ev("content_block_delta", index=[0], delta={"type": "input_json_delta", "partial_json": "{"}),
        ev("content_block_delta", index=0, delta={"type": "input_json_delta", "partial_json": {}}),
        ev("message_delta", delta={"stop_reason": 1}),
        ev("message_delta", delta=[], usage={}),
        ev("message_delta", delta={}, usage={"output_tokens": True}),
        ev("message_delta", delta={}, usage={"output_tokens": 1, "output_tokens_details": 240}),
        ev("message_delta", delta={}, usage={"output_tokens": 1, "output_tokens_details": {"thinking_tokens": "1"}}),
        ev("message_start", message={"usage": {"cache_read_input_tokens": 1.5}}),
        ev("content_block_delta", index=0, delta={"type": "citations_delta", "citation": "https://x"}),
        ev("content_block_delta", index=0, delta={"type": "citations_delta", "citation": {"url": 5}}),
        ev("content_block_delta", index=0, delta={"type": "citations_delta", "citation": {"type": 1}}),
        ev("content_block_delta", index=0, delta={"type": "citations_delta",
                                                  "citation": {"type": "char_location", "document_title": 3}}),
        ev("content_block_start", index=0, content_block={"type": "text", "text": "", "citations": {}}),
        ev("content_block_start", index=0, content_block={"type": "text", "text": "", "citations": ["x"]}),
    ],
)
def test_malformed_payloads_are_protocol_errors(payload: bytes) -> None:
    got = run(start() + payload + END)
    assert got[-1]["type"] == "error" and got[-1]["kind"] == "protocol"
    assert not got[-1]["message"].startswith("malformed stream event"), "a shape the decoder does not check"


# --- properties -------------------------------------------------------------------------------------

_PIECES = [
    b"event: ", b"data: ", b"\n", b"\n\n", b"\r\n", b"\r", b"message_start", b"error", b"ping",
    b'{"type":"message_start","message":{"model":"m","usage":{"input_tokens":1}}}',
    b'{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}',
    b'{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\\"a"}}',
    b'{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"\xe6\x97\xa5"}}',
    b'{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}',
    b'{"type":"message_stop"}', b'{"type":"error","error":{"type":"overloaded_error"}}', b"{", b"\xff", b":",
]
_BYTES = st.lists(st.sampled_from(_PIECES) | st.binary(max_size=4), max_size=25).map(b"".join)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_property_arbitrary_bytes_raise_only_wire_errors_and_split_invariantly(data: st.DataObject) -> None:
    raw = data.draw(_BYTES)
    offsets = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))

    def factory() -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(max_event_bytes=96)

    whole = decode(factory, [raw], message=False)  # anything but WireError propagates and fails
    assert decode(factory, split_at(raw, offsets), message=False) == whole


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1, 2) | st.sampled_from(["", "x", "text", "tool_use", "end_turn"]),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["type", "text", "index"]), inner,
                                                                max_size=2),
    max_leaves=5,
)
_EVENT_TYPES = ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                "message_delta", "message_stop", "ping", "error"]
_DELTA_TYPES = ["text_delta", "input_json_delta", "thinking_delta", "signature_delta", "citations_delta"]
_BLOCK_TYPES = ["text", "thinking", "tool_use", "redacted_thinking", "server_tool_use"]


@st.composite
def events(draw: st.DrawFn) -> bytes:
    etype = draw(st.sampled_from(_EVENT_TYPES))

    def some(keys: list[str], **fixed: Any) -> dict[str, Any]:
        d = {k: draw(_JSON) for k in keys if draw(st.booleans())}
        d.update({k: v for k, v in fixed.items() if draw(st.integers(0, 3))})
        return d

    usage_obj = some(["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"])
    obj = some(["index", "error"], type=etype, usage=usage_obj,
               message=some(["model", "id"], usage=usage_obj),
               content_block=some(["id", "name", "input", "text", "thinking", "citations"],
                                  type=draw(st.sampled_from(_BLOCK_TYPES))),
               delta=some(["text", "partial_json", "thinking", "stop_reason", "citation"],
                          type=draw(st.sampled_from(_DELTA_TYPES))))
    return f"event: {etype}\ndata: ".encode() + orjson.dumps(obj) + b"\n\n"


@settings(max_examples=40, deadline=None)
@given(st.lists(events(), min_size=1, max_size=3))
def test_property_any_json_shape_is_handled_explicitly(evs: list[bytes]) -> None:
    got = run(start() + b"".join(evs) + END)
    if got and got[-1]["type"] == "error":
        assert not got[-1]["message"].startswith("malformed stream event"), got[-1]["message"]


# --- the common parameters (issue 13) ---------------------------------------------------

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
          "additionalProperties": False}
# anthropic-sdk-python `resources/messages/messages.py` create(): where the new keys go.
FULL_KEY_ORDER = ["max_tokens", "messages", "model", "metadata", "output_config", "service_tier", "stop_sequences",
                  "stream", "system", "temperature", "thinking", "tool_choice", "tools", "top_k", "top_p"]


def built(req: ChatRequest, drop: bool = False) -> tuple[dict[str, Any], tuple[str, ...]]:
    spec = AnthropicCodec(URL, {}, drop_params=drop).build_request(req, "m")
    return orjson.loads(spec.body), spec.dropped


def test_native_parameters_under_anthropic_names_in_sdk_order() -> None:
    req = request(top_k=40, user="u-1", parallel_tool_calls=False, service_tier="auto", temperature=0.2, top_p=0.9,
                  response_format=ResponseFormat("json_schema", SCHEMA, name="out", strict=True), tools=TOOLS)
    body, dropped = built(req)
    assert dropped == ()
    assert body["top_k"] == 40 and body["top_p"] == 0.9 and body["temperature"] == 0.2
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["service_tier"] == "auto"
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "output_format" not in body  # the deprecated beta name
    assert list(body) == [k for k in FULL_KEY_ORDER if k in body]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [(None, {"type": "auto", "disable_parallel_tool_use": True}),
     ("required", {"type": "any", "disable_parallel_tool_use": True}),
     ({"type": "function", "function": {"name": "f"}},
      {"type": "tool", "name": "f", "disable_parallel_tool_use": True}),
     ("none", {"type": "none"})],
)
def test_parallel_tool_calls_false_disables_parallel_tool_use(choice: Any, expected: dict[str, Any]) -> None:
    assert built(request(tool_choice=choice, parallel_tool_calls=False))[0]["tool_choice"] == expected


def test_parallel_tool_calls_true_is_the_default_and_sends_nothing() -> None:
    assert "tool_choice" not in built(request(parallel_tool_calls=True))[0]
    assert built(request(tool_choice="auto", parallel_tool_calls=True))[0]["tool_choice"] == {"type": "auto"}


@pytest.mark.parametrize(("tier", "native"), [("auto", "auto"), ("priority", "auto"), ("default", "standard_only"),
                                              ("standard_only", "standard_only")])
def test_service_tier_maps_to_anthropic_values(tier: str, native: str) -> None:
    assert built(request(service_tier=tier))[0]["service_tier"] == native


@pytest.mark.parametrize("tier", ["flex", "scale"])
def test_service_tier_without_equivalent_is_refused_or_dropped(tier: str) -> None:
    with pytest.raises(UsageError, match=rf"'service_tier' is not supported by Anthropic as '{tier}'"):
        built(request(service_tier=tier))
    body, dropped = built(request(service_tier=tier), drop=True)
    assert "service_tier" not in body and dropped == ("service_tier",)


def test_metadata_user_id_and_user() -> None:
    assert built(request(metadata={"user_id": "a"}))[0]["metadata"] == {"user_id": "a"}
    assert built(request(metadata={"user_id": "a"}, user="a"))[0]["metadata"] == {"user_id": "a"}
    with pytest.raises(UsageError, match=r"user and metadata\.user_id differ"):
        built(request(metadata={"user_id": "a"}, user="b"))
    assert "metadata" not in built(request())[0]


def test_metadata_with_other_keys_is_refused_or_dropped() -> None:
    with pytest.raises(UsageError, match=r"'metadata\.tag' is not supported by Anthropic"):
        built(request(metadata={"tag": "x"}))
    body, dropped = built(request(metadata={"tag": "x", "user_id": "a"}), drop=True)
    assert body["metadata"] == {"user_id": "a"} and dropped == ("metadata.tag",)
    body, dropped = built(request(metadata={"tag": "x"}), drop=True)
    assert "metadata" not in body and dropped == ("metadata.tag",)


UNSUPPORTED_CASES = [("seed", 7), ("presence_penalty", 0.5), ("frequency_penalty", -0.5), ("logprobs", True),
                     ("top_logprobs", 3)]


@pytest.mark.parametrize(("param", "value"), UNSUPPORTED_CASES)
def test_parameters_anthropic_lacks_are_refused(param: str, value: Any) -> None:
    with pytest.raises(UsageError, match=rf"'{param}' is not supported by Anthropic.*drop_params = true"):
        built(request(**{param: value}))


@pytest.mark.parametrize(("param", "value"), UNSUPPORTED_CASES)
def test_parameters_anthropic_lacks_are_dropped_with_drop_params(param: str, value: Any) -> None:
    body, dropped = built(request(**{param: value}), drop=True)
    assert body == built(request())[0] and dropped == (param,)


def test_all_unsupported_dropped_together_are_all_named() -> None:
    _, dropped = built(request(**dict(UNSUPPORTED_CASES), metadata={"k": "v"}, service_tier="flex"), drop=True)
    assert dropped == ("seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "metadata.k",
                       "service_tier")


def test_json_object_has_no_native_mode_and_is_refused() -> None:
    with pytest.raises(UsageError, match="'response_format' is not supported by Anthropic for type json_object"):
        built(request(response_format=ResponseFormat("json_object")))
    body, dropped = built(request(response_format=ResponseFormat("json_object")), drop=True)
    assert "output_config" not in body and dropped == ("response_format",)


def test_json_schema_without_schema_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="needs a schema"):
        built(request(response_format=ResponseFormat("json_schema")), drop=True)


def test_top_k_with_thinking_is_refused_or_dropped() -> None:
    """Anthropic's extended thinking is not compatible with top_k (temperature and top_p are dropped)."""
    req = request(top_k=5, reasoning=Reasoning(budget_tokens=2048))
    with pytest.raises(UsageError, match="'top_k' is not supported by Anthropic with extended thinking"):
        built(req)
    body, dropped = built(req, drop=True)
    assert "top_k" not in body and body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert dropped == ("top_k",)


def test_structured_output_with_thinking_and_tools_together() -> None:
    req = request(response_format=ResponseFormat("json_schema", SCHEMA), reasoning=Reasoning(effort="low"),
                  tools=TOOLS, parallel_tool_calls=False)
    body, _ = built(req)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert list(body) == [k for k in FULL_KEY_ORDER if k in body]


# --- Vertex AI's Claude: the same body, without `model`, plus `anthropic_version` -------------


def vertex_built(req: ChatRequest, drop: bool = False) -> tuple[dict[str, Any], tuple[str, ...]]:
    codec = VertexCodec("https://v", "p", "us-east5", "v1", {}, max_event_bytes=1 << 20, drop_params=drop)
    spec = codec.build_request(req, "claude-sonnet-4-5@20250929")
    assert spec.url.endswith("/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict")
    return orjson.loads(spec.body), spec.dropped


def test_vertex_claude_sends_the_native_parameters() -> None:
    req = request(top_k=40, user="u-1", parallel_tool_calls=False,
                  response_format=ResponseFormat("json_schema", SCHEMA))
    body, dropped = vertex_built(req)
    assert dropped == () and "model" not in body and body["anthropic_version"] == "vertex-2023-10-16"
    assert body["top_k"] == 40 and body["metadata"] == {"user_id": "u-1"}
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


@pytest.mark.parametrize(("param", "value"), [*UNSUPPORTED_CASES, ("service_tier", "auto")])
def test_vertex_claude_refuses_or_drops_what_it_lacks(param: str, value: Any) -> None:
    with pytest.raises(UsageError, match=rf"'{param}' is not supported by Vertex AI \(Claude\)"):
        vertex_built(request(**{param: value}))
    body, dropped = vertex_built(request(**{param: value}), drop=True)
    assert param not in body and dropped == (param,)


def test_vertex_claude_refuses_json_object_and_top_k_with_thinking() -> None:
    with pytest.raises(UsageError, match=r"'response_format' is not supported by Vertex AI \(Claude\)"):
        vertex_built(request(response_format=ResponseFormat("json_object")))
    with pytest.raises(UsageError, match=r"'top_k' is not supported by Vertex AI \(Claude\) with extended thinking"):
        vertex_built(request(top_k=3, reasoning=Reasoning(effort="low")))


def test_vertex_gemini_models_take_drop_params_and_name_vertex() -> None:
    """Gemini models on Vertex AI follow the Gemini codec's rules, under Vertex AI's name."""
    strict = VertexCodec("https://v", "p", "us-east5", "v1", {}, max_event_bytes=1 << 20)
    with pytest.raises(UsageError, match="'user' is not supported by Vertex AI"):
        strict.build_request(request(user="u"), "gemini-2.5-pro")
    lenient = VertexCodec("https://v", "p", "us-east5", "v1", {}, max_event_bytes=1 << 20, drop_params=True)
    spec = lenient.build_request(request(user="u"), "gemini-2.5-pro")
    body = orjson.loads(spec.body)
    assert spec.dropped == ("user",) and "user" not in body and "user" not in body.get("generationConfig", {})


# --- content parts (issue 13) ---------------------------------------------------------------

PNG_B64 = "iVBORw0KGgo="


def messages_of(*msgs: Message, url_sources: bool = True) -> tuple[Any, list[dict[str, Any]]]:
    body = anthropic_body(request(messages=msgs), "m", url_sources=url_sources)
    return body.get("system"), body["messages"]


def test_a_marked_single_text_part_stays_a_block_and_an_unmarked_one_a_string() -> None:
    _, marked = messages_of(Message("user", [TextPart("hi", CacheControl(ttl="5m"))]))
    assert marked == [{"role": "user", "content": [{"type": "text", "text": "hi",
                                                     "cache_control": {"type": "ephemeral", "ttl": "5m"}}]}]
    _, plain = messages_of(Message("user", [TextPart("hi")]))
    assert plain == [{"role": "user", "content": "hi"}]


def test_part_turns_merge_with_string_turns_and_empty_parts_are_empty_text() -> None:
    _, msgs = messages_of(Message("user", "a"), Message("user", [ImagePart(f"data:image/png;base64,{PNG_B64}")]),
                          Message("user", ()))
    assert msgs == [{"role": "user", "content": [
        {"type": "text", "text": "a"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "text", "text": ""},
    ]}]


def test_image_jpg_is_sent_as_jpeg_and_a_url_as_a_url_source() -> None:
    _, msgs = messages_of(Message("user", [ImagePart(f"data:image/JPG;base64,{PNG_B64}"),
                                           ImagePart("https://x.test/a.webp", "high")]))
    assert msgs[0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.webp"}},
    ]


def test_without_url_sources_an_unfetched_url_is_an_error_naming_it_without_its_query() -> None:
    part = ImagePart("https://bucket.test/cat.png?X-Amz-Signature=SECRET")
    with pytest.raises(UsageError, match=r"messages\[1\]\.content\[0\]: Vertex AI \(Claude\) takes no image URLs, "
                                         r"and 'https://bucket.test/cat.png' was not fetched") as info:
        vertex_built(request(messages=(Message("user", "a"), Message("user", [part]))))
    assert "SECRET" not in str(info.value)


def test_text_documents_any_text_type_and_percent_encoded_data() -> None:
    _, msgs = messages_of(Message("user", [FilePart("data:text/markdown,%23 Title%0Aa%20b"),
                                           FilePart("data:,plain", filename="p.txt")]))
    assert msgs[0]["content"] == [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "# Title\na b"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"},
         "title": "p.txt"},
    ]


@pytest.mark.parametrize(
    ("part", "error"),
    [(FilePart("data:text/plain;base64,/w=="), r"content\[0\]: a text/plain document must be UTF-8 text"),
     (FilePart(), r"content\[0\]: a file part needs file_data"),
     (FilePart("https://x.test/a.pdf"), r"content\[0\]\.file\.file_data: expected a data URL"),
     (ImagePart("data:image/png;base64,@@"), r"content\[0\]\.image_url\.url: the data URL's base64 data is invalid"),
     (AudioPart("UklGRg==", "wav"), r"content\[0\]: audio input is not supported by Anthropic")],
)
def test_bad_parts_are_usage_errors_naming_the_place(part: Any, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        messages_of(Message("user", [part]))


def test_tool_results_take_parts_and_assistant_parts_keep_their_markers() -> None:
    msgs = (Message("user", "q"),
            Message("assistant", [TextPart("Looking.", CacheControl())], tool_calls=(ToolCall("t1", "f", "{}"),)),
            Message("tool", [TextPart("seen"), FilePart(f"data:application/pdf;base64,{PNG_B64}", "r.pdf")],
                    tool_call_id="t1"))
    _, out = messages_of(*msgs)
    assert out[1:] == [
        {"role": "assistant", "content": [{"type": "text", "text": "Looking.", "cache_control": {"type": "ephemeral"}},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "seen"},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PNG_B64},
             "title": "r.pdf"}]}]},
    ]


def test_system_blocks_when_marked_skip_empty_text_and_refuse_other_parts() -> None:
    system, _ = messages_of(Message("system", [TextPart(""), TextPart("A", CacheControl(ttl="1h"))]),
                            Message("developer", "B"), Message("system", ""), Message("user", "u"))
    assert system == [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                      {"type": "text", "text": "B"}]
    with pytest.raises(UsageError, match=r"messages\[0\]\.content\[1\]: a system prompt takes only text on "
                                         r"Anthropic; move the file part to a user message"):
        messages_of(Message("system", [TextPart("A"), FilePart("data:,x")]), Message("user", "u"))


def test_a_tools_cache_control_goes_on_its_definition() -> None:
    tools = (Tool("a"), Tool("b", "B", cache_control=CacheControl(ttl="1h")))
    assert anthropic_body(request(tools=tools), "m")["tools"] == [
        {"name": "a", "input_schema": {"type": "object", "properties": {}}},
        {"name": "b", "description": "B", "input_schema": {"type": "object", "properties": {}},
         "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
