"""The shared limiter's local side, in virtual time: while Redis does not answer it paces by
its share of the budgets (the budget over the services last seen), and a fleet-wide pause it
hears of holds its admissions. (The link here is never started: every call gets no answer,
as from a Redis that is down. The fleet's side runs against a real redis-server in
tests/shared/.)"""

from __future__ import annotations

from typing import Any

import structlog
import trio

from streamactors.actors.shared_limiter import SharedLimiterActor
from streamactors.config.schema import RateLimitConfig
from streamactors.shared.address import RedisAddress
from streamactors.shared.fleet import Fleet, FleetState
from streamactors.shared.link import RedisLink


def limiter(**cfg: Any) -> SharedLimiterActor:
    link = RedisLink(RedisAddress("127.0.0.1", 1), 0.25, structlog.get_logger())
    return SharedLimiterActor("p", RateLimitConfig(**cfg), structlog.get_logger(), Fleet(link, "t"))


async def test_degraded_admissions_take_this_services_share(autojump_clock: Any, nursery: trio.Nursery) -> None:
    lim = limiter(requests_per_minute=60)
    await nursery.start(lim.run)
    lim.fleet_news(FleetState("closed", 0.0, 0.0, 3))  # three services polled last time
    start = trio.current_time()
    answers = [await lim.acquire(10) - start for _ in range(22)]
    assert answers[:20] == [0.0] * 20  # a third of the minute's burst
    assert answers[20:] == [3.0, 6.0]  # then a third of the rate: one every 3 s
    status = lim.status()
    assert (status["shared"], status["fleet_workers"], status["local_admissions"]) == ("degraded", 3, 22)


async def test_a_fleet_pause_holds_admissions(autojump_clock: Any, nursery: trio.Nursery) -> None:
    lim = limiter()  # no budgets: free admission, but for the pause
    await nursery.start(lim.run)
    assert lim.admits_freely
    lim.fleet_news(FleetState("closed", 0.0, 5.0, 2))
    assert not lim.admits_freely
    start = trio.current_time()
    assert await lim.acquire(10) == start + 5.0
    assert 4.9 < lim.status()["fleet_paused_for_s"] <= 5.0
    await trio.sleep(5.0)
    assert lim.admits_freely
