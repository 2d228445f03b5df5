"""The OpenAI decoder's repeated-envelope path: a plain text chunk whose envelope (every byte
but its text) matches one learned earlier in the stream is handed out without parsing it.
It must give exactly what parsing every chunk gives, whatever the texts and envelopes are:
checked against a decoder that never learns, over generated streams split anywhere."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamactors.errors import WireError
from streamactors.models import StreamEvent, TextEvent, UsageEvent
from streamactors.wire.openai import _ENVELOPE_LEARNS, OpenAIStreamDecoder


def decode(body: bytes, cuts: list[int], *, learn: bool) -> tuple[list[StreamEvent], OpenAIStreamDecoder]:
    decoder = OpenAIStreamDecoder()
    decoder.learn_envelopes = learn  # off: the reference, every chunk parsed
    events: list[StreamEvent] = []
    at = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        if cut > at:
            decoder.feed_into(body[at:cut], events)
            at = cut
    decoder.close_into(events)
    return events, decoder


def envelope(text: Any, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "system_fingerprint": "fp_1", "choices": [choice], **extra}


def sse(objs: list[Any], dumps: Any = orjson.dumps) -> bytes:
    return b"".join(b"data: " + dumps(o) + b"\n\n" for o in objs)


FINISH = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
          "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}
DONE = b"data: [DONE]\n\n"


def test_a_stream_of_plain_chunks_is_decoded_through_the_envelope() -> None:
    body = sse([envelope(f"t{i} ") for i in range(50)] + [FINISH]) + DONE
    events, decoder = decode(body, [], learn=True)
    assert events == decode(body, [], learn=False)[0]
    assert [e.text for e in events if type(e) is TextEvent] == [f"t{i} " for i in range(50)]
    assert decoder._env_head is not None and decoder._env_learns == 1
    assert decoder._env_head.endswith('"content":"') and decoder._env_tail.startswith('"}')


def test_openai_obfuscation_is_a_second_slot() -> None:
    # OpenAI pads every chunk with a top-level `obfuscation` string of random length (the
    # recorded fixtures have it): the envelope takes it as a slot of its own.
    chunks = [envelope(f"t{i} ", usage=None, obfuscation="abcdefghij"[: i % 9]) for i in range(60)]
    body = sse([*chunks, FINISH]) + DONE
    events, decoder = decode(body, [], learn=True)
    assert events == decode(body, [], learn=False)[0]
    assert decoder._env_learns == 1 and decoder._env_head is not None
    assert decoder._env_mid.endswith('"obfuscation":"') and decoder._env_tail == '"}'


@pytest.mark.parametrize("padding", ['a"b', "\\", "\x01", "é", "a\u2028"])
def test_padding_that_needs_parsing_goes_through_the_parser(padding: str) -> None:
    chunks = [envelope(f"t{i} ", obfuscation="ab") for i in range(3)] + [envelope("x", obfuscation=padding)]
    for dumps in (orjson.dumps, lambda o: json.dumps(o).encode()):
        body = sse([*chunks, FINISH], dumps) + DONE
        assert decode(body, [], learn=True)[0] == decode(body, [], learn=False)[0]


@pytest.mark.parametrize(
    ("placed", "raises"),
    [
        # a quote that ends the padding early and adds a field the decoder reads: valid JSON
        (b'a","usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},"z":"b"}', False),
        (b'a\\"}', True),  # a backslash that escapes the closing quote: the string never ends
        (b"}", True),  # no padding and no closing quote at all
    ],
)
def test_bytes_that_only_look_like_the_padding_slot_are_parsed(placed: bytes, raises: bool) -> None:
    good = sse([envelope(f"t{i} ", obfuscation="ab") for i in range(3)])
    crafted = orjson.dumps(envelope("x", obfuscation="PLACE")).replace(b'PLACE"}', placed)
    assert crafted.endswith(b'"}')
    body = good + b"data: " + crafted + b"\n\n" + sse([FINISH]) + DONE
    if raises:
        for learn in (True, False):
            with pytest.raises(WireError, match="invalid JSON"):
                decode(body, [], learn=learn)
    else:
        events = decode(body, [], learn=True)[0]
        assert events == decode(body, [], learn=False)[0]
        assert any(type(e) is UsageEvent for e in events)


def test_a_field_that_changes_every_chunk_stops_the_learning() -> None:
    # Any other field that changes on every chunk: each chunk is parsed, and the decoder gives
    # up after a few envelopes.
    chunks = [envelope(f"t{i} ", created=i) for i in range(60)]
    body = sse([*chunks, FINISH]) + DONE
    events, decoder = decode(body, [], learn=True)
    assert events == decode(body, [], learn=False)[0]
    assert decoder._env_learns == _ENVELOPE_LEARNS and decoder._env_head is None


def test_an_obfuscation_slot_that_a_quote_would_shift_is_parsed() -> None:
    # Bytes that fit the two-slot envelope but whose text closes the string early and adds
    # a field before the padding: valid JSON that only parsing reads right.
    good = sse([envelope(f"t{i} ", obfuscation="ab") for i in range(3)])
    shifted = orjson.dumps(envelope("PLACE", obfuscation="ab")).replace(b"PLACE", b'a","refusal":"b')
    body = good + b"data: " + shifted + b"\n\n" + sse([FINISH]) + DONE
    events, decoder = decode(body, [], learn=True)
    assert decoder._env_mid
    assert events == decode(body, [], learn=False)[0]


def test_a_text_that_needs_parsing_goes_through_the_parser() -> None:
    texts = ["plain", 'a "quote"', "back\\slash", "new\nline", "tab\t", "\u00a0nbsp", "é ✓ 😀", "", "\x7f", "end"]
    for dumps in (orjson.dumps, lambda o: json.dumps(o).encode(), lambda o: json.dumps(o, ensure_ascii=False).encode()):
        body = sse([envelope(t) for t in ["warm", *texts]] + [FINISH], dumps) + DONE
        events, _ = decode(body, [], learn=True)
        assert [e.text for e in events if type(e) is TextEvent] == [t for t in ["warm", *texts] if t]
        assert events == decode(body, [], learn=False)[0]


def test_a_quote_in_the_slot_that_splits_the_delta_is_parsed() -> None:
    # Bytes that fit the learned envelope but whose "text" closes the string and adds a
    # field: valid JSON, with content "a" and a refusal "b". Only parsing can tell.
    good = sse([envelope(f"t{i} ") for i in range(3)])
    split = orjson.dumps(envelope("PLACE")).replace(b"PLACE", b'a","refusal":"b')
    body = good + b"data: " + split + b"\n\n" + sse([FINISH]) + DONE
    events, decoder = decode(body, [], learn=True)
    assert decoder._env_head is not None
    assert events == decode(body, [], learn=False)[0]
    assert TextEvent('a","refusal":"b') not in events


@pytest.mark.parametrize("raw", ["\x01", "a\x1fb", "\x00"])
def test_a_raw_control_character_is_still_invalid_json(raw: str) -> None:
    # JSON forbids unescaped control characters in a string: parsed, such a chunk fails the
    # stream, and so it must inside a learned envelope.
    for extra in ({}, {"obfuscation": "ab"}):
        good = sse([envelope(f"t{i} ", **extra) for i in range(3)])
        bad = orjson.dumps(envelope("PLACE", **extra)).replace(b"PLACE", raw.encode())
        padded = orjson.dumps(envelope("x", obfuscation="PLACE")).replace(b"PLACE", raw.encode())
        for chunk in (bad, padded) if extra else (bad,):
            body = good + b"data: " + chunk + b"\n\n" + sse([FINISH]) + DONE
            for learn in (True, False):
                with pytest.raises(WireError, match="invalid JSON"):
                    decode(body, [], learn=learn)


def test_a_text_that_also_appears_in_the_envelope_is_not_mistaken_for_it() -> None:
    # The text equals the model name, and another object holds a "content" key: such a chunk
    # names "content" twice, so no envelope is learned from it (each try counts).
    chunks = [envelope("gpt-4o", extra={"content": "gpt-4o"}) for _ in range(2)]
    chunks += [envelope("gpt-4o") for _ in range(5)]
    body = sse([*chunks, FINISH]) + DONE
    events, decoder = decode(body, [], learn=True)
    assert events == decode(body, [], learn=False)[0]
    assert decoder._env_learns == 3 and decoder._env_head is not None
    assert '"extra"' not in decoder._env_head + decoder._env_tail


_texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", '"', "\\", "\\n", "\n", "\x00", "\x1f", "\u2028", "é", "😀", '"}]}', "data: x"]),
)
_extras = st.fixed_dictionaries(
    {},
    optional={
        "usage": st.none(),
        "service_tier": st.sampled_from(["default", "flex"]),
        "obfuscation": st.text(alphabet="abcXYZ019", max_size=6),
        "model": st.sampled_from(["gpt-4o", "gpt-4o-mini", 'odd "name"']),
        "x_groq": st.fixed_dictionaries({"id": st.just("req_1")}),
    },
)
# A run: one chunk shape (the plain envelope, with extra fields, with a role or a refusal, or
# for another choice) around several texts, so that an envelope is learned and then met again.
_shapes = st.one_of(
    st.just(lambda t: envelope(t)),
    _extras.map(lambda extra: lambda t: envelope(t, **extra)),
    st.just(lambda t: {**envelope(t), "choices": [{"index": 0, "delta": {"role": "assistant", "content": t}}]}),
    st.just(lambda t: {**envelope(None), "choices": [{"index": 0, "delta": {"refusal": t}}]}),
    st.just(lambda t: {**envelope(t), "choices": [{"index": 1, "delta": {"content": t}}]}),
)
_PADDINGS = ["", "ab", 'q"q', "\\", "Zz9", "\x01", "é"]
_shapes = st.one_of(
    _shapes,
    # OpenAI's padding, different on every chunk (and now and then needing parsing itself)
    st.just(lambda t: envelope(t, usage=None, obfuscation=_PADDINGS[len(t) % len(_PADDINGS)])),
)
_runs = st.tuples(_shapes, st.lists(_texts, min_size=1, max_size=8))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_runs, min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
    st.sampled_from([0, 1, 2]),
)
def test_the_envelope_path_gives_what_parsing_every_chunk_gives(
    runs: list[tuple[Any, list[str]]], cuts: list[int], style: int
) -> None:
    dumps = [orjson.dumps, lambda o: json.dumps(o).encode(), lambda o: json.dumps(o, separators=(",", ":")).encode()]
    stream = [shape(text) for shape, texts in runs for text in ["warm", *texts]]
    body = sse([*stream, FINISH], dumps[style]) + DONE
    cuts = [c % (len(body) + 1) for c in cuts]
    fast, decoder = decode(body, cuts, learn=True)
    slow, reference = decode(body, cuts, learn=False)
    assert fast == slow
    assert decoder._text.join() == reference._text.join()
    assert decoder.model == reference.model
