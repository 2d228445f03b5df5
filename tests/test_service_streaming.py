"""End to end: the service, the provider actors, the fake upstream.

Over real sockets and the wall clock, except the retry and timeout tests: those check
what the provider actor decides, and run in virtual time (`autojump_clock`) against the
socketless `upstream`, where a 3 s stall costs nothing and every deadline is exact.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from conftest import config_for, eventually, user
from mock_upstream import MockUpstream
from streamactors import (
    ChatRequest,
    FinishEvent,
    Message,
    ProviderError,
    TextEvent,
    UsageError,
    UsageEvent,
    open_service,
)
from streamactors.testing import token_text

PROVIDERS = ["openai", "anthropic"]


def expected_text(n: int, unicode: bool = False) -> str:
    return "".join(token_text(i, unicode) for i in range(n))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_complete_returns_the_whole_reply(provider: str, make_config: Any, logs: Any) -> None:
    """complete() aggregates text, usage, finish reason, provider and reported model."""
    async with open_service(make_config(), logger=logs.logger) as service:
        reply = await service.complete({"model": f"{provider}/fake-model~tokens=25", "messages": user()})
    assert reply.text == expected_text(25)
    assert reply.reasoning == ""
    assert reply.tool_calls == ()
    assert reply.finish_reason == "stop"
    assert reply.usage.input_tokens == 10
    assert reply.usage.output_tokens == 25
    assert reply.provider == provider
    assert reply.model == "fake-model"  # as the upstream reported it


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_yields_events_in_order(provider: str, make_config: Any, logs: Any) -> None:
    """Text events arrive one per token, in order, then usage, then finish last."""
    request = ChatRequest(model=f"{provider}/m~tokens=50", messages=[Message("user", "hi")])
    async with open_service(make_config(), logger=logs.logger) as service, service.stream(request) as ev:
        events = [e async for e in ev]
    texts = [e.text for e in events if isinstance(e, TextEvent)]
    assert texts == [token_text(i) for i in range(50)]
    assert isinstance(events[-1], FinishEvent) and events[-1].reason == "stop"
    assert isinstance(events[-2], UsageEvent)
    assert [e.type for e in events][-2:] == ["usage", "finish"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_parallel_tool_calls_and_reasoning(provider: str, make_config: Any, logs: Any) -> None:
    """Two tool calls get positions 0 and 1 with id, name and exact argument text; finish is tool_calls."""
    async with open_service(make_config(), logger=logs.logger) as service:
        reply = await service.complete(
            {"model": f"{provider}/m~tokens=3~tool_calls=2~reasoning=4~unicode=1", "messages": user()}
        )
    assert reply.reasoning == expected_text(4, unicode=True)
    assert reply.text == expected_text(3, unicode=True)
    assert [tc.name for tc in reply.tool_calls] == ["get_weather", "get_weather"]
    assert reply.tool_calls[0].arguments == '{"city": "Paris 0", "units": "celsius", "days": 1}'
    assert reply.tool_calls[1].arguments == '{"city": "Paris 1", "units": "celsius", "days": 2}'
    assert all(tc.id for tc in reply.tool_calls)
    assert reply.tool_calls[0].id != reply.tool_calls[1].id
    assert reply.finish_reason == "tool_calls"
    assert reply.usage.output_tokens == 7  # reasoning tokens included


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_length_finish(provider: str, make_config: Any, logs: Any) -> None:
    async with open_service(make_config(), logger=logs.logger) as service:
        reply = await service.complete({"model": f"{provider}/m~tokens=4~finish=length", "messages": user()})
    assert reply.finish_reason == "length"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_midstream_error_raises_with_partial(provider: str, make_config: Any, logs: Any) -> None:
    """An in-band error after some tokens raises ProviderError(kind='upstream') carrying them."""
    async with open_service(make_config(), logger=logs.logger) as service:
        seen = []
        with pytest.raises(ProviderError) as info:
            async with service.stream({"model": f"{provider}/m~tokens=30~fail=midstream@12", "messages": user()}) as ev:
                async for e in ev:
                    seen.append(e)
    err = info.value
    assert err.kind == "upstream"
    assert err.provider == provider
    assert "Overloaded" in err.message
    assert err.partial is not None
    assert err.partial.text == expected_text(12)
    assert err.partial.finish_reason is None
    assert len([e for e in seen if e.type == "text"]) == 12


@pytest.mark.parametrize(("fault", "kind"), [("drop", "connection"), ("truncate", "protocol"), ("garbage", "protocol")])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_broken_streams_are_typed_errors(
    provider: str, fault: str, kind: str, make_config: Any, logs: Any
) -> None:
    """A dropped connection, a stream without its terminator, invalid JSON: never a silent success."""
    async with open_service(make_config(), logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": f"{provider}/m~tokens=20~fail={fault}@7", "messages": user()})
    assert info.value.kind == kind
    assert info.value.partial is not None
    assert info.value.partial.text == expected_text(7)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (429, True), (500, True), (503, True), (529, True)],
)
async def test_http_errors(provider: str, status: int, retryable: bool, make_config: Any, logs: Any) -> None:
    async with open_service(make_config(), logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": f"{provider}/m~fail=status:{status}", "messages": user()})
    err = info.value
    assert (err.kind, err.status, err.retryable) == ("http_status", status, retryable)
    assert f"injected HTTP {status}" in err.message
    assert err.partial is not None and err.partial.text == ""


async def test_retries_before_first_event_then_gives_up(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """429 with Retry-After is retried max_retries times (honouring the header), then surfaces."""
    cfg = config_for(upstream, max_retries=2)
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        t0 = trio.current_time()
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "openai/m~fail=status:429~retry_after=0.05", "messages": user()})
        elapsed = trio.current_time() - t0
    assert info.value.status == 429
    assert len(upstream.requests) == 3
    assert elapsed >= 0.1  # two waits of 0.05 s
    assert [r["event"] for r in logs.records()].count("retry") == 2


async def test_no_retry_for_non_retryable(fake: Any, make_config: Any, logs: Any) -> None:
    async with open_service(make_config(max_retries=2), logger=logs.logger) as service:
        with pytest.raises(ProviderError):
            await service.complete({"model": "openai/m~fail=status:400", "messages": user()})
    assert len(fake.requests) == 1


async def test_midstream_failure_is_not_retried(fake: Any, make_config: Any, logs: Any) -> None:
    """Once an event reached the consumer, a retry would duplicate it: the error surfaces."""
    async with open_service(make_config(max_retries=2), logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "openai/m~tokens=9~fail=drop@5", "messages": user()})
    assert info.value.partial is not None and info.value.partial.text == expected_text(5)
    assert len(fake.requests) == 1


async def test_first_token_timeout(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    cfg = config_for(upstream, timeouts={"first_token": 0.2, "idle": 5.0, "total": 30.0})
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "anthropic/m~ttft_ms=3000", "messages": user()})
    assert info.value.kind == "timeout"
    assert info.value.retryable
    assert "first_token" in info.value.message


async def test_idle_timeout_mid_stream_keeps_partial(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    cfg = config_for(upstream, timeouts={"first_token": 5.0, "idle": 0.2, "total": 30.0})
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "openai/m~tokens=10~fail=hang@4", "messages": user()})
    assert info.value.kind == "timeout"
    assert "idle" in info.value.message
    assert info.value.partial is not None and info.value.partial.text == expected_text(4)


async def test_total_timeout(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    cfg = config_for(upstream, timeouts={"first_token": 5.0, "idle": 5.0, "total": 0.3})
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "openai/m~tokens=100~delay_ms=20", "messages": user()})
    assert info.value.kind == "timeout"
    assert "total" in info.value.message


async def test_early_close_cancels_upstream_within_100ms(fake: Any, make_config: Any, logs: Any) -> None:
    """Leaving the stream block closes the upstream connection promptly.
    Real sockets, wall clock: what is measured is the upstream seeing the connection close."""
    async with open_service(make_config(), logger=logs.logger) as service:
        async with service.stream({"model": "openai/m~tokens=100000~delay_ms=20", "messages": user()}) as ev:
            async for e in ev:
                if e.type == "text":
                    break
        t0 = trio.current_time()
        await eventually(lambda: fake.responses_aborted > 0)
        assert trio.current_time() - t0 < 0.1
    assert fake.responses_completed == 0


async def test_slow_consumer_pushes_back_on_upstream(fake: Any, make_config: Any, logs: Any) -> None:
    """A consumer that stops reading stops the upstream reads: the fake cannot send everything.
    Real sockets, wall clock: what is measured is TCP flow control, the fake blocked on a full socket."""
    total = 300_000
    request = {"model": f"openai/m~tokens={total}", "messages": user()}
    async with open_service(make_config(), logger=logs.logger) as service, service.stream(request) as ev:
        await ev.__anext__()
        await trio.sleep(1.0)
        sent = fake.chunks_sent
    assert sent < total // 2


async def test_unknown_provider_is_a_usage_error(make_config: Any, logs: Any) -> None:
    async with open_service(make_config(), logger=logs.logger) as service:
        with pytest.raises(UsageError, match="did you mean 'openai'"):
            await service.complete({"model": "opnai/gpt-4o", "messages": user()})
        with pytest.raises(UsageError, match="unknown field 'max_token'"):
            await service.complete({"model": "openai/gpt-4o", "messages": user(), "max_token": 3})


async def test_many_concurrent_streams(make_config: Any, logs: Any) -> None:
    """200 concurrent streams over both providers all complete exactly."""
    results: dict[int, str] = {}
    async with open_service(make_config(), logger=logs.logger) as service:

        async def one(i: int) -> None:
            provider = PROVIDERS[i % 2]
            reply = await service.complete({"model": f"{provider}/m~tokens={i % 17 + 1}", "messages": user()})
            results[i] = reply.text

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)
    assert all(results[i] == expected_text(i % 17 + 1) for i in range(200))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_events_before_an_error_in_the_same_read_are_kept(provider: str, nursery: Any, logs: Any) -> None:
    """Text and the error arrive in one HTTP chunk: the text still reaches the partial reply."""
    from conftest import provider_table
    from streamactors import Config
    from streamactors.testing import FakeUpstream

    fake = await nursery.start(FakeUpstream(events_per_chunk=1000).serve)
    cfg = Config.from_dict({"providers": provider_table(fake)})
    async with open_service(cfg, logger=logs.logger) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": f"{provider}/m~tokens=10~fail=midstream@5", "messages": user()})
    assert info.value.kind == "upstream"
    assert info.value.partial is not None and info.value.partial.text == expected_text(5)


async def test_keep_text_false_keeps_no_text_but_the_rest(make_config: Any, logs: Any) -> None:
    """For consumers that keep their own copy: events flow as usual, the reply holds no text."""
    async with open_service(make_config(), logger=logs.logger) as service:
        request = {"model": "openai/m~tokens=600~tool_calls=1", "messages": user()}
        async with service.stream(request, keep_text=False) as events:
            texts = [e.text async for e in events if e.type == "text"]
            reply = events.reply()
        full = await service.complete(request)
    assert "".join(texts) == expected_text(600) == full.text  # the kept text spans several joined blocks
    assert reply.text == ""
    assert reply.tool_calls == full.tool_calls and reply.finish_reason == "tool_calls"
    assert reply.usage == full.usage


async def test_the_idle_timeout_is_never_early_and_at_most_a_64th_of_it_late(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """The idle deadline is moved lazily (once per idle/64 of steady data, not per batch):
    tokens 0.99 s apart never trip a 1 s idle timeout, and silence after the fourth token
    ends the stream between 1 s and 1 + 1/64 s after that token."""
    cfg = config_for(upstream, timeouts={"first_token": 5.0, "idle": 1.0, "total": 100.0})
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        reply = await service.complete({"model": "openai/m~tokens=12~delay_ms=990", "messages": user()})
        assert reply.text == expected_text(12)
        last = None
        with pytest.raises(ProviderError) as info:
            async with service.stream(
                {"model": "openai/m~tokens=10~delay_ms=300~fail=hang@4", "messages": user()}
            ) as s:
                async for ev in s:
                    if isinstance(ev, TextEvent):
                        last = trio.current_time()
        gap = trio.current_time() - last if last is not None else None
    assert info.value.kind == "timeout" and "idle" in info.value.message
    assert info.value.partial is not None and info.value.partial.text == expected_text(4)
    assert gap is not None and 1.0 <= gap <= 1.0 + 1 / 64 + 1e-6
