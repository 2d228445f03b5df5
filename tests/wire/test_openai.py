"""The OpenAI chat-completions codec: request bodies as the openai SDK sends them, and
stream decoding that is exact for every split of the bytes."""

from __future__ import annotations

import json
import tracemalloc
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

from streamactors.errors import UsageError, WireError
from streamactors.models import (
    ChatRequest,
    FinishEvent,
    Message,
    Reasoning,
    ResponseFormat,
    StreamEvent,
    TextEvent,
    Tool,
    ToolCall,
    ToolCallEvent,
    UsageEvent,
)
from streamactors.testing.formats import openai as openai_format
from streamactors.testing.routing import route_request
from streamactors.testing.script import build_steps, parse_scenario
from streamactors.wire.openai import AzureCodec, OpenAICodec, OpenAIStreamDecoder, effort_for_budget

TRANSCRIPTS = transcripts("openai")
URL = "https://api.openai.com/v1/chat/completions"


def run(*pieces: bytes) -> list[dict[str, Any]]:
    return decode(OpenAIStreamDecoder, pieces)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": {} if delta is None else delta, "logprobs": None, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [choice], **extra}


def sse(*objs: Any) -> bytes:
    return b"".join(b"data: " + orjson.dumps(o) + b"\n\n" for o in objs)


def tool(index: int, args: str = "", id: str | None = None, name: str | None = None) -> dict[str, Any]:
    tc: dict[str, Any] = {"index": index}
    if id is not None:
        tc["id"], tc["type"] = id, "function"
    fn: dict[str, Any] = {"arguments": args}
    if name is not None:
        fn["name"] = name
    tc["function"] = fn
    return tc


DONE = b"data: [DONE]\n\n"
STOP = sse(chunk({}, "stop")) + DONE


def reasoning(t: str, signature: str | None = None, redacted: str | None = None) -> dict[str, Any]:
    return {"type": "reasoning", "text": t, "signature": signature, "redacted": redacted}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tc_ev(index: int, args: str = "", id: str | None = None, name: str | None = None) -> dict[str, Any]:
    return {"type": "tool_call", "index": index, "id": id, "name": name, "arguments": args, "signature": None}


def fin(reason: str) -> dict[str, Any]:
    return {"type": "finish", "reason": reason}


def usage_ev(input_tokens: int | None, output_tokens: int | None, cache_read: int | None = None,
             reasoning_tokens: int | None = None) -> dict[str, Any]:
    return {"type": "usage", "input_tokens": input_tokens, "output_tokens": output_tokens,
            "cache_read_tokens": cache_read, "cache_write_tokens": None, "reasoning_tokens": reasoning_tokens}


def cite_ev(url: str | None, title: str | None = None, cited_text: str | None = None) -> dict[str, Any]:
    return {"type": "citation", "citation": {"url": url, "title": title, "cited_text": cited_text}}


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

# What openai 3.54.0 (`OpenAI().chat.completions.create(..., stream=True)`) put on the
# wire for the same conversation, captured with an httpx2 MockTransport.
SDK_BODY = (
    '{"model":"gpt-4o","stream":true,"messages":[{"role":"system","content":"Be brief."},{"role":"user","'
    'content":"Weather in Paris and Tokyo?"},{"role":"assistant","content":"Checking.","tool_calls":[{"id'
    '":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\\"city\\": \\"Paris\\"}"}},'
    '{"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{\\"tz\\":\\"Asia/Tokyo\\"}"'
    '}}]},{"role":"tool","content":"{\\"temp\\": 21}","tool_call_id":"call_a"},{"role":"tool","content":"no'
    'on","tool_call_id":"call_b"},{"role":"user","content":"Thanks — 日本語 too?"}],"max_completion_tokens":'
    '512,"reasoning_effort":"medium","stop":["END"],"stream_options":{"include_usage":true},"temperature"'
    ':0.5,"tool_choice":{"type":"function","function":{"name":"get_weather"}},"tools":[{"type":"function"'
    ',"function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","pro'
    'perties":{"city":{"type":"string"}},"required":["city"]}}},{"type":"function","function":{"name":"ge'
    't_time","parameters":{"type":"object","properties":{}}}}],"top_p":0.9}'
)
# openai-python v3.3.1 `resources/chat/completions/completions.py` create(): the body's key order.
SDK_KEY_ORDER = ["messages", "model", "max_completion_tokens", "max_tokens", "reasoning_effort", "stop", "stream",
                 "stream_options", "temperature", "tool_choice", "tools", "top_p"]


def full_request(**kw: Any) -> ChatRequest:
    args: dict[str, Any] = {
        "model": "openai/gpt-4o", "messages": CONVERSATION, "max_tokens": 512, "temperature": 0.5, "top_p": 0.9,
        "stop": ("END",), "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "reasoning": Reasoning(effort="medium"),
    }
    args.update(kw)
    return ChatRequest(**args)


def test_body_equals_what_the_sdk_sends() -> None:
    spec = OpenAICodec(URL, {"authorization": "Bearer sk-x"}).build_request(full_request(), "gpt-4o")
    assert orjson.loads(spec.body) == json.loads(SDK_BODY)
    assert (spec.method, spec.url, spec.headers) == ("POST", URL, (("authorization", "Bearer sk-x"),))


def test_body_keys_follow_the_sdk_order() -> None:
    body = OpenAICodec(URL, {}).body(full_request(), "gpt-4o")
    assert list(body) == [k for k in SDK_KEY_ORDER if k in body]


def test_minimal_body() -> None:
    body = OpenAICodec(URL, {}).body(ChatRequest("openai/gpt-4o", (Message("user", "hi"),)), "gpt-4o")
    assert body == {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o", "stream": True,
                    "stream_options": {"include_usage": True}}


def test_codec_options_max_tokens_usage_and_model() -> None:
    req = ChatRequest("x/m", (Message("user", "hi"),), max_tokens=7)
    body = OpenAICodec(URL, {}, max_tokens_field="max_tokens", include_usage=False, send_model=False).body(req, "m")
    assert body == {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 7, "stream": True}


def test_assistant_tool_call_turn_without_text_sends_null_content() -> None:
    msg = Message("assistant", None, tool_calls=(ToolCall("c1", "f", "{}"),))
    body = OpenAICodec(URL, {}).body(ChatRequest("x/m", (msg,)), "m")
    assert body["messages"] == [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (2048, "low"), (2049, "medium"), (8192, "medium"),
                                                (8193, "high"), (32000, "high")])
def test_reasoning_budget_maps_to_effort(budget: int, effort: str) -> None:
    assert effort_for_budget(budget) == effort
    body = OpenAICodec(URL, {}).body(ChatRequest("x/m", (Message("user", "hi"),),
                                                 reasoning=Reasoning(budget_tokens=budget)), "m")
    assert body["reasoning_effort"] == effort


def test_parse_error_reads_openai_error_bodies() -> None:
    body = b'{"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit"}}'
    assert OpenAICodec(URL, {}).parse_error(429, body) == ("Rate limit reached", "requests")


# --- transcripts at every split --------------------------------------------------------


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript_split_at_every_byte_offset(path: Path) -> None:
    assert_every_split(OpenAIStreamDecoder, path)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript_in_three_pieces_and_byte_by_byte(path: Path) -> None:
    assert_three_way_and_bytes(OpenAIStreamDecoder, path)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript_through_feed_and_close(path: Path) -> None:
    """A fresh list per call (`feed`/`close`) gives the same events when nothing fails."""
    assert_feed_and_close(OpenAIStreamDecoder, path)


def test_transcript_metadata() -> None:
    dec = OpenAIStreamDecoder()
    data, _ = load(Path(TRANSCRIPTS[0]).parent / "openai_azure_content_filter.sse")
    feed(dec, data)
    assert dec.model == "gpt-4o-2024-11-20"  # not the empty model of Azure's first chunk
    dec = OpenAIStreamDecoder()
    feed(dec, load(TRANSCRIPTS[0].parent / "openai_openrouter_reasoning_length.sse")[0])
    assert dec._sse.comments == 3 and dec.invalid_utf8 is False


# --- tool calls (PITFALLS 1-3) -----------------------------------------------------------


def test_later_fragments_without_id_are_attributed_by_index() -> None:
    raw = sse(
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [tool(0, "", "call_a", "f")]}),
        chunk({"tool_calls": [tool(1, "", "call_b", "g")]}),
        chunk({"tool_calls": [tool(0, '{"x":')]}),
        chunk({"tool_calls": [tool(1, '{"y":')]}),
        chunk({"tool_calls": [tool(1, "2}"), tool(0, "1}")]}),
    ) + STOP
    assert run(raw) == [tc_ev(0, "", "call_a", "f"), tc_ev(1, "", "call_b", "g"), tc_ev(0, '{"x":'),
                        tc_ev(1, '{"y":'), tc_ev(1, "2}"), tc_ev(0, "1}"), fin("tool_calls")]


def test_provider_indexes_need_not_start_at_zero() -> None:
    raw = sse(chunk({"tool_calls": [tool(3, "{}", "c3", "f")]}), chunk({"tool_calls": [tool(7, "{}", "c7", "g")]}),
              chunk({"tool_calls": [tool(3, " ")]})) + STOP
    assert run(raw) == [tc_ev(0, "{}", "c3", "f"), tc_ev(1, "{}", "c7", "g"), tc_ev(0, " "), fin("tool_calls")]


def test_missing_index_falls_back_to_list_position() -> None:
    a, b = tool(0, "{}", "ca", "f"), tool(1, "{}", "cb", "g")
    del a["index"], b["index"]
    assert run(sse(chunk({"tool_calls": [a, b]})) + STOP) == [tc_ev(0, "{}", "ca", "f"), tc_ev(1, "{}", "cb", "g"),
                                                             fin("tool_calls")]


@pytest.mark.parametrize(
    "fragment",
    [{"index": 0, "function": {"arguments": ""}}, {"index": 0}, {"index": 0, "function": None},
     {"index": 0, "type": "function"}, {"index": 0, "id": "", "function": {"name": "", "arguments": None}}],
)
def test_empty_fragments_do_not_break_the_stream(fragment: dict[str, Any]) -> None:
    raw = sse(chunk({"tool_calls": [tool(0, "", "c", "f")]}), chunk({"tool_calls": [fragment]}),
              chunk({"tool_calls": [tool(0, "{}")]})) + STOP
    assert run(raw) == [tc_ev(0, "", "c", "f"), tc_ev(0, "{}"), fin("tool_calls")]


def test_id_and_name_repeated_on_every_fragment_are_emitted_once() -> None:
    raw = sse(chunk({"tool_calls": [tool(0, '{"a"', "c", "f")]}), chunk({"tool_calls": [tool(0, ":1}", "c", "f")]}))
    assert run(raw + STOP) == [tc_ev(0, '{"a"', "c", "f"), tc_ev(0, ":1}"), fin("tool_calls")]


def test_a_new_call_reusing_an_index_gets_a_new_position() -> None:
    # Some OpenAI-compatible servers number every call 0; a new id with a name starts a call.
    raw = sse(chunk({"tool_calls": [tool(0, "", "c1", "f")]}), chunk({"tool_calls": [tool(0, "{}")]}),
              chunk({"tool_calls": [tool(0, "", "c2", "g")]}), chunk({"tool_calls": [tool(0, "[]")]}))
    assert run(raw + STOP) == [tc_ev(0, "", "c1", "f"), tc_ev(0, "{}"), tc_ev(1, "", "c2", "g"), tc_ev(1, "[]"),
                               fin("tool_calls")]


def test_a_new_id_without_a_name_stays_on_the_same_call() -> None:
    # Servers that mint a fresh id per fragment must not split one call into many.
    raw = sse(chunk({"tool_calls": [tool(0, "", "c1", "f")]}), chunk({"tool_calls": [tool(0, "{}", "c1-bis")]}))
    assert run(raw + STOP) == [tc_ev(0, "", "c1", "f"), tc_ev(0, "{}"), fin("tool_calls")]


def test_an_id_arriving_late_is_emitted_once() -> None:
    raw = sse(chunk({"tool_calls": [tool(0, "", None, "f")]}), chunk({"tool_calls": [tool(0, "{}", "c9")]}),
              chunk({"tool_calls": [tool(0, " ", "c9")]}))
    assert run(raw + STOP) == [tc_ev(0, "", None, "f"), tc_ev(0, "{}", "c9"), tc_ev(0, " "), fin("tool_calls")]


def test_arguments_sent_as_an_object_become_json_text() -> None:
    raw = sse(chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": {"a": [1]}}}]}))
    assert run(raw + STOP) == [tc_ev(0, '{"a":[1]}', "c", "f"), fin("tool_calls")]


@pytest.mark.parametrize(("finish", "reason"), [("stop", "tool_calls"), ("tool_calls", "tool_calls"),
                                                ("length", "length"), ("function_call", "tool_calls")])
def test_finish_after_tool_calls(finish: str, reason: str) -> None:
    raw = sse(chunk({"tool_calls": [tool(0, "{}", "c", "f")]}), chunk({}, finish)) + DONE
    assert run(raw)[-1] == fin(reason)


# --- chunk shapes (PITFALLS 7, 8, final chunk) ------------------------------------------


def test_azure_first_chunk_with_empty_choices_and_prompt_filter_results() -> None:
    first = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
             "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
    raw = sse(first, chunk({"role": "assistant", "content": "Hi"})) + STOP
    dec = OpenAIStreamDecoder()
    assert decode(lambda: dec, [raw]) == [text("Hi"), fin("stop")]
    assert dec.model == "gpt-4o"


@pytest.mark.parametrize("choices", [[], None], ids=["empty", "null"])
def test_chunks_without_choices_are_skipped(choices: Any) -> None:
    raw = sse(chunk({"content": "a"}), {"id": "x", "choices": choices}, chunk({"content": "b"})) + STOP
    assert run(raw) == [text("a"), text("b"), fin("stop")]


@pytest.mark.parametrize("final", [{}, {"content": ""}, {"content": None}, {"role": "assistant"}, None])
def test_final_chunk_delta_shapes(final: Any) -> None:
    last = chunk({"content": "x"}, "stop")
    last["choices"][0]["delta"] = final
    assert run(sse(chunk({"content": "a"}), last) + DONE) == [text("a"), fin("stop")]


def test_choice_without_delta() -> None:
    # Azure's asynchronous content filter sends choices with only content_filter_results.
    raw = sse(chunk({"content": "a"}), {"id": "x", "choices": [{"index": 0, "finish_reason": None,
                                                                  "content_filter_results": {}}]}) + STOP
    assert run(raw) == [text("a"), fin("stop")]


def test_other_choices_are_ignored() -> None:
    second = chunk({"content": "B"})
    second["choices"][0]["index"] = 1
    assert run(sse(chunk({"content": "A"}), second) + STOP) == [text("A"), fin("stop")]


def test_usage_chunk_and_usage_on_every_chunk() -> None:
    u = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    raw = sse(chunk({"content": "a"}, usage=None), chunk({}, "stop", usage=None),
              {"id": "x", "choices": [], "usage": u})
    assert run(raw + DONE) == [text("a"), usage_ev(5, 2), fin("stop")]
    # vLLM's continuous usage stats: the last one wins, reported once.
    raw = sse(chunk({"content": "a"}, usage={"prompt_tokens": 5, "completion_tokens": 1}),
              chunk({}, "stop", usage={"prompt_tokens": 5, "completion_tokens": 2}))
    assert run(raw + DONE) == [text("a"), usage_ev(5, 2), fin("stop")]


def test_groq_usage_under_x_groq() -> None:
    raw = sse(chunk({"content": "a"}), chunk({}, "stop", x_groq={"id": "req_1", "usage": {
        "prompt_tokens": 9, "completion_tokens": 3}})) + DONE
    assert run(raw)[-2:] == [usage_ev(9, 3), fin("stop")]


# --- reasoning (xAI, OpenRouter, DeepSeek) ----------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas(field: str) -> None:
    raw = sse(chunk({"role": "assistant", "content": None, field: "Let me"}), chunk({field: " think", "content": None}),
              chunk({"content": "42", field: None})) + STOP
    thought = [reasoning("Let me"), reasoning(" think")]
    assert run(raw) == [*thought, text("42"), fin("stop")]


def test_reasoning_sent_in_both_fields_is_reported_once() -> None:
    raw = sse(chunk({"reasoning": "hm", "reasoning_content": "hm", "content": ""})) + STOP
    assert run(raw) == [reasoning("hm"), fin("stop")]


def test_mistral_content_parts() -> None:
    parts = [{"type": "thinking", "thinking": [{"type": "text", "text": "Hmm."}]}, {"type": "text", "text": "Yes"},
             {"type": "image_url", "image_url": "x"}]
    dec = OpenAIStreamDecoder()
    assert decode(lambda: dec, [sse(chunk({"content": parts})) + STOP]) == [
        reasoning("Hmm."), text("Yes"), fin("stop")]
    assert dec.unknown_events == {"content_part:image_url"}


# --- refusal and finish reasons ---------------------------------------------------------


def test_refusal_with_length_keeps_length() -> None:
    raw = sse(chunk({"refusal": "I can't"}), chunk({}, "length")) + DONE
    assert run(raw) == [text("I can't"), fin("length")]


def test_unknown_finish_reason_is_stop_and_recorded() -> None:
    dec = OpenAIStreamDecoder()
    assert decode(lambda: dec, [sse(chunk({"content": "a"}, "recitation")) + DONE]) == [text("a"), fin("stop")]
    assert dec.unknown_events == {"finish_reason:recitation"}


def test_legacy_function_call_delta_is_recorded() -> None:
    dec = OpenAIStreamDecoder()
    decode(lambda: dec, [sse(chunk({"function_call": {"name": "f", "arguments": "{}"}}, "function_call")) + DONE])
    assert "delta.function_call" in dec.unknown_events


# --- end of stream (PITFALL 11) ----------------------------------------------------------


def test_truncated_stream_without_done_or_finish_is_an_error() -> None:
    got = run(sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"})))
    assert got[:-1] == [text("Hel")]
    assert got[-1]["kind"] == "protocol" and "terminator" in got[-1]["message"]


def test_finish_without_done_is_complete() -> None:
    u = {"prompt_tokens": 1, "completion_tokens": 1}
    assert run(sse(chunk({"content": "a"}), chunk({}, "stop"), {"choices": [], "usage": u})) == [
        text("a"), usage_ev(1, 1), fin("stop")]


def test_done_without_its_blank_line_is_not_an_event() -> None:
    # WHATWG drops an event left without its blank line: [DONE] must be terminated.
    assert run(sse(chunk({"content": "a"}, "stop")) + b"data: [DONE]\n") == [text("a"), fin("stop")]
    assert run(sse(chunk({"content": "a"})) + b"data: [DONE]")[-1]["kind"] == "protocol"


def test_done_without_finish_reason_is_stop() -> None:
    assert run(sse(chunk({"content": "a"})) + DONE) == [text("a"), fin("stop")]


def test_bytes_after_done_are_ignored_even_malformed() -> None:
    raw = sse(chunk({"content": "a"})) + DONE + b"data: {not json\n\n" + b"x" * 5000
    expected = [text("a"), fin("stop")]
    assert decode(lambda: OpenAIStreamDecoder(max_event_bytes=1000), [raw]) == expected
    for pieces in every_split(raw[:200] + raw[-50:]):
        assert decode(lambda: OpenAIStreamDecoder(max_event_bytes=1000), pieces) == expected


def test_done_prefix_as_the_sdk_checks_it() -> None:
    assert run(sse(chunk({"content": "a"})) + b"data: [DONE] \n\n") == [text("a"), fin("stop")]


# --- errors inside the stream ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "The server had an error", "type": "server_error", "param": None, "code": None},
         ("The server had an error", None, True, "server_error")),
        ({"code": 502, "message": "Provider returned error", "metadata": {}},
         ("Provider returned error", 502, True, "502")),
        ({"code": "429", "message": "slow down"}, ("slow down", 429, True, "429")),
        ({"code": 400, "message": "bad", "type": "invalid_request_error"},
         ("bad", 400, False, "invalid_request_error")),
        ({"message": "context too long", "type": "invalid_request_error", "code": "context_length_exceeded"},
         ("context too long", None, False, "invalid_request_error")),
        ("plain text error", ("plain text error", None, True, None)),
    ],
)
def test_error_object_inside_a_chunk(error: Any, expected: tuple[Any, ...]) -> None:
    got = run(sse(chunk({"content": "partial"}), {"error": error}) + STOP)
    assert got[0] == text("partial")
    err = got[1]
    assert (err["kind"], err["message"], err["status"], err["retryable"], err["error_type"]) == ("upstream", *expected)
    assert len(got) == 2


def test_null_or_empty_error_field_is_not_an_error() -> None:
    # openai-python raises only on a truthy "error".
    assert run(sse(chunk({"content": "a"}, error=None), chunk({"content": "b"}, error={})) + STOP) == [
        text("a"), text("b"), fin("stop")]


def test_error_event_with_text_data() -> None:
    got = run(sse(chunk({"content": "a"})) + b"event: error\ndata: upstream timed out\n\n")
    assert got == [text("a"), {"type": "error", "kind": "upstream", "status": None, "retryable": True,
                                "error_type": None, "message": "upstream timed out"}]


def test_error_event_with_json_data() -> None:
    got = run(b'event: error\ndata: {"error": {"message": "overloaded", "code": 503}}\n\n')
    assert got[-1]["status"] == 503 and got[-1]["message"] == "overloaded"


def test_events_before_an_error_in_the_same_read_are_kept() -> None:
    raw = sse(chunk({"content": "a"}), chunk({"content": "b"}), {"error": {"message": "boom"}})
    dec = OpenAIStreamDecoder()
    out: list[StreamEvent] = []
    with pytest.raises(WireError):
        dec.feed_into(raw, out)
    assert out == [TextEvent("a"), TextEvent("b")]


def test_a_failed_decoder_keeps_failing() -> None:
    dec = OpenAIStreamDecoder()
    with pytest.raises(WireError) as first:
        feed(dec, sse({"error": {"message": "boom", "code": 500}}))
    for call in (lambda: feed(dec, STOP), lambda: close(dec)):
        with pytest.raises(WireError) as again:
            call()
        assert (again.value.kind, again.value.status) == (first.value.kind, first.value.status)


# --- malformed payloads are protocol errors, never Python errors ------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"data: {not json\n\n",
        b"data: [1, 2]\n\n",
        b'data: "text"\n\n',
        sse({"choices": {"index": 0}}),
        sse({"choices": ["x"]}),
        sse({"choices": [{"index": "0", "delta": {}}]}),
        sse({"choices": [{"index": 0, "delta": ["x"]}]}),
        sse({"choices": [{"index": 0, "delta": {"content": 5}}]}),
        sse({"choices": [{"index": 0, "delta": {"reasoning": ["x"]}}]}),
        sse({"choices": [{"index": 0, "delta": {"tool_calls": {"index": 0}}}]}),
        sse({"choices": [{"index": 0, "delta": {"tool_calls": ["x"]}}]}),
        sse({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": True}]}}]}),
        sse({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "f"}]}}]}),
        sse({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 3}}]}}]}),
        sse({"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]}),
        sse({"choices": [], "usage": [1]}),
        sse({"choices": [], "usage": {"prompt_tokens": "5"}}),
    ],
)
def test_malformed_payloads_are_protocol_errors(payload: bytes) -> None:
    got = run(payload + STOP)
    assert got[-1]["type"] == "error" and got[-1]["kind"] == "protocol"
    assert not got[-1]["message"].startswith("malformed stream event"), "a shape the decoder does not check"


# --- properties -------------------------------------------------------------------------------

_PIECES = [
    b"data: ", b"data:", b"\n", b"\n\n", b"\r\n", b"\r", b": ping\n\n", b"event: error\n", b"[DONE]",
    b'{"choices":[{"index":0,"delta":{"content":"h\xc3\xa9"},"finish_reason":null}]}',
    b'{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":"{"}}]}}]}',
    b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}', b'{"choices":[],"usage":{"prompt_tokens":1}}',
    b'{"error":{"message":"x","code":500}}', b"{", b"}", b"\xff", b"\xef\xbb\xbf", b"null",
]
_BYTES = st.lists(st.sampled_from(_PIECES) | st.binary(max_size=4), max_size=25).map(b"".join)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_property_arbitrary_bytes_raise_only_wire_errors_and_split_invariantly(data: st.DataObject) -> None:
    raw = data.draw(_BYTES)
    offsets = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))

    def factory() -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(max_event_bytes=64)

    whole = decode(factory, [raw], message=False)  # anything but WireError propagates and fails
    assert decode(factory, split_at(raw, offsets), message=False) == whole


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.sampled_from(["", "x", "stop", "tool_calls", "0"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["index", "type", "text"]), inner,
                                                                max_size=2),
    max_leaves=6,
)


def _shaped(draw: st.DrawFn, keys: list[str]) -> Any:
    """A dict with some of `keys`, each a random JSON value or a plausible one."""
    return {k: draw(_JSON) for k in keys if draw(st.booleans())}


@st.composite
def chunks(draw: st.DrawFn) -> Any:
    fn = _shaped(draw, ["name", "arguments"]) if draw(st.booleans()) else draw(_JSON)
    tc = {**_shaped(draw, ["index", "id", "type"]), "function": fn} if draw(st.booleans()) else draw(_JSON)
    delta = _shaped(draw, ["role", "content", "reasoning", "reasoning_content", "refusal", "function_call",
                           "annotations"])
    delta["tool_calls"] = [tc] if draw(st.booleans()) else draw(_JSON)
    choice = {**_shaped(draw, ["index", "finish_reason", "logprobs"]), "delta": delta if draw(st.booleans())
              else draw(_JSON)}
    obj = {**_shaped(draw, ["model", "usage", "error", "x_groq", "citations", "search_results"]),
           "choices": [choice] if draw(st.booleans()) else draw(_JSON)}
    return obj if draw(st.integers(0, 9)) else draw(_JSON)


@settings(max_examples=50, deadline=None)
@given(st.lists(chunks(), min_size=1, max_size=3))
def test_property_any_json_shape_is_handled_explicitly(objs: list[Any]) -> None:
    got = run(sse(*objs) + STOP)
    if got and got[-1]["type"] == "error":
        assert not got[-1]["message"].startswith("malformed stream event"), got[-1]["message"]


def test_feed_returns_events_as_they_complete() -> None:
    dec = OpenAIStreamDecoder()
    raw = sse(chunk({"content": "a"}), chunk({"content": "b"}, "stop"))
    assert feed(dec, raw[:-1]) == [TextEvent("a")]
    assert feed(dec, raw[-1:]) == [TextEvent("b")]
    assert feed(dec, DONE) == [FinishEvent("stop")]
    assert close(dec) == [] and feed(dec, b"data: more\n\n") == []


def test_usage_and_tool_events_are_typed() -> None:
    dec = OpenAIStreamDecoder()
    events = feed(dec, sse(chunk({"tool_calls": [tool(0, "{}", "c", "f")]}), {"choices": [], "usage": {
        "prompt_tokens": 3, "completion_tokens": 4}}) + DONE)
    assert events == [ToolCallEvent(0, "c", "f", "{}"), UsageEvent(3, 4), FinishEvent("tool_calls")]


def test_a_request_body_holds_no_more_memory_than_its_bytes() -> None:
    """orjson's own result keeps its 4 KiB write buffer; the body a request holds while it
    streams must not (1,000 open streams would hold 4 MB for nothing)."""
    codec = OpenAICodec("https://api.openai.com/v1/chat/completions", {})
    request = ChatRequest("openai/gpt-4.1", [Message("user", "hi")])
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        spec = codec.build_request(request, "gpt-4.1")
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert len(spec.body) < 200
    assert held < 1024, held  # the body and its spec, not a 4 KiB buffer


# --- usage details and citations (issue 13) ---------------------------------------------------


def assert_all_splits(raw: bytes, expected: list[dict[str, Any]]) -> None:
    """`raw` decodes to `expected` whole, cut at every offset, and byte by byte."""
    assert run(raw) == expected
    for pieces in every_split(raw):
        assert decode(OpenAIStreamDecoder, pieces) == expected, [len(p) for p in pieces]
    assert decode(OpenAIStreamDecoder, [raw[i : i + 1] for i in range(len(raw))]) == expected


# openai-python `types/completion_usage.py`: CompletionUsage, PromptTokensDetails, CompletionTokensDetails.
DETAILED_USAGE = {
    "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
    "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 5, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}


def test_usage_details_cached_and_reasoning_tokens() -> None:
    raw = sse(chunk({"content": "a"}), chunk({}, "stop"), {"id": "x", "choices": [], "usage": DETAILED_USAGE}) + DONE
    # input_tokens is prompt_tokens itself: every input token, the 40 cached ones included.
    assert_all_splits(raw, [text("a"), usage_ev(100, 20, cache_read=40, reasoning_tokens=5), fin("stop")])


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 5, "completion_tokens": 2}, usage_ev(5, 2)),
        ({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": None,
          "completion_tokens_details": None}, usage_ev(5, 2)),
        ({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"audio_tokens": 0},
          "completion_tokens_details": {"audio_tokens": 0}}, usage_ev(5, 2)),
        ({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 0},
          "completion_tokens_details": {"reasoning_tokens": 0}}, usage_ev(5, 2, cache_read=0, reasoning_tokens=0)),
        # Perplexity (perplexity-node `shared.ts` UsageInfo): reasoning_tokens in usage itself.
        ({"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14, "reasoning_tokens": 7,
          "citation_tokens": 30, "num_search_queries": 1}, usage_ev(5, 9, reasoning_tokens=7)),
    ],
    ids=["none", "null-details", "details-without-counts", "zeros", "perplexity"],
)
def test_usage_details_only_where_the_payload_has_them(usage: dict[str, Any], expected: dict[str, Any]) -> None:
    raw = sse(chunk({"content": "a"}), chunk({}, "stop"), {"id": "x", "choices": [], "usage": usage}) + DONE
    assert run(raw) == [text("a"), expected, fin("stop")]


def test_groq_usage_details_under_x_groq() -> None:
    raw = sse(chunk({"content": "a"}), chunk({}, "stop", x_groq={"id": "req_1", "usage": DETAILED_USAGE})) + DONE
    assert run(raw)[-2:] == [usage_ev(100, 20, cache_read=40, reasoning_tokens=5), fin("stop")]


@pytest.mark.parametrize(
    "usage",
    [{"prompt_tokens": 1, "prompt_tokens_details": [1]}, {"prompt_tokens": 1, "prompt_tokens_details": {
        "cached_tokens": "4"}}, {"prompt_tokens": 1, "completion_tokens_details": {"reasoning_tokens": True}},
     {"prompt_tokens": 1, "reasoning_tokens": 1.5}],
)
def test_malformed_usage_details_are_protocol_errors(usage: dict[str, Any]) -> None:
    got = run(sse({"choices": [], "usage": usage}) + STOP)
    assert got[-1]["type"] == "error" and got[-1]["kind"] == "protocol"


def url_citation(url: str, title: str, start: int, end: int) -> dict[str, Any]:
    return {"type": "url_citation", "url_citation": {"end_index": end, "start_index": start, "title": title,
                                                      "url": url}}


A_URL, B_URL = "https://a.example/x", "https://b.example/y"


@pytest.mark.parametrize("where", ["content", "finish", "finish-with-usage"])
def test_annotations_become_citations_once_each_in_order(where: str) -> None:
    # The spans are code points into the whole reply text (the é counts one).
    first, second = "Paris é big (a.example). ", "Tokyo too (b.example)."
    spans = [url_citation(A_URL, "A", 12, 23), url_citation(B_URL, "B", 35, 46)]
    if where == "content":
        body = [chunk({"content": first}), chunk({"content": second, "annotations": spans}), chunk({}, "stop")]
    else:
        last = chunk({"annotations": spans}, "stop")
        if where == "finish-with-usage":  # as OpenRouter sends its last chunk
            last["usage"] = {"prompt_tokens": 3, "completion_tokens": 4}
        body = [chunk({"content": first}), chunk({"content": second}), last]
    expected = [text(first), text(second), cite_ev(A_URL, "A", "(a.example)"), cite_ev(B_URL, "B", "(b.example)")]
    if where == "finish-with-usage":
        expected.append(usage_ev(3, 4))
    assert_all_splits(sse(*body) + DONE, [*expected, fin("stop")])


def test_repeated_annotations_are_emitted_once() -> None:
    ann = url_citation(A_URL, "A", 0, 2)
    again = url_citation(A_URL, "A", 3, 5)  # the same source cited elsewhere: a citation of its own
    raw = sse(chunk({"content": "ab cd", "annotations": [ann]}), chunk({"annotations": [ann, again]}, "stop"))
    assert run(raw + DONE) == [text("ab cd"), cite_ev(A_URL, "A", "ab"), cite_ev(A_URL, "A", "cd"), fin("stop")]


@pytest.mark.parametrize(("start", "end"), [(0, 99), (-1, 2), (3, 3), (None, 2)])
def test_a_span_outside_the_text_has_no_cited_text(start: int | None, end: int) -> None:
    ann = url_citation(A_URL, "A", 0, end)
    ann["url_citation"]["start_index"] = start
    raw = sse(chunk({"content": "abcdef", "annotations": [ann]}), chunk({}, "stop")) + DONE
    assert run(raw) == [text("abcdef"), cite_ev(A_URL, "A", None), fin("stop")]


def test_unknown_annotation_types_are_noted_not_emitted() -> None:
    dec = OpenAIStreamDecoder()
    raw = sse(chunk({"content": "a", "annotations": [{"type": "file_citation", "file_citation": {}}]}),
              chunk({}, "stop")) + DONE
    assert decode(lambda: dec, [raw]) == [text("a"), fin("stop")]
    assert dec.unknown_events == {"annotation:file_citation"}


@pytest.mark.parametrize(
    "payload",
    [{"annotations": {"type": "url_citation"}}, {"annotations": ["x"]},
     {"annotations": [{"type": "url_citation", "url_citation": "u"}]},
     {"annotations": [{"type": "url_citation", "url_citation": {"url": 5}}]},
     {"annotations": [{"type": "url_citation", "url_citation": {"url": "u", "start_index": "0"}}]}],
)
def test_malformed_annotations_are_protocol_errors(payload: dict[str, Any]) -> None:
    got = run(sse(chunk(payload)) + STOP)
    assert got[-1]["type"] == "error" and got[-1]["kind"] == "protocol"
    assert not got[-1]["message"].startswith("malformed stream event")


PPLX_RESULTS = [
    {"title": "A page", "url": A_URL, "date": "2025-01-02", "last_updated": None, "snippet": "a passage"},
    {"title": "B page", "url": B_URL, "date": None},
]


def test_perplexity_search_results_and_citations_repeated_on_every_chunk_emit_once() -> None:
    # perplexity-node `chat/chat.ts` StreamChunk: citations (URLs) and search_results on the chunk.
    extra = {"citations": [A_URL, B_URL], "search_results": PPLX_RESULTS}
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    raw = sse(chunk({"content": "a [1]"}, **extra), chunk({"content": " b [2]"}, **extra),
              chunk({}, "stop", **extra, usage=usage)) + DONE
    assert_all_splits(raw, [text("a [1]"), cite_ev(A_URL, "A page", "a passage"), cite_ev(B_URL, "B page"),
                            text(" b [2]"), usage_ev(3, 4), fin("stop")])


def test_perplexity_sources_arriving_only_with_the_last_chunks_are_kept() -> None:
    c_url = "https://c.example/"
    raw = sse(chunk({"content": "a"}), chunk({}, "stop", citations=[A_URL]),
              {"id": "x", "choices": [], "citations": [A_URL, c_url], "usage": {"prompt_tokens": 1}}) + DONE
    assert_all_splits(raw, [text("a"), cite_ev(A_URL), cite_ev(c_url), usage_ev(1, None), fin("stop")])


@pytest.mark.parametrize("payload", [{"citations": "u"}, {"citations": [1]}, {"search_results": ["u"]},
                                     {"search_results": [{"url": 1}]}, {"search_results": {"url": "u"}}])
def test_malformed_perplexity_sources_are_protocol_errors(payload: dict[str, Any]) -> None:
    got = run(sse(chunk({"content": "a"}, **payload)) + STOP)
    assert got[-1]["type"] == "error" and got[-1]["kind"] == "protocol"
    assert not got[-1]["message"].startswith("malformed stream event")


# --- the fake upstream's rendering decodes to the scenario -----------------------------------

DETAILED = "m~tokens=3~reasoning=2~cache_read=40~cache_write=8~citations=2~input_tokens=100"
ROUTES = {"openai": "/v1/chat/completions", "openrouter": "/api/v1/chat/completions",
          "azure": "/openai/deployments/m/chat/completions", "perplexity": "/chat/completions"}


def rendered(path: str, model: str) -> bytes:
    body = {"model": model, "stream": True, "stream_options": {"include_usage": True}}
    route = route_request(path, body)
    assert route is not None
    module, _, render = route
    assert module is openai_format
    return b"".join(p for p in render(build_steps(parse_scenario(model)), model, body) if isinstance(p, bytes))


@pytest.mark.parametrize("route", list(ROUTES))
def test_fake_format_renders_usage_details_and_citations(route: str) -> None:
    raw = rendered(ROUTES[route], DETAILED)
    got = run(raw)
    cites = [ev["citation"] for ev in got if ev["type"] == "citation"]
    if route == "perplexity":  # the snippet is the cited text; the reply text is the tokens alone
        assert cites == [{"url": f"https://example.com/source/{i}", "title": f"Source {i}",
                          "cited_text": f"cited passage {i}"} for i in range(2)]
        assert "".join(ev["text"] for ev in got if ev["type"] == "text") == "t0 t1 t2 "
    else:  # the annotations span the cited passages, streamed as the reply's last text
        assert cites == [{"url": f"https://example.com/source/{i}", "title": f"Source {i}",
                          "cited_text": f"cited passage {i}"} for i in range(2)]
        assert "".join(ev["text"] for ev in got if ev["type"] == "text") == (
            "t0 t1 t2 cited passage 0 cited passage 1 ")
    # OpenAI reports no cache writes; Perplexity no cache at all.
    cache_read = None if route == "perplexity" else 40
    assert got[-2:] == [usage_ev(100, 5, cache_read=cache_read, reasoning_tokens=2), fin("stop")]
    assert [ev["type"] for ev in got].count("citation") == 2
    assert_all_splits(raw, got)


@pytest.mark.parametrize("route", list(ROUTES))
def test_fake_format_default_scenario_reports_no_details(route: str) -> None:
    got = run(rendered(ROUTES[route], "m~tokens=2"))
    assert got[-2:] == [usage_ev(10, 2), fin("stop")]
    assert "citation" not in [ev["type"] for ev in got]


def test_fake_format_citations_after_tool_calls() -> None:
    got = run(rendered(ROUTES["openai"], "m~tokens=1~tool_calls=1~citations=1"))
    assert [ev["type"] for ev in got][-4:] == ["text", "citation", "usage", "finish"]
    assert got[-3]["citation"]["cited_text"] == "cited passage 0" and got[-1] == fin("tool_calls")


# ---- the common request parameters (issue 13) ----

HI = (Message("user", "hi"),)
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
# Every common parameter, as ChatRequest takes them (OpenAI's names).
ALL_PARAMS: dict[str, Any] = {
    "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5, "top_k": 40, "user": "u-1",
    "parallel_tool_calls": False, "logprobs": True, "top_logprobs": 3, "service_tier": "flex",
    "metadata": {"team": "a"}, "response_format": ResponseFormat("json_schema", SCHEMA, "city", True),
}
# openai-python `resources/chat/completions/completions.py` create(): the body's key order.
SDK_PARAM_ORDER = ["messages", "model", "frequency_penalty", "logprobs", "max_completion_tokens", "max_tokens",
                   "metadata", "parallel_tool_calls", "presence_penalty", "reasoning_effort", "response_format",
                   "seed", "service_tier", "stop", "stream", "stream_options", "temperature", "tool_choice", "tools",
                   "top_k", "top_logprobs", "top_p", "user"]
KINDS = ["openai", "azure", "xai", "openrouter", "openai_compatible", "groq", "perplexity"]
REFUSED = {
    "openai": {"top_k"}, "azure": {"top_k"}, "xai": {"top_k"}, "openrouter": set(), "openai_compatible": set(),
    "groq": {"top_k", "logprobs", "top_logprobs"},
    "perplexity": {"seed", "user", "parallel_tool_calls", "logprobs", "top_logprobs", "service_tier", "metadata"},
}


def codec_for(kind: str, drop_params: bool = False) -> OpenAICodec:
    if kind == "azure":
        return AzureCodec("https://r.openai.azure.com", "2024-10-21", {}, max_event_bytes=1 << 20,
                          provider="az", drop_params=drop_params)
    return OpenAICodec(URL, {}, kind=kind, provider="p1", drop_params=drop_params)


def sent(codec: OpenAICodec, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(codec.build_request(ChatRequest("p/m", HI, **kw), "m").body)
    return body


def test_every_parameter_under_its_openai_name_in_the_sdk_order() -> None:
    params = {k: v for k, v in ALL_PARAMS.items() if k != "top_k"}
    req = full_request(**params)
    body = orjson.loads(OpenAICodec(URL, {}).build_request(req, "gpt-4o").body)
    assert list(body) == [k for k in SDK_PARAM_ORDER if k in body]
    assert {k: body[k] for k in params} == {
        "seed": 7, "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "u-1", "parallel_tool_calls": False,
        "logprobs": True, "top_logprobs": 3, "service_tier": "flex", "metadata": {"team": "a"},
        "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
    }


def test_openrouter_and_compatible_servers_take_top_k() -> None:
    for kind in ("openrouter", "openai_compatible"):
        body = sent(codec_for(kind), top_k=40, top_p=0.9)
        assert list(body)[-2:] == ["top_k", "top_p"]
        assert body["top_k"] == 40


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_sends_what_it_honours_and_refuses_the_rest(kind: str) -> None:
    codec = codec_for(kind)
    name = "az" if kind == "azure" else "p1"
    for param, value in ALL_PARAMS.items():
        if param in REFUSED[kind]:
            with pytest.raises(UsageError) as info:
                sent(codec, **{param: value})
            assert f"parameter {param!r}" in str(info.value)
            assert f"provider {name!r} (kind {kind})" in str(info.value)
            assert "drop_params" in str(info.value)
        else:
            body = sent(codec, **{param: value})
            assert param in body


@pytest.mark.parametrize("kind", KINDS)
def test_drop_params_leaves_refused_parameters_out_and_names_them(kind: str) -> None:
    codec = codec_for(kind, drop_params=True)
    spec = codec.build_request(ChatRequest("p/m", HI, **ALL_PARAMS), "m")
    body = orjson.loads(spec.body)
    order = list(ALL_PARAMS)
    assert sorted(spec.dropped, key=order.index) == [p for p in order if p in REFUSED[kind]]
    assert set(ALL_PARAMS) - set(body) == REFUSED[kind]


def test_no_parameters_nothing_dropped() -> None:
    spec = codec_for("groq", drop_params=True).build_request(ChatRequest("p/m", HI), "m")
    assert spec.dropped == ()
    assert orjson.loads(spec.body) == {"messages": [{"role": "user", "content": "hi"}], "model": "m",
                                       "stream": True, "stream_options": {"include_usage": True}}


def test_response_format_json_object() -> None:
    assert sent(OpenAICodec(URL, {}), response_format=ResponseFormat("json_object"))["response_format"] == {
        "type": "json_object"}


def test_response_format_json_schema_without_a_name_is_named_response() -> None:
    body = sent(OpenAICodec(URL, {}), response_format=ResponseFormat("json_schema", SCHEMA))
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA}}


def test_perplexity_takes_json_schema_but_refuses_json_object() -> None:
    codec = codec_for("perplexity")
    body = sent(codec, response_format=ResponseFormat("json_schema", SCHEMA, "city"))
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA}}
    with pytest.raises(UsageError, match=r"parameter 'response_format' is not supported by provider 'p1' "
                                         r"\(kind perplexity\)"):
        sent(codec, response_format=ResponseFormat("json_object"))
    spec = codec_for("perplexity", drop_params=True).build_request(
        ChatRequest("p/m", HI, response_format=ResponseFormat("json_object")), "m")
    assert spec.dropped == ("response_format",)
    assert "response_format" not in orjson.loads(spec.body)


def test_azure_keeps_its_url_and_reports_what_it_dropped() -> None:
    spec = codec_for("azure", drop_params=True).build_request(ChatRequest("az/dep", HI, top_k=5, seed=1), "dep")
    assert spec.url == "https://r.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21"
    assert spec.dropped == ("top_k",)
    assert orjson.loads(spec.body)["seed"] == 1


def test_codec_without_provider_name_names_its_kind() -> None:
    with pytest.raises(UsageError, match="not supported by groq;"):
        sent(OpenAICodec(URL, {}, kind="groq"), logprobs=True)


def test_the_text_kept_for_citations_costs_about_a_byte_per_character() -> None:
    """The decoder keeps the reply's text to cut annotations' cited spans from it: in blocks,
    not one string object per token (about 80 bytes each)."""
    dec = OpenAIStreamDecoder()
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"tok "}}]}\n\n'
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50_000):
            dec.feed_into(chunk, [])
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 50_000 * 4 * 2  # 200,000 characters in under 2 bytes each (a list of pieces: ~4 MB)
