"""`Coalesce`: fewer, larger text events, for slow consumers and for the HTTP gateway.

The one built-in transform that reads the clock (so it lives here, with the stream, and not in
the sans-IO `transforms` package): text waits until `min_chars` characters have gathered, or
until the first of them has waited `max_delay_ms`; the stream wakes at that deadline even if
the upstream sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from ..errors import UsageError
from ..models import StreamEvent
from ..transforms.base import TextTransform

__all__ = ["Coalesce", "check_coalesce"]


def check_coalesce(min_chars: int, max_delay_ms: float) -> tuple[str, str] | None:
    """The first problem with Coalesce's settings, as (key, message), or None."""
    if isinstance(min_chars, bool) or not isinstance(min_chars, int) or min_chars < 1:
        return "min_chars", f"must be a whole number of characters, 1 or more, got {min_chars!r}"
    if isinstance(max_delay_ms, bool) or not isinstance(max_delay_ms, int | float) or not max_delay_ms > 0:
        return "max_delay_ms", f"must be a number of milliseconds greater than 0, got {max_delay_ms!r}"
    return None


class Coalesce(TextTransform):
    """Merge small text (and reasoning) events: hold text until `min_chars` characters have
    gathered, or the oldest of them has waited `max_delay_ms` milliseconds, or a boundary (a
    tool call, the finish) comes; then hand it on as one event.

    Held text: fewer than `min_chars` characters (the event that reaches the bound goes out
    with the rest). An event between two fragments (log probabilities, a citation) keeps them
    apart, in its place. `clock` is `trio.current_time` (a test may pass its own).

    Actions counted: "merge" (one per event merged into the one before it).
    """

    name = "coalesce"

    def __init__(
        self, min_chars: int = 64, max_delay_ms: float = 50.0, *, clock: Callable[[], float] = trio.current_time
    ) -> None:
        problem = check_coalesce(min_chars, max_delay_ms)
        if problem is not None:
            raise UsageError(f"Coalesce: {problem[0]}: {problem[1]}")
        super().__init__(reasoning=True)
        self.min_chars = min_chars
        self.max_held = min_chars - 1
        self._delay = max_delay_ms / 1000
        self._clock = clock
        self._pieces = 0  # events whose text is held now
        self.deadline = None

    def _scan(self, text: str, start: int, final: bool) -> tuple[int, None, StreamEvent | None]:
        # (A boundary or an expiry scans again with nothing new.)
        pieces = self._pieces if start == len(text) else self._pieces + 1
        if final or len(text) >= self.min_chars:
            if pieces > 1:
                self.count("merge", pieces - 1)
            self._pieces = 0
            self.deadline = None
            return len(text), None, None
        if not start:
            self.deadline = self._clock() + self._delay
        self._pieces = pieces
        return 0, None, None

    def expire(self, now: float) -> list[StreamEvent]:
        if self.deadline is None or now < self.deadline:
            return []
        out: list[StreamEvent] = []
        self._boundary(out)
        return out
