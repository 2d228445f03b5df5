"""The messages actors exchange. Small, frozen, and typed; no `Any` payloads."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import attrs
import trio

from ..content import TextPart
from ..errors import ProviderError
from ..models import ChatRequest, StreamEvent
from ..wire.base import HttpRequestSpec

__all__ = [
    "Batch",
    "CancelHandle",
    "Leg",
    "Pull",
    "ReplyMessage",
    "StreamEnd",
    "StreamJob",
    "estimate_tokens",
    "lost_end",
]

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


class CancelHandle:
    """The consumer's way to stop a job, wherever its provider actor is with it.

    Not a cancel scope of its own: the provider actor opens one scope per wait anyway (an
    attempt, with its deadlines; a backoff or rate-limit wait) and registers it here, so
    `cancel()` cancels the one that is current, and every later one opens cancelled. (A trio
    cancel scope costs tens of thousands of instructions; a request needs at most one.) A
    wait with no scope of its own, only on one socket, registers how to end it instead
    (`on_cancel`: close the socket).
    """

    __slots__ = ("_abort", "_scope", "cancelled")

    def __init__(self) -> None:
        #: True once the consumer asked to stop.
        self.cancelled = False
        self._scope: trio.CancelScope | None = None
        self._abort: Callable[[], None] | None = None

    def cancel(self) -> None:
        """Stop the job: its current wait ends at once, and so will any later one."""
        self.cancelled = True
        if self._scope is not None:
            self._scope.cancel()
        abort, self._abort = self._abort, None
        if abort is not None:
            abort()

    def on_cancel(self, abort: Callable[[], None] | None) -> None:
        """`abort` ends the current wait, which has no scope (None: that wait is over).
        Register it only while the job is not cancelled."""
        self._abort = abort

    def scope(self, deadline: float = math.inf) -> trio.CancelScope:
        """A cancel scope for the provider's next wait (already cancelled if the job is)."""
        scope = trio.CancelScope(deadline=deadline)
        if self.cancelled:
            scope.cancel()
        self._scope = scope
        return scope

    def release(self, scope: trio.CancelScope) -> None:
        """The provider left `scope`: a later `cancel()` has nothing to interrupt. (Cancelling
        an exited scope is harmless but not free: trio records the cancelling task's repr.)"""
        if self._scope is scope:
            self._scope = None


@attrs.frozen(slots=True, eq=False)
class StreamJob:
    """Ask a provider actor to stream one request into `reply`.

    `cancel` belongs to the consumer: cancelling it stops the upstream request at once,
    wherever the provider actor is (connecting, waiting for bytes, backing off, or waiting
    for the rate limiter; a send blocked on the consumer ends when the consumer closes its end).
    `max_retries` overrides the provider's setting (routes use 0 for all but the last target).
    """

    request: ChatRequest
    model_id: str
    spec: HttpRequestSpec  # the provider's exact request, built (and checked) when submitted
    reply: trio.MemorySendChannel[ReplyMessage] | None  # None: the consumer drives the job itself
    cancel: CancelHandle
    request_id: str
    max_retries: int | None = None
    submitted_at: float = attrs.field(factory=trio.current_time)


class Pull(Protocol):
    """A job its consumer drives: each `next()` does the work up to the next message."""

    async def next(self) -> ReplyMessage:
        """The next batch, or the end (then the end again on every later call)."""
        ...

    def abandon(self) -> None:
        """The consumer left: stop the job."""
        ...


@attrs.define(eq=False)
class Leg:
    """The consumer's side of one job: its reply channel (or, for a job the consumer drives
    itself, its `pull`) and its cancel handle.

    `ProviderActor.submit` hands one back for each request it takes."""

    provider: str
    model_id: str
    recv: trio.MemoryReceiveChannel[ReplyMessage] | None
    cancel: CancelHandle
    opened_at: float
    pull: Pull | None = None

    @property
    def target(self) -> str:
        """The target this leg serves, "provider/model" (what routes name)."""
        return f"{self.provider}/{self.model_id}"

    async def next_message(self) -> ReplyMessage:
        """The leg's next message; an end with a "connection" error if the provider actor
        closed the channel without one (it crashed, or the service shut down)."""
        if self.pull is not None:
            return await self.pull.next()
        assert self.recv is not None
        try:
            return await self.recv.receive()
        except trio.EndOfChannel:
            return self.lost()

    def lost(self) -> StreamEnd:
        """The end of a leg whose provider actor went away before finishing it."""
        return lost_end(self.provider)

    def abandon(self) -> None:
        """Cancel the upstream request and stop listening."""
        if self.pull is not None:
            self.pull.abandon()
            return
        self.cancel.cancel()
        assert self.recv is not None
        self.recv.close()


def lost_end(provider: str) -> StreamEnd:
    """The end of a stream whose provider actor went away before finishing it (it crashed, or
    the service shut down), whichever task was driving it."""
    return StreamEnd(
        None,
        ProviderError(
            "the provider actor stopped before the stream finished (it crashed or the service shut down)",
            provider=provider,
            kind="connection",
            retryable=True,
        ),
    )


def estimate_tokens(request: ChatRequest) -> int:
    """A cheap upper-bound guess of a request's token cost, for tokens-per-minute budgets:
    about 4 characters per prompt token, plus the completion budget (as OpenAI counts it)."""
    chars = 0
    for m in request.messages:
        content = m.content
        if type(content) is str:
            chars += len(content)
        elif content:
            chars += sum(len(p.text) if type(p) is TextPart else _PART_CHARS for p in content)
        for tc in m.tool_calls:
            chars += len(tc.arguments)
    return chars // 4 + 1 + (request.max_tokens or 0)


# What a non-text part (an image, a document, audio) is guessed to cost, in characters: about
# 1,600 tokens, what Anthropic documents for a 1-megapixel image.
_PART_CHARS = 6400
