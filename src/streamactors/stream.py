"""`EventStream`: what `Service.stream()` yields. Reads batches, hands out single events."""

from __future__ import annotations

import trio

from .accumulate import ReplyBuilder
from .actors.messages import ReplyMessage, StreamEnd
from .errors import ProviderError
from .models import Reply, StreamEvent

__all__ = ["EventStream"]


class EventStream:
    """An async iterator of normalized events, in order.

    Iteration ends after the `finish` event. If the request fails, iterating raises
    `ProviderError` with `.partial` holding everything received before the failure.
    `reply()` returns the aggregate of the events read so far.
    """

    __slots__ = ("_batch", "_builder", "_done", "_i", "_recv", "provider", "request_id", "retries")

    def __init__(
        self, recv: trio.MemoryReceiveChannel[ReplyMessage], provider: str, model: str, request_id: str
    ) -> None:
        self._recv = recv
        self._batch: list[StreamEvent] = []
        self._i = 0
        self._done = False
        self._builder = ReplyBuilder(provider, model)
        self.request_id = request_id
        self.provider = provider
        self.retries = 0

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        while True:
            batch = self._batch
            i = self._i
            if i < len(batch):
                ev = batch[i]
                self._i = i + 1
                self._builder.add(ev)
                return ev
            if self._done:
                raise StopAsyncIteration
            try:
                msg = await self._recv.receive()
            except trio.EndOfChannel:
                self._done = True
                raise ProviderError(
                    "the provider actor stopped before the stream finished (it crashed or the service shut down)",
                    provider=self.provider,
                    kind="connection",
                    retryable=True,
                    partial=self.reply(),
                ) from None
            if type(msg) is list:
                self._batch = msg
                self._i = 0
                continue
            assert isinstance(msg, StreamEnd)
            self._done = True
            self.retries = msg.retries
            if msg.model:
                self._builder.model = msg.model
            if msg.error is not None:
                raise msg.error.with_partial(self.reply())
            raise StopAsyncIteration

    def reply(self) -> Reply:
        """The reply accumulated from the events read so far."""
        return self._builder.reply()

    @property
    def received_anything(self) -> bool:
        """True once any content event was read."""
        return self._builder.has_content
