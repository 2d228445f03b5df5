"""`Redact`: the result of `re.sub` on the whole text, however the text is split, in the text
and in the reasoning, with a bounded hold."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transform_harness import cuts, grouped, pieces, read, run, sizes, text_events

from streamactors.errors import UsageError
from streamactors.models import Citation as CitationModel
from streamactors.models import (
    CitationEvent,
    FinishEvent,
    LogprobsEvent,
    ReasoningEvent,
    TextEvent,
    TokenLogprob,
    ToolCallEvent,
    UsageEvent,
)
from streamactors.transforms import Redact

#: Patterns with look-behind, \b look-arounds, alternation, bounded repeats and multi-byte text.
PATTERNS = [r"sk-[a-z0-9]{4,8}", r"\b\d{3}-\d{4}\b", r"(?<=x)yz", r"\bcat\b", r"日本+", r"a{2,5}b"]
ALPHABET = "sk-abcxyz0189 t日本é"


def reference(text: str, patterns: list[str], replacement: str = "[redacted]") -> str:
    return re.sub("|".join(f"(?:{p})" for p in patterns), replacement, text)


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=ALPHABET, max_size=80),
    cut=cuts,
    size=sizes,
    reasoning=st.booleans(),
)
def test_the_output_is_the_same_however_the_text_is_split(
    text: str, cut: list[int], size: list[int], reasoning: bool
) -> None:
    kind = ReasoningEvent if reasoning else TextEvent
    redact = Redact(PATTERNS, "#", max_match=16)
    out = run(redact, grouped([*text_events(text, cut, kind), FinishEvent("stop")], size))
    expected = reference(text, PATTERNS, "#")
    assert read(out) == ((expected, "") if not reasoning else ("", expected)) + ([FinishEvent("stop")],)


#: Short patterns under a bound they just fit (the longest match, "aaaab", is 5 characters):
#: the held tail is short, so look-behind context and look-ahead at the cut matter often.
TIGHT = [r"(?<=x)yz", r"\bcat\b", r"日本{1,3}", r"a{2,4}b", r"\d-\d"]


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="xyzcat a日本b0-1", max_size=80), cut=cuts, size=sizes)
def test_the_output_is_the_same_however_the_text_is_split_under_a_tight_bound(
    text: str, cut: list[int], size: list[int]
) -> None:
    out = run(Redact(TIGHT, "#", max_match=5), grouped(text_events(text, cut), size))
    assert read(out) == (reference(text, TIGHT, "#"), "", [])


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab", max_size=60),
    cut=cuts,
    max_match=st.integers(min_value=3, max_value=12),
)
def test_any_bound_that_covers_the_match_gives_the_same_output(text: str, cut: list[int], max_match: int) -> None:
    """The bound changes how much is held, not the result (for matches within it)."""
    redact = Redact([r"ab{1,2}a"], "_", max_match=max_match)
    out = run(redact, [[ev] for ev in text_events(text, cut)])
    assert read(out)[0] == reference(text, [r"ab{1,2}a"], "_")


def test_a_pattern_across_every_split_point() -> None:
    text = "key: sk-abc123xy, call 555-0123 now"
    expected = "key: [redacted], call [redacted] now"
    assert reference(text, PATTERNS) == expected
    for i, j in itertools.combinations(range(len(text) + 1), 2):
        redact = Redact(PATTERNS, max_match=16)
        out = run(redact, [[TextEvent(p)] for p in pieces(text, [i, j])])
        assert read(out) == (expected, "", []), (i, j)
        assert redact.actions == {"redact": 2}


def test_look_behind_and_word_boundaries_across_every_split_point() -> None:
    """The text handed on stays as context: "acat" is not the word "cat", "yz" after an "x"
    handed on earlier is still after an "x", wherever the cuts fall."""
    text = "acat cat xyz yz catb 0-1 日本本 aaab"
    expected = "acat # x# yz catb # # #"
    assert reference(text, TIGHT, "#") == expected
    for i, j in itertools.combinations(range(len(text) + 1), 2):
        out = run(Redact(TIGHT, "#", max_match=5), [[TextEvent(p)] for p in pieces(text, [i, j])])
        assert read(out)[0] == expected, (i, j)


def test_a_match_as_long_as_the_bound_still_sees_one_character_after_it() -> None:
    """`max_match` is the match's length; a look-ahead such as \\b reads one character more."""
    text = "cats cat category cat"
    for i, j in itertools.combinations(range(len(text) + 1), 2):
        out = run(Redact([r"\bcat\b"], "#", max_match=3), [[TextEvent(p)] for p in pieces(text, [i, j])])
        assert read(out)[0] == "cats # category #", (i, j)


def test_a_redaction_inside_reasoning() -> None:
    """Reasoning is redacted as its own run of text; the signature that ends the block follows
    the redacted text; the visible text after it is a new run."""
    redact = Redact([r"sk-[a-z0-9]{6}"], max_match=12)
    out = run(
        redact,
        [
            [ReasoningEvent("the user's key is sk-ab"), ReasoningEvent("c123, I must not")],
            [ReasoningEvent(" repeat it"), ReasoningEvent("", signature="sig-1")],
            [TextEvent("I cannot share sk-zz"), TextEvent("9999.")],
            [FinishEvent("stop")],
        ],
    )
    assert read(out) == (
        "I cannot share [redacted].",
        "the user's key is [redacted], I must not repeat it",
        [ReasoningEvent("", signature="sig-1"), FinishEvent("stop")],
    )
    # The signature comes after all of its block's text.
    signature_at = out.index(ReasoningEvent("", signature="sig-1"))
    assert all(type(ev) is ReasoningEvent for ev in out[:signature_at])
    assert redact.actions == {"redact": 2}


def test_text_and_reasoning_are_separate_runs() -> None:
    """No look-behind context crosses from the reasoning to the text, nor a match."""
    out = run(
        Redact([r"(?<=x)yz", "ab"], "#", max_match=3), [[ReasoningEvent("a"), ReasoningEvent("x")], [TextEvent("yz b")]]
    )
    assert read(out) == ("yz b", "ax", [])


def test_a_signed_block_whose_last_event_has_text() -> None:
    out = run(Redact(["secret"]), [[ReasoningEvent("a sec"), ReasoningEvent("ret", signature="s")]])
    assert out == [ReasoningEvent("a [redacted]"), ReasoningEvent("", signature="s")]


def test_the_hold_is_bounded_and_context_is_not_handed_on_twice() -> None:
    redact = Redact([r"(?<=id=)\d+"], max_match=8)
    out = redact.feed([TextEvent("x" * 20)])
    assert out == [TextEvent("x" * 12)] and redact.held == 8
    out += redact.feed([TextEvent("id=")])
    out += redact.feed([TextEvent("12345 and the rest of it")])
    out += redact.close()
    assert read(out)[0] == "x" * 20 + "id=[redacted] and the rest of it"
    assert redact.held == 0


def test_other_events_keep_their_order_and_log_probabilities_are_dropped() -> None:
    cite = CitationEvent(CitationModel(url="https://example.com"))
    redact = Redact(["secret"], max_match=6)
    out = run(
        redact,
        [
            [TextEvent("a sec"), LogprobsEvent((TokenLogprob("sec", -1.0),)), cite, TextEvent("ret b")],
            [ToolCallEvent(0, "c", "f", '{"x": "secret"}'), UsageEvent(1, 2), FinishEvent("tool_calls")],
        ],
    )
    assert out == [
        TextEvent("a [redacted]"),
        cite,
        TextEvent(" b"),
        ToolCallEvent(0, "c", "f", '{"x": "secret"}'),  # tool-call arguments are the caller's JSON: untouched
        UsageEvent(1, 2),
        FinishEvent("tool_calls"),
    ]
    assert redact.actions == {"redact": 1, "drop_logprobs": 1}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([],), {}, "Redact: patterns: give at least one regular expression"),
        (("x",), {}, "Redact: patterns: expected a list of regular expressions, got str"),
        ((["ok", "(unclosed"],), {}, "Redact: patterns[1]: invalid regular expression '(unclosed': "),
        ((["a*"],), {}, "Redact: patterns[0]: 'a*' matches the empty string; every match must take"),
        ((["x"], 3), {}, "Redact: replacement: expected a string, got int"),
        ((["x"],), {"max_match": 0}, "Redact: max_match: must be a whole number of characters, 1 or more, got 0"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[object, ...], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        Redact(*args, **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
