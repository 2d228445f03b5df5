"""`StopSequences`: end the reply at the first stop string, for any number of them.

Providers take few stop sequences (OpenAI 4, Gemini 5) and some OpenAI-compatible servers
none; this does it on our side, on the visible text, as the providers do: the reply ends where
a stop string first appears, without it, with `finish_reason` "stop", and the stream cancels
the upstream request at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import UsageError
from ..models import FinishEvent, StreamEvent
from .base import TextTransform

__all__ = ["StopSequences", "check_strings"]


def check_strings(strings: Sequence[str]) -> tuple[str, str] | None:
    """The first problem with a list of stop strings, as (key, message), or None."""
    if isinstance(strings, str) or not isinstance(strings, Sequence):
        return "strings", f"expected a list of strings, got {type(strings).__name__}"
    if not strings:
        return "strings", "give at least one stop string"
    for i, s in enumerate(strings):
        if not isinstance(s, str):
            return f"strings[{i}]", f"expected a string, got {type(s).__name__}"
        if not s:
            return f"strings[{i}]", "a stop string cannot be empty"
    return None


class StopSequences(TextTransform):
    """End the reply where one of `strings` first appears in its text (not in its reasoning).

    The text before the match goes on; the match and everything after it do not; the reply
    ends with `FinishEvent("stop")`. When matches overlap, the one that is complete first wins
    (as with a provider generating token by token: "abcd" and "bc" in "abcd" stop after "a").

    Held text: at most the longest stop string's length minus one character (a tail of the
    text that could still become a stop string); only such a tail is held.

    Actions counted: "stop".
    """

    name = "stop"

    def __init__(self, strings: Sequence[str]) -> None:
        problem = check_strings(strings)
        if problem is not None:
            raise UsageError(f"StopSequences: {problem[0]}: {problem[1]}")
        super().__init__(reasoning=False)
        self.strings = tuple(dict.fromkeys(strings))
        self.max_held = max(len(s) for s in self.strings) - 1
        # One search for any of them says whether there is a match to place exactly (rare).
        self._any = re.compile("|".join(map(re.escape, self.strings))).search
        # A text whose last character is in no stop string holds nothing: the common case.
        self._chars = frozenset(c for s in self.strings for c in s)

    def _scan(self, text: str, start: int, final: bool) -> tuple[int, None, StreamEvent | None]:
        n = len(text)
        # The text scanned before holds no whole match: look only for matches that end in the
        # new text.
        if self._any(text, start - self.max_held if start > self.max_held else 0) is None:
            if final or not n or text[-1] not in self._chars:
                return n, None, None
            return self._tail(text), None, None
        best_end = n + 1
        best_at = -1
        for s in self.strings:
            at = text.find(s, max(0, start - len(s) + 1))
            if at >= 0:
                end = at + len(s)
                if end < best_end or (end == best_end and at < best_at):
                    best_end, best_at = end, at
        if best_at >= 0:
            self.count("stop")
            return best_at, None, FinishEvent("stop")
        if final or not n or text[-1] not in self._chars:
            # (No stop string can start in the tail unless it ends in one of their characters.)
            return n, None, None
        return self._tail(text), None, None

    def _tail(self, text: str) -> int:
        """Where the held tail starts: the earliest position whose suffix begins a stop string."""
        n = len(text)
        best = n
        for s in self.strings:
            first = s[0]
            at = text.find(first, max(0, n - len(s) + 1))
            while 0 <= at < best:
                if s.startswith(text[at:]):
                    best = at
                    break
                at = text.find(first, at + 1)
        return best
