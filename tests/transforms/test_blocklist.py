"""`BlockList`: the reply ends before the first listed word, however the text is split."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transform_harness import cuts, grouped, pieces, read, run, sizes, text_events

from streamactors.errors import UsageError
from streamactors.models import ErrorEvent, FinishEvent, ReasoningEvent, TextEvent, ToolCallEvent, UsageEvent
from streamactors.transforms import BlockList, ContentBlocked

WORDS = ["darn", "heck", "日本"]


def reference(text: str, words: list[str]) -> str | None:
    """The text before the first whole listed word (any case), or None if there is none."""
    ordered = sorted(words, key=len, reverse=True)
    m = re.search(r"(?<!\w)(?:" + "|".join(map(re.escape, ordered)) + r")(?!\w)", text, re.IGNORECASE)
    return None if m is None else text[: m.start()]


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet="darnhecDARN日本x ", max_size=60),
    cut=cuts,
    size=sizes,
    action=st.sampled_from(["finish", "error"]),
    reasoning=st.booleans(),
)
def test_the_output_is_the_same_however_the_text_is_split(
    text: str, cut: list[int], size: list[int], action: str, reasoning: bool
) -> None:
    kind = ReasoningEvent if reasoning else TextEvent
    blocklist = BlockList(WORDS, action)
    out = run(blocklist, grouped([*text_events(text, cut, kind), FinishEvent("stop")], size))
    kept = reference(text, WORDS)
    text_out, reasoning_out, other = read(out)
    assert (reasoning_out if reasoning else text_out) == (text if kept is None else kept)
    assert (text_out if reasoning else reasoning_out) == ""
    if kept is None:
        assert other == [FinishEvent("stop")] and blocklist.actions == {}
    elif action == "finish":
        assert other == [FinishEvent("content_filter")] and blocklist.actions == {"finish": 1}
    else:
        assert len(other) == 1 and isinstance(other[0], ErrorEvent) and isinstance(other[0].error, ContentBlocked)
        assert blocklist.actions == {"error": 1}


def test_a_word_across_every_split_point() -> None:
    text = "well, Darn it all"
    for i, j in itertools.combinations(range(len(text) + 1), 2):
        out = run(BlockList(["darn"], "finish"), [[TextEvent(p)] for p in pieces(text, [i, j])])
        assert read(out) == ("well, ", "", [FinishEvent("content_filter")]), (i, j)


def test_only_whole_words_match() -> None:
    text = "darned heckle adarn darn_it"
    out = run(BlockList(["darn", "heck"], "finish"), [[TextEvent(text)], [FinishEvent("stop")]])
    assert read(out) == (text, "", [FinishEvent("stop")])


def test_the_error_ends_the_reply_and_says_nothing_of_it() -> None:
    blocklist = BlockList(["darn"])  # action="error" by default
    out = blocklist.feed([TextEvent("oh dar"), TextEvent("n, "), UsageEvent(1, 1), TextEvent("more")])
    assert read(out[:-1]) == ("oh ", "", [])
    err = out[-1]
    assert isinstance(err, ErrorEvent) and isinstance(err.error, ContentBlocked)
    assert "darn" not in str(err.error) and "oh" not in str(err.error)
    assert blocklist.ended and blocklist.feed([TextEvent("x")]) == [] and blocklist.close() == []


def test_a_word_held_to_the_end_is_found_at_the_boundary() -> None:
    """The last word is known whole only at the finish (or at a tool call)."""
    blocklist = BlockList(["heck"], "finish")
    assert blocklist.feed([TextEvent("what the heck")]) == [TextEvent("what the ")]
    assert blocklist.held == 4 == blocklist.max_held
    out = blocklist.feed([ToolCallEvent(0, "c", "f", "{}"), FinishEvent("tool_calls")])
    assert out == [FinishEvent("content_filter")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([],), "BlockList: words: give at least one word"),
        (("darn",), "BlockList: words: expected a list of strings, got str"),
        ((["ok", " "],), "BlockList: words[1]: a blocked word cannot be empty or blank"),
        ((["ok"], "stop"), 'BlockList: action: must be "error" or "finish", got \'stop\''),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(UsageError) as info:
        BlockList(*args)  # type: ignore[arg-type]
    assert str(info.value) == message
