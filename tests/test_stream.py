"""`EventStream` itself, in virtual time over the mock upstream: events one at a time in
order, the same reply by iteration and by `drain()`, the partial reply on a failure, what
leaving early and a lost provider actor do, and `keep_text=False`. (Leg choice, fallback,
hedging and continuation, is `routing.Legs`'s, tested in test_routing.py.)"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import trio

from conftest import config_for, user
from mock_upstream import MockUpstream
from streamactors import FinishEvent, ProviderError, TextEvent, UsageEvent, open_service
from streamactors.testing import token_text


def serve(upstream: MockUpstream, logs: Any, **provider: Any) -> Any:
    return open_service(config_for(upstream, **provider), logger=logs.logger, transports=upstream.transports())


async def test_events_come_one_at_a_time_in_order(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    async with (
        serve(upstream, logs) as service,
        service.stream({"model": "openai/m~tokens=6~tokens_per_chunk=2", "messages": user()}) as events,
    ):
        seen = [ev async for ev in events]
        reply = events.reply()
    texts = [ev.text for ev in seen if isinstance(ev, TextEvent)]
    assert texts == ["t0 t1 ", "t2 t3 ", "t4 t5 "]
    assert isinstance(seen[-2], UsageEvent) and seen[-1] == FinishEvent("stop")
    assert reply.text == "t0 t1 t2 t3 t4 t5 " and reply.finish_reason == "stop" and reply.provider == "openai"
    assert reply.model == "m"  # as the upstream reported it


async def test_drain_folds_the_same_reply_as_iteration(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    request = {"model": "anthropic/m~tokens=40~reasoning=5~tool_calls=2", "messages": user()}
    async with serve(upstream, logs) as service:
        async with service.stream(request) as events:
            async for _ in events:
                pass
            iterated = events.reply()
        async with service.stream(request) as events:
            await events.__anext__()  # a stream part read one by one, then drained
            await events.drain()
            drained = events.reply()
        completed = await service.complete(request)
    assert iterated == drained == completed
    assert len(iterated.tool_calls) == 2 and iterated.reasoning


async def test_next_batch_hands_out_every_event_once_in_order(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """Batches as they arrived, after an event taken one by one; the same events and reply as
    iteration; then an empty list, again and again."""
    request = {"model": "anthropic/m~tokens=12~reasoning=3~tool_calls=1~tokens_per_chunk=3", "messages": user()}
    async with serve(upstream, logs) as service:
        async with service.stream(request) as events:
            iterated = [ev async for ev in events]
            expected = events.reply()
        async with service.stream(request) as events:
            batches = [[await events.__anext__()]]
            while batch := await events.next_batch():
                batches.append(batch)
            assert await events.next_batch() == [] and await events.next_batch() == []
            reply = events.reply()
    assert [ev for batch in batches for ev in batch] == iterated
    assert reply == expected
    assert all(batches) and len(batches) < len(iterated)
    assert [type(ev) for ev in batches[-1]][-2:] == [UsageEvent, FinishEvent]  # one read: one batch


async def test_next_batch_raises_with_the_partial_reply(upstream: MockUpstream, logs: Any, autojump_clock: Any) -> None:
    async with (
        serve(upstream, logs) as service,
        service.stream({"model": "openai/m~tokens=8~fail=midstream@3", "messages": user()}) as events,
    ):
        got = []
        with pytest.raises(ProviderError) as info:
            while batch := await events.next_batch():
                got += batch
    assert info.value.partial is not None and info.value.partial.text == "t0 t1 t2 "
    assert "".join(ev.text for ev in got if isinstance(ev, TextEvent)) == "t0 t1 t2 "


async def test_a_failure_mid_stream_raises_with_the_partial_reply(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    async with (
        serve(upstream, logs) as service,
        service.stream({"model": "openai/m~tokens=8~fail=midstream@3", "messages": user()}) as events,
    ):
        texts = []
        with pytest.raises(ProviderError) as info:
            async for ev in events:
                texts.append(ev)
        with pytest.raises(StopAsyncIteration):  # and the stream stays ended
            await events.__anext__()
    assert info.value.kind == "upstream"
    assert info.value.partial is not None and info.value.partial.text == "t0 t1 t2 "
    assert [ev.text for ev in texts if isinstance(ev, TextEvent)] == ["t0 ", "t1 ", "t2 "]


async def test_leaving_the_block_cancels_the_upstream_at_once(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    async with serve(upstream, logs) as service:
        async with service.stream({"model": "openai/m~tokens=1000~delay_ms=100", "messages": user()}) as events:
            await events.__anext__()
            left_at = trio.current_time()
        await trio.testing.wait_all_tasks_blocked()
        assert service.health()["openai"]["in_flight"] == 0
    assert upstream.responses_aborted == 1 and upstream.aborted_at[0] == left_at


async def test_keep_text_false_hands_out_text_but_does_not_keep_it(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    async with (
        serve(upstream, logs) as service,
        service.stream({"model": "openai/m~tokens=5", "messages": user()}, keep_text=False) as events,
    ):
        texts = [ev.text async for ev in events if isinstance(ev, TextEvent)]
        reply = events.reply()
    assert "".join(texts) == "".join(token_text(i) for i in range(5))
    assert reply.text == "" and reply.finish_reason == "stop" and reply.usage.output_tokens == 5


async def test_a_stream_whose_actor_goes_away_ends_with_a_connection_error(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """The service shuts down (grace 1 s) under a stream that would run for 100 s: when the
    grace is over the stream ends with kind "connection" and what it had, instead of waiting."""
    failures: list[tuple[float, ProviderError]] = []

    async def consume(service: Any, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with service.stream({"model": "openai/m~tokens=1000~delay_ms=100", "messages": user()}) as events:
                await events.__anext__()
                task_status.started()
                async for _ in events:
                    pass
        except ProviderError as exc:
            failures.append((trio.current_time(), exc))

    async with trio.open_nursery() as nursery, serve(upstream, logs, service={"shutdown_grace": 1.0}) as service:
        await nursery.start(consume, service)
        left_at = trio.current_time()
    [(ended_at, error)] = failures
    assert error.kind == "connection" and ended_at == pytest.approx(left_at + 1.0)
    assert error.partial is not None and error.partial.text.startswith("t0 ")


async def test_the_reply_holds_exactly_the_events_handed_out_so_far(fake: Any, logs: Any) -> None:
    """Events are folded into the reply a batch at a time, lazily: `reply()` read after any
    event, mid-batch included, holds that event and every one before it, and nothing after.
    (Real sockets: a read there holds many events, so most events are mid-batch.)"""
    async with (
        open_service(config_for(fake), logger=logs.logger) as service,
        service.stream({"model": "openai/m~tokens=400", "messages": user()}) as events,
    ):
        seen: list[str] = []
        count = 0
        async for ev in events:
            count += 1
            if isinstance(ev, TextEvent):
                seen.append(ev.text)
            reply = events.reply()
            assert reply.text == "".join(seen)
            assert (reply.finish_reason is not None) == isinstance(ev, FinishEvent)
        batched = await events.next_batch()
        assert batched == []
    assert "".join(seen) == "".join(token_text(i) for i in range(400))
    assert count > 400


async def test_events_handed_out_are_not_kept_alive_while_the_stream_waits(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """While the consumer waits for the next batch, nothing keeps the events it was handed
    (a suspended coroutine keeps its locals: the batch must not be one of them). With 1,000
    waiting streams, kept batches were thousands of live objects for the garbage collector."""
    request = {"model": "openai/m~tokens=6~tokens_per_chunk=2~delay_ms=100", "messages": user()}
    gc.disable()  # reference counting alone must free them
    try:
        async with serve(upstream, logs) as service, service.stream(request) as events:
            first = await events.__anext__()
            while not isinstance(first, TextEvent):
                first = await events.__anext__()
            handed = weakref.ref(first)
            del first
            waiting: list[bool] = []

            async def look() -> None:
                await trio.sleep(0.05)  # the consumer is in its wait for the next batch by now
                waiting.append(handed() is None)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(look)
                nxt = await events.__anext__()  # the first batch is used up: this waits
            assert isinstance(nxt, TextEvent) and nxt.text == "t2 t3 "
            assert waiting == [True]
    finally:
        gc.enable()
