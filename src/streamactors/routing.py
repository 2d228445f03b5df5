"""Leg choice for one request, in one place: which targets ("provider/model") in which order
(`plan`), and the loop that finds the leg that produces the first message (`Legs.first`).

A route moves to its next target at once when one fails before its first event (the
failure arrives as the leg's first message, so the next request goes out right away),
hedges a slow first token with a second target and cancels the loser, and, if asked,
continues a text reply that broke mid-stream on the next target. A direct request
("provider/model") is a plan of one target, which retries as its provider is configured to.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

import trio

from .actors.messages import Leg, ReplyMessage, StreamEnd
from .actors.metrics import HedgeCancelled, MetricsActor
from .actors.provider import ProviderActor
from .actors.router import RouterActor
from .config.schema import RouteConfig
from .errors import ProviderError, UsageError
from .models import ChatRequest, Reply

__all__ = ["Legs", "plan"]


async def plan(
    request: ChatRequest, routes: Mapping[str, RouteConfig], router: RouterActor, providers: Collection[str]
) -> tuple[list[str], RouteConfig | None]:
    """The targets to try for `request`, in order, and its route (None for a direct request).

    Raises `UsageError` for a model that names no route and no configured provider."""
    route = routes.get(request.model)
    if route is not None:
        return await router.plan(request.model), route
    provider, model_id = request.split_model()
    if provider not in providers:
        near = difflib.get_close_matches(provider, list(providers), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UsageError(
            f"model {request.model!r}: no provider named {provider!r} is configured{hint} "
            f'(configured: {", ".join(providers) or "none"}). Write "<provider>/<model-id>".'
        )
    if not model_id:
        raise UsageError(f'model {request.model!r}: give a model id after the provider, as "{provider}/<model-id>"')
    return [f"{provider}/{model_id}"], None


def _failed(msg: ReplyMessage) -> ProviderError | None:
    return msg.error if type(msg) is StreamEnd else None


class Legs:
    """The legs one request opens, over its planned targets, in order.

    `first()` is the one loop that opens legs until one produces a first message that is
    not a failure; `close()` abandons every leg opened (the consumer left, or the stream ended).
    """

    __slots__ = (
        "_actors",
        "_metrics",
        "_next",
        "_opened",
        "_request_id",
        "_route",
        "_router",
        "direct",
        "targets",
    )

    def __init__(
        self,
        actors: Mapping[str, ProviderActor],
        targets: list[str],
        request_id: str,
        *,
        route: RouteConfig | None = None,
        router: RouterActor | None = None,
        metrics: MetricsActor | None = None,
        direct: bool = True,
    ) -> None:
        self._actors = actors
        #: "provider/model" in the order they are tried.
        self.targets = targets
        self._request_id = request_id
        self._route = route
        self._router = router
        self._metrics = metrics
        self._next = 0
        self._opened: list[Leg] = []
        #: Whether the consumer's task drives its legs itself (`ProviderActor.submit`): not when
        #: a leg's first message is raced (hedging), nor for a consumer that times its reads
        #: out (transforms): those need a worker to go on while the consumer waits elsewhere.
        self.direct = direct and (route is None or route.hedge_after_ms is None)

    def has_next(self) -> bool:
        """Whether a target is left to try."""
        return self._next < len(self.targets)

    async def first(self, request: ChatRequest, *, hedge: bool = True) -> tuple[Leg, ReplyMessage]:
        """The next leg whose first message is not a failure, with that message.

        Legs whose first message is a failure are abandoned and the next target is tried;
        with `hedge` and a route's `hedge_after_ms`, a slow first leg races the next target
        (once per request). Raises the last failure when no target is left.
        """
        hedge_s = None
        if hedge and self._route is not None and self._route.hedge_after_ms is not None:
            hedge_s = self._route.hedge_after_ms / 1000
        error: ProviderError | None = None
        targets = self.targets
        while self._next < len(targets):
            leg = await self._open(request)
            if hedge_s is not None and self._next < len(targets):
                leg, msg = await self._race(leg, hedge_s, request)
                hedge_s = None
            else:
                msg = await leg.next_message()
            error = msg.error if type(msg) is StreamEnd else None
            if error is None:
                if self._route is not None:
                    self._observe(leg, trio.current_time() - leg.opened_at)
                return leg, msg
            self._observe(leg, None)
            leg.abandon()
        assert error is not None
        raise error

    def can_continue(self, partial: Reply) -> bool:
        """Whether a reply that broke mid-stream may go on on the next target: the route asks
        for it, a target is left, and the reply so far is text alone."""
        route = self._route
        if route is None or not route.continue_on_failure or not self.has_next():
            return False
        return bool(partial.text) and not partial.tool_calls

    def close(self) -> None:
        """Cancel every upstream request opened for this request."""
        for leg in self._opened:
            leg.abandon()

    async def _open(self, request: ChatRequest) -> Leg:
        index = self._next
        self._next += 1
        provider, _, model_id = self.targets[index].partition("/")
        # A route moves on at once; only the last target (or a direct request) retries.
        max_retries = None if index == len(self.targets) - 1 else 0
        leg = await self._actors[provider].submit(request, model_id, self._request_id, max_retries, direct=self.direct)
        self._opened.append(leg)
        return leg

    async def _race(self, primary: Leg, hedge_s: float, request: ChatRequest) -> tuple[Leg, ReplyMessage]:
        """Wait `hedge_s` for the primary's first message; then race it against the next target."""
        with trio.move_on_after(hedge_s):
            return primary, await primary.next_message()
        secondary = await self._open(request)
        send, recv = trio.open_memory_channel[tuple[Leg, ReplyMessage]](2)
        pending = {id(primary): primary, id(secondary): secondary}
        async with trio.open_nursery() as nursery:

            async def wait_first(leg: Leg) -> None:
                await send.send((leg, await leg.next_message()))

            nursery.start_soon(wait_first, primary)
            nursery.start_soon(wait_first, secondary)
            while True:
                leg, msg = await recv.receive()
                del pending[id(leg)]
                if _failed(msg) is None or not pending:
                    nursery.cancel_scope.cancel()
                    for loser in pending.values():
                        loser.abandon()
                        if self._metrics is not None:
                            self._metrics.report(HedgeCancelled(loser.provider))
                    return leg, msg
                self._observe(leg, None)
                leg.abandon()
        raise AssertionError("unreachable")  # pragma: no cover

    def _observe(self, leg: Leg, seconds: float | None) -> None:
        if self._router is not None and self._route is not None:
            self._router.observe(leg.target, seconds)
