"""The stream transform contract, the text-holding machinery the built-ins share, and `Chain`.

A `Transform` sits between a provider's events and the consumer: `feed(events)` takes the
events of one network read and returns the events to hand on, `close()` returns what it still
holds when the stream ends. It is a plain object (no I/O, no clock unless it says so by its
`deadline`), used for one stream.

Ordering: the events handed on keep the order they came in. An event that is not text
(usage, a citation, log probabilities) arriving while text is held waits behind that text and
goes out exactly where it was in it: after the text that came before it, before the text that
came after it (one that fell inside a replaced match goes after the replacement). A tool call,
a finish, an error, the end of a signed reasoning block, or a switch between text and reasoning
is a boundary: whatever is held goes out (transformed) before it.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

from ..models import (
    CitationEvent,
    LogprobsEvent,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    UsageEvent,
)

__all__ = ["Chain", "Edits", "TextTransform", "Transform"]

#: Events that may wait behind held text (they are not about the text's order).
_INLINE = (UsageEvent, CitationEvent, LogprobsEvent)


class Transform(abc.ABC):
    """A stage between a provider's events and the consumer, for one stream.

    - `feed(events)` returns the events to hand on (possibly none, while text is held);
    - `close()` returns what is still held when the upstream ends (the stream then ends);
    - `ended` turns true when the transform itself ended the reply: its last output was a
      `FinishEvent` or an `ErrorEvent` of its own, and it hands on nothing after that. The
      stream then cancels the upstream request at once;
    - `actions` counts what it did, by action name (for `streamactors_transform_actions_total`);
    - `max_held` is the most characters of text it holds back at any time;
    - `deadline` (trio time, or None) is when held events must go out even if nothing else
      arrives; only a transform that uses the clock has one (`Coalesce`), and the stream then
      calls `expire(now)`.

    Tool-call fragments, usage and the finish pass through unless the transform is about them.
    """

    #: The transform's label in metrics and logs.
    name: ClassVar[str] = "transform"
    deadline: float | None = None
    ended: bool = False
    max_held: int = 0

    def __init__(self) -> None:
        self.actions: dict[str, int] = {}

    @abc.abstractmethod
    def feed(self, events: list[StreamEvent]) -> list[StreamEvent]:
        """The events to hand on after `events` (one network read's worth, in order)."""

    @abc.abstractmethod
    def close(self) -> list[StreamEvent]:
        """Everything still held, transformed: the upstream ended."""

    def expire(self, now: float) -> list[StreamEvent]:
        """What must go out at `now` (past `deadline`); nothing for a transform without a clock."""
        return []

    def count(self, action: str, n: int = 1) -> None:
        """Record `n` of `action` (shown per transform and action in the metrics)."""
        self.actions[action] = self.actions.get(action, 0) + n


class TextTransform(Transform):
    """A transform of the reply's text (and, with `reasoning`, of its reasoning), which may hold
    back the text's tail until it knows what that tail becomes.

    Subclasses implement `_scan(text, start, final)`: `text` is the held text followed by the
    new text, whose first `start` characters were scanned before. It returns how many
    characters of `text` may go on (the rest is held), the replacements in that part as
    (start, end, replacement) in order (or None), and the event that ends the reply if the
    transform ends it there (then nothing after the part that goes on is handed on). With
    `final` (a boundary, or the end of the stream) nothing may be held.
    """

    def __init__(self, *, reasoning: bool) -> None:
        super().__init__()
        self._reasoning = reasoning
        self._held = ""
        self._kind: type[TextEvent] | type[ReasoningEvent] = TextEvent
        # Inline events that came while text was held, each with the length the held text had then.
        self._waiting: list[tuple[int, StreamEvent]] = []

    @property
    def held(self) -> int:
        """Characters of text held now."""
        return len(self._held)

    @abc.abstractmethod
    def _scan(self, text: str, start: int, final: bool) -> tuple[int, Edits | None, StreamEvent | None]:
        """(characters of `text` that go on, the replacements in them, the event ending the reply)."""

    def _reset(self) -> None:
        """A boundary passed: what follows is a new run of text (override to drop context)."""

    def feed(self, events: list[StreamEvent]) -> list[StreamEvent]:
        if self.ended:
            return []
        out: list[StreamEvent] = []
        for ev in events:
            cls = type(ev)
            if cls is TextEvent or (
                cls is ReasoningEvent
                and self._reasoning
                and ev.signature is None  # type: ignore[union-attr]
                and ev.redacted is None  # type: ignore[union-attr]
            ):
                if cls is not self._kind:  # a switch between text and reasoning: a new run
                    if self._held:
                        self._boundary(out)
                        if self.ended:
                            return out
                    else:
                        self._reset()
                    self._kind = cls
                self._text(ev, ev.text, out, final=False)  # type: ignore[union-attr]
                if self.ended:
                    return out
            elif cls in _INLINE:
                if self._held:
                    self._waiting.append((len(self._held), ev))
                else:
                    out.append(ev)
            else:  # a boundary
                if cls is ReasoningEvent and self._reasoning and ev.text:  # type: ignore[union-attr]
                    # The last event of a signed block, with text of its own: the text ends the
                    # run, and the signature follows it.
                    assert isinstance(ev, ReasoningEvent)
                    if self._kind is not ReasoningEvent and self._held:
                        self._boundary(out)
                        if self.ended:
                            return out
                    self._kind = ReasoningEvent
                    self._text(None, ev.text, out, final=True)
                    if self.ended:
                        return out
                    ev = ReasoningEvent("", ev.signature, ev.redacted)
                elif self._held:
                    self._boundary(out)
                    if self.ended:
                        return out
                self._reset()
                out.append(ev)
        return out

    def close(self) -> list[StreamEvent]:
        if self.ended:
            return []
        out: list[StreamEvent] = []
        if self._held:
            self._boundary(out)
        return out

    def _boundary(self, out: list[StreamEvent]) -> None:
        """Hand on everything held (transformed), before a boundary event."""
        self._text(None, "", out, final=True)
        self._reset()

    def _text(self, ev: StreamEvent | None, new: str, out: list[StreamEvent], *, final: bool) -> None:
        held = self._held
        text = held + new if held else new
        consumed, edits, end = self._scan(text, len(held), final)
        kind = self._kind
        waiting = self._waiting
        if waiting:
            # Each waiting event goes out at its place in the text (after a replacement it fell in).
            at = i = 0
            while i < len(waiting) and waiting[i][0] <= consumed:
                place, waiter = waiting[i]
                for s, e, _ in edits or ():
                    if s < place < e:
                        place = e
                if place > at:
                    out.append(kind(_render(text, at, place, edits)))
                    at = place
                out.append(waiter)
                i += 1
            if consumed > at:
                out.append(kind(_render(text, at, consumed, edits)))
            self._waiting = [(place - consumed, w) for place, w in waiting[i:]] if end is None else []
        elif consumed:
            if edits is not None:
                out.append(kind(_render(text, 0, consumed, edits)))
            elif consumed < len(text):
                out.append(kind(text[:consumed]))
            else:
                # The event as it came when it goes on whole (no copy on the common path).
                out.append(ev if ev is not None and not held else kind(text))
        if end is not None:
            self.ended = True
            self._held = ""
            out.append(end)
            return
        self._held = text[consumed:] if consumed < len(text) else ""


#: Replacements in a text: (start, end, replacement), in order, not overlapping.
Edits = list[tuple[int, int, str]]


def _render(text: str, start: int, end: int, edits: Edits | None) -> str:
    """`text[start:end]` with the replacements in it made (none straddles `start` or `end`)."""
    if not edits:
        return text[start:end]
    pieces = []
    at = start
    for s, e, replacement in edits:
        if s >= end:
            break
        if s >= start:
            pieces.append(text[at:s])
            pieces.append(replacement)
            at = e
    pieces.append(text[at:end])
    return "".join(pieces)


class Chain:
    """Transforms run one after another; each takes the previous one's output.

    `ended` turns true when one of them ended the reply (its end event has gone through the
    ones after it, which hand on what they held before it); nothing is fed after that.
    """

    __slots__ = ("_timed", "ended", "stages")

    def __init__(self, stages: Sequence[Transform]) -> None:
        self.stages = tuple(stages)
        self._timed = tuple(i for i, t in enumerate(self.stages) if t.deadline is not None or _has_clock(t))
        self.ended = False

    def __bool__(self) -> bool:
        return bool(self.stages)

    @property
    def timed(self) -> bool:
        """Whether a stage may have a deadline."""
        return bool(self._timed)

    def feed(self, events: list[StreamEvent], start: int = 0) -> list[StreamEvent]:
        """`events` through the stages from `start` on."""
        if self.ended:
            return []
        stages = self.stages
        for i in range(start, len(stages)):
            if not events:
                break
            stage = stages[i]
            events = stage.feed(events)
            if stage.ended:
                self.ended = True
        return events

    def close(self) -> list[StreamEvent]:
        """Each stage's held events, through the stages after it."""
        if self.ended:
            return []
        events: list[StreamEvent] = []
        for stage in self.stages:
            if events:
                events = stage.feed(events)
            if not stage.ended:
                events += stage.close()
            if stage.ended:
                self.ended = True
        return events

    def deadline(self) -> float | None:
        """The earliest deadline of a stage, if any."""
        deadlines = [d for i in self._timed if (d := self.stages[i].deadline) is not None]
        return min(deadlines) if deadlines else None

    def expire(self, now: float) -> list[StreamEvent]:
        """What the stages past their deadline hand on at `now`, through the stages after them."""
        if self.ended:
            return []
        out: list[StreamEvent] = []
        for i in self._timed:
            stage = self.stages[i]
            if stage.deadline is not None and stage.deadline <= now:
                out += self.feed(stage.expire(now), i + 1)
                if stage.ended:
                    self.ended = True
        return out


def _has_clock(transform: Transform) -> bool:
    """Whether `transform` overrides `expire` (a transform that uses the clock)."""
    return type(transform).expire is not Transform.expire
