"""`Worker`: the service in a background thread, used from threads and from asyncio loops.

These tests are plain functions (no trio test runner): the callers are threads and
`asyncio.run` loops, as in the programs the worker is for. The fake upstream runs in a trio
run of its own thread, on real sockets and the wall clock; every cross-thread wait here is
on an event or a result, except where a counter of another thread (the fake's, a stream's
`received`) is polled because nothing signals it, and the two waits that show that nothing
happens (the backpressure tests), which say so.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import trio

from conftest import LogCapture, config_for, user
from streamactors import (
    ChatRequest,
    Config,
    ConfigError,
    FinishEvent,
    Message,
    ProviderError,
    StreamEvent,
    TextEvent,
    UsageError,
    UsageEvent,
    Worker,
)
from streamactors.supervision.supervisor import SupervisorGaveUp
from streamactors.testing import FakeUpstream, token_text

PROVIDERS = ["openai", "anthropic"]
WINDOW = 64


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    """A fake upstream on 127.0.0.1, served by `trio.run` in a thread of its own."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            box["fake"] = await nursery.start(FakeUpstream().serve)
            box["token"] = trio.lowlevel.current_trio_token()
            box["scope"] = nursery.cancel_scope
            started.set()

    thread = threading.Thread(target=trio.run, args=(serve,), name="fake-upstream")
    thread.start()
    started.wait()
    yield box["fake"]
    box["token"].run_sync_soon(box["scope"].cancel)
    thread.join()


def config(fake: FakeUpstream, **service: Any) -> Config:
    """A config for openai and anthropic against `fake`, with these `[service]` settings."""
    return config_for(fake, service or None)


def expected_text(n: int) -> str:
    return "".join(token_text(i) for i in range(n))


def expected_events(n: int) -> list[StreamEvent]:
    """What the fake upstream's n-token reply is, event by event."""
    return [*(TextEvent(token_text(i)) for i in range(n)), UsageEvent(10, n), FinishEvent("stop")]


def text_of(events: list[StreamEvent]) -> str:
    return "".join(ev.text for ev in events if isinstance(ev, TextEvent))


def wait_until(predicate: Callable[[], bool], within: float = 2.0) -> float:
    """Poll state of another thread that offers no event to wait on (the fake's counters);
    return `time.monotonic()` once it holds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        time.sleep(0.001)
    return time.monotonic()


async def await_until(predicate: Callable[[], bool], within: float = 2.0) -> float:
    """`wait_until` for an asyncio loop, which it does not block."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.001)
    return time.monotonic()


def settled(read: Callable[[], int], quiet: float = 0.3, within: float = 5.0) -> int:
    """The value of a counter once it has not moved for `quiet` seconds (wall clock: what is
    shown is that something stops happening)."""
    deadline = time.monotonic() + within
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"still moving after {within} s")
        time.sleep(0.01)
        if (now := read()) != value:
            value, since = now, time.monotonic()
    return value


# --- requests from threads and loops -----------------------------------------------------------


def test_complete_and_stream_from_several_threads(fake: FakeUpstream, logs: LogCapture) -> None:
    """Eight threads at once, each a `complete()` and a `stream()` of its own length over both
    providers: every reply and every event sequence exact."""
    start = threading.Barrier(8)

    def one(i: int) -> tuple[Any, list[StreamEvent]]:
        provider = PROVIDERS[i % 2]
        start.wait()
        reply = worker.complete({"model": f"{provider}/m~tokens={i + 3}~delay_ms=2", "messages": user()})
        events = list(worker.stream({"model": f"{provider}/m~tokens={i + 20}~delay_ms=2", "messages": user()}))
        return reply, events

    with Worker(config(fake), logger=logs.logger) as worker, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    for i, (reply, events) in enumerate(results):
        assert (reply.text, reply.finish_reason, reply.provider) == (expected_text(i + 3), "stop", PROVIDERS[i % 2])
        assert reply.usage.output_tokens == i + 3
        assert events == expected_events(i + 20)
    assert fake.responses_completed == 16


def test_a_chat_request_object_and_keep_text(fake: FakeUpstream, logs: LogCapture) -> None:
    """A `ChatRequest` works as a dict does; `keep_text=False` changes nothing the caller sees."""
    request = ChatRequest(model="anthropic/m~tokens=6", messages=[Message("user", "hi")])
    with Worker(config(fake), logger=logs.logger) as worker:
        assert worker.complete(request).text == expected_text(6)
        assert list(worker.stream(request, keep_text=False)) == expected_events(6)


def test_acomplete_and_astream_under_asyncio_run(fake: FakeUpstream, logs: LogCapture) -> None:
    """Four `acomplete` and four `astream` at once in one loop: all exact."""

    async def collect(model: str) -> list[StreamEvent]:
        return [ev async for ev in worker.astream({"model": model, "messages": user()})]

    async def main() -> tuple[list[Any], list[list[StreamEvent]]]:
        replies = [
            worker.acomplete({"model": f"openai/m~tokens={i + 1}~delay_ms=2", "messages": user()}) for i in range(4)
        ]
        streams = [collect(f"anthropic/m~tokens={i + 10}~delay_ms=2") for i in range(4)]
        return list(await asyncio.gather(*replies)), list(await asyncio.gather(*streams))

    with Worker(config(fake), logger=logs.logger) as worker:
        replies, streams = asyncio.run(main())
    assert [r.text for r in replies] == [expected_text(i + 1) for i in range(4)]
    assert streams == [expected_events(i + 10) for i in range(4)]


def test_two_asyncio_loops_in_two_threads(fake: FakeUpstream, logs: LogCapture) -> None:
    """Two loops in two threads stream from one worker at the same time (each has its first
    event before either goes on), then each completes a request: all exact."""
    both_open = threading.Barrier(2)

    async def main(k: int) -> tuple[list[StreamEvent], str]:
        request = {"model": f"{PROVIDERS[k]}/m~tokens={30 + k}~delay_ms=5", "messages": user()}
        async with worker.astream(request) as events:
            first = await events.__anext__()
            await asyncio.to_thread(both_open.wait, 5)
            rest = [ev async for ev in events]
        reply = await worker.acomplete({"model": f"openai/m~tokens={k + 2}", "messages": user()})
        return [first, *rest], reply.text

    with Worker(config(fake), logger=logs.logger) as worker, ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda k: asyncio.run(main(k)), range(2)))
    assert results == [(expected_events(30), expected_text(2)), (expected_events(31), expected_text(3))]


def test_async_with_starts_and_stops_without_blocking_the_loop(fake: FakeUpstream, logs: LogCapture) -> None:
    """`async with Worker(cfg)` starts and stops in a helper thread: a task of the same loop
    keeps running meanwhile, and a stream of that loop drains during the stop."""

    async def main() -> tuple[list[StreamEvent], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(tick())
        async with Worker(config(fake), logger=logs.logger) as worker:
            events = worker.astream({"model": "openai/m~tokens=20~delay_ms=10", "messages": user()})
            first = await events.__anext__()
            # The stop waits for the stream; this loop reads it meanwhile.
            rest = asyncio.create_task(collect(events))
        ticker.cancel()
        return [first, *await rest], ticks

    async def collect(events: Any) -> list[StreamEvent]:
        return [ev async for ev in events]

    events, ticks = asyncio.run(main())
    assert events == expected_events(20)
    assert ticks > 10  # the loop ran during the ~0.2 s the stream and the stop took


# --- backpressure ----------------------------------------------------------------------------


def test_a_thread_that_does_not_read_stops_the_upstream_read(fake: FakeUpstream, logs: LogCapture) -> None:
    """A consumer thread that reads one event and waits: the worker takes at most a window of
    events more, and the fake upstream stops sending (TCP flow control: it blocks on a full
    socket). Reading on then gets every event, exact, never more than the window ahead.
    Wall clock: what is shown is that the upstream stops and stays stopped."""
    total = 100_000
    with Worker(config(fake), logger=logs.logger, window=WINDOW) as worker:
        events = worker.stream({"model": f"openai/m~tokens={total}", "messages": user()})
        assert next(events) == TextEvent(token_text(0))
        wait_until(lambda: events.received >= WINDOW)
        sent = settled(lambda: fake.chunks_sent)
        assert events.received in (WINDOW, WINDOW + 1)  # the window full, the first event taken or not yet
        assert sent < total // 2, f"the fake sent {sent} of {total} events to a consumer that reads none"
        read, ahead = 1, 0
        for i, ev in enumerate(events, 1):
            read += 1
            ahead = max(ahead, events.received - read)
            if i < total:
                assert ev == TextEvent(token_text(i))
        assert read == total + 2 and ev == FinishEvent("stop")
    assert ahead <= WINDOW
    assert fake.responses_completed == 1


def test_an_asyncio_consumer_that_does_not_read_stops_the_upstream_read(fake: FakeUpstream, logs: LogCapture) -> None:
    """The same with an asyncio consumer that sleeps instead of reading (its loop is free).
    Wall clock: what is shown is that the upstream stops and stays stopped."""
    total = 100_000

    async def main() -> tuple[int, int, int, int]:
        events = worker.astream({"model": f"openai/m~tokens={total}", "messages": user()})
        assert await events.__anext__() == TextEvent(token_text(0))
        await await_until(lambda: events.received >= WINDOW)
        sent = await asyncio.to_thread(settled, lambda: fake.chunks_sent)
        received = events.received
        read, ahead, texts = 1, 0, 1
        async for ev in events:
            read += 1
            ahead = max(ahead, events.received - read)
            if isinstance(ev, TextEvent):
                assert ev.text == token_text(texts)
                texts += 1
        return sent, received, read, ahead

    with Worker(config(fake), logger=logs.logger, window=WINDOW) as worker:
        sent, received, read, ahead = asyncio.run(main())
    assert sent < total // 2, f"the fake sent {sent} of {total} events to a consumer that reads none"
    assert received in (WINDOW, WINDOW + 1)
    assert read == total + 2 and ahead <= WINDOW
    assert fake.responses_completed == 1


# --- cancellation ----------------------------------------------------------------------------

LONG = {"model": "openai/m~tokens=100000~delay_ms=20", "messages": user()}


def test_break_out_of_stream_closes_the_upstream_within_100ms(fake: FakeUpstream, logs: LogCapture) -> None:
    """Real sockets, wall clock: what is measured is the upstream seeing the connection close."""
    with Worker(config(fake), logger=logs.logger) as worker:
        for ev in worker.stream(LONG):
            assert ev == TextEvent(token_text(0))
            t0 = time.monotonic()
            break
        closed_at = wait_until(lambda: fake.responses_aborted == 1)
        assert closed_at - t0 < 0.1
        # The same through close() on a stream still referenced, and a `with` block.
        events = worker.stream(LONG)
        next(events)
        t0 = time.monotonic()
        events.close()
        assert wait_until(lambda: fake.responses_aborted == 2) - t0 < 0.1
        assert list(events) == []  # a closed stream hands out nothing more
        with worker.stream(LONG) as events:
            next(events)
            t0 = time.monotonic()
        assert wait_until(lambda: fake.responses_aborted == 3) - t0 < 0.1
    assert fake.responses_completed == 0


def test_cancelling_the_asyncio_task_closes_the_upstream_within_100ms(fake: FakeUpstream, logs: LogCapture) -> None:
    """A task cancelled while it waits for the next event (its stream still referenced), one
    cancelled in its loop body (the stream dropped as the loop unwinds, or left by its `async
    with` block), and one awaiting `acomplete`: each upstream connection closes within 100 ms.
    Real sockets, wall clock: what is measured is the upstream seeing the connection close."""
    kept: list[Any] = []

    async def cancel_after_first_event(where: str) -> float:
        first = asyncio.Event()

        async def consume() -> None:
            if where == "waiting":
                events = worker.astream(LONG)
                kept.append(events)  # not collected: only the cancelled wait can close it
                async for _ in events:
                    first.set()
            elif where == "body":
                async for _ in worker.astream(LONG):
                    first.set()
                    await asyncio.sleep(10)
            else:
                async with worker.astream(LONG) as events:
                    kept.append(events)
                    async for _ in events:
                        first.set()
                        await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await first.wait()
        aborted = fake.responses_aborted
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await await_until(lambda: fake.responses_aborted == aborted + 1) - t0

    async def cancel_acomplete() -> float:
        task = asyncio.create_task(worker.acomplete(LONG))
        started = fake.responses_started
        await await_until(lambda: fake.responses_started == started + 1)
        await asyncio.sleep(0.05)  # some tokens in (the point is the request is mid-stream)
        aborted = fake.responses_aborted
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await await_until(lambda: fake.responses_aborted == aborted + 1) - t0

    async def main() -> list[float]:
        return [
            await cancel_after_first_event("waiting"),
            await cancel_after_first_event("body"),
            await cancel_after_first_event("with"),
            await cancel_acomplete(),
        ]

    with Worker(config(fake), logger=logs.logger) as worker:
        delays = asyncio.run(main())
    assert all(d < 0.1 for d in delays), delays
    assert fake.responses_completed == 0


def test_a_consumer_thread_that_ends_without_closing_its_stream(fake: FakeUpstream, logs: LogCapture) -> None:
    """A thread reads one event and ends, its stream kept alive elsewhere (so never collected):
    once the window is full, the worker sees the reader gone and cancels the upstream. Whoever
    reads the stream later gets the window, then a ProviderError whose partial reply is
    exactly what was handed out (the window, and the rest of the batch it was cut in)."""
    kept: list[Any] = []
    with Worker(config(fake), logger=logs.logger, window=WINDOW) as worker:

        def reader() -> None:
            events = worker.stream({"model": "openai/m~tokens=100000", "messages": user()})
            next(events)
            kept.append(events)

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join()
        t0 = time.monotonic()
        assert wait_until(lambda: fake.responses_aborted == 1) - t0 < 0.5
        rest: list[StreamEvent] = []
        with pytest.raises(ProviderError) as info:
            for ev in kept[0]:
                rest.append(ev)
    err = info.value
    assert err.kind == "connection" and "reading this stream ended" in err.message
    assert rest == [TextEvent(token_text(i)) for i in range(1, len(rest) + 1)]
    assert len(rest) >= WINDOW - 1
    assert err.partial is not None and err.partial.text == expected_text(len(rest) + 1)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_errors_arrive_as_themselves_with_the_partial_reply(
    provider: str, fake: FakeUpstream, logs: LogCapture
) -> None:
    """A mid-stream failure, an HTTP error and an unknown provider, through each of the four
    calls: the same `ProviderError` (kind, partial text) or `UsageError` the service raises."""
    midstream = {"model": f"{provider}/m~tokens=30~fail=midstream@12", "messages": user()}
    status = {"model": f"{provider}/m~fail=status:429", "messages": user()}
    unknown = {"model": "opnai/gpt-4o", "messages": user()}

    async def main() -> tuple[list[StreamEvent], ProviderError, ProviderError, UsageError]:
        seen: list[StreamEvent] = []
        with pytest.raises(ProviderError) as streamed:
            async for ev in worker.astream(midstream):
                seen.append(ev)
        with pytest.raises(ProviderError) as completed:
            await worker.acomplete(status)
        with pytest.raises(UsageError) as usage:
            await worker.acomplete(unknown)
        return seen, streamed.value, completed.value, usage.value

    with Worker(config(fake), logger=logs.logger) as worker:
        seen: list[StreamEvent] = []
        with pytest.raises(ProviderError) as info:
            for ev in worker.stream(midstream):
                seen.append(ev)
        streamed = info.value
        with pytest.raises(ProviderError) as info:
            worker.complete(midstream)
        completed = info.value
        with pytest.raises(ProviderError) as info:
            worker.complete(status)
        refused = info.value
        with pytest.raises(UsageError, match="did you mean 'openai'"):
            list(worker.stream(unknown))
        with pytest.raises(UsageError, match="did you mean 'openai'"):
            worker.complete(unknown)
        aseen, astreamed, arefused, ausage = asyncio.run(main())
    for err in (streamed, completed, astreamed):
        assert (err.kind, err.provider) == ("upstream", provider)
        assert err.partial is not None and err.partial.text == expected_text(12)
    assert seen == aseen == [TextEvent(token_text(i)) for i in range(12)]
    for err in (refused, arefused):
        assert (err.kind, err.status, err.retryable) == ("http_status", 429, True)
        assert err.partial is not None and err.partial.text == ""
    assert "did you mean 'openai'" in str(ausage)


def test_a_bad_request_is_refused_at_the_call(fake: FakeUpstream, logs: LogCapture) -> None:
    """A malformed request is a `UsageError` from the call itself, in the caller's thread,
    and nothing is sent."""
    bad = {"model": "openai/gpt-4o", "messages": user(), "max_token": 3}
    with Worker(config(fake), logger=logs.logger) as worker:
        with pytest.raises(UsageError, match="unknown field 'max_token'"):
            worker.stream(bad)
        with pytest.raises(UsageError, match="unknown field 'max_token'"):
            worker.astream(bad)
        with pytest.raises(UsageError, match="unknown field 'max_token'"):
            worker.complete(bad)
        with pytest.raises(UsageError, match="unknown field 'max_token'"):
            asyncio.run(worker.acomplete(bad))
        with pytest.raises(UsageError, match="must be a ChatRequest or a dict, got int"):
            worker.complete(42)  # type: ignore[arg-type]
    assert len(fake.requests) == 0


# --- lifecycle -------------------------------------------------------------------------------


def test_stop_lets_an_in_flight_stream_finish(fake: FakeUpstream, logs: LogCapture) -> None:
    """`stop()` while a thread reads a 0.4 s stream: new requests are refused at once, the
    stream ends complete, and `stop()` returns without waiting out the 5 s grace."""
    worker = Worker(config(fake, shutdown_grace=5.0), logger=logs.logger)
    worker.start()
    first = threading.Event()

    def read() -> list[StreamEvent]:
        events = worker.stream({"model": "anthropic/m~tokens=40~delay_ms=10", "messages": user()})
        got = [next(events)]
        first.set()
        return got + list(events)

    with ThreadPoolExecutor(2) as pool:
        reading = pool.submit(read)
        first.wait()
        t0 = time.monotonic()
        stopping = pool.submit(worker.stop)
        wait_until(lambda: not worker.running)
        with pytest.raises(UsageError, match="is stopping: it takes no new requests"):
            worker.complete({"model": "openai/m", "messages": user()})
        stopping.result()
        took = time.monotonic() - t0
        events = reading.result()
    assert events == expected_events(40)
    assert took < 2.0
    assert (fake.responses_completed, fake.responses_aborted) == (1, 0)
    with pytest.raises(UsageError, match="is stopped: a Worker runs once"):
        worker.stream({"model": "openai/m", "messages": user()})


def test_stop_cuts_a_stream_that_outlives_the_grace(fake: FakeUpstream, logs: LogCapture) -> None:
    """A stream still running when `shutdown_grace` (0.3 s) is over is cancelled: `stop()`
    returns after the grace, the reader gets a ProviderError whose partial reply is exactly
    what it read, and the upstream connection is closed. Wall clock: the grace is the point."""
    worker = Worker(config(fake, shutdown_grace=0.3), logger=logs.logger)
    worker.start()
    first = threading.Event()
    seen: list[StreamEvent] = []

    def read() -> ProviderError:
        with pytest.raises(ProviderError) as info:
            for ev in worker.stream({"model": "openai/m~tokens=100000~delay_ms=5", "messages": user()}):
                seen.append(ev)
                first.set()
        return info.value

    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read)
        first.wait()
        t0 = time.monotonic()
        worker.stop()
        took = time.monotonic() - t0
        err = reading.result()
    assert 0.3 <= took < 1.0
    assert err.kind == "connection" and "shutdown_grace = 0.3 s" in err.message
    assert err.partial is not None and err.partial.text == text_of(seen)
    assert seen == [TextEvent(token_text(i)) for i in range(len(seen))]
    wait_until(lambda: fake.responses_aborted == 1)


def test_stop_from_inside_a_stream(fake: FakeUpstream, logs: LogCapture) -> None:
    """The reading thread itself calls `stop()`: no deadlock. The stream waits for its reader
    through the grace (0.3 s), is then cancelled, and the reader, reading on, gets the window
    and a ProviderError whose partial reply is everything it was handed."""
    worker = Worker(config(fake, shutdown_grace=0.3), logger=logs.logger, window=WINDOW)
    worker.start()
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderError) as info:
        for ev in worker.stream({"model": "openai/m~tokens=100000", "messages": user()}):
            if not seen:
                t0 = time.monotonic()
                worker.stop()
                took = time.monotonic() - t0
            seen.append(ev)
    assert 0.3 <= took < 1.0
    assert info.value.kind == "connection"
    assert info.value.partial is not None and info.value.partial.text == text_of(seen)
    assert seen == [TextEvent(token_text(i)) for i in range(len(seen))]
    assert len(seen) > WINDOW  # the window, and the batch it was cut in


class CrashingLogger:
    """A logger that raises when a provider actor logs the end of a request whose model starts
    with "crash": a bug of the actor itself (it crashes; its supervisor restarts it)."""

    def __init__(self, inner: Any, context: dict[str, Any] | None = None) -> None:
        self._inner = inner
        self._context = context or {}

    def bind(self, **kw: Any) -> CrashingLogger:
        return CrashingLogger(self._inner.bind(**kw), {**self._context, **kw})

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)

        def log(event: str, **kw: Any) -> Any:
            model = kw.get("model", self._context.get("model", ""))
            if event == "request_end" and str(model).startswith("crash"):
                raise RuntimeError("bug in the actor's bookkeeping")
            return method(event, **kw)

        return log


def test_a_failing_service_ends_its_streams_and_stop_raises(fake: FakeUpstream, logs: LogCapture) -> None:
    """The openai actor crashes twice and its supervisor gives up (max_restarts = 1): the
    service fails. A stream of the other provider, waiting on its full window, ends with a
    ProviderError whose partial reply is everything it hands out; later calls are UsageErrors
    naming the failure, and `stop()` raises it.

    That stream's error is the worker's ("internal": the service failed) if the service's
    failure reaches its relay first, or its provider's ("connection": the provider actor
    stopped) if the supervisor, stopping every actor before it gives up, ends the stream
    first: the stream's own task reads it (a direct stream), so nothing was queued for it."""
    worker = Worker(config(fake, max_restarts=1), logger=CrashingLogger(logs.logger), window=WINDOW)
    worker.start()
    events = worker.stream({"model": "anthropic/m~tokens=100000", "messages": user()})
    seen = [next(events)]
    wait_until(lambda: events.received >= WINDOW)
    for _ in range(2):  # each is served, then the actor crashes
        assert worker.complete({"model": "openai/crash~tokens=2", "messages": user()}).text == "t0 t1 "
    with pytest.raises(ProviderError) as info:
        for ev in events:
            seen.append(ev)
    err = info.value
    assert (err.kind, err.retryable, err.message) in (
        ("internal", False, "the worker's service failed (stop() raises its error)"),
        (
            "connection",
            True,
            "the provider actor stopped before the stream finished (it crashed or the service shut down)",
        ),
    )
    assert err.partial is not None and err.partial.text == text_of(seen)
    assert seen == [TextEvent(token_text(i)) for i in range(len(seen))]
    wait_until(lambda: not worker.running and "streamactors-worker" not in [t.name for t in threading.enumerate()])
    with pytest.raises(UsageError, match=r"its service failed \(SupervisorGaveUp: child 'provider:openai'"):
        worker.complete({"model": "anthropic/m", "messages": user()})
    with pytest.raises(SupervisorGaveUp):
        worker.stop()
    worker.stop()  # raised once


def test_lifecycle_errors(fake: FakeUpstream, logs: LogCapture) -> None:
    """Requests before `start()` or after `stop()`, a second `start()`, `stop()` without
    `start()` or twice: clear errors, or nothing."""
    worker = Worker(config(fake), logger=logs.logger)
    worker.stop()  # never started: nothing to do
    assert not worker.running
    with pytest.raises(UsageError, match=r"not started: call worker.start\(\) first"):
        worker.complete({"model": "openai/m", "messages": user()})
    with pytest.raises(UsageError, match="not started"):
        asyncio.run(worker.acomplete({"model": "openai/m", "messages": user()}))
    with worker:
        assert worker.running
        with pytest.raises(UsageError, match="the worker is running; a Worker starts once"):
            worker.start()
        assert worker.complete({"model": "openai/m~tokens=2", "messages": user()}).text == "t0 t1 "
    assert not worker.running
    assert "streamactors-worker" not in [t.name for t in threading.enumerate()]
    worker.stop()  # twice: nothing to do
    with pytest.raises(UsageError, match="is stopped"):
        worker.astream({"model": "openai/m", "messages": user()})
    with pytest.raises(UsageError, match="the worker is stopped; a Worker starts once"):
        worker.start()
    with pytest.raises(UsageError, match="window must hold at least 1 event"):
        Worker(config(fake), window=0)


def test_a_startup_error_is_raised_by_start(logs: LogCapture) -> None:
    """A provider whose configuration the service rejects: `start()` raises the ConfigError in
    the caller's thread, and no thread is left behind."""
    cfg = Config.from_dict({"providers": {"g": {"kind": "gemini"}}})
    with pytest.raises(ConfigError, match=r"providers\.g\.api_key: required"):
        Worker(cfg, logger=logs.logger).start()
    with pytest.raises(ConfigError, match=r"providers\.g\.api_key: required"), Worker(cfg, logger=logs.logger):
        pass
    assert "streamactors-worker" not in [t.name for t in threading.enumerate()]
