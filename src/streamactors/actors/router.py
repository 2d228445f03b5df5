"""`RouterActor`: orders a route's targets for each request.

Strategies: `fallback` (the configured order), `weighted` (the first target drawn by
weight, the others after it in order), `least_latency` (power of two choices over a
moving estimate of time to first token, then the rest by estimate). Failures count as a
long latency, so a failing target is tried less until it recovers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import attrs

from ..config.schema import RouteConfig
from ..policy.latency import LatencyEstimate, pick_two, weighted_choice
from .mailbox import BatchedActor, Call

__all__ = ["FAILURE_LATENCY_S", "RouterActor"]

#: The latency a failure counts as, in the least-latency estimate.
FAILURE_LATENCY_S = 30.0


@attrs.frozen(slots=True, eq=False)
class _Plan(Call[list[str]]):
    """The targets of `route`, in the order to try them."""

    route: str


@attrs.frozen(slots=True)
class _Observe:
    target: str
    seconds: float | None  # None: the target failed before its first event


class RouterActor(BatchedActor[_Plan | _Observe]):
    """Owns the routes' latency estimates and random source."""

    def __init__(self, routes: Mapping[str, RouteConfig], rng: random.Random | None = None) -> None:
        super().__init__()
        self.routes = dict(routes)
        self._rng = rng or random.Random()
        self._latency: dict[str, LatencyEstimate] = {
            t: LatencyEstimate() for route in routes.values() for t in route.targets
        }

    async def plan(self, route: str) -> list[str]:
        """The targets of `route`, in the order to try them."""
        return await self._call(_Plan, route)

    def observe(self, target: str, seconds: float | None) -> None:
        """Report a target's time to first event (None: it failed before producing one)."""
        self._alert(_Observe(target, seconds))

    def _handle(self, msg: _Plan | _Observe) -> None:
        if type(msg) is _Plan:
            msg.reply.send_nowait(self._order(self.routes[msg.route]))
        elif type(msg) is _Observe:
            est = self._latency.setdefault(msg.target, LatencyEstimate())
            est.observe(FAILURE_LATENCY_S if msg.seconds is None else msg.seconds)

    def _order(self, route: RouteConfig) -> list[str]:
        targets = list(route.targets)
        if len(targets) < 2 or route.strategy == "fallback":
            return targets
        if route.strategy == "weighted":
            assert route.weights is not None
            first = targets[weighted_choice(route.weights, self._rng)]
        else:
            first = pick_two(targets, self._latency, self._rng)
            rest = sorted((t for t in targets if t != first), key=self._estimate)
            return [first, *rest]
        return [first, *(t for t in targets if t != first)]

    def _estimate(self, target: str) -> float:
        value = self._latency[target].value
        return 0.0 if value is None else value  # untried targets deserve a try

    def status(self) -> dict[str, Any]:
        """Latency estimates per target (for health; what is queued is taken in first)."""
        self.drain()
        return {t: e.value for t, e in self._latency.items()}
