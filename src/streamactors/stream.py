"""`EventStream`: what `Service.stream()` yields. Reads batches, hands out single events.

It also carries out a route's policy on the consumer's side, where the first event is
seen: move to the next target at once when one fails before its first event (the
failure arrives as the leg's first message, so the next request goes out right away),
hedge a slow first token with a second target and cancel the loser, and, if asked,
continue a text reply that broke mid-stream on the next target.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from .actors.messages import CancelHandle, ReplyMessage, StreamEnd
from .actors.metrics import HedgeCancelled, MetricsActor
from .actors.router import RouterActor
from .config.schema import RouteConfig
from .errors import ProviderError
from .models import ChatRequest, Message, Reply, StreamEvent
from .reply import ReplyBuilder

__all__ = ["EventStream", "Leg", "OpenLeg"]


@attrs.define(eq=False)
class Leg:
    """One request to one provider on behalf of a stream."""

    target: str  # "provider/model"
    provider: str
    model_id: str
    recv: trio.MemoryReceiveChannel[ReplyMessage]
    cancel: CancelHandle
    opened_at: float

    def abandon(self) -> None:
        """Cancel the upstream request and stop listening."""
        self.cancel.cancel()
        self.recv.close()


#: Opens a leg: (target, request, max_retries override) -> Leg. Provided by the Service.
OpenLeg = Callable[[str, ChatRequest, "int | None"], Awaitable[Leg]]


def _lost(leg: Leg) -> StreamEnd:
    return StreamEnd(
        None,
        ProviderError(
            "the provider actor stopped before the stream finished (it crashed or the service shut down)",
            provider=leg.provider,
            kind="connection",
            retryable=True,
        ),
    )


async def _next_message(leg: Leg) -> ReplyMessage:
    """The leg's next message; a lost-actor end if its channel closed without one."""
    try:
        return await leg.recv.receive()
    except trio.EndOfChannel:
        return _lost(leg)


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
        "_i",
        "_leg",
        "_legs",
        "_metrics",
        "_next_target",
        "_open_leg",
        "_request",
        "_route",
        "_router",
        "_targets",
        "provider",
        "request_id",
        "retries",
    )

    def __init__(
        self,
        request: ChatRequest,
        request_id: str,
        targets: list[str],
        open_leg: OpenLeg,
        *,
        route: RouteConfig | None = None,
        router: RouterActor | None = None,
        metrics: MetricsActor | None = None,
        keep_text: bool = True,
    ) -> None:
        self._request = request
        self.request_id = request_id
        self._targets = targets
        self._open_leg = open_leg
        self._route = route
        self._router = router
        self._metrics = metrics
        self._batch: list[StreamEvent] = []
        self._i = 0
        self._done = False
        self._leg: Leg | None = None
        self._legs: list[Leg] = []
        self._next_target = 0
        provider, _, model_id = targets[0].partition("/")
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
                ev = batch[i]
                self._i = i + 1
                self._builder.add(ev)
                return ev
            if self._done:
                raise StopAsyncIteration
            if self._leg is None:
                await self._start()
                continue
            try:
                # What is queued already is taken without a trip through the scheduler: the
                # channel is bounded and nobody adds to it while this task runs.
                msg = self._leg.recv.receive_nowait()
            except trio.WouldBlock:
                msg = await _next_message(self._leg)
            except trio.EndOfChannel:
                msg = _lost(self._leg)
            if type(msg) is list:
                self._batch = msg
                self._i = 0
            else:
                assert isinstance(msg, StreamEnd)
                await self._end(msg)

    async def drain(self) -> None:
        """Read the stream to its end without handing the events out; `reply()` then holds
        them all. Raises as iterating would. (Batches are folded whole: this is `complete()`.)"""
        builder = self._builder
        while True:
            batch, i = self._batch, self._i
            if i < len(batch):
                builder.add_all(batch[i:] if i else batch)
                self._i = len(batch)
            try:
                await self.__anext__()  # takes the next batch and folds its first event
            except StopAsyncIteration:
                return

    def reply(self) -> Reply:
        """The reply accumulated from the events read so far."""
        return self._builder.reply()

    @property
    def received_anything(self) -> bool:
        """True once any content event was read."""
        return self._builder.has_content

    def close(self) -> None:
        """Cancel every upstream request this stream opened (called when the block exits)."""
        for leg in self._legs:
            leg.abandon()

    # --- routing -----------------------------------------------------------------------

    async def _open(self, request: ChatRequest | None = None) -> Leg:
        index = self._next_target
        self._next_target += 1
        target = self._targets[index]
        last = index == len(self._targets) - 1
        # A route moves on at once; only the last target (or a direct request) retries.
        leg = await self._open_leg(target, request or self._request, None if last else 0)
        self._legs.append(leg)
        return leg

    def _has_next(self) -> bool:
        return self._next_target < len(self._targets)

    async def _start(self) -> None:
        """Find the leg that produces the first event (fallback and hedging)."""
        error: ProviderError | None = None
        hedge_s = None
        if self._route is not None and self._route.hedge_after_ms is not None:
            hedge_s = self._route.hedge_after_ms / 1000
        while self._has_next():
            leg = await self._open()
            if hedge_s is not None and self._has_next():
                leg, msg = await self._race(leg, hedge_s)
                hedge_s = None  # one hedge per request
            else:
                msg = await _next_message(leg)
            if type(msg) is list or msg.error is None:  # type: ignore[union-attr]
                self._commit(leg, msg)
                return
            assert isinstance(msg, StreamEnd) and msg.error is not None
            error = msg.error
            self._observe(leg, None)
            leg.abandon()
        assert error is not None
        self._done = True
        raise error.with_partial(self.reply())

    async def _race(self, primary: Leg, hedge_s: float) -> tuple[Leg, ReplyMessage]:
        """Wait `hedge_s` for the primary's first message; then race it against the next target."""
        with trio.move_on_after(hedge_s):
            return primary, await _next_message(primary)
        secondary = await self._open()
        send, recv = trio.open_memory_channel[tuple[Leg, ReplyMessage]](2)
        pending = {id(primary): primary, id(secondary): secondary}
        async with trio.open_nursery() as nursery:

            async def wait_first(leg: Leg) -> None:
                await send.send((leg, await _next_message(leg)))

            nursery.start_soon(wait_first, primary)
            nursery.start_soon(wait_first, secondary)
            while True:
                leg, msg = await recv.receive()
                del pending[id(leg)]
                failed = type(msg) is not list and msg.error is not None  # type: ignore[union-attr]
                if not failed or not pending:
                    nursery.cancel_scope.cancel()
                    for loser in pending.values():
                        loser.abandon()
                        if self._metrics is not None:
                            self._metrics.report(HedgeCancelled(loser.provider))
                    return leg, msg
                self._observe(leg, None)
                leg.abandon()
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit(self, leg: Leg, msg: ReplyMessage) -> None:
        self._leg = leg
        self.provider = self._builder.provider = leg.provider
        self._builder.model = leg.model_id
        self._observe(leg, trio.current_time() - leg.opened_at)
        if type(msg) is list:
            self._batch = msg
            self._i = 0
        else:
            assert isinstance(msg, StreamEnd)
            self._finish(msg)

    def _observe(self, leg: Leg, seconds: float | None) -> None:
        if self._router is not None and self._route is not None:
            self._router.observe(leg.target, seconds)

    async def _end(self, end: StreamEnd) -> None:
        if end.error is None:
            self._finish(end)
            return
        if self._can_continue():
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

    def _can_continue(self) -> bool:
        route = self._route
        if route is None or not route.continue_on_failure or not self._has_next():
            return False
        partial = self._builder.reply()
        return bool(partial.text) and not partial.tool_calls

    async def _continue(self) -> None:
        """Ask the next target to continue the text so far (as an assistant prefix)."""
        assert self._leg is not None
        self._leg.abandon()
        partial = self._builder.reply()
        request = attrs.evolve(self._request, messages=(*self._request.messages, Message("assistant", partial.text)))
        while self._has_next():
            leg = await self._open(request)
            msg = await _next_message(leg)
            if type(msg) is list or msg.error is None:  # type: ignore[union-attr]
                self._commit(leg, msg)
                return
            self._observe(leg, None)
            leg.abandon()
            error: Any = msg
        self._done = True
        raise error.error.with_partial(self.reply())
