"""`Coalesce`: text gathered to `min_chars`, or sent when its oldest part has waited
`max_delay_ms`; the same text however it is split. Time is a given clock here, and trio's
MockClock through a service in tests/test_transformed_stream.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamactors.actors.coalesce import Coalesce
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
from streamactors.transforms import Chain, Redact


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_text_waits_for_min_chars_then_goes_as_one_event() -> None:
    clock = Clock()
    coalesce = Coalesce(8, 100, clock=clock)
    assert coalesce.feed([TextEvent("ab"), TextEvent("cd")]) == []
    assert coalesce.held == 4 and coalesce.deadline == 0.1
    assert coalesce.feed([TextEvent("efgh")]) == [TextEvent("abcdefgh")]
    assert coalesce.held == 0 and coalesce.deadline is None
    assert coalesce.actions == {"merge": 2}


def test_the_deadline_is_set_by_the_oldest_held_text() -> None:
    clock = Clock()
    coalesce = Coalesce(100, 50, clock=clock)
    clock.now = 1.0
    coalesce.feed([TextEvent("a")])
    clock.now = 1.04
    coalesce.feed([TextEvent("b")])
    assert coalesce.deadline == pytest.approx(1.05)
    assert coalesce.expire(1.049) == []
    assert coalesce.expire(1.05) == [TextEvent("ab")]
    assert coalesce.deadline is None and coalesce.expire(2.0) == []
    clock.now = 3.0
    coalesce.feed([TextEvent("c")])
    assert coalesce.deadline == pytest.approx(3.05)


def test_boundaries_and_other_events_keep_their_place() -> None:
    """A tool call or the finish sends what is held first; an event between fragments (log
    probabilities) keeps them apart; the reasoning is gathered separately from the text."""
    coalesce = Coalesce(100, 50, clock=Clock())
    lp = LogprobsEvent((TokenLogprob("b", -0.5),))
    out = coalesce.feed(
        [
            ReasoningEvent("r1"),
            ReasoningEvent("r2"),
            ReasoningEvent("", signature="sig"),
            TextEvent("a"),
            TextEvent("b"),
            lp,
            TextEvent("c"),
            TextEvent("d"),
            ToolCallEvent(0, "c", "f", "{}"),
            UsageEvent(1, 2),
            FinishEvent("tool_calls"),
        ]
    )
    assert out == [
        ReasoningEvent("r1r2"),
        ReasoningEvent("", signature="sig"),
        TextEvent("ab"),
        lp,
        TextEvent("cd"),
        ToolCallEvent(0, "c", "f", "{}"),
        UsageEvent(1, 2),
        FinishEvent("tool_calls"),
    ]
    assert coalesce.close() == []


def test_close_sends_what_is_held() -> None:
    coalesce = Coalesce(100, 50, clock=Clock())
    coalesce.feed([TextEvent("x"), TextEvent("y")])
    assert coalesce.close() == [TextEvent("xy")]


def test_in_a_chain_the_expired_text_goes_through_the_stages_after_it() -> None:
    clock = Clock()
    chain = Chain([Coalesce(100, 10, clock=clock), Redact(["secret"], max_match=6)])
    assert chain.timed and chain.deadline() is None
    assert chain.feed([TextEvent("my secret is out")]) == []
    assert chain.deadline() == pytest.approx(0.01)
    assert chain.expire(0.0099) == []
    assert chain.expire(0.01) == [TextEvent("my [redacted] ")]  # Redact holds its last six characters
    assert chain.close() == [TextEvent("is out")]


@settings(max_examples=300, deadline=None)
@given(
    fragments=st.lists(st.text(alphabet="ab c日🎉", min_size=1, max_size=10), max_size=30),
    min_chars=st.integers(1, 40),
)
def test_the_text_is_the_same_and_each_event_but_the_last_reaches_min_chars(
    fragments: list[str], min_chars: int
) -> None:
    coalesce = Coalesce(min_chars, 1000, clock=Clock())
    out: list[StreamEvent] = []
    for fragment in fragments:
        out += coalesce.feed([TextEvent(fragment)])
        assert coalesce.held < min_chars
    out += coalesce.close()
    texts = [ev.text for ev in out if isinstance(ev, TextEvent)]
    assert "".join(texts) == "".join(fragments)
    assert all(len(t) >= min_chars for t in texts[:-1])
    assert coalesce.actions.get("merge", 0) == len(fragments) - len(texts)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 50), "Coalesce: min_chars: must be a whole number of characters, 1 or more, got 0"),
        ((8, 0), "Coalesce: max_delay_ms: must be a number of milliseconds greater than 0, got 0"),
        ((8, "5"), "Coalesce: max_delay_ms: must be a number of milliseconds greater than 0, got '5'"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[object, object], message: str) -> None:
    with pytest.raises(UsageError) as info:
        Coalesce(*args)  # type: ignore[arg-type]
    assert str(info.value) == message
