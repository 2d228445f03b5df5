"""`TransformedEventStream`: the stream of a request that has transforms.

Where the stage sits: in the consumer's task, between the chosen leg's batches and the events
handed out, so that

- the transforms of the provider that answers run first (chosen when a leg is committed, so a
  hedge's loser or a failed fallback target never reaches them), then the route's, then the
  request's own (`service.stream(request, transforms=[...])`);
- the reply (`reply()`, `complete()`, `ProviderError.partial`) is folded from what they hand on;
- a transform that ends the reply (a stop string, a blocked word) cancels every upstream
  request of the stream at once (`Legs.close()`), without waiting for the next read;
- backpressure is unchanged: the stream reads the leg only when its consumer asks for more.

A request with no transforms gets the plain `EventStream`: the service decides once, when it
opens the stream, and the plain stream's code is untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import trio

from .actors.coalesce import Coalesce
from .actors.messages import Leg, ReplyMessage, StreamEnd
from .actors.metrics import MetricsActor, TransformActions
from .config.transforms import BlockListSpec, CoalesceSpec, RedactSpec, StopSpec, TransformSpec
from .errors import ProviderError
from .models import ChatRequest, ErrorEvent, StreamEvent
from .routing import Legs
from .stream import EventStream
from .transforms import BlockList, Chain, ContentBlocked, Redact, StopSequences, Transform

__all__ = ["TransformedEventStream", "build_transform"]


def build_transform(spec: TransformSpec) -> Transform:
    """A new transform, for one stream, from its config spec."""
    if isinstance(spec, StopSpec):
        return StopSequences(spec.strings)
    if isinstance(spec, RedactSpec):
        return Redact(spec.all_patterns(), spec.replacement, max_match=spec.max_match)
    if isinstance(spec, BlockListSpec):
        return BlockList(spec.words, spec.action)
    if isinstance(spec, CoalesceSpec):
        return Coalesce(spec.min_chars, spec.max_delay_ms)
    raise TypeError(f"unknown transform spec {spec!r}")  # pragma: no cover - the config knows every kind


class TransformedEventStream(EventStream):
    """An `EventStream` whose events go through transforms before they are handed out.

    `target_transforms` maps a provider name to its configured specs (built anew for each leg
    committed); `transforms` are the route's (built) and the request's, in that order.
    """

    __slots__ = ("_after", "_log", "_metrics", "_pending", "_reported", "_target", "_targets", "_timed", "_used")

    def __init__(
        self,
        request: ChatRequest,
        request_id: str,
        legs: Legs,
        *,
        keep_text: bool = True,
        target_transforms: Mapping[str, Sequence[TransformSpec]],
        transforms: Sequence[Transform] = (),
        metrics: MetricsActor | None = None,
        logger: Any = None,
    ) -> None:
        super().__init__(request, request_id, legs, keep_text=keep_text)
        self._targets = target_transforms
        self._target = Chain(())
        self._after = Chain(transforms)
        self._used: list[Transform] = list(transforms)
        self._timed = self._after.timed
        #: An end that waits for the events handed on before it: an upstream failure, or a
        #: transform's error.
        self._pending: StreamEnd | ProviderError | None = None
        self._metrics = metrics
        self._log = logger
        self._reported = False

    async def __anext__(self) -> StreamEvent:
        while True:
            batch = self._batch
            i = self._i
            if i < len(batch):
                self._i = i + 1
                return batch[i]
            if self._folded < i:
                self._fold_read()
            if self._pending is not None:
                await self._settle()
                continue
            if self._done:
                raise StopAsyncIteration
            leg = self._leg
            if leg is None:
                await self._start()
                continue
            msg: ReplyMessage | None
            assert leg.recv is not None  # transformed streams' legs are worker-driven (routing.Legs)
            try:
                msg = leg.recv.receive_nowait()
            except trio.WouldBlock:
                deadline = self._deadline() if self._timed else None
                if deadline is None:
                    msg = await leg.next_message()
                else:
                    msg = None
                    with trio.move_on_at(deadline):
                        msg = await leg.next_message()
                    if msg is None:  # held text is due (Coalesce)
                        self._take(self._expire())
                        continue
            except trio.EndOfChannel:
                msg = leg.lost()
            if type(msg) is list:
                self._take(self._through(msg))
            else:
                assert isinstance(msg, StreamEnd)
                self._end_leg(msg)

    def close(self) -> None:
        """Cancel every upstream request this stream opened; count what the transforms did."""
        super().close()
        if not self._reported:
            self._reported = True
            self._report()

    # --- the chains -----------------------------------------------------------------

    def _commit(self, leg: Leg, msg: ReplyMessage) -> None:
        built = [build_transform(spec) for spec in self._targets.get(leg.provider, ())]
        self._used += built
        self._target = Chain(built)
        self._timed = self._target.timed or self._after.timed
        super()._commit(leg, msg)
        if type(msg) is list:
            self._take(self._through(msg))
        else:
            self._take(self._close_all())  # a reply with no events: nothing is held

    def _through(self, events: list[StreamEvent]) -> list[StreamEvent]:
        if self._target.stages:
            events = self._target.feed(events)
        if self._after.stages and events:
            events = self._after.feed(events)
        return events

    def _close_all(self) -> list[StreamEvent]:
        events = self._target.close()
        if self._after.stages:
            if events:
                events = self._after.feed(events)
            events += self._after.close()
        return events

    def _deadline(self) -> float | None:
        deadlines = [d for chain in (self._target, self._after) if chain.timed and (d := chain.deadline()) is not None]
        return min(deadlines) if deadlines else None

    def _expire(self) -> list[StreamEvent]:
        now = trio.current_time()
        events = self._target.expire(now) if self._target.timed else []
        if events and self._after.stages:
            events = self._after.feed(events)
        if self._after.timed:
            events += self._after.expire(now)
        return events

    def _take(self, events: list[StreamEvent]) -> None:
        """Hand `events` out next; if a transform ended the reply, stop the upstream now."""
        self._fold_read()
        self._batch = events
        self._i = self._folded = 0
        if (self._target.ended or self._after.ended) and not self._done and type(self._pending) is not ProviderError:
            self._legs.close()
            last = events[-1] if events else None
            if type(last) is ErrorEvent:
                events.pop()
                self._pending = self._blocked(last.error)
            else:
                self._pending = None
                self._done = True

    def _blocked(self, error: Exception) -> ProviderError:
        """The error a transform ended the reply with, as the stream raises it."""
        if isinstance(error, ProviderError):
            return error
        err = ProviderError(
            str(error),
            provider=self.provider,
            kind="content_filter",
            error_type="blocklist" if isinstance(error, ContentBlocked) else type(error).__name__,
        )
        err.__cause__ = error
        return err

    # --- ends -----------------------------------------------------------------------

    def _end_leg(self, end: StreamEnd) -> None:
        if end.error is None:
            self._take(self._close_all())
            self._finish(end)
            return
        # The leg failed: what its provider's transforms hold goes out first (so the consumer,
        # and the partial reply, have it); then the route may continue on its next target.
        held = self._target.close()
        if held and self._after.stages:
            held = self._after.feed(held)
        self._take(held)
        if self._pending is None and not self._done:
            self._pending = end

    async def _settle(self) -> None:
        pending, self._pending = self._pending, None
        if isinstance(pending, ProviderError):
            self._done = True
            raise pending.with_partial(self.reply())
        assert pending is not None and pending.error is not None
        if self._legs.can_continue(self.reply()):
            await self._continue()
            return
        self.retries = pending.retries
        if pending.model:
            self._builder.model = pending.model
        self._take(self._after.close())
        if self._pending is None and not self._done:
            self._pending = pending.error

    async def _continue(self) -> None:
        try:
            await super()._continue()
        except ProviderError as exc:
            # No target took over: what the route's and the request's transforms held is
            # part of the reply that failed.
            self._builder.add_all(self._after.close())
            raise exc.with_partial(self.reply()) from exc.__cause__

    # --- accounting -----------------------------------------------------------------

    def _report(self) -> None:
        done: dict[str, int] = {}
        for transform in self._used:
            for action, n in transform.actions.items():
                if self._metrics is not None:
                    self._metrics.report(TransformActions(transform.name, action, n))
                key = f"{transform.name}.{action}"
                done[key] = done.get(key, 0) + n
        if done and self._log is not None:
            ended = next((t.name for t in self._used if t.ended), None)
            # Counts only: never the text a transform removed.
            self._log.info(
                "stream_transformed", request_id=self.request_id, provider=self.provider, actions=done, ended_by=ended
            )
