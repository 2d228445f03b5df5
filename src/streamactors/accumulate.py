"""`ReplyBuilder`: folds stream events into a `Reply` (pure; no I/O).

Used by `Service.complete()`, and by every stream to carry the partial reply on an
error. Text is kept as a list of fragments and joined once, so a long reply costs O(n).
"""

from __future__ import annotations

from .models import (
    ErrorEvent,
    FinishEvent,
    ReasoningEvent,
    Reply,
    StreamEvent,
    TextEvent,
    ToolCall,
    ToolCallEvent,
    Usage,
    UsageEvent,
)

__all__ = ["ReplyBuilder"]


class ReplyBuilder:
    """Accumulates events; `reply()` returns the aggregate so far."""

    __slots__ = ("_reasoning", "_text", "_tools", "events", "finish_reason", "model", "provider", "usage")

    def __init__(self, provider: str = "", model: str = "") -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: list[list[str]] = []  # [id, name, arguments fragments...]
        self.finish_reason: str | None = None
        self.usage = Usage()
        self.provider = provider
        self.model = model
        self.events = 0

    def add(self, ev: StreamEvent) -> None:
        """Fold one event in."""
        self.events += 1
        cls = type(ev)
        if cls is TextEvent:
            self._text.append(ev.text)  # type: ignore[union-attr]
        elif cls is ReasoningEvent:
            self._reasoning.append(ev.text)  # type: ignore[union-attr]
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
        elif cls is UsageEvent:
            assert isinstance(ev, UsageEvent)
            self.usage = Usage(ev.input_tokens, ev.output_tokens)
        elif cls is FinishEvent:
            assert isinstance(ev, FinishEvent)
            self.finish_reason = ev.reason
        elif cls is ErrorEvent:
            self.finish_reason = "error"

    @property
    def has_content(self) -> bool:
        """True once any text, reasoning or tool call arrived."""
        return bool(self._text or self._reasoning or self._tools)

    def reply(self) -> Reply:
        """The reply accumulated so far."""
        return Reply(
            text="".join(self._text),
            reasoning="".join(self._reasoning),
            tool_calls=tuple(ToolCall(t[0], t[1], "".join(t[2:])) for t in self._tools),
            finish_reason=self.finish_reason,
            usage=self.usage,
            provider=self.provider,
            model=self.model,
        )
