"""Helpers for the transform tests: run a transform over events cut and grouped in given ways,
and read its output back as (text, reasoning, the other events)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

from hypothesis import strategies as st

from streamactors.models import ReasoningEvent, StreamEvent, TextEvent
from streamactors.transforms import TextTransform, Transform


def run(transform: Transform, batches: Iterable[list[StreamEvent]], *, check_bound: bool = True) -> list[StreamEvent]:
    """Feed each batch in turn, then close; with `check_bound`, assert the held text never
    exceeds the transform's stated bound."""
    out: list[StreamEvent] = []
    for batch in batches:
        out += transform.feed(batch)
        if check_bound and isinstance(transform, TextTransform):
            assert transform.held <= transform.max_held, (transform.held, transform.max_held)
    out += transform.close()
    return out


def pieces(text: str, cuts: Iterable[int]) -> list[str]:
    """`text` cut at the given positions (empty pieces dropped)."""
    points = sorted({c for c in cuts if 0 < c < len(text)})
    edges = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges) if b > a]


def text_events(text: str, cuts: Iterable[int], kind: Callable[[str], StreamEvent] = TextEvent) -> list[StreamEvent]:
    """`text` as events of the given kind, cut at `cuts`."""
    return [kind(p) for p in pieces(text, cuts)]


def grouped(events: Sequence[StreamEvent], sizes: Iterable[int]) -> list[list[StreamEvent]]:
    """`events` in batches of the given sizes (the last batch takes what is left)."""
    batches: list[list[StreamEvent]] = []
    i = 0
    for size in sizes:
        if i >= len(events):
            break
        batches.append(list(events[i : i + max(1, size)]))
        i += max(1, size)
    if i < len(events):
        batches.append(list(events[i:]))
    return batches


def read(events: Iterable[StreamEvent]) -> tuple[str, str, list[StreamEvent]]:
    """(the text, the reasoning, every other event in order)."""
    text, reasoning, other = [], [], []
    for ev in events:
        if type(ev) is TextEvent:
            text.append(ev.text)
        elif type(ev) is ReasoningEvent and ev.signature is None and ev.redacted is None:
            reasoning.append(ev.text)
        else:
            other.append(ev)
    return "".join(text), "".join(reasoning), other


#: Cut points and batch sizes for a text of any length up to 200.
cuts = st.lists(st.integers(min_value=0, max_value=200), max_size=40)
sizes = st.lists(st.integers(min_value=1, max_value=6), max_size=40)
