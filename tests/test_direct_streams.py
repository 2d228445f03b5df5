"""Streams their consumer's task drives itself (`ProviderActor.submit` with a free slot).

Over real sockets to the fake upstream, with the wall clock: the watchdog ends a read by
closing its socket, which only a real socket shows (virtual time would jump past a socket
that is about to answer). Deadlines are a few tenths of a second, bounds generous.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from conftest import config_for, user
from streamactors import ProviderError, TextEvent, open_service
from streamactors.testing import FakeUpstream, token_text


def expected_text(n: int) -> str:
    return "".join(token_text(i) for i in range(n))


def timeouts(**kw: float) -> dict[str, float]:
    return {"first_token": 5.0, "idle": 5.0, "total": 60.0, **kw}


async def test_a_stream_is_driven_by_its_consumer_and_a_full_provider_queues(fake: FakeUpstream, logs: Any) -> None:
    """With a free slot the leg is direct (no reply channel); at max_concurrency the next
    request waits for a worker and is served when a direct stream ends."""
    cfg = config_for(fake, max_concurrency=1)
    async with open_service(cfg, logger=logs.logger) as service:
        actor = service._actors["openai"]
        async with service.stream({"model": "openai/m~tokens=50~delay_ms=5", "messages": user()}) as first:
            await first.__anext__()
            leg = first._leg
            assert leg is not None and leg.recv is None and leg.pull is not None
            assert actor.in_flight == 1
            async with trio.open_nursery() as nursery:
                replies: list[str] = []

                async def second() -> None:
                    replies.append((await service.complete({"model": "openai/m~tokens=3", "messages": user()})).text)

                nursery.start_soon(second)
                await trio.sleep(0.3)
                assert replies == [] and actor.in_flight == 1  # never two at once
                texts = [e.text async for e in first if isinstance(e, TextEvent)]
            assert replies == [expected_text(3)]
        assert first.reply().text == expected_text(50)
        assert "".join(texts) == expected_text(50)[len(expected_text(1)) :]
        assert actor.in_flight == 0


async def test_a_stall_mid_stream_ends_with_an_idle_timeout(fake: FakeUpstream, logs: Any) -> None:
    cfg = config_for(fake, timeouts=timeouts(idle=0.3))
    async with open_service(cfg, logger=logs.logger) as service:
        t0 = trio.current_time()
        with trio.fail_after(5), pytest.raises(ProviderError) as info:
            await service.complete({"model": "openai/m~tokens=10~fail=hang@4", "messages": user()})
        took = trio.current_time() - t0
        assert service.health()["openai"]["in_flight"] == 0
    assert info.value.kind == "timeout" and "idle timeout" in info.value.message
    assert info.value.partial is not None and info.value.partial.text == expected_text(4)
    assert 0.3 <= took < 2.0
    ends = [r for r in logs.records() if r["event"] == "request_end"]
    assert [e["error_kind"] for e in ends] == ["timeout"]


async def test_a_slow_consumer_is_not_upstream_idleness(fake: FakeUpstream, logs: Any) -> None:
    """The consumer takes 0.4 s per event, the idle timeout is 0.2 s: the upstream is never
    idle while it is read, so the stream completes."""
    cfg = config_for(fake, timeouts=timeouts(idle=0.2))
    async with open_service(cfg, logger=logs.logger) as service:
        async with service.stream({"model": "openai/m~tokens=4", "messages": user()}) as events:
            async for _ in events:
                await trio.sleep(0.4)
        assert events.reply().text == expected_text(4)


async def test_the_total_timeout_ends_a_direct_stream(fake: FakeUpstream, logs: Any) -> None:
    cfg = config_for(fake, timeouts=timeouts(idle=1.0, total=0.5))
    async with open_service(cfg, logger=logs.logger) as service:
        t0 = trio.current_time()
        with trio.fail_after(5), pytest.raises(ProviderError) as info:
            await service.complete({"model": "openai/m~tokens=1000~delay_ms=20", "messages": user()})
        took = trio.current_time() - t0
    assert info.value.kind == "timeout" and "total timeout" in info.value.message
    assert info.value.partial is not None and info.value.partial.text
    assert 0.5 <= took < 2.0


async def test_a_pull_the_consumer_cancels_can_be_taken_up_again(fake: FakeUpstream, logs: Any) -> None:
    """A consumer that waits at most 30 ms for each event, and does something else when none
    came, still gets every token once, in order: a cancelled read has read nothing."""
    async with open_service(config_for(fake), logger=logs.logger) as service:
        async with service.stream({"model": "openai/m~tokens=8~delay_ms=100", "messages": user()}) as events:
            texts: list[str] = []
            timeouts_seen = 0
            while True:
                with trio.move_on_after(0.03) as waited:
                    try:
                        ev = await events.__anext__()
                    except StopAsyncIteration:
                        break
                    if isinstance(ev, TextEvent):
                        texts.append(ev.text)
                if waited.cancelled_caught:
                    timeouts_seen += 1
        assert "".join(texts) == expected_text(8)
        assert timeouts_seen > 5
        assert events.reply().finish_reason == "stop"


async def test_shutdown_ends_a_direct_stream_after_the_grace(fake: FakeUpstream, logs: Any) -> None:
    """A direct stream still going when the grace period is over ends with a connection error,
    as a worker-driven one does, and the service stops."""
    cfg = config_for(fake, service={"shutdown_grace": 0.3})
    with trio.fail_after(5):
        async with open_service(cfg, logger=logs.logger) as service:
            events_cm = service.stream({"model": "openai/m~tokens=100000~delay_ms=20", "messages": user()})
            events = await events_cm.__aenter__()
            await events.__anext__()
        with pytest.raises(ProviderError) as info:
            async for _ in events:
                pass
        await events_cm.__aexit__(None, None, None)
    assert info.value.kind == "connection"
    assert "provider actor stopped" in info.value.message
    assert info.value.partial is not None and info.value.partial.text.startswith(expected_text(1))


async def test_the_watchdog_lets_go_of_streams_that_ended(fake: FakeUpstream, logs: Any) -> None:
    """Each direct stream that waits on a read gets a watchdog entry until its deadline (30 s
    by default); the entries of streams that ended are sifted out once they are over half, so
    a steady flow of requests does not keep them, and what they hold, alive."""
    async with open_service(config_for(fake), logger=logs.logger) as service:
        actor = service._actors["openai"]
        for _ in range(150):
            reply = await service.complete({"model": "openai/m~tokens=3~delay_ms=2", "messages": user()})
            assert reply.text == expected_text(3)
            assert len(actor._watched) <= 65
        assert next(actor._watch_seq) > 100  # the streams did wait on reads, and were watched
        assert actor._watching == 0


async def test_a_malformed_event_after_good_ones_gives_the_connection_back(fake: FakeUpstream, logs: Any) -> None:
    """A read holding good events and then a malformed one, while the upstream keeps the
    connection open (the first read of the reply, so still before the first batch is handed
    out): the events come first, then the error, and the connection is closed and its pool slot
    freed. With one connection allowed, a leaked one would leave the next request waiting for it
    forever."""
    async with open_service(config_for(fake, max_concurrency=1), logger=logs.logger) as service:
        for _ in range(3):
            with trio.fail_after(5), pytest.raises(ProviderError) as info:
                await service.complete({"model": "openai/m~tokens=6~fail=garbage@3~hold=1", "messages": user()})
            assert info.value.kind == "protocol"
            assert info.value.partial is not None and info.value.partial.text == expected_text(3)
        assert (await service.complete({"model": "openai/m~tokens=2", "messages": user()})).text == expected_text(2)
