"""`BlockList`: end a reply that says a listed word, with `finish_reason` "content_filter" or an error."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import StreamActorsError, UsageError
from ..models import ErrorEvent, FinishEvent, StreamEvent
from .base import TextTransform
from .redact import RegexWindow

__all__ = ["ACTIONS", "BlockList", "ContentBlocked", "check_action", "check_words"]

#: What a match does: end the reply normally ("finish") or fail it ("error").
ACTIONS = ("error", "finish")


class ContentBlocked(StreamActorsError):
    """A `BlockList(action="error")` matched. The stream raises it as a `ProviderError` of
    kind "content_filter" (error_type "blocklist"), with the text before the word as its
    partial reply. The message never holds the reply's text."""


def check_words(words: Sequence[str]) -> tuple[str, str] | None:
    """The first problem with a list of blocked words, as (key, message), or None."""
    if isinstance(words, str) or not isinstance(words, Sequence):
        return "words", f"expected a list of strings, got {type(words).__name__}"
    if not words:
        return "words", "give at least one word"
    for i, w in enumerate(words):
        if not isinstance(w, str):
            return f"words[{i}]", f"expected a string, got {type(w).__name__}"
        if not w.strip():
            return f"words[{i}]", "a blocked word cannot be empty or blank"
    return None


def check_action(action: str) -> str | None:
    """The problem with an `action` value, or None."""
    if action not in ACTIONS:
        return f'must be "error" or "finish", got {action!r}'
    return None


class BlockList(TextTransform):
    """End the reply at the first of `words` it says, in its text or its reasoning.

    Words match whole (not inside a longer word: "ass" does not block "class") and ignoring
    case. The text before the word goes on; the word and everything after it do not. With
    `action="finish"` the reply ends with `FinishEvent("content_filter")`; with
    `action="error"` the stream raises `ProviderError(kind="content_filter")` carrying that
    text as its partial reply. Either way the upstream request is cancelled at once.

    Held text: at most the longest word's length in characters (a word is known whole only
    once the character after it has arrived).

    Actions counted: "finish" or "error".
    """

    name = "blocklist"

    def __init__(self, words: Sequence[str], action: str = "error") -> None:
        problem = check_words(words)
        if problem is not None:
            raise UsageError(f"BlockList: {problem[0]}: {problem[1]}")
        if (why := check_action(action)) is not None:
            raise UsageError(f"BlockList: action: {why}")
        super().__init__(reasoning=True)
        self.action = action
        ordered = sorted({w.strip() for w in words}, key=len, reverse=True)  # the longest first
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, ordered)) + r")(?!\w)", re.IGNORECASE)
        self.max_held = len(ordered[0])
        self._window = RegexWindow(pattern, self.max_held)

    def _reset(self) -> None:
        self._window.reset()

    def _scan(self, text: str, start: int, final: bool) -> tuple[int, None, StreamEvent | None]:
        matches, decided = self._window.scan(text, final, first=True)
        if not matches:
            return decided, None, None
        self.count(self.action)
        if self.action == "finish":
            return matches[0][0], None, FinishEvent("content_filter")
        return matches[0][0], None, ErrorEvent(ContentBlocked("the reply said a word on the transform's block list"))
