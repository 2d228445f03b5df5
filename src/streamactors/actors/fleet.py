"""`SharedFleet`: what `[shared]` adds to a service: the Redis link, each provider's shared
guards, and the watcher that polls the fleet's state for them.

`open_service` builds one when the config has `[shared]` (nothing of it exists otherwise),
takes each provider's limiter and breaker from `guards()`, and runs `children()` under its
supervisor, the link first (it connects, or gives up for now, before the others start).

The watcher polls every `POLL_INTERVAL` seconds, one pipelined round trip for every provider:
each poll says this service is alive, and reads the fleet's circuit and pause for the
provider; the answers go to the provider's guards, and the limiter sends the token
corrections it owes. So a circuit opened anywhere is open here within a poll interval plus
a round trip (well under the 1 s the fleet promises).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from ..config.schema import ProviderConfig, SharedSettings
from ..shared.fleet import Fleet, FleetState
from ..shared.link import RedisLink
from ..supervision.supervisor import ChildSpec
from .shared_breaker import SharedBreakerActor
from .shared_limiter import SharedLimiterActor

__all__ = ["POLL_INTERVAL", "SharedFleet"]

#: Seconds between two polls of the fleet's state.
POLL_INTERVAL = 0.25
#: A service that has not polled for this long no longer counts among the fleet's.
ALIVE_S = 10 * POLL_INTERVAL


class SharedFleet:
    """The link, the shared guards and the watcher of one service (see the module docstring)."""

    def __init__(self, settings: SharedSettings, logger: Any) -> None:
        self.link = RedisLink(settings.address, settings.timeout, logger)
        self.fleet = Fleet(self.link, settings.namespace)
        self._log = logger
        self._watched: list[tuple[str, Callable[[FleetState | None], None]]] = []
        self._limiters: list[SharedLimiterActor] = []

    def guards(self, name: str, config: ProviderConfig) -> tuple[SharedLimiterActor, SharedBreakerActor]:
        """The limiter and breaker of provider `name`, shared with the fleet."""
        limiter = SharedLimiterActor(name, config.rate_limit, self._log, self.fleet)
        # A probe's lease ends with its verdict, or after the longest a request may take.
        breaker = SharedBreakerActor(
            name, config.circuit_breaker, self._log, self.fleet, probe_lease=config.timeouts.total + 5.0
        )

        def news(state: FleetState | None) -> None:
            limiter.fleet_news(state)
            breaker.fleet_news(state)

        self._watched.append((name, news))
        return limiter, breaker

    def status(self) -> str:
        """`"ok"` while Redis answers, `"degraded"` while each provider runs on local state."""
        return self.link.status()

    def children(self) -> list[ChildSpec]:
        """The link and the watcher, for the service's supervisor (the link first)."""
        return [ChildSpec("redis_link", self.link.run), ChildSpec("fleet_watcher", self.watch)]

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll the fleet's state for every provider, every `POLL_INTERVAL` seconds."""
        task_status.started()
        fleet = self.fleet
        while True:
            for name, news in self._watched:
                fleet.poll(name, ALIVE_S, news)
            await trio.sleep(POLL_INTERVAL)
