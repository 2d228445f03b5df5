"""`ReplyBuilder`: folds stream events into a `Reply` (pure; no I/O).

Used by `Service.complete()`, and by every stream to carry the partial reply on an
error. Text is kept as a list of fragments and joined once, so a long reply costs O(n).
"""

from __future__ import annotations

from collections.abc import Sequence

from .models import (
    Citation,
    CitationEvent,
    ErrorEvent,
    FinishEvent,
    LogprobsEvent,
    ReasoningBlock,
    ReasoningEvent,
    Reply,
    StreamEvent,
    TextEvent,
    TokenLogprob,
    ToolCall,
    ToolCallEvent,
    Usage,
    UsageEvent,
)

__all__ = ["TEXT_BLOCK", "ReplyBuilder", "TextBuffer"]


#: Fragments kept before they are joined into one block (a str object costs ~50 bytes
#: beyond its text; a block of 256 tokens costs that once).
TEXT_BLOCK = 256


class TextBuffer:
    """Text fragments in O(n) time and about one byte per character of memory: fragments are
    joined into a block every `TEXT_BLOCK` of them. For everything that keeps a stream's text."""

    __slots__ = ("blocks", "fragments")

    def __init__(self) -> None:
        self.fragments: list[str] = []
        self.blocks: list[str] = []

    def append(self, fragment: str) -> None:
        """Keep one more fragment."""
        fragments = self.fragments
        fragments.append(fragment)
        if len(fragments) >= TEXT_BLOCK:
            self.blocks.append("".join(fragments))
            fragments.clear()

    def compact(self) -> None:
        """Join the fragments into a block if there are enough (after appending to
        `fragments` directly, as a hot loop may)."""
        if len(self.fragments) >= TEXT_BLOCK:
            self.blocks.append("".join(self.fragments))
            self.fragments.clear()

    def clear(self) -> None:
        """Forget everything kept."""
        self.blocks.clear()
        self.fragments.clear()

    def __bool__(self) -> bool:
        return bool(self.fragments or self.blocks)

    def join(self) -> str:
        """The whole text."""
        return "".join(self.blocks) + "".join(self.fragments)


class ReplyBuilder:
    """Accumulates events; `reply()` returns the aggregate so far.

    With `keep_text=False` the text and reasoning are not kept (`reply().text` is empty,
    and there are no reasoning blocks to replay), for consumers that keep their own copy and
    do not want the memory spent twice.
    """

    __slots__ = (
        "_blocks",
        "_citations",
        "_logprobs",
        "_reasoning",
        "_saw_text",
        "_text",
        "_tool_signatures",
        "_tools",
        "events",
        "finish_reason",
        "keep_text",
        "model",
        "provider",
        "usage",
    )

    def __init__(self, provider: str = "", model: str = "", *, keep_text: bool = True) -> None:
        self._text = TextBuffer()
        self._reasoning = TextBuffer()  # the reasoning since the last signed block
        self._blocks: list[ReasoningBlock] = []  # signed and redacted blocks, in order, for replay
        self._saw_text = False
        self.keep_text = keep_text
        self._tools: list[list[str]] = []  # [id, name, arguments fragments...]
        self._tool_signatures: dict[int, str] = {}  # position -> the call's signature, if any
        self.finish_reason: str | None = None
        self.usage = Usage()
        self._citations: list[Citation] = []
        self._logprobs: list[TokenLogprob] | None = None
        self.provider = provider
        self.model = model
        self.events = 0

    def add(self, ev: StreamEvent) -> None:
        """Fold one event in."""
        self.events += 1
        self._fold(ev)

    def add_all(self, events: Sequence[StreamEvent]) -> None:
        """Fold events in, in order: `add` for each, with less overhead per event."""
        self.events += len(events)
        if self.keep_text:
            text = self._text
            append = text.fragments.append
            for ev in events:
                if type(ev) is TextEvent:
                    append(ev.text)
                else:
                    self._fold(ev)
            text.compact()
        else:
            for ev in events:
                self._fold(ev)

    def _fold(self, ev: StreamEvent) -> None:
        cls = type(ev)
        if cls is TextEvent:
            if self.keep_text:
                self._text.append(ev.text)  # type: ignore[union-attr]
            else:
                self._saw_text = True
        elif cls is ReasoningEvent:
            if self.keep_text:
                self._reason(ev)  # type: ignore[arg-type]
            else:
                self._saw_text = True
        elif cls is ToolCallEvent:
            assert isinstance(ev, ToolCallEvent)
            while len(self._tools) <= ev.index:
                self._tools.append(["", ""])
            slot = self._tools[ev.index]
            if ev.id:
                slot[0] = ev.id
            if ev.name:
                slot[1] = ev.name
            if ev.arguments:
                slot.append(ev.arguments)
            if ev.signature:
                self._tool_signatures[ev.index] = ev.signature
        elif cls is UsageEvent:
            assert isinstance(ev, UsageEvent)
            self.usage = Usage(
                ev.input_tokens, ev.output_tokens, ev.cache_read_tokens, ev.cache_write_tokens, ev.reasoning_tokens
            )
        elif cls is CitationEvent:
            assert isinstance(ev, CitationEvent)
            self._citations.append(ev.citation)
        elif cls is LogprobsEvent:
            assert isinstance(ev, LogprobsEvent)
            if self._logprobs is None:
                self._logprobs = []
            self._logprobs.extend(ev.content)
        elif cls is FinishEvent:
            assert isinstance(ev, FinishEvent)
            self.finish_reason = ev.reason
        elif cls is ErrorEvent:
            self.finish_reason = "error"

    def _reason(self, ev: ReasoningEvent) -> None:
        if ev.text:
            self._reasoning.append(ev.text)
        if ev.signature is not None:  # it ends the block: the text since the last one is the block's
            self._blocks.append(ReasoningBlock(self._reasoning.join(), ev.signature))
            self._reasoning = TextBuffer()
        elif ev.redacted is not None:
            self._blocks.append(ReasoningBlock("", None, ev.redacted))

    @property
    def has_content(self) -> bool:
        """True once any text, reasoning or tool call arrived."""
        return bool(self._text or self._reasoning or self._blocks or self._tools or self._saw_text)

    def reply(self) -> Reply:
        """The reply accumulated so far."""
        return Reply(
            text=self._text.join(),
            # The signed blocks' text, then what is not signed yet (a redacted block has none).
            reasoning="".join([b.text for b in self._blocks]) + self._reasoning.join(),
            tool_calls=tuple(
                ToolCall(t[0], t[1], "".join(t[2:]), self._tool_signatures.get(i)) for i, t in enumerate(self._tools)
            ),
            finish_reason=self.finish_reason,
            usage=self.usage,
            provider=self.provider,
            model=self.model,
            reasoning_blocks=tuple(self._blocks),
            citations=tuple(self._citations),
            logprobs=None if self._logprobs is None else tuple(self._logprobs),
        )
