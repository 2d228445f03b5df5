"""The contract every text transform keeps (ordering, the hold bound) and `Chain`."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from transform_harness import read, run

from streamactors.models import Citation as CitationModel
from streamactors.models import (
    CitationEvent,
    FinishEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    UsageEvent,
)
from streamactors.transforms import BlockList, Chain, Redact, StopSequences, Transform

#: Text fragments, and inline events that may wait behind held text.
_events = st.lists(
    st.one_of(
        st.text(alphabet="abc xy", min_size=1, max_size=8).map(TextEvent),
        st.integers(0, 9).map(lambda n: UsageEvent(n, n)),
        st.integers(0, 9).map(lambda n: CitationEvent(CitationModel(url=f"https://e.com/{n}"))),
    ),
    max_size=30,
)


def _text_before(events: list[StreamEvent]) -> list[int]:
    """For each non-text event, the length of the text before it."""
    seen, out = 0, []
    for ev in events:
        if type(ev) is TextEvent:
            seen += len(ev.text)
        else:
            out.append(seen)
    return out


@settings(max_examples=300, deadline=None)
@given(events=_events, max_match=st.integers(1, 10))
def test_events_keep_their_place_in_the_text(events: list[StreamEvent], max_match: int) -> None:
    """A transform that changes nothing hands on the same text and the same other events, each
    at the same place in the text, though it held text and they waited behind it."""
    redact = Redact(["\x00"], max_match=max_match)  # never matches; holds `max_match` characters
    out = run(redact, [[ev] for ev in events])
    assert read(out) == read(events)
    assert _text_before(out) == _text_before(events)


class Upper(Transform):
    """A custom transform: upper-cases text, holds nothing."""

    name = "upper"

    def feed(self, events: list[StreamEvent]) -> list[StreamEvent]:
        return [TextEvent(ev.text.upper()) if type(ev) is TextEvent else ev for ev in events]

    def close(self) -> list[StreamEvent]:
        return []


def test_stages_run_in_order() -> None:
    """Redact sees the original case; the stage after it sees its output."""
    chain = Chain([Redact(["secret"], max_match=6), Upper()])
    out = chain.feed([TextEvent("a secret here, ")]) + chain.feed([FinishEvent("stop")])
    assert read(out) == ("A [REDACTED] HERE, ", "", [FinishEvent("stop")])
    assert not chain.ended  # the upstream's finish is not a transform's end


def test_an_end_goes_through_the_later_stages_which_hand_on_what_they_hold_first() -> None:
    stop, redact = StopSequences(["STOP"]), Redact(["zzz"], max_match=5)
    chain = Chain([stop, redact])
    out = chain.feed([TextEvent("hello world ST")])
    assert read(out)[0] == "hello w"  # Redact holds five characters
    out += chain.feed([TextEvent("OP and then"), UsageEvent(1, 1)])
    assert out[-1] == FinishEvent("stop") and read(out)[0] == "hello world "
    assert chain.ended and chain.feed([TextEvent("x")]) == [] and chain.close() == []


def test_close_flushes_each_stage_through_the_later_ones() -> None:
    chain = Chain([Redact(["ab"], "<x>", max_match=4), BlockList(["x"], "finish")])
    chain.feed([TextEvent("q ab")])  # Redact holds "q ab"; nothing reaches BlockList yet
    assert chain.close() == [TextEvent("q <"), FinishEvent("content_filter")]
    assert chain.ended


def test_boundaries_keep_reasoning_and_tool_calls_in_place() -> None:
    """A tool call is a boundary: the text before it goes out before it."""
    chain = Chain([Redact([r"\bk\b"], max_match=3), StopSequences(["zz"])])
    events: list[StreamEvent] = [
        ReasoningEvent("think k"),
        ReasoningEvent("", signature="s"),
        TextEvent("say k z"),
        ToolCallEvent(0, "c", "f", '{"k": 1}'),
        FinishEvent("tool_calls"),
    ]
    out = chain.feed(events)
    assert [type(ev).__name__ for ev in out][-3:] == ["TextEvent", "ToolCallEvent", "FinishEvent"]
    assert read(out) == (
        "say [redacted] z",
        "think [redacted]",
        [ReasoningEvent("", signature="s"), ToolCallEvent(0, "c", "f", '{"k": 1}'), FinishEvent("tool_calls")],
    )


def test_a_chain_without_a_clock_has_no_deadline() -> None:
    chain = Chain([StopSequences(["x"]), Redact(["y"])])
    assert not chain.timed and chain.deadline() is None and chain.expire(1e9) == []
