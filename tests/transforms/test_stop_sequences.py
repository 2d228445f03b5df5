"""`StopSequences`: the reply ends at the first stop string, however the text is split."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transform_harness import cuts, grouped, pieces, read, run, sizes, text_events

from streamactors.errors import UsageError
from streamactors.models import (
    FinishEvent,
    LogprobsEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    TokenLogprob,
    ToolCallEvent,
    UsageEvent,
)
from streamactors.transforms import StopSequences


def reference(text: str, strings: list[str]) -> tuple[str, bool]:
    """The whole text's answer: cut before the match that is complete first (the longest of
    those complete at once); (the text kept, whether it stopped)."""
    found = [(at + len(s), at) for s in strings if (at := text.find(s)) >= 0]
    if not found:
        return text, False
    return text[: min(found)[1]], True


ALPHABET = "ab日本é🎉 "


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=ALPHABET, max_size=60),
    strings=st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=4), min_size=1, max_size=4),
    cut=cuts,
    size=sizes,
)
def test_the_output_is_the_same_however_the_text_is_split(
    text: str, strings: list[str], cut: list[int], size: list[int]
) -> None:
    out = run(StopSequences(strings), grouped([*text_events(text, cut), FinishEvent("length")], size))
    kept, stopped = reference(text, strings)
    assert read(out) == (kept, "", [FinishEvent("stop" if stopped else "length")])


def test_a_stop_string_across_every_split_point() -> None:
    text = "one two STOP three"
    expected: list[StreamEvent] = [TextEvent("one two "), FinishEvent("stop")]
    for i, j in itertools.combinations(range(len(text) + 1), 2):
        out = run(StopSequences(["STOP"]), [[TextEvent(p)] for p in pieces(text, [i, j])])
        assert read(out) == read(expected), (i, j)
        assert out[-1] == FinishEvent("stop")


@pytest.mark.parametrize(
    ("text", "stop", "kept"),
    [
        ("日本語です", "本語", "日"),  # the stop string starts inside the second 3-byte character's neighbour
        ("party 🎉 time", "🎉", "party "),  # one 4-byte character
        ("naïve café", "é", "naïve caf"),  # two bytes, after a two-byte character
        ("語語語", "語語", ""),
    ],
)
def test_a_stop_string_of_multi_byte_characters_at_every_split(text: str, stop: str, kept: str) -> None:
    """Events carry whole characters (the codecs decode UTF-8 across reads); a stop string made
    of multi-byte characters is found wherever the text is cut between them."""
    for i in range(len(text) + 1):
        out = run(StopSequences([stop]), [[TextEvent(p)] for p in pieces(text, [i])])
        assert read(out) == (kept, "", [FinishEvent("stop")]), i


def test_the_match_complete_first_wins() -> None:
    """As a provider generating token by token would: "bc" is complete before "abcd"."""
    assert read(run(StopSequences(["abcd", "bc"]), [[TextEvent("ab")], [TextEvent("cd")]]))[0] == "a"
    assert read(run(StopSequences(["abcd", "bc"]), [[TextEvent("abcd")]]))[0] == "a"
    # Complete at once: the longer (earlier) one.
    assert read(run(StopSequences(["bc", "abc"]), [[TextEvent("abc")]]))[0] == ""


def test_only_a_possible_beginning_is_held() -> None:
    stop = StopSequences(["STOP", "END"])
    assert stop.max_held == 3
    assert stop.feed([TextEvent("all clear")]) == [TextEvent("all clear")]
    assert stop.feed([TextEvent("wait ST")]) == [TextEvent("wait ")] and stop.held == 2
    assert stop.feed([TextEvent("ILL")]) == [TextEvent("STILL")] and stop.held == 0
    assert stop.feed([TextEvent("E")]) == [] and stop.held == 1
    assert stop.close() == [TextEvent("E")]


def test_an_event_passed_whole_is_not_copied() -> None:
    ev = TextEvent("nothing to see")
    assert StopSequences(["STOP"]).feed([ev])[0] is ev


def test_the_end_drops_everything_after_it() -> None:
    stop = StopSequences(["STOP"])
    out = stop.feed([TextEvent("a STO"), TextEvent("P b"), UsageEvent(1, 2), FinishEvent("stop")])
    assert out == [TextEvent("a "), FinishEvent("stop")]
    assert stop.ended and stop.actions == {"stop": 1}
    assert stop.feed([TextEvent("more")]) == [] and stop.close() == []


def test_other_events_pass_and_keep_their_order() -> None:
    """Tool calls and the finish are boundaries (held text goes first); usage and log
    probabilities wait behind held text and go out at their place in it."""
    stop = StopSequences(["STOP"])
    lp = LogprobsEvent((TokenLogprob("ST", -0.1),))
    out = run(
        stop,
        [
            [ReasoningEvent("thinking STOP is fine here")],
            [TextEvent("x ST"), lp, TextEvent("ay"), UsageEvent(3, 4)],
            [TextEvent(" ST"), ToolCallEvent(0, "c1", "f", "{}"), FinishEvent("tool_calls")],
        ],
    )
    assert out == [
        ReasoningEvent("thinking STOP is fine here"),  # reasoning is not the reply's text
        TextEvent("x "),
        TextEvent("ST"),
        lp,  # where it came: after the text "ST" that was held
        TextEvent("ay"),
        UsageEvent(3, 4),
        TextEvent(" "),
        TextEvent("ST"),
        ToolCallEvent(0, "c1", "f", "{}"),
        FinishEvent("tool_calls"),
    ]
    assert stop.actions == {}


def test_an_event_waiting_behind_a_cut_tail_is_dropped() -> None:
    """Usage that arrived after the text that completed the stop string is the upstream's
    later news: the reply ended before it."""
    out = StopSequences(["STOP"]).feed([TextEvent("go ST"), UsageEvent(1, 1), TextEvent("OP")])
    assert out == [TextEvent("go "), FinishEvent("stop")]


@pytest.mark.parametrize(
    ("strings", "message"),
    [
        ([], "StopSequences: strings: give at least one stop string"),
        ("STOP", "StopSequences: strings: expected a list of strings, got str"),
        (["ok", ""], "StopSequences: strings[1]: a stop string cannot be empty"),
        (["ok", 3], "StopSequences: strings[1]: expected a string, got int"),
    ],
)
def test_bad_arguments_are_usage_errors(strings: object, message: str) -> None:
    with pytest.raises(UsageError) as info:
        StopSequences(strings)  # type: ignore[arg-type]
    assert str(info.value) == message
