"""The messages actors exchange. Small, frozen, and typed; no `Any` payloads."""

from __future__ import annotations

import attrs
import trio

from ..errors import ProviderError
from ..models import ChatRequest, StreamEvent

__all__ = ["Batch", "ReplyMessage", "StreamEnd", "StreamJob", "estimate_tokens"]

#: Everything decoded from one network read travels as one message (one channel hop
#: per read instead of one per event).
Batch = list[StreamEvent]


@attrs.frozen(slots=True)
class StreamEnd:
    """The last message of every stream: the model the provider reported, and the error
    that ended it (None for a normal finish)."""

    model: str | None = None
    error: ProviderError | None = None
    retries: int = 0


ReplyMessage = Batch | StreamEnd


@attrs.frozen(slots=True, eq=False)
class StreamJob:
    """Ask a provider actor to stream one request into `reply`.

    `cancel` belongs to the consumer: cancelling it stops the upstream request at once,
    wherever the provider actor is (connecting, waiting for bytes, or blocked on a send).
    `max_retries` overrides the provider's setting (routes use 0 for all but the last target).
    """

    request: ChatRequest
    model_id: str
    reply: trio.MemorySendChannel[ReplyMessage]
    cancel: trio.CancelScope
    request_id: str
    max_retries: int | None = None
    submitted_at: float = attrs.field(factory=trio.current_time)


def estimate_tokens(request: ChatRequest) -> int:
    """A cheap upper-bound guess of a request's token cost, for tokens-per-minute budgets:
    about 4 characters per prompt token, plus the completion budget (as OpenAI counts it)."""
    chars = sum(len(m.content or "") + sum(len(tc.arguments) for tc in m.tool_calls) for m in request.messages)
    return chars // 4 + 1 + (request.max_tokens or 0)
