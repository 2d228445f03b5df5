"""Services sharing a namespace in one Redis (two services in this process, on the wall
clock: real sockets to a real redis-server and to the fake upstream).

Budgets hold across them, token estimates are corrected by the reported usage, a circuit
opened by one is open in the other within a poll, probes are one at a time fleet-wide,
a 429 pauses both, and Redis going away (killed mid-run, or down from the start) fails
no request: each falls back to local state and says so in `health()`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from conftest import LogCapture, eventually, provider_table, user
from redis_server import RedisServer, free_port
from streamactors import Config, ProviderError, open_service
from streamactors.service import Service
from streamactors.testing import FakeUpstream


def shared_config(fake: FakeUpstream, url: str, namespace: str = "t", **provider: Any) -> Config:
    table = provider_table(fake, **provider)
    return Config.from_dict(
        {"providers": {"openai": table["openai"]}, "shared": {"redis_url": url, "namespace": namespace}}
    )


async def ask(service: Service, model: str = "gpt~tokens=2", text: str = "hi", **extra: Any) -> str:
    """One request: "ok", or its error's kind."""
    try:
        await service.complete({"model": f"openai/{model}", "messages": user(text), **extra})
    except ProviderError as exc:
        return exc.kind
    return "ok"


@asynccontextmanager
async def two_services(fake: FakeUpstream, url: str, **provider: Any) -> AsyncIterator[list[Service]]:
    """Two services of one namespace, the provider table overridden."""
    cfg = shared_config(fake, url, **provider)
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(open_service(cfg, logger=LogCapture([]).logger)) for _ in range(2)]


def upstream_calls(fake: FakeUpstream, model: str) -> list[float]:
    """When each request for `model` (its name, before the scenario) reached the fake upstream."""
    return [r.at for r in fake.requests if str(r.json().get("model", "")).split("~")[0] == model]


async def test_the_budget_holds_across_services(fake: FakeUpstream, redis_server: RedisServer) -> None:
    # A burst of 6, then one every 10 s, for the two services together.
    async with two_services(fake, redis_server.url, rate_limit={"requests_per_minute": 6}) as two:
        results: list[str] = []

        async def one(service: Service) -> None:
            results.append(await ask(service))

        with trio.move_on_after(1.5):
            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(one, two[i % 2])
        assert results == ["ok"] * 6  # the other four wait for the budget
        assert len(upstream_calls(fake, "gpt")) == 6
        for service in two:
            h = service.health()["openai"]
            assert h["shared"] == "ok" and h["rate_limit"]["shared"] == "ok"
        limits = [s.health()["openai"]["rate_limit"] for s in two]
        assert sum(lim["shared_admissions"] for lim in limits) == 10
        assert all(lim["local_admissions"] == 0 for lim in limits)
        assert min(lim["fleet_requests_left"] for lim in limits) < 0  # booked ahead: the fleet is in debt


async def test_token_estimates_are_corrected_by_the_usage(fake: FakeUpstream, redis_server: RedisServer) -> None:
    async with two_services(fake, redis_server.url, rate_limit={"tokens_per_minute": 6000}) as two:
        a, b = two
        assert await ask(a, max_tokens=1000) == "ok"  # estimated at 1,001 tokens; the fake reports 7 used
        h = a.health()["openai"]["rate_limit"]
        assert h["fleet_tokens_left"] == 6000 - 1001
        await trio.sleep(0.6)  # the correction goes with the next poll
        assert await ask(b, max_tokens=10) == "ok"
        left = b.health()["openai"]["rate_limit"]["fleet_tokens_left"]
        assert 6000 - 7 - 11 <= left <= 6000 - 7 - 11 + 70  # 1,001 - 7 given back; ~100 tokens/s refill


async def test_a_circuit_opened_in_one_service_is_open_in_the_other(
    fake: FakeUpstream, redis_server: RedisServer
) -> None:
    async with two_services(
        fake, redis_server.url, circuit_breaker={"failure_threshold": 2, "reset_timeout": 60}
    ) as two:
        a, b = two
        assert await ask(b, "healthy~tokens=1") == "ok"
        assert [await ask(a, "broken~fail=status:503") for _ in range(2)] == ["http_status"] * 2
        opened = trio.current_time()
        while (kind := await ask(b, "healthy~tokens=1")) == "ok":  # noqa: ASYNC110 - the point is B's traffic
            await trio.sleep(0.01)
        seen = trio.current_time() - opened
        assert kind == "circuit_open" and seen < 1.0
        before = len(upstream_calls(fake, "healthy"))
        assert [await ask(s, "healthy~tokens=1") for s in (a, b, b)] == ["circuit_open"] * 3
        assert len(upstream_calls(fake, "healthy")) == before  # rejected without contacting the provider
        circuit = b.health()["openai"]["circuit"]
        assert (circuit["state"], circuit["local_state"], circuit["shared"]) == ("open", "closed", "ok")
        assert 59 < circuit["retry_in_s"] <= 60


async def test_probes_are_coordinated_and_closing_is_shared(fake: FakeUpstream, redis_server: RedisServer) -> None:
    async with two_services(
        fake, redis_server.url, circuit_breaker={"failure_threshold": 1, "reset_timeout": 0.5, "half_open_probes": 1}
    ) as two:
        a, b = two
        assert await ask(a, "broken~fail=status:503") == "http_status"
        await eventually(lambda: b.health()["openai"]["circuit"]["state"] == "open")
        await trio.sleep(0.55)  # past the reset timeout: the next request asks to probe
        results: dict[str, str] = {}

        async def probe(name: str, service: Service) -> None:
            results[name] = await ask(service, "slow~tokens=1~ttft_ms=300")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe, "a", a)
            nursery.start_soon(probe, "b", b)
        assert sorted(results.values()) == ["circuit_open", "ok"]  # one probe for the whole fleet
        assert len(upstream_calls(fake, "slow")) == 1
        await eventually(lambda: all(s.health()["openai"]["circuit"]["state"] == "closed" for s in two))
        assert [await ask(s) for s in two] == ["ok", "ok"]


async def test_a_429_pauses_every_service(fake: FakeUpstream, redis_server: RedisServer) -> None:
    async with two_services(fake, redis_server.url) as two:
        a, b = two
        assert await ask(a, "limited~fail=status:429~retry_after=1") == "http_status"
        paused = trio.current_time()
        await trio.sleep(0.35)  # b polls meanwhile
        assert b.health()["openai"]["rate_limit"]["fleet_paused_for_s"] > 0.4
        assert await ask(b, "later~tokens=1") == "ok"
        (sent,) = upstream_calls(fake, "later")
        assert sent - paused >= 0.95  # held until the pause ended, though b saw no 429 itself


async def test_redis_killed_mid_run_fails_no_request(
    fake: FakeUpstream, redis_server: RedisServer, logs: LogCapture
) -> None:
    cfg = shared_config(
        fake, redis_server.url, rate_limit={"requests_per_minute": 600}, circuit_breaker={"failure_threshold": 3}
    )
    async with open_service(cfg, logger=logs.logger) as service:
        results: list[str] = []

        async def traffic() -> None:
            for _ in range(60):
                results.append(await ask(service))
                await trio.sleep(0.02)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(traffic)
            await trio.sleep(0.3)
            redis_server.kill()
            await eventually(lambda: service.health()["openai"]["shared"] == "degraded")
            h = service.health()["openai"]
            assert (h["rate_limit"]["shared"], h["circuit"]["shared"]) == ("degraded", "degraded")
            await trio.sleep(0.3)
            redis_server.start()
            await eventually(lambda: service.health()["openai"]["shared"] == "ok", within=5)
        assert results == ["ok"] * 60
        limits = service.health()["openai"]["rate_limit"]
        assert limits["local_admissions"] > 0 and limits["shared_admissions"] > 0
    records = logs.records()
    assert [r["event"] for r in records if r["event"].startswith("shared_state")] == [
        "shared_state_degraded",
        "shared_state_restored",
    ]


async def test_starting_with_redis_down(fake: FakeUpstream, logs: LogCapture) -> None:
    cfg = shared_config(fake, f"redis://127.0.0.1:{free_port()}/0", rate_limit={"requests_per_minute": 600})
    async with open_service(cfg, logger=logs.logger) as service:
        assert [await ask(service) for _ in range(3)] == ["ok"] * 3
        h = service.health()["openai"]
        assert h["shared"] == "degraded" and h["rate_limit"]["local_admissions"] == 3
    assert sum(r["event"] == "shared_state_degraded" for r in logs.records()) == 1


async def test_without_shared_nothing_of_it_runs(fake: FakeUpstream) -> None:
    table = provider_table(fake, rate_limit={"requests_per_minute": 600})
    async with open_service(Config.from_dict({"providers": {"openai": table["openai"]}})) as service:
        assert await ask(service) == "ok"
        h = service.health()["openai"]
        assert "shared" not in h and "shared" not in h["rate_limit"] and "shared" not in h["circuit"]
