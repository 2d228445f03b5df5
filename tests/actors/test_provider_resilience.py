"""Retries, rate limiting and the circuit breaker in virtual time.

The provider actor gets an httpx MockTransport (the seam `open_service(transports=...)`),
so no socket is involved and `MockClock(autojump_threshold=0)` makes every wait exact
and instant.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from conftest import LogCapture, user
from streamactors import Config, ProviderError, open_service
from streamactors.testing import Scenario
from streamactors.testing.formats import openai as openai_format
from streamactors.testing.script import build_steps


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def sse_body(tokens: int = 3) -> bytes:
    items = openai_format.render(
        build_steps(Scenario(tokens=tokens)), "gpt-test", {"stream_options": {"include_usage": True}}
    )
    return b"".join(i for i in items if isinstance(i, bytes))


def ok(headers: dict[str, str] | None = None, tokens: int = 3) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream", **(headers or {})}, content=sse_body(tokens)
    )


def err(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json", **(headers or {})},
        content=b'{"error": {"message": "injected", "type": "x"}}',
    )


class Upstream:
    """A scripted upstream: answers come from `script` in order (the last one repeats)."""

    def __init__(self, script: list[Callable[[], httpx.Response]]) -> None:
        self.script = script
        self.calls: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(trio.current_time())
        step = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        return step()


def config(**provider: Any) -> Config:
    table = {"kind": "openai", "api_key": "sk-test-key-123456", "base_url": "http://upstream.invalid/v1", **provider}
    return Config.from_dict({"providers": {"openai": table}})


async def run(
    cfg: Config, upstream: Upstream, requests: int = 1, logs: LogCapture | None = None, seed: int = 7
) -> list[Any]:
    logs = logs or LogCapture([])
    results: list[Any] = []
    async with open_service(
        cfg, logger=logs.logger, transports={"openai": httpx.MockTransport(upstream)}, rng=random.Random(seed)
    ) as service:
        for _ in range(requests):
            try:
                results.append(await service.complete({"model": "openai/gpt-test", "messages": user()}))
            except ProviderError as exc:
                results.append(exc)
    return results


# --- retries -----------------------------------------------------------------------------


async def test_retry_after_is_honoured_exactly(autojump_clock: Any) -> None:
    upstream = Upstream([lambda: err(503, {"retry-after": "2"}), lambda: err(529, {"retry-after-ms": "1500"}), ok])
    [reply] = await run(config(max_retries=2), upstream)
    assert reply.text == "t0 t1 t2 "
    assert upstream.calls == [0.0, 2.0, 3.5]


async def test_backoff_follows_the_sdk_schedule(autojump_clock: Any) -> None:
    """No Retry-After: 0.5 s doubling, with up to 25% jitter taken off, from the injected rng."""
    upstream = Upstream([lambda: err(500)])
    [error] = await run(config(max_retries=3), upstream, seed=3)
    assert isinstance(error, ProviderError) and error.status == 500
    rng = random.Random(3)
    expected = [0.0]
    for attempt in range(3):
        expected.append(expected[-1] + min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * rng.random()))
    assert upstream.calls == pytest.approx(expected)


async def test_retry_after_beyond_60s_is_not_waited_for(autojump_clock: Any) -> None:
    upstream = Upstream([lambda: err(429, {"retry-after": "120"}), ok])
    [error] = await run(config(max_retries=2), upstream)
    assert isinstance(error, ProviderError) and error.status == 429 and error.retry_after == 120.0
    assert upstream.calls == [0.0]


async def test_x_should_retry_overrides_the_status(autojump_clock: Any) -> None:
    upstream = Upstream([lambda: err(400, {"x-should-retry": "true"}), lambda: err(503, {"x-should-retry": "false"})])
    [error] = await run(config(max_retries=2), upstream)
    assert isinstance(error, ProviderError) and error.status == 503
    assert len(upstream.calls) == 2


# --- the total timeout, wherever the request is waiting --------------------------------------


async def timed(cfg: Config, upstream: Upstream, pause: float = 0.0) -> tuple[float, Any]:
    """(when one request ended, its outcome: the reply or the error)."""
    async with open_service(
        cfg, logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(upstream)}
    ) as service:
        try:
            async with service.stream({"model": "openai/gpt-test", "messages": user()}) as events:
                async for _ in events:
                    if pause:
                        await trio.sleep(pause)  # a slow consumer
            outcome: Any = events.reply()
        except ProviderError as exc:
            outcome = exc
    return trio.current_time(), outcome


async def test_total_timeout_ends_a_retry_backoff(autojump_clock: Any) -> None:
    upstream = Upstream([lambda: err(503, {"retry-after": "20"}), ok])
    cfg = config(max_retries=2, timeouts={"total": 10.0})
    ended, error = await timed(cfg, upstream)
    assert isinstance(error, ProviderError) and error.kind == "timeout" and "total timeout" in error.message
    assert ended == pytest.approx(10.0) and upstream.calls == [0.0]


async def test_total_timeout_ends_a_wait_for_the_rate_limiter_and_gives_the_budget_back(
    autojump_clock: Any,
) -> None:
    upstream = Upstream([ok])
    cfg = config(timeouts={"total": 10.0}, rate_limit={"requests_per_minute": 1, "adaptive": False})
    async with open_service(
        cfg, logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(upstream)}
    ) as service:
        await service.complete({"model": "openai/gpt-test", "messages": user()})  # uses the one-minute burst
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "openai/gpt-test", "messages": user()})
        assert info.value.kind == "timeout" and trio.current_time() == pytest.approx(10.0)
        await trio.sleep(50.0)  # the timed-out request's admission was refunded: the next goes at 60 s
        await service.complete({"model": "openai/gpt-test", "messages": user()})
    assert upstream.calls == pytest.approx([0.0, 60.0])


def chunked_ok(tokens: int) -> httpx.Response:
    """A 200 whose body arrives one event per read (so each is its own batch)."""
    class Body(httpx.AsyncByteStream):  # a class, not an async generator: nothing left to finalize
        def __init__(self) -> None:
            self.events = iter([e + b"\n\n" for e in sse_body(tokens).split(b"\n\n")[:-1]])

        def __aiter__(self) -> AsyncIterator[bytes]:
            return self

        async def __anext__(self) -> bytes:
            return next(self.events, None) or self._end()

        def _end(self) -> bytes:
            raise StopAsyncIteration

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())


async def test_total_timeout_ends_a_stream_blocked_on_a_slow_consumer(autojump_clock: Any) -> None:
    upstream = Upstream([lambda: chunked_ok(2000)])
    cfg = Config.from_dict({"service": {"event_buffer": 1}, "providers": {"openai": {
        "kind": "openai", "api_key": "sk-test-key-123456", "base_url": "http://upstream.invalid/v1",
        "timeouts": {"total": 10.0, "idle": 1.0}}}})
    ended, error = await timed(cfg, upstream, pause=0.5)
    # Waiting on the consumer is not upstream idleness (idle is 1 s), but the total deadline holds.
    assert isinstance(error, ProviderError) and "total timeout" in error.message
    assert 10.0 <= ended <= 11.0 and error.partial.text


# --- a consumer that leaves stops the job wherever it is waiting ----------------------------


async def test_leaving_during_a_retry_backoff_stops_the_job(autojump_clock: Any) -> None:
    upstream = Upstream([lambda: err(503, {"retry-after": "20"}), ok])
    async with open_service(
        config(max_retries=2), logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(upstream)}
    ) as service:
        with trio.move_on_after(1.0):
            await service.complete({"model": "openai/gpt-test", "messages": user()})
        await trio.sleep(0.01)
        assert service.health()["openai"]["in_flight"] == 0
        assert service.health()["openai"]["outcomes"] == {"cancelled": 1}
        await trio.sleep(60.0)
    assert upstream.calls == [0.0]  # the retry due at 20 s never went


async def test_leaving_during_a_rate_limiter_wait_gives_the_budget_back(autojump_clock: Any) -> None:
    upstream = Upstream([ok])
    cfg = config(rate_limit={"requests_per_minute": 1, "adaptive": False})
    async with open_service(
        cfg, logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(upstream)}
    ) as service:
        await service.complete({"model": "openai/gpt-test", "messages": user()})  # uses the one-minute burst
        with trio.move_on_after(5.0):
            await service.complete({"model": "openai/gpt-test", "messages": user()})  # waits for t=60, leaves
        # The provider gives the budget back when its worker wakes to the cancel, a scheduler
        # round later; a request sent in that same round may ask the limiter first.
        await trio.testing.wait_all_tasks_blocked()
        await service.complete({"model": "openai/gpt-test", "messages": user()})
    assert upstream.calls == pytest.approx([0.0, 60.0])


# --- rate limiting -------------------------------------------------------------------------


async def test_requests_per_minute_budget_spaces_requests(autojump_clock: Any) -> None:
    """A budget of 60/min with its one-minute burst admits 60 at once, then one per second."""
    upstream = Upstream([ok])
    cfg = config(rate_limit={"requests_per_minute": 60, "adaptive": False})
    await run(cfg, upstream, requests=63)
    assert upstream.calls[:60] == [0.0] * 60
    assert upstream.calls[60:] == pytest.approx([1.0, 2.0, 3.0])


async def test_quota_header_saying_nothing_remains_holds_requests_until_reset(autojump_clock: Any) -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-reset-requests": "6s",
    }
    upstream = Upstream([lambda: ok(headers), ok])
    await run(config(), upstream, requests=2)
    assert upstream.calls == pytest.approx([0.0, 6.0])


async def test_429_makes_the_limiter_back_off_for_later_requests(autojump_clock: Any) -> None:
    """After a 429 with Retry-After, the next request waits for it (not only the retried one)."""
    upstream = Upstream([lambda: err(429, {"retry-after": "5"}), ok])
    results = await run(config(max_retries=0), upstream, requests=2)
    assert isinstance(results[0], ProviderError)
    assert upstream.calls == pytest.approx([0.0, 5.0])


async def test_requests_that_went_freely_still_set_the_aimd_ceiling(autojump_clock: Any) -> None:
    """No budgets: requests go without asking the limiter, which hears of each with its
    response; so after a 429 it paces at half the rate actually sent (9 in 2 s: 2.25/s
    allowed), not at half of a 1/s default (one request per 2 s)."""
    upstream = Upstream([ok] * 8 + [lambda: err(429)] + [ok])
    async with open_service(
        config(max_retries=0), logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(upstream)}
    ) as service:
        for _ in range(9):
            try:
                await service.complete({"model": "openai/gpt-test", "messages": user()})
            except ProviderError:
                pass
            await trio.sleep(0.25)
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(service.complete, {"model": "openai/gpt-test", "messages": user()})
    after = upstream.calls[9:]
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert len(gaps) == 3 and all(0.3 < g < 0.6 for g in gaps), gaps


async def test_full_queue_rejects_at_once(autojump_clock: Any) -> None:
    upstream = Upstream([ok])
    cfg = config(rate_limit={"requests_per_minute": 1, "max_queue": 2, "adaptive": False})
    outcomes: list[Any] = []
    async with open_service(
        cfg, logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(upstream)}
    ) as service:

        async def one() -> None:
            try:
                await service.complete({"model": "openai/gpt-test", "messages": user()})
                outcomes.append((trio.current_time(), "ok"))
            except ProviderError as exc:
                outcomes.append((trio.current_time(), exc.kind, exc.retryable))

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(one)
    rejected = [o for o in outcomes if o[1] == "rate_limited"]
    assert len(rejected) == 2 and all(o[0] == 0.0 and o[2] for o in rejected)
    assert sorted(o[0] for o in outcomes if o[1] == "ok") == pytest.approx([0.0, 60.0, 120.0])


# --- circuit breaker ------------------------------------------------------------------------


async def test_breaker_opens_rejects_without_network_then_probes_and_closes(autojump_clock: Any) -> None:
    upstream = Upstream([lambda: err(503)] * 3 + [ok])
    cfg = config(max_retries=0, circuit_breaker={"failure_threshold": 3, "reset_timeout": 10.0})
    logs = LogCapture([])
    async with open_service(cfg, logger=logs.logger, transports={"openai": httpx.MockTransport(upstream)}) as service:

        async def ask() -> Any:
            try:
                return await service.complete({"model": "openai/gpt-test", "messages": user()})
            except ProviderError as exc:
                return exc

        kinds = [(await ask()).kind for _ in range(5)]
        assert kinds == ["http_status"] * 3 + ["circuit_open"] * 2
        assert len(upstream.calls) == 3  # the open circuit never touched the network
        assert service.health()["openai"]["circuit"]["state"] == "open"
        assert 'streamactors_circuit_state{provider="openai"} 1' in service.metrics_text()
        await trio.sleep(10.0)
        reply = await ask()
        assert reply.text == "t0 t1 t2 "
        assert service.health()["openai"]["circuit"]["state"] == "closed"
    transitions = [(r["old"], r["new"]) for r in logs.records() if r["event"] == "circuit_transition"]
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_a_probe_the_rate_limiter_refuses_or_that_leaves_frees_its_slot(autojump_clock: Any) -> None:
    """A half-open probe that the limiter turns away (its queue is full), or whose limiter
    wait ends because its consumer left, never reached the upstream: the breaker hears of it
    and frees the probe slot, so a later request can probe. Were it never told, the circuit
    would stay half-open with its one slot taken, and reject every request from then on."""
    upstream = Upstream([lambda: err(503), lambda: err(503), ok])
    cfg = config(
        max_retries=0,
        rate_limit={"requests_per_minute": 1, "max_queue": 1, "adaptive": False},
        circuit_breaker={"failure_threshold": 1, "reset_timeout": 10.0},
    )
    request = {"model": "openai/gpt-test", "messages": user()}
    outcomes: dict[str, Any] = {}
    async with open_service(
        cfg, logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(upstream)}
    ) as service:

        async def ask(name: str) -> None:
            try:
                outcomes[name] = await service.complete(request)
            except ProviderError as exc:
                outcomes[name] = exc

        def circuit() -> str:
            return str(service.health()["openai"]["circuit"]["state"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "first")  # admitted at once; its 503 opens the circuit
            await trio.lowlevel.checkpoint()
            nursery.start_soon(ask, "queued")  # passed the closed circuit; fills the limiter's queue
            await trio.sleep(11.0)
            assert circuit() == "open"
            await ask("refused")  # the half-open probe, which the full queue refuses
            await ask("refused_again")  # its slot was freed: another probe, refused the same way
        # "queued" went at t=60 and failed: the circuit opened again, and is half-open from t=70.
        assert trio.current_time() == pytest.approx(60.0) and circuit() == "open"
        await trio.sleep(11.0)
        with trio.move_on_after(1.0):  # a probe waits for the limiter (until t=120); its consumer leaves
            await service.complete(request)
        # (The limiter keeps the place the leaver had in its queue until its turn, at t=120.)
        await trio.sleep_until(121.0)
        await ask("last")  # the slot is free again: this probe goes and closes the circuit
        assert circuit() == "closed"
    assert outcomes["first"].kind == "http_status"
    assert outcomes["queued"].kind == "http_status"
    assert outcomes["refused"].kind == "rate_limited"
    assert outcomes["refused_again"].kind == "rate_limited"
    assert outcomes["last"].text == "t0 t1 t2 "
    assert len(upstream.calls) == 3


async def test_a_success_between_failures_resets_the_count(autojump_clock: Any) -> None:
    """Threshold 2: fail, succeed, fail leaves the circuit closed; one more failure opens it."""
    upstream = Upstream([lambda: err(503), ok, lambda: err(503), lambda: err(503), ok])
    cfg = config(max_retries=0, circuit_breaker={"failure_threshold": 2})
    outcomes = await run(cfg, upstream, requests=5)
    kinds = [getattr(o, "kind", "ok") for o in outcomes]
    assert kinds == ["http_status", "ok", "http_status", "http_status", "circuit_open"]


async def test_client_errors_do_not_open_the_breaker(autojump_clock: Any) -> None:
    upstream = Upstream([lambda: err(400)])
    cfg = config(max_retries=0, circuit_breaker={"failure_threshold": 2})
    results = await run(cfg, upstream, requests=4)
    assert [r.kind for r in results] == ["http_status"] * 4
    assert len(upstream.calls) == 4


async def test_cookies_the_upstream_sets_go_back_with_later_requests(autojump_clock: Any) -> None:
    """As with the SDKs' httpx clients: a load balancer's cookie is returned on the next request."""
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return ok({"set-cookie": "__cf_bm=abc123; Path=/; HttpOnly"})

    async with open_service(config(), logger=LogCapture([]).logger,
                            transports={"openai": httpx.MockTransport(handler)}) as service:
        for _ in range(2):
            await service.complete({"model": "openai/gpt-test", "messages": user()})
    assert seen == [None, "__cf_bm=abc123"]


# --- 429s: bounded by what the provider announces (issue 11) ----------------------------------

#: What api.openai.com sends with a 429 when a token quota is briefly exhausted.
OPENAI_429 = {"retry-after": "1", "x-ratelimit-remaining-tokens": "130", "x-ratelimit-reset-tokens": "54ms"}


async def test_persistent_429s_cost_each_request_its_own_retries_however_many_came_before(
    autojump_clock: Any,
) -> None:
    """Ten requests one after another against a provider that answers every one with a 429:
    each costs its two retries, 1 s apart (as with the SDKs), plus at most the 54 ms quota
    reset before it; no wait grows with the 429s before it, and the circuit stays closed."""
    upstream = Upstream([lambda: err(429, OPENAI_429)])
    durations: list[float] = []
    async with open_service(
        config(max_retries=2), logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(upstream)}
    ) as service:
        for _ in range(10):
            start = trio.current_time()
            with pytest.raises(ProviderError) as info:
                await service.complete({"model": "openai/gpt-test", "messages": user()})
            durations.append(trio.current_time() - start)
            assert (info.value.kind, info.value.status) == ("http_status", 429)
        assert service.health()["openai"]["circuit"]["state"] == "closed"
    assert len(upstream.calls) == 30
    assert durations[0] == pytest.approx(2.0)
    assert all(2.0 <= d <= 2.054 + 1e-9 for d in durations), durations
    # Within one request the attempts are exactly the Retry-After apart.
    for k in range(10):
        first, second, third = upstream.calls[3 * k : 3 * k + 3]
        assert (second - first, third - second) == (pytest.approx(1.0), pytest.approx(1.0))


async def test_a_quota_reset_bounds_the_pause_of_new_requests(autojump_clock: Any) -> None:
    """A 429 that says `retry-after: 1` but also that the token quota is full again in 54 ms
    pauses the next request for 54 ms, not a second."""
    upstream = Upstream([lambda: err(429, OPENAI_429), ok])
    results = await run(config(max_retries=0), upstream, requests=2)
    assert isinstance(results[0], ProviderError) and results[1].text == "t0 t1 t2 "
    assert upstream.calls == pytest.approx([0.0, 0.054])


async def test_429s_do_not_open_the_circuit(autojump_clock: Any) -> None:
    """Twenty 429s in a row (threshold 3) leave the circuit closed: "slow down" is not "broken".
    Nor do they reset the failure count: 503, 429, 503, 429, 503 opens it."""
    upstream = Upstream([lambda: err(429)])
    cfg = config(max_retries=0, circuit_breaker={"failure_threshold": 3})
    results = await run(cfg, upstream, requests=20)
    assert [r.kind for r in results] == ["http_status"] * 20
    assert len(upstream.calls) == 20
    mixed = Upstream([lambda: err(503), lambda: err(429)] * 2 + [lambda: err(503), ok])
    results = await run(cfg, mixed, requests=6)
    assert [getattr(r, "kind", "ok") for r in results] == ["http_status"] * 5 + ["circuit_open"]


async def test_aimd_backs_off_concurrent_traffic_under_429s_and_recovers(autojump_clock: Any) -> None:
    """Twenty callers, each sending one request after another (0.1 s each), against a
    provider that answers 429 from 5 s to 10 s. The admitted rate drops well below what was
    flowing while the 429s last, then recovers to it, with the circuit closed throughout."""
    calls: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        now = trio.current_time()
        calls.append(now)
        await trio.sleep(0.1)
        return err(429) if 5.0 <= now < 10.0 else ok()

    cfg = config(max_retries=0)
    async with open_service(
        cfg, logger=LogCapture([]).logger, transports={"openai": httpx.MockTransport(handler)}
    ) as service:

        async def caller() -> None:
            while trio.current_time() < 40.0:
                try:
                    await service.complete({"model": "openai/gpt-test", "messages": user()})
                except ProviderError as exc:
                    assert exc.status == 429
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(caller)
        health = service.health()["openai"]
        assert health["circuit"]["state"] == "closed"
        assert health["rate_limit"]["aimd_factor"] == 1.0

    def rate(a: float, b: float) -> float:
        return sum(1 for t in calls if a <= t < b) / (b - a)

    flowing = rate(1.0, 5.0)
    assert flowing == pytest.approx(200.0, rel=0.05)  # 20 in flight, 0.1 s each
    assert rate(8.0, 10.0) < 0.2 * flowing  # backed off
    assert rate(38.0, 40.0) == pytest.approx(flowing, rel=0.05)  # recovered
