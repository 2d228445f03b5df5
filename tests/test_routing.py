"""Routes: fallback, weighted, least latency, hedging, continuation, shutdown drain, and the
health/metrics views.

What a route decides runs in virtual time (`autojump_clock`) against the socketless
`upstream`, so "at once", "after 100 ms" and "within the grace" are exact. Only the
health/metrics test stays on real sockets and the wall clock: its overhead percentile is
a measurement of real time spent in the library.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing

from conftest import config_for, user
from mock_upstream import MockUpstream
from streamactors import ProviderError, open_service


def serve(
    upstream: MockUpstream, route: dict[str, Any], logs: Any, *, rng: random.Random | None = None, **provider: Any
) -> Any:
    """The service, with route "smart" and `provider` overrides for every provider, on `upstream`."""
    cfg = config_for(upstream, routes={"smart": route}, **provider)
    return open_service(cfg, logger=logs.logger, transports=upstream.transports(), rng=rng)


async def test_fallback_moves_on_at_once_and_reports_the_answering_provider(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    route = {"targets": ["anthropic/m~fail=status:503", "openai/m~tokens=4"]}
    gaps = []
    async with serve(upstream, route, logs, max_retries=2, circuit_breaker={"failure_threshold": 100}) as service:
        for _ in range(6):
            upstream.requests.clear()
            upstream.error_sent_at.clear()
            reply = await service.complete({"model": "smart", "messages": user()})
            assert reply.text == "t0 t1 t2 t3 "
            assert reply.provider == "openai"
            paths = [r.path for r in upstream.requests]
            assert paths == ["/v1/messages", "/v1/chat/completions"]  # no retries on the failing target
            gaps.append(upstream.requests[1].at - upstream.error_sent_at[0])
    # From the failing response to the next request, in virtual time: only a wait between
    # them (a backoff, a timer) can make a gap, and the machine's load cannot.
    assert max(gaps) < 0.005, f"next target asked {max(gaps) * 1000:.2f} ms after the failure"


async def test_last_target_keeps_its_retries(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    route = {"targets": ["anthropic/m~fail=status:500", "openai/m~fail=status:503~retry_after=0.01"]}
    async with serve(upstream, route, logs, max_retries=2) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "smart", "messages": user()})
    assert info.value.provider == "openai" and info.value.status == 503
    assert [r.path for r in upstream.requests] == ["/v1/messages"] + ["/v1/chat/completions"] * 3


async def test_fallback_on_open_circuit(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    route = {"targets": ["anthropic/m~fail=status:503", "openai/m~tokens=2"]}
    async with serve(upstream, route, logs, circuit_breaker={"failure_threshold": 1, "reset_timeout": 60}) as service:
        for _ in range(3):
            reply = await service.complete({"model": "smart", "messages": user()})
            assert reply.provider == "openai"
    # The first request opened anthropic's circuit; the next two skipped it without a request.
    assert [r.path for r in upstream.requests].count("/v1/messages") == 1


async def test_weighted_strategy_follows_the_weights(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    route = {"targets": ["anthropic/m~tokens=1", "openai/m~tokens=1"], "strategy": "weighted", "weights": [3, 1]}
    async with serve(upstream, route, logs, rng=random.Random(5)) as service:
        providers = [(await service.complete({"model": "smart", "messages": user()})).provider for _ in range(200)]
    share = providers.count("anthropic") / len(providers)
    assert 0.65 < share < 0.85


async def test_least_latency_prefers_the_faster_target(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    route = {"targets": ["anthropic/m~tokens=1~ttft_ms=60", "openai/m~tokens=1"], "strategy": "least_latency"}
    async with serve(upstream, route, logs, rng=random.Random(1)) as service:
        providers = [(await service.complete({"model": "smart", "messages": user()})).provider for _ in range(30)]
    assert providers[-10:].count("openai") >= 9


async def test_hedge_wins_and_the_loser_is_cancelled_within_100ms(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """The hedge goes at 100 ms, wins, and the loser's response is closed at once. (That
    closing a response closes its connection is checked over real sockets, by the
    early-close tests of test_service_streaming.py and test_service_lifecycle.py.)"""
    route = {"targets": ["anthropic/m~tokens=3~ttft_ms=3000", "openai/m~tokens=3"], "hedge_after_ms": 100}
    async with serve(upstream, route, logs) as service:
        t0 = trio.current_time()
        reply = await service.complete({"model": "smart", "messages": user()})
        took = trio.current_time() - t0
        assert reply.provider == "openai" and reply.text == "t0 t1 t2 "
        assert 0.1 <= took < 1.0
        t_won = trio.current_time()
        await trio.testing.wait_all_tasks_blocked()
        # The loser's body was closed before its end, and no response is left open.
        assert upstream.responses_aborted == 1 and upstream.open_responses == 0
        assert upstream.aborted_at[0] - t_won < 0.1
        assert service.health()["anthropic"]["hedges_cancelled"] == 1
        assert 'streamactors_hedges_cancelled_total{provider="anthropic"} 1' in service.metrics_text()


async def test_the_hedge_loser_is_cancelled_when_the_winner_answers_not_when_the_request_ends(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """The winner streams for 10 s; the loser's response must be closed when the winner's first
    event arrives, while the winner still streams (not only when the stream is closed)."""
    targets = ["anthropic/m~tokens=3~ttft_ms=3000", "openai/m~tokens=1000~delay_ms=10"]
    route = {"targets": targets, "hedge_after_ms": 100}
    async with serve(upstream, route, logs) as service, service.stream(
        {"model": "smart", "messages": user()}
    ) as events:
        await events.__anext__()
        await trio.testing.wait_all_tasks_blocked()
        assert upstream.responses_aborted == 1 and upstream.open_responses == 1  # the loser's, and the winner's
        assert upstream.aborted_at[0] == pytest.approx(0.1)
        texts = [ev async for ev in events if ev.type == "text"]
    assert len(texts) == 999 and events.provider == "openai"


async def test_no_hedge_when_the_first_target_is_quick(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    route = {"targets": ["anthropic/m~tokens=3", "openai/m~tokens=3"], "hedge_after_ms": 500}
    async with serve(upstream, route, logs) as service:
        reply = await service.complete({"model": "smart", "messages": user()})
    assert reply.provider == "anthropic"
    assert len(upstream.requests) == 1


async def test_continue_on_failure_stitches_a_text_reply(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    route = {"targets": ["anthropic/m~tokens=20~fail=midstream@5", "openai/m~tokens=3"], "continue_on_failure": True}
    async with serve(upstream, route, logs) as service:
        reply = await service.complete({"model": "smart", "messages": user("count")})
    assert reply.text == "t0 t1 t2 t3 t4 " + "t0 t1 t2 "
    assert reply.provider == "openai" and reply.finish_reason == "stop"
    continuation = upstream.requests[-1].json()["messages"]
    assert continuation[-1] == {"role": "assistant", "content": "t0 t1 t2 t3 t4 "}


async def test_no_continuation_for_tool_calls(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    route = {
        "targets": ["anthropic/m~tokens=2~tool_calls=2~fail=drop@2", "openai/m~tokens=3"],
        "continue_on_failure": True,
    }
    async with serve(upstream, route, logs) as service:
        with pytest.raises(ProviderError):
            await service.complete({"model": "smart", "messages": user()})


async def test_shutdown_drains_in_flight_streams_within_grace(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    cfg = config_for(upstream, service={"shutdown_grace": 5.0})
    result: list[str] = []

    async def stream_it(service: Any, task_status: trio.TaskStatus[None]) -> None:
        async with service.stream({"model": "openai/m~tokens=20~delay_ms=10", "messages": user()}) as ev:
            task_status.started()
            result.append("".join([e.text async for e in ev if e.type == "text"]))

    async with trio.open_nursery() as nursery, open_service(
        cfg, logger=logs.logger, transports=upstream.transports()
    ) as service:
        await nursery.start(stream_it, service)
    assert result == ["".join(f"t{i} " for i in range(20))]


async def test_health_and_metrics(make_config: Any, logs: Any) -> None:
    """Real sockets, wall clock: the overhead percentile measures real time spent in the library."""
    async with open_service(make_config(), logger=logs.logger) as service:
        await service.complete({"model": "openai/gpt-x~tokens=5", "messages": user()})
        with pytest.raises(ProviderError):
            await service.complete({"model": "openai/gpt-x~fail=status:400", "messages": user()})
        health = service.health()
        text = service.metrics_text()
    h = health["openai"]
    assert h["requests"] == 2 and h["outcomes"] == {"ok": 1, "error": 1}
    assert h["errors"] == {"http_status": 1}
    assert h["output_tokens"] == 5 and h["input_tokens"] == 10
    assert h["ttft"]["p50_ms"] is not None and h["duration"]["p99_ms"] is not None
    assert h["overhead"]["p50_ms"] is not None and h["overhead"]["p50_ms"] < 50
    assert h["circuit"]["state"] == "closed" and h["rate_limit"]["waiting"] == 0
    assert health["anthropic"]["requests"] == 0
    for needle in (
        'streamactors_requests_total{provider="openai",model="gpt-x~tokens=5",outcome="ok"} 1',
        'streamactors_tokens_total{provider="openai",direction="output"} 5',
        'streamactors_retries_total{provider="openai"} 0',
        "# TYPE streamactors_ttft_seconds histogram",
        'streamactors_request_duration_seconds_count{provider="openai"} 2',
        "# TYPE streamactors_overhead_seconds histogram",
        'streamactors_circuit_state{provider="openai"} 0',
    ):
        assert needle in text, needle
