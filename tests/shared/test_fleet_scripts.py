"""The Lua scripts on a real redis-server, through `Fleet` and `RedisLink`: budgets on the
server's clock, pauses, polls, and the fleet's circuit with its probe leases.

Real sockets, so real time: each delay is asserted to a few milliseconds of what the
script must compute (the server's clock runs between two calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
import trio

from redis_server import RedisServer
from streamactors.shared.address import RedisAddress
from streamactors.shared.fleet import Budget, Fleet, FleetState, ProviderKeys
from streamactors.shared.link import RedisLink
from streamactors.shared.scripts import PROBE_CLOSED, PROBE_DENIED, PROBE_GRANTED

SLACK = 0.05  # server time that passes between calls on a busy 2-core machine


@pytest.fixture
async def fleet(redis_server: RedisServer, nursery: trio.Nursery) -> AsyncIterator[Fleet]:
    link = RedisLink(RedisAddress.parse(redis_server.url), 0.5, structlog.get_logger())
    await nursery.start(link.run)
    assert link.up
    yield Fleet(link, "t", "worker-a")


async def posted(fleet: Fleet, method: str, *args: Any) -> FleetState | None:
    """Call one of the posted methods and wait for what it reads."""
    send, recv = trio.open_memory_channel[FleetState | None](1)
    getattr(fleet, method)(*args, send.send_nowait)
    return await recv.receive()


def test_keys_share_a_hash_tag_per_provider() -> None:
    keys = ProviderKeys.of("ns", "openai")
    assert keys == ProviderKeys(
        "ns:{openai}:budget", "ns:{openai}:pause", "ns:{openai}:circuit", "ns:{openai}:probes", "ns:{openai}:workers"
    )


def test_budget_per_minute_matches_the_local_pacer() -> None:
    assert Budget.per_minute(60, None) == Budget(1.0, 60.0, 0.0, 0.0)
    assert Budget.per_minute(None, 6000, burst_s=10) == Budget(0.0, 0.0, 100.0, 1000.0)
    assert Budget.per_minute(0.5, None) == Budget(0.5 / 60, 1.0, 0.0, 0.0)  # a burst of at least one
    assert Budget.per_minute(None, None).empty


async def test_requests_budget_burst_then_rate(fleet: Fleet) -> None:
    budget = Budget.per_minute(60, None, burst_s=3)  # 1 per second, 3 saved
    grants = [await fleet.admit("p", budget, 10) for _ in range(5)]
    assert all(g is not None for g in grants)
    delays = [g.delay for g in grants if g is not None]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert delays[3] == pytest.approx(1.0, abs=SLACK) and delays[4] == pytest.approx(2.0, abs=SLACK)
    last = grants[-1]
    assert last is not None and last.requests_left == -2  # two booked ahead: debt
    assert last.tokens_left == 0  # no tokens budget


async def test_tokens_budget_waits_for_the_estimate(fleet: Fleet) -> None:
    budget = Budget.per_minute(None, 600, burst_s=60)  # 10 tokens/s, 600 saved
    first = await fleet.admit("p", budget, 500)
    second = await fleet.admit("p", budget, 300)  # 100 left: 200 more take 20 s
    assert first is not None and (first.delay, first.tokens_left) == (0.0, 100)
    assert second is not None and second.delay == pytest.approx(20.0, abs=SLACK)


async def test_giving_back_and_charging_tokens(fleet: Fleet, redis_server: RedisServer) -> None:
    budget = Budget.per_minute(60, 600, burst_s=60)
    grant = await fleet.admit("p", budget, 500)
    assert grant is not None and (grant.requests_left, grant.tokens_left) == (59, 100)
    fleet.give_back("p", budget, 1, 450)  # cancelled: its request and its estimate back
    fleet.give_back("p", budget, 0, -200)  # another used 200 more than its estimate
    grant = await fleet.admit("p", budget, 100)
    assert grant is not None and (grant.requests_left, grant.tokens_left) == (59, 100 + 450 - 200 - 100)


async def test_budgets_are_per_provider_and_namespace(fleet: Fleet) -> None:
    budget = Budget.per_minute(60, None, burst_s=1)
    a = await fleet.admit("p", budget, 1)
    b = await fleet.admit("q", budget, 1)
    other = Fleet(fleet.link, "other-namespace")
    c = await other.admit("p", budget, 1)
    assert [g.delay if g else None for g in (a, b, c)] == [0.0, 0.0, 0.0]
    d = await fleet.admit("p", budget, 1)
    assert d is not None and d.delay == pytest.approx(1.0, abs=SLACK)


async def test_pause_holds_admissions_and_only_lengthens(fleet: Fleet) -> None:
    fleet.pause("p", 2.0)
    fleet.pause("p", 0.5)  # shorter: the 2 s pause stands
    state = await posted(fleet, "poll", "p", 5.0)
    assert state is not None and state.pause == pytest.approx(2.0, abs=SLACK)
    grant = await fleet.admit("p", Budget.per_minute(60, None), 1)
    assert grant is not None and grant.delay == pytest.approx(2.0, abs=SLACK)


async def test_poll_counts_the_live_workers(fleet: Fleet) -> None:
    other = Fleet(fleet.link, "t", "worker-b")
    assert await posted(fleet, "poll", "p", 5.0) == FleetState("closed", 0.0, 0.0, 1)
    assert await posted(other, "poll", "p", 5.0) == FleetState("closed", 0.0, 0.0, 2)
    await trio.sleep(0.3)
    state = await posted(other, "poll", "p", 0.2)  # worker-a polled 0.3 s ago: gone
    assert state is not None and state.workers == 1


async def test_trip_probe_and_close(fleet: Fleet) -> None:
    tripped = await posted(fleet, "trip", "p", 0.3)
    assert tripped is not None and tripped.circuit == "open" and tripped.retry_in == pytest.approx(0.3, abs=SLACK)
    again = await posted(fleet, "trip", "p", 30.0)  # already open: a late worker does not postpone it
    assert again is not None and again.retry_in == pytest.approx(0.3, abs=SLACK)
    early = await fleet.probe("p", 1, 10.0, "a:1")
    assert early is not None and early.answer == PROBE_DENIED and 0 < early.retry_in <= 0.3
    await trio.sleep(0.3)
    first = await fleet.probe("p", 1, 10.0, "a:1")
    second = await fleet.probe("p", 1, 10.0, "b:1")
    assert (first, second) is not None
    assert first is not None and first.answer == PROBE_GRANTED
    assert second is not None and second.answer == PROBE_DENIED  # one probe at a time, fleet-wide
    state = await posted(fleet, "poll", "p", 5.0)
    assert state is not None and state.circuit == "half_open"
    closed = await posted(fleet, "probe_done", "p", "a:1", "success", 1)
    assert closed is not None and closed.circuit == "closed"
    after = await fleet.probe("p", 1, 10.0, "b:2")
    assert after is not None and after.answer == PROBE_CLOSED


async def test_a_failed_probe_reopens_and_a_released_one_frees_its_slot(fleet: Fleet) -> None:
    await posted(fleet, "trip", "p", 0.05)
    await trio.sleep(0.06)
    assert (await fleet.probe("p", 2, 10.0, "a:1")).answer == PROBE_GRANTED  # type: ignore[union-attr]
    assert (await fleet.probe("p", 2, 10.0, "a:2")).answer == PROBE_GRANTED  # type: ignore[union-attr]
    assert (await fleet.probe("p", 2, 10.0, "a:3")).answer == PROBE_DENIED  # type: ignore[union-attr]
    assert (await posted(fleet, "probe_done", "p", "a:1", "release", 2)).circuit == "half_open"  # type: ignore[union-attr]
    assert (await fleet.probe("p", 2, 10.0, "a:3")).answer == PROBE_GRANTED  # type: ignore[union-attr]
    assert (await posted(fleet, "probe_done", "p", "a:2", "success", 2)).circuit == "half_open"  # type: ignore[union-attr]
    reopened = await posted(fleet, "probe_done", "p", "a:3", "failure", 2)
    assert reopened is not None and reopened.circuit == "open"
    state = await posted(fleet, "poll", "p", 5.0)
    assert state is not None and state.circuit == "open" and state.retry_in == pytest.approx(0.05, abs=SLACK)


async def test_a_probe_lease_runs_out(fleet: Fleet) -> None:
    """A service that died holding a probe does not keep the circuit from recovering."""
    await posted(fleet, "trip", "p", 0.01)
    await trio.sleep(0.02)
    assert (await fleet.probe("p", 1, 0.1, "dead:1")).answer == PROBE_GRANTED  # type: ignore[union-attr]
    assert (await fleet.probe("p", 1, 0.1, "b:1")).answer == PROBE_DENIED  # type: ignore[union-attr]
    await trio.sleep(0.12)
    assert (await fleet.probe("p", 1, 0.1, "b:1")).answer == PROBE_GRANTED  # type: ignore[union-attr]
