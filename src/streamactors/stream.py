"""`EventStream`: what `Service.stream()` yields. Reads batches, hands out single events.

Which leg it reads from is `routing.Legs`'s choice (fallback, hedging, continuation); the
stream reads the chosen leg's batches, folds what it hands out into the reply, and on a
mid-stream failure asks the legs whether the reply may continue on the next target.
"""

from __future__ import annotations

import attrs
import trio

from .actors.messages import Leg, ReplyMessage, StreamEnd
from .errors import ProviderError
from .models import ChatRequest, Message, Reply, StreamEvent
from .reply import ReplyBuilder
from .routing import Legs

__all__ = ["EventStream"]

_EMPTY: list[StreamEvent] = []


class EventStream:
    """An async iterator of normalized events, in order.

    Iteration ends after the `finish` event. If the request fails, iterating raises
    `ProviderError` with `.partial` holding everything received before the failure.
    `reply()` returns the aggregate of the events read so far; `.provider` is the
    provider that answered.
    """

    __slots__ = (
        "_batch",
        "_builder",
        "_done",
        "_folded",
        "_i",
        "_leg",
        "_legs",
        "_request",
        "provider",
        "request_id",
        "retries",
    )

    def __init__(
        self,
        request: ChatRequest,
        request_id: str,
        legs: Legs,
        *,
        keep_text: bool = True,
    ) -> None:
        self._request = request
        self.request_id = request_id
        self._legs = legs
        self._batch: list[StreamEvent] = []
        self._i = 0
        self._folded = 0  # events of the batch folded into the reply (the first `_folded`)
        self._done = False
        self._leg: Leg | None = None
        provider, _, model_id = legs.targets[0].partition("/")
        self._builder = ReplyBuilder(provider, model_id, keep_text=keep_text)
        self.provider = provider
        self.retries = 0

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        while True:
            batch = self._batch
            i = self._i
            if i < len(batch):
                self._i = i + 1
                return batch[i]
            if self._folded < i:
                self._fold_read()
            if self._done:
                raise StopAsyncIteration
            leg = self._leg
            if leg is None:
                await self._start()
                continue
            # What was handed out is not kept alive through the wait: neither by the stream nor
            # by this frame's local (a suspended coroutine keeps its locals).
            batch = self._batch = _EMPTY
            self._i = self._folded = 0
            recv = leg.recv
            if recv is None:  # the consumer's task does the exchange (ProviderActor.submit)
                msg = await leg.next_message()
            else:
                try:
                    # What is queued already is taken without a trip through the scheduler: the
                    # channel is bounded and nobody adds to it while this task runs.
                    msg = recv.receive_nowait()
                except trio.WouldBlock:
                    msg = await leg.next_message()
                except trio.EndOfChannel:
                    msg = leg.lost()
            if type(msg) is list:
                self._batch = msg
            else:
                assert isinstance(msg, StreamEnd)
                await self._end(msg)

    def _fold_read(self) -> None:
        """Fold the events handed out since the last fold into the reply. Events are folded
        a batch at a time (in `ReplyBuilder.add_all`'s loop), not one call chain per event."""
        folded, i = self._folded, self._i
        if folded < i:
            batch = self._batch
            self._builder.add_all(batch[folded:i] if folded or i < len(batch) else batch)
            self._folded = i

    async def drain(self) -> None:
        """Read the stream to its end without handing the events out; `reply()` then holds
        them all. Raises as iterating would. (Batches are folded whole: this is `complete()`.)"""
        while True:
            self._i = len(self._batch)
            try:
                await self.__anext__()  # folds the batch read, takes the next and hands out its first
            except StopAsyncIteration:
                return

    async def next_batch(self) -> list[StreamEvent]:
        """The next events: at least one, and as many as arrived together, in order; an empty
        list once the stream has ended. Raises as iterating would. For relays that forward
        events in batches (the HTTP gateway, the thread worker): one wake-up per batch, not
        per event. The list is the caller's to keep, not to change."""
        batch, i = self._batch, self._i
        if i >= len(batch):
            try:
                await self.__anext__()  # takes the next batch and hands out its first event
            except StopAsyncIteration:
                return []
            batch, i = self._batch, self._i - 1
        self._i = len(batch)
        return batch if i == 0 else batch[i:]

    def reply(self) -> Reply:
        """The reply accumulated from the events read so far."""
        if self._folded < self._i:
            self._fold_read()
        return self._builder.reply()

    def close(self) -> None:
        """Cancel every upstream request this stream opened (called when the block exits)."""
        self._legs.close()

    # --- the chosen leg ------------------------------------------------------------

    async def _start(self) -> None:
        """Find the leg that produces the first event (fallback and hedging)."""
        try:
            leg, msg = await self._legs.first(self._request)
        except ProviderError as exc:
            error = exc
        else:
            self._commit(leg, msg)
            return
        self._done = True
        raise error.with_partial(self.reply())

    def _commit(self, leg: Leg, msg: ReplyMessage) -> None:
        self._leg = leg
        self.provider = self._builder.provider = leg.provider
        self._builder.model = leg.model_id
        if type(msg) is list:
            self._fold_read()
            self._batch = msg
            self._i = self._folded = 0
        else:
            assert isinstance(msg, StreamEnd)
            self._finish(msg)

    async def _end(self, end: StreamEnd) -> None:
        if end.error is None:
            self._finish(end)
            return
        if self._legs.can_continue(self.reply()):
            await self._continue()
            return
        self._done = True
        self.retries = end.retries
        if end.model:
            self._builder.model = end.model
        raise end.error.with_partial(self.reply())

    def _finish(self, end: StreamEnd) -> None:
        self._done = True
        self.retries = end.retries
        if end.model:
            self._builder.model = end.model

    async def _continue(self) -> None:
        """Ask the next target to continue the text so far (as an assistant prefix)."""
        assert self._leg is not None
        self._leg.abandon()
        partial = self.reply()
        request = attrs.evolve(self._request, messages=(*self._request.messages, Message("assistant", partial.text)))
        try:
            leg, msg = await self._legs.first(request, hedge=False)
        except ProviderError as exc:
            error = exc
        else:
            self._commit(leg, msg)
            return
        self._done = True
        raise error.with_partial(self.reply())
