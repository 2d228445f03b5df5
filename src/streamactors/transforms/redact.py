"""`Redact`: regular expressions replaced in the text and the reasoning, across event boundaries.

A stream's text comes in fragments, and a secret may be cut anywhere. The transform holds the
last `max_match` characters back (a match may still begin there) and scans again as text comes;
it keeps the last `max_match` characters it handed on as look-behind context (for `\\b` and
look-behind assertions), never handing them on twice. The result is that of `re.sub` on the
whole text, however the text was split, for patterns whose matches are at most `max_match`
characters long (a look-ahead such as `\\b` may read one character past the match).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import UsageError
from ..models import LogprobsEvent, StreamEvent
from .base import Edits, TextTransform

__all__ = ["DEFAULT_MAX_MATCH", "Redact", "RegexWindow", "check_max_match", "check_patterns"]

_NONE: list[tuple[int, int]] = []  # no matches (never changed)

#: The default bound on one match (keys, card numbers, e-mail addresses fit).
DEFAULT_MAX_MATCH = 64


def check_patterns(patterns: Sequence[str], key: str = "patterns") -> tuple[str, str] | None:
    """The first problem with a list of regular expressions, as (key, message), or None."""
    if isinstance(patterns, str) or not isinstance(patterns, Sequence):
        return key, f"expected a list of regular expressions, got {type(patterns).__name__}"
    if not patterns:
        return key, "give at least one regular expression"
    for i, p in enumerate(patterns):
        where = f"{key}[{i}]"
        if not isinstance(p, str):
            return where, f"expected a string, got {type(p).__name__}"
        try:
            compiled = re.compile(p)
        except re.error as exc:
            return where, f"invalid regular expression {p!r}: {exc}"
        if compiled.match("") is not None:
            return where, f"{p!r} matches the empty string; every match must take at least one character"
    return None


def check_max_match(value: int) -> str | None:
    """The problem with a `max_match` value, or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"must be a whole number of characters, 1 or more, got {value!r}"
    return None


class RegexWindow:
    """The scanning both `Redact` and `BlockList` do: decide each position of the text once
    the `max_match` characters after it (and one more) have arrived.

    `scan(text, final)` returns the matches decided in `text` (held text then new text), in
    order, and how far the text is decided (`text[:decided]` may go on). Matches never
    overlap; an empty match is skipped. What was handed on stays as context (its last
    `max_match` characters) until `reset()`.
    """

    __slots__ = ("_context", "max_match", "pattern")

    def __init__(self, pattern: re.Pattern[str], max_match: int) -> None:
        self.pattern = pattern
        self.max_match = max_match
        self._context = ""

    def reset(self) -> None:
        """A boundary: the next text is a new run, with no context."""
        self._context = ""

    def scan(self, text: str, final: bool, first: bool = False) -> tuple[list[tuple[int, int]], int]:
        """(matches as (start, end) in `text`, characters of `text` decided). With `first`,
        stop at the first match (its end is then the decided length)."""
        context = self._context
        base = len(context)
        buf = context + text if base else text
        n = len(buf)
        # A match starting at s is decided when the text up to s + max_match (and one more
        # character, for a look-ahead such as \b) has arrived.
        limit = n + 1 if final else n - self.max_match
        search = self.pattern.search
        m = search(buf, base)
        if m is None or m.start() >= limit:  # the common case: no match decided
            decided = n if limit > n else limit
            if decided <= base:
                return _NONE, 0
            self._context = buf[decided - self.max_match : decided] if decided > self.max_match else buf[:decided]
            return _NONE, decided - base
        matches: list[tuple[int, int]] = []
        pos = emit = base
        while pos < limit:
            m = search(buf, pos)
            if m is None:
                break
            s, e = m.span()
            if s >= limit:
                break
            if e == s:
                pos = s + 1
                continue
            matches.append((s - base, e - base))
            pos = emit = e
            if first:
                break
        decided = min(max(emit, limit), n) if not (first and matches) else emit
        if decided > base:
            self._context = buf[max(0, decided - self.max_match) : decided]
        return matches, decided - base


class Redact(TextTransform):
    """Replace every match of `patterns` (regular expressions, Python's `re` syntax) in the
    reply's text and reasoning by `replacement`.

    `max_match` bounds one match, in characters: the transform holds that many characters of
    text back (the held bound), and keeps as many of the text already handed on as look-behind
    context. A pattern whose match can be longer is still applied, but a longer match may be cut
    where the stream was split (each piece is then replaced).

    Not rewritten: tool-call arguments (JSON the caller parses), citations. Dropped: log
    probabilities (`LogprobsEvent`), which carry each token's text and could spell out what
    was redacted. A signed reasoning block whose text changed no longer matches its signature,
    so a conversation that replays it to Claude is refused.

    Actions counted: "redact" (one per match), "drop_logprobs".
    """

    name = "redact"

    def __init__(
        self, patterns: Sequence[str], replacement: str = "[redacted]", *, max_match: int = DEFAULT_MAX_MATCH
    ) -> None:
        problem = check_patterns(patterns)
        if problem is not None:
            raise UsageError(f"Redact: {problem[0]}: {problem[1]}")
        if not isinstance(replacement, str):
            raise UsageError(f"Redact: replacement: expected a string, got {type(replacement).__name__}")
        if (why := check_max_match(max_match)) is not None:
            raise UsageError(f"Redact: max_match: {why}")
        super().__init__(reasoning=True)
        self.replacement = replacement
        self.max_held = max_match
        pattern = re.compile("|".join(f"(?:{p})" for p in patterns))
        self._window = RegexWindow(pattern, max_match)

    def feed(self, events: list[StreamEvent]) -> list[StreamEvent]:
        for ev in events:
            if type(ev) is LogprobsEvent:
                kept = [ev for ev in events if type(ev) is not LogprobsEvent]
                self.count("drop_logprobs", len(events) - len(kept))
                return super().feed(kept)
        return super().feed(events)

    def _reset(self) -> None:
        self._window.reset()

    def _scan(self, text: str, start: int, final: bool) -> tuple[int, Edits | None, StreamEvent | None]:
        matches, decided = self._window.scan(text, final)
        if not matches:
            return decided, None, None
        self.count("redact", len(matches))
        replacement = self.replacement
        return decided, [(s, e, replacement) for s, e in matches], None
