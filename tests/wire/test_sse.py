"""The event-stream decoder against the WHATWG parsing rules, at every chunk boundary.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
`reference_events` below is a direct, non-incremental transcription of those rules; the
incremental decoder must agree with it however the bytes are split.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_harness import FIXTURES, byte_by_byte, every_split, feed, split_at, three_way_splits

from streamactors.errors import WireError
from streamactors.wire.sse import SSEDecoder, SSEEvent, SSEItem

E = SSEEvent


def reference_events(raw: bytes) -> list[SSEEvent]:
    """The WHATWG algorithm over the whole stream at once (no size limit)."""
    text = raw.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the unterminated rest is discarded at EOF
    events: list[SSEEvent] = []
    data: list[str] = []
    event = ""
    last_id: str | None = None
    for line in lines:
        if line == "":
            buf = "".join(d + "\n" for d in data)[:-1]
            if buf or len(data) > 1:
                events.append(SSEEvent(event or None, buf, last_id))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\x00" not in value:
            last_id = value
    return events


def decode(*pieces: bytes, max_event_bytes: int = 1 << 20) -> list[SSEEvent]:
    dec = SSEDecoder(max_event_bytes)
    out: list[SSEEvent] = []
    for piece in pieces:
        dec.feed_into(piece, out)
    return out


def outcome(pieces: list[bytes], max_event_bytes: int) -> tuple[list[SSEEvent], str | None]:
    """Events up to the first error (feed_into keeps them), and the error kind."""
    dec = SSEDecoder(max_event_bytes)
    out: list[SSEEvent] = []
    try:
        for piece in pieces:
            dec.feed_into(piece, out)
    except WireError as exc:
        return out, exc.kind
    return out, None


def all_splits_agree(data: bytes, expected: list[SSEEvent]) -> None:
    for pieces in every_split(data):
        assert decode(*pieces) == expected, [len(p) for p in pieces]
    assert decode(*byte_by_byte(data)) == expected


# --- line endings ----------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_line_endings(eol: bytes) -> None:
    data = b"event: a" + eol + b"data: 1" + eol + b"data: 2" + eol + eol + b"data: 3" + eol + eol
    expected = [E("a", "1\n2"), E(None, "3")]
    assert decode(data) == expected
    all_splits_agree(data, expected)


def test_mixed_line_endings() -> None:
    data = b"data: a\r\n\rdata: b\n\r\ndata: c\r\r"
    expected = [E(None, "a"), E(None, "b"), E(None, "c")]
    assert reference_events(data) == expected
    all_splits_agree(data, expected)


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    dec = SSEDecoder()
    assert feed(dec, b"data: x\r") == []
    # The CR already ended the line; the LF completes the same CRLF, not a blank line.
    assert feed(dec, b"\n") == []
    assert feed(dec, b"\r") == [E(None, "x")]
    assert feed(dec, b"\n") == []  # the rest of that CRLF
    assert feed(dec, b"data: y\n\n") == [E(None, "y")]


def test_cr_dispatches_without_waiting_for_the_next_read() -> None:
    dec = SSEDecoder()
    assert feed(dec, b"data: x\r\r") == [E(None, "x")]


def test_cr_then_cr_lf_across_reads() -> None:
    dec = SSEDecoder()
    assert feed(dec, b"data: x\r") == []
    assert feed(dec, b"\r\n") == [E(None, "x")]  # CR ends the data line, CRLF the blank one
    assert feed(dec, b"\n") == []  # a real blank line: nothing pending, nothing dispatched


def test_empty_reads_change_nothing() -> None:
    dec = SSEDecoder()
    assert feed(dec, b"data: x\r") == []
    assert feed(dec, b"") == []
    assert feed(dec, b"\n") == []  # still the second half of CRLF
    assert feed(dec, b"\n") == [E(None, "x")]


# --- BOM --------------------------------------------------------------------------------


def test_leading_bom_is_dropped() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [E(None, "x")]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_leading_bom_split_across_reads(cut: int) -> None:
    data = b"\xef\xbb\xbfdata: x\n\n"
    assert decode(data[:cut], data[cut:]) == [E(None, "x")]
    assert decode(*byte_by_byte(data)) == [E(None, "x")]


def test_only_one_bom_is_dropped() -> None:
    # The second BOM makes the field name "\ufeffdata", which is unknown: no data, no event.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []


def test_bom_later_in_the_stream_is_kept() -> None:
    assert decode(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [E(None, "a")]
    assert decode(b"data: \xef\xbb\xbfb\n\n") == [E(None, "\ufeffb")]


def test_bom_on_its_own_line_is_a_blank_line() -> None:
    assert decode(b"\xef\xbb\xbf\ndata: x\n\n") == [E(None, "x")]


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4, 10])
def test_leading_bom_counts_toward_the_first_events_limit(cut: int) -> None:
    # A first read that is the whole reply takes the fast path; the BOM's 3 bytes still count.
    data = b"\xef\xbb\xbfdata: x\n\ndata: y\n\n"
    size = 3 + len(b"data: x\n")
    pieces = (data[:cut], data[cut:]) if cut else (data,)
    assert decode(*pieces, max_event_bytes=size) == [E(None, "x"), E(None, "y")]
    with pytest.raises(WireError, match="max_event_bytes"):
        decode(*pieces, max_event_bytes=size - 1)


@pytest.mark.parametrize("name", ["content_block_delta", "é🎉"])
def test_named_events_fail_at_the_same_line_whole_or_split(name: str) -> None:
    # After a first event, so that the whole read takes the fast path from an event boundary.
    event = f"event: {name}\ndata: {{\"x\": \"ü\"}}\n".encode()
    data = b"data: a\n\n" + event + b"\n"
    event_line = len(f"event: {name}\n".encode())

    def run(pieces: list[bytes], limit: int) -> tuple[list[SSEEvent], str | None]:
        dec, out = SSEDecoder(limit), []
        try:
            for piece in pieces:
                dec.feed_into(piece, out)
        except WireError as exc:
            return out, exc.message
        return out, None

    for limit, failed_at in ((event_line - 1, event_line), (len(event) - 1, len(event)), (len(event), None)):
        whole = run([data], limit)
        assert whole == run(list(byte_by_byte(data)), limit)
        assert whole[0][:1] == [E(None, "a")]
        if failed_at is None:
            assert whole == ([E(None, "a"), E(name, '{"x": "ü"}')], None)
        else:
            assert whole[1] is not None and f"({failed_at} bytes received" in whole[1]


# --- fields -----------------------------------------------------------------------------


def test_comments_are_skipped_and_counted() -> None:
    dec = SSEDecoder()
    out = feed(dec, b": OPENROUTER PROCESSING\n\n:\n\ndata: x\n: inside an event\n\n")
    assert out == [E(None, "x")]
    assert dec.comments == 3


def test_event_data_id_retry_fields() -> None:
    dec = SSEDecoder()
    out = feed(dec, b"retry: 3000\nid: 7\nevent: message_start\ndata: {}\n\n")
    assert out == [E("message_start", "{}", "7")]
    assert (dec.retry, dec.last_event_id) == (3000, "7")


def test_id_persists_until_changed_and_empty_id_resets_it() -> None:
    out = decode(b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid:\ndata: d\n\n")
    assert out == [E(None, "a", "1"), E(None, "b", "1"), E(None, "c", ""), E(None, "d", "")]


def test_id_containing_nul_is_ignored() -> None:
    dec = SSEDecoder()
    out = feed(dec, b"id: 5\n\nid: 6\x007\ndata: x\n\n")
    assert out == [E(None, "x", "5")]
    assert dec.last_event_id == "5"


@pytest.mark.parametrize("value", [b"abc", b"12a", b"-5", b"1.5", b"  15", b"", "٣".encode()])
def test_non_digit_retry_is_ignored(value: bytes) -> None:
    dec = SSEDecoder()
    feed(dec, b"retry: 10\n\nretry:" + value + b"\n\n")
    assert dec.retry == 10


def test_multi_line_data_is_joined_with_lf() -> None:
    assert decode(b"data: first\ndata:second\ndata\ndata:  fourth\n\n") == [E(None, "first\nsecond\n\n fourth")]


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert decode(b"data:  x \n\n") == [E(None, " x ")]
    assert decode(b"event:  spaced\ndata: x\n\n") == [E(" spaced", "x")]


def test_field_with_no_colon_has_an_empty_value() -> None:
    assert decode(b"data\ndata\n\n") == [E(None, "\n")]
    assert decode(b"event\ndata: x\n\n") == [E(None, "x")]  # empty event type = the default


def test_data_without_space() -> None:
    assert decode(b"data:{\"a\":1}\n\n") == [E(None, '{"a":1}')]


def test_unknown_fields_and_near_misses_are_ignored() -> None:
    assert decode(b"foo: bar\nData: x\ndata : y\nevent : z\n\n") == []
    assert decode(b"foo: bar\ndata: x\n\n") == [E(None, "x")]


def test_event_with_no_data_is_not_dispatched() -> None:
    assert decode(b"event: ping\n\n") == []
    assert decode(b"event: ping\nid: 3\nretry: 5\n\ndata: x\n\n") == [E(None, "x", "3")]


def test_a_single_empty_data_line_is_not_dispatched() -> None:
    # WHATWG: the data buffer "\n" loses its last LF, is empty, and nothing is dispatched.
    assert decode(b"event: e\ndata:\n\n") == []
    assert decode(b"event: e\ndata\n\n") == []
    assert decode(b"data:\ndata:\n\n") == [E(None, "\n")]


def test_event_type_resets_after_each_dispatch() -> None:
    assert decode(b"event: a\ndata: 1\n\ndata: 2\n\n") == [E("a", "1"), E(None, "2")]
    assert decode(b"event: a\n\ndata: 2\n\n") == [E(None, "2")]  # reset even without dispatch


def test_last_event_without_blank_line_is_never_dispatched() -> None:
    """The stream ends with no call: an event left without its blank line stays held, and
    goes with the decoder."""
    dec = SSEDecoder()
    assert feed(dec, b"data: a\n\ndata: b\n") == [E(None, "a")]
    assert feed(dec, b"") == []
    assert dec.pending_bytes == len(b"data: b\n")
    dec = SSEDecoder()
    assert feed(dec, b"data: a\n\ndata: b") == [E(None, "a")]
    assert feed(dec, b"") == []
    assert dec.pending_bytes == len(b"data: b")


def test_many_blank_lines_dispatch_nothing_extra() -> None:
    assert decode(b"\n\n\n\ndata: x\n\n\n\n\r\n\r") == [E(None, "x")]


# --- size limits ------------------------------------------------------------------------


def test_max_event_bytes_one_huge_line_without_newline() -> None:
    dec = SSEDecoder(max_event_bytes=1000)
    fed = 0
    with pytest.raises(WireError) as info:
        while True:
            feed(dec, b"data: " + b"x" * 94)
            fed += 100
            assert dec.pending_bytes <= 1000  # it never holds more than the limit
    assert info.value.kind == "protocol"
    assert fed == 1000  # the read that crossed the limit is the one that raised
    assert dec.pending_bytes == 0
    with pytest.raises(WireError):  # the decoder is spent and holds nothing
        feed(dec, b"\n\n")
    assert dec.pending_bytes == 0
    with pytest.raises(WireError, match="failed earlier"):  # by either entry point
        dec.feed_items_into(b"", [])


def test_max_event_bytes_many_data_lines() -> None:
    dec = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(WireError) as info:
        for _ in range(200):
            feed(dec, b"data: 0123456789\n")
            assert dec.pending_bytes <= 1000
    assert info.value.kind == "protocol"
    assert "max_event_bytes=1000" in info.value.message
    assert dec.pending_bytes == 0


def test_max_event_bytes_many_lines_in_one_read() -> None:
    dec = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(WireError):
        feed(dec, b"data: 0123456789\n" * 100)
    assert dec.pending_bytes == 0


def test_events_up_to_the_limit_pass_and_the_count_restarts_per_event() -> None:
    line = b"data: " + b"y" * 993 + b"\n"  # exactly 1000 bytes with its LF
    dec = SSEDecoder(max_event_bytes=1000)
    for _ in range(5):
        assert feed(dec, line + b"\n") == [E(None, "y" * 993)]
    with pytest.raises(WireError):
        feed(SSEDecoder(max_event_bytes=999), line + b"\n")


def test_comments_between_events_do_not_accumulate() -> None:
    dec = SSEDecoder(max_event_bytes=100)
    for _ in range(1000):
        feed(dec, b": keep-alive\n\n")
    assert dec.comments == 1000 and dec.pending_bytes == 0


def test_events_before_the_oversized_one_are_kept_by_feed_into() -> None:
    dec = SSEDecoder(max_event_bytes=100)
    out: list[SSEEvent] = []
    with pytest.raises(WireError):
        dec.feed_into(b"data: a\n\ndata: b\n\ndata: " + b"z" * 200 + b"\n\n", out)
    assert out == [E(None, "a"), E(None, "b")]


def test_the_limit_fails_at_the_same_line_for_every_split() -> None:
    data = b"data: a\n\n" + b"data: 0123456789\n" * 8 + b"\ndata: b\n\n" + b"data: " + b"q" * 150 + b"\n\ndata: c\n\n"
    expected = ([E(None, "a"), E(None, "0123456789\n" * 7 + "0123456789"), E(None, "b")], "protocol")
    for pieces in every_split(data):
        assert outcome(pieces, 150) == expected, [len(p) for p in pieces]
    assert outcome(byte_by_byte(data), 150) == expected


# --- UTF-8 ------------------------------------------------------------------------------


def test_invalid_utf8_becomes_replacement_character() -> None:
    dec = SSEDecoder()
    out = feed(dec, b"data: a\xffb\xe3\x81c\n\n")
    assert out == [E(None, "a\ufffdb\ufffdc")]
    assert dec.invalid_utf8 is True


def test_valid_utf8_leaves_the_flag_clear() -> None:
    dec = SSEDecoder()
    feed(dec, "data: héllo 🎉\n\n".encode())
    assert dec.invalid_utf8 is False


def test_truncated_sequence_before_the_line_end() -> None:
    assert decode(b"data: \xf0\x9f\x8e\n\n") == [E(None, "\ufffd")]
    assert decode(b"data: \xf0\x9f\x8e\r\n\r\n") == [E(None, "\ufffd")]


@pytest.mark.parametrize("text", ["é", "日本語", "🎉", "👨\u200d👩\u200d👧", "Ωmega ✓"])
def test_multibyte_characters_split_at_every_byte(text: str) -> None:
    data = f"event: ü\ndata: {text}\ndata: {text}\n\n".encode()
    expected = [E("ü", f"{text}\n{text}")]
    all_splits_agree(data, expected)
    for a, b in [(7, 12), (8, 13), (9, 16), (10, 20)]:
        if b <= len(data):
            assert decode(*split_at(data, [a, b])) == expected


@pytest.mark.parametrize("head", [b"\n\n\n", b"data: a\n\n\n", b"\n\n\n\n\n"])
def test_character_cut_after_an_odd_run_of_blank_lines_is_kept(head: bytes) -> None:
    """A read ending inside a character, after an odd run of LFs: the last "\n\n" rfind
    finds is not where split cuts, and the cut character's first bytes were once dropped
    (found by hypothesis: b"\n\n\n\xc3" then b"\xa9\n" flagged invalid UTF-8)."""
    tail = "data: é\n\n".encode()
    for cut in range(len(tail) + 1):
        dec = SSEDecoder()
        out = feed(dec, head + tail[:cut]) + feed(dec, tail[cut:])
        assert out == decode(head + tail), cut
        assert out[-1] == E(None, "é")
        assert dec.invalid_utf8 is False, cut
    dec = SSEDecoder()
    assert feed(dec, b"\n\n\n\xc3") + feed(dec, b"\xa9\n") == []
    assert dec.invalid_utf8 is False


# --- recorded transcripts ---------------------------------------------------------------

SSE_TRANSCRIPTS = sorted([*FIXTURES.glob("openai_*.sse"), *FIXTURES.glob("anthropic_*.sse")])


@pytest.mark.parametrize("path", SSE_TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcripts_match_the_reference(path: Path) -> None:
    """Whole, byte by byte, and in three pieces (the codec tests also cut each transcript
    at every offset, through this decoder)."""
    data = path.read_bytes()
    expected = reference_events(data)
    assert expected, "a transcript with no events tests nothing"
    assert decode(data) == expected
    assert decode(*byte_by_byte(data)) == expected
    for pieces in three_way_splits(data, 60):
        assert decode(*pieces) == expected, [len(p) for p in pieces]


# --- properties -------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12
)
_NAME = st.sampled_from(["", "message", "content_block_delta", "ping", "é", "with space", "a:b"])
_EOL = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """A random stream and the events the WHATWG rules say it holds, built side by side."""
    out: list[bytes] = [b"\xef\xbb\xbf"] if draw(st.booleans()) else []
    expected: list[SSEEvent] = []
    last_id: str | None = None
    prev_eol = b"\n"

    def line(content: bytes, blank: bool = False) -> None:
        nonlocal prev_eol
        eol = draw(_EOL)
        if blank and prev_eol == b"\r" and eol == b"\n":
            eol = b"\r\n"  # a bare LF after a CR would merge with it into one line end
        out.append(content + eol)
        prev_eol = eol

    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            line(b":" + draw(_TEXT).encode())
        event = draw(st.none() | _NAME)
        if event is not None:
            line(b"event:" + (b" " if draw(st.booleans()) else b"") + event.encode())
        new_id = draw(st.none() | st.sampled_from(["", "1", "evt-2", "x\x00y"]))
        if new_id is not None:
            line(b"id: " + new_id.encode())
            if "\x00" not in new_id:
                last_id = new_id
        data = draw(st.lists(_TEXT, max_size=4))
        for d in data:
            sep = b": " if d.startswith(" ") or draw(st.booleans()) else b":"
            line(b"data" + sep + d.encode())
        line(b"", blank=True)
        if len(data) > 1 or (data and data[0]):
            expected.append(SSEEvent(event or None, "\n".join(data), last_id))
    return b"".join(out), expected


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[int]:
    return sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_encoded_events_decode_identically_under_any_split(data: st.DataObject) -> None:
    raw, expected = data.draw(sse_streams())
    assert reference_events(raw) == expected
    offsets = data.draw(cuts(raw))
    assert decode(*split_at(raw, offsets)) == expected


def decode_items(*pieces: bytes, max_event_bytes: int = 1 << 20) -> list[SSEItem]:
    dec = SSEDecoder(max_event_bytes)
    out: list[SSEItem] = []
    for piece in pieces:
        dec.feed_items_into(piece, out)
    return out


def as_items(events: list[SSEEvent]) -> list[SSEItem]:
    """What `feed_items_into` hands out for these events: nameless ones as their data alone."""
    return [ev.data if ev.event is None else ev for ev in events]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_items_are_the_events_with_nameless_ones_bare(data: st.DataObject) -> None:
    raw, expected = data.draw(sse_streams())
    pieces = split_at(raw, data.draw(cuts(raw)))
    assert decode_items(*pieces) == as_items(expected)


def test_items_for_a_recorded_transcript_at_every_split() -> None:
    raw = (FIXTURES / "openai_text_unicode.sse").read_bytes()
    expected = as_items(reference_events(raw))
    assert expected and all(type(item) is str for item in expected)
    for pieces in every_split(raw):
        assert decode_items(*pieces) == expected


_TOKENS = st.sampled_from(
    [b"data", b"data:", b"data: ", b"event:", b"event: ", b"id:", b"id: ", b"retry:", b":", b" ", b"\n", b"\r",
     b"\r\n", b"x", b"42", b"\x00", b"\xef\xbb\xbf", "é".encode(), "🎉".encode(), b"\xff", b"\xe3\x81", b"{}"]
)
_NOISE = st.lists(_TOKENS | st.binary(max_size=3), max_size=40).map(b"".join)


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_property_arbitrary_bytes_match_the_reference_under_any_split(data: st.DataObject) -> None:
    raw = data.draw(_NOISE)
    pieces = split_at(raw, data.draw(cuts(raw)))
    whole, split = SSEDecoder(), SSEDecoder()
    expected = reference_events(raw)
    assert feed(whole, raw) == expected
    assert [ev for piece in pieces for ev in feed(split, piece)] == expected
    assert split.invalid_utf8 == whole.invalid_utf8
    items = decode_items(*pieces)
    assert items == as_items(expected)


@settings(max_examples=120, deadline=None)
@given(st.data(), st.integers(1, 40))
def test_property_limits_fail_identically_under_any_split(data: st.DataObject, limit: int) -> None:
    raw = data.draw(_NOISE)
    offsets = data.draw(cuts(raw))
    whole = outcome([raw], limit)  # raises nothing but WireError, or the test fails
    assert outcome(split_at(raw, offsets), limit) == whole
    if whole[1] is None:
        assert whole[0] == reference_events(raw)
