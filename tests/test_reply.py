"""`ReplyBuilder`: folding a batch at once (what `complete()` does) equals folding event by event;
signed reasoning becomes the reply's reasoning blocks, for replay."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from streamactors.models import (
    Citation,
    CitationEvent,
    FinishEvent,
    Message,
    ReasoningBlock,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from streamactors.reply import ReplyBuilder

_TEXT = st.sampled_from(["", "a", "héllo ", "🎉", "x" * 40])
EVENTS: st.SearchStrategy[StreamEvent] = st.one_of(
    st.builds(TextEvent, _TEXT),
    st.builds(ReasoningEvent, _TEXT),
    st.builds(ReasoningEvent, st.just(""), st.sampled_from(["sig1", "sig2"])),
    st.builds(ReasoningEvent, st.just(""), st.none(), st.just("redacted==")),
    st.builds(
        ToolCallEvent,
        st.integers(0, 2),
        st.none() | st.sampled_from(["call_1", "call_2"]),
        st.none() | st.sampled_from(["get_weather", "f"]),
        _TEXT,
        st.none() | st.just("sig"),
    ),
    st.builds(UsageEvent, st.none() | st.integers(0, 9), st.none() | st.integers(0, 9)),
    st.builds(FinishEvent, st.sampled_from(["stop", "length", "tool_calls"])),
)


@given(events=st.lists(EVENTS, max_size=600), cuts=st.lists(st.integers(0, 600), max_size=5), keep=st.booleans())
def test_add_all_in_batches_equals_add_one_by_one(events: list[StreamEvent], cuts: list[int], keep: bool) -> None:
    one_by_one = ReplyBuilder("p", "m", keep_text=keep)
    for ev in events:
        one_by_one.add(ev)
    batched = ReplyBuilder("p", "m", keep_text=keep)
    bounds = [0, *sorted(c for c in cuts if c < len(events)), len(events)]
    for start, end in itertools.pairwise(bounds):
        batched.add_all(events[start:end])
    assert batched.reply() == one_by_one.reply()
    assert batched.events == one_by_one.events == len(events)
    assert batched.has_content == one_by_one.has_content


def test_add_all_keeps_text_in_order_across_blocks() -> None:
    """More fragments than one block holds (256): the order survives the joins."""
    builder = ReplyBuilder()
    builder.add_all([TextEvent(f"{i} ") for i in range(300)])
    builder.add_all([TextEvent(f"{i} ") for i in range(300, 700)])
    assert builder.reply().text == "".join(f"{i} " for i in range(700))


def test_signed_and_redacted_reasoning_become_blocks_in_order() -> None:
    builder = ReplyBuilder("anthropic", "claude")
    builder.add_all([
        ReasoningEvent("Let me "),
        ReasoningEvent("think."),
        ReasoningEvent("", signature="sig1"),
        ReasoningEvent("", redacted="EmwK"),
        TextEvent("Calling."),
        ReasoningEvent("Again."),
        ReasoningEvent("", signature="sig2"),
        ToolCallEvent(0, "toolu_1", "f", "{}"),
    ])
    reply = builder.reply()
    assert reply.reasoning == "Let me think.Again."
    assert reply.reasoning_blocks == (
        ReasoningBlock("Let me think.", "sig1"),
        ReasoningBlock("", None, "EmwK"),
        ReasoningBlock("Again.", "sig2"),
    )
    assert reply.as_message() == Message(
        "assistant", "Calling.", tool_calls=reply.tool_calls, reasoning_blocks=reply.reasoning_blocks
    )


def test_unsigned_reasoning_has_no_blocks_and_a_reply_without_text_has_no_content() -> None:
    builder = ReplyBuilder()
    builder.add_all([ReasoningEvent("DeepSeek thinks"), ToolCallEvent(0, "c", "f", "{}")])
    reply = builder.reply()
    assert (reply.reasoning, reply.reasoning_blocks) == ("DeepSeek thinks", ())
    assert reply.as_message() == Message("assistant", None, tool_calls=reply.tool_calls)


def test_without_kept_text_there_is_nothing_to_replay() -> None:
    builder = ReplyBuilder(keep_text=False)
    builder.add_all([ReasoningEvent("t"), ReasoningEvent("", signature="s")])
    assert builder.reply().reasoning_blocks == ()
    assert builder.has_content


def test_citations_and_usage_details_fold_into_the_reply() -> None:
    """Citations are kept in order (one per event), and every usage field reaches `Reply.usage`,
    by `add` and by `add_all` alike."""
    first, second = Citation("https://a.example/1", "A", "alpha"), Citation(None, "Doc", None)
    events = [
        TextEvent("x "),
        CitationEvent(first),
        TextEvent("y"),
        CitationEvent(second),
        UsageEvent(100, 20, cache_read_tokens=40, cache_write_tokens=8, reasoning_tokens=5),
        FinishEvent("stop"),
    ]
    one_by_one, batched = ReplyBuilder("p", "m"), ReplyBuilder("p", "m")
    for ev in events:
        one_by_one.add(ev)
    batched.add_all(events)
    for builder in (one_by_one, batched):
        reply = builder.reply()
        assert reply.citations == (first, second) and reply.text == "x y"
        assert reply.usage == Usage(100, 20, cache_read_tokens=40, cache_write_tokens=8, reasoning_tokens=5)
