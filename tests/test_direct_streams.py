"""Streams their consumer's task drives itself (`ProviderActor.submit` with a free slot).

Over real sockets to the fake upstream, with the wall clock: the watchdog ends a read by
closing its socket, which only a real socket shows (virtual time would jump past a socket
that is about to answer). Deadlines are a few tenths of a second, bounds generous.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from conftest import config_for, user
from streamactors import ProviderError, TextEvent, open_service
from streamactors.testing import FakeUpstream, token_text
from streamactors.testing.server import read_raw_request


def expected_text(n: int) -> str:
    return "".join(token_text(i) for i in range(n))


def timeouts(**kw: float) -> dict[str, float]:
    return {"first_token": 5.0, "idle": 5.0, "total": 60.0, **kw}


async def failing(service: Any, model: str, *, within: float) -> tuple[ProviderError, float]:
    """The error `complete()` of `model` ends with (within `within` seconds), and how long it took."""
    t0 = trio.current_time()
    with trio.fail_after(within), pytest.raises(ProviderError) as info:
        await service.complete({"model": model, "messages": user()})
    return info.value, trio.current_time() - t0


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
        error, took = await failing(service, "openai/m~tokens=10~fail=hang@4", within=5)
        assert service.health()["openai"]["in_flight"] == 0
    assert error.kind == "timeout" and "idle timeout" in error.message
    assert error.partial is not None and error.partial.text == expected_text(4)
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
        error, took = await failing(service, "openai/m~tokens=1000~delay_ms=20", within=5)
    assert error.kind == "timeout" and "total timeout" in error.message
    assert error.partial is not None and error.partial.text
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


# --- the first phase on a kept-alive connection: no cancel scope, the watchdog's deadline ---


async def shut_down_under(
    cfg: Any, logs: Any, warm: Callable[[Any], Awaitable[Any]], model: str
) -> list[ProviderError]:
    """Open the service, `warm` it (a connection is then kept alive), complete `model` in
    another task and stop the service 0.1 s later: the errors that request ended with."""
    errors: list[ProviderError] = []
    with trio.fail_after(3):
        async with trio.open_nursery() as nursery, open_service(cfg, logger=logs.logger) as service:
            await warm(service)

            async def waiting() -> None:
                try:
                    await service.complete({"model": model, "messages": user()})
                except ProviderError as exc:
                    errors.append(exc)

            nursery.start_soon(waiting)
            await trio.sleep(0.1)
    return errors


async def _kept_alive(service: Any) -> Any:
    """After one request, the provider's pool holds one idle connection (returned: its pool)."""
    assert (await service.complete({"model": "openai/m~tokens=2", "messages": user()})).text == expected_text(2)
    pool = service._actors["openai"]._client.transport.pool
    assert pool.idle_connections == 1 and pool.connections_opened == 1
    return pool


async def test_a_first_token_timeout_on_a_kept_alive_connection(fake: FakeUpstream, logs: Any) -> None:
    """The attempt waits on the kept-alive connection's socket with no cancel scope: the
    watchdog closes that socket at the first-token deadline, and the attempt ends with the
    first-token timeout (retried, as a timeout is), not a connection error."""
    cfg = config_for(fake, timeouts=timeouts(first_token=0.3), max_retries=1)
    async with open_service(cfg, logger=logs.logger) as service:
        pool = await _kept_alive(service)
        error, took = await failing(service, "openai/m~tokens=3~ttft_ms=3000", within=4)
        assert pool.connections_opened == 2  # the kept-alive one, then the retry's new one
        assert pool.open_connections == 0  # both closed, neither reused
    assert error.kind == "timeout" and "first_token timeout" in error.message
    assert error.retryable
    assert 0.6 <= took < 3.0  # two attempts of 0.3 s and the backoff between them
    retries = [r for r in logs.records() if r["event"] == "retry"]
    assert [r["error_kind"] for r in retries] == ["timeout"]


async def test_the_total_timeout_in_the_first_phase_on_a_kept_alive_connection(fake: FakeUpstream, logs: Any) -> None:
    cfg = config_for(fake, timeouts=timeouts(first_token=5.0, total=0.4))
    async with open_service(cfg, logger=logs.logger) as service:
        await _kept_alive(service)
        error, took = await failing(service, "openai/m~tokens=3~ttft_ms=3000", within=4)
    assert error.kind == "timeout" and "total timeout" in error.message
    assert 0.4 <= took < 2.0


async def test_the_idle_deadline_after_a_first_phase_on_a_kept_alive_connection_is_not_late(
    fake: FakeUpstream, logs: Any
) -> None:
    """The first-token deadline is 5 s and the idle one 0.3 s: once events come, the stall
    after them ends at the idle deadline, not at the first phase's."""
    cfg = config_for(fake, timeouts=timeouts(first_token=5.0, idle=0.3))
    async with open_service(cfg, logger=logs.logger) as service:
        await _kept_alive(service)
        error, took = await failing(service, "openai/m~tokens=10~delay_ms=20~fail=hang@3", within=3)
        assert service.health()["openai"]["in_flight"] == 0
    assert error.kind == "timeout" and "idle timeout" in error.message
    assert error.partial is not None and error.partial.text == expected_text(3)
    assert 0.3 <= took < 2.0


async def test_shutdown_ends_a_first_phase_on_a_kept_alive_connection(fake: FakeUpstream, logs: Any) -> None:
    """The actor stopping under an attempt that waits with no cancel scope closes its socket
    (the job's cancel handle): the request ends with a connection error, soon."""
    cfg = config_for(fake, service={"shutdown_grace": 0.3})
    errors = await shut_down_under(cfg, logs, _kept_alive, "openai/m~tokens=3~ttft_ms=60000")
    assert [e.kind for e in errors] == ["connection"]
    assert "provider actor stopped" in errors[0].message


_CHUNK = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[%s]}'
_REPLY = (
    "".join(
        f"data: {_CHUNK % choice}\n\n"
        for choice in (
            '{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}',
            '{"index":0,"delta":{},"finish_reason":"stop"}',
        )
    ).encode()
    + b"data: [DONE]\n\n"
)


class AnswersOnce:
    """Loopback HTTP/1.1 that answers the first request of each connection (a short OpenAI
    stream, kept alive) and never answers the next: a wait for a response head."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests = 0

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1"))
        self.base_url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"

    async def _handle(self, stream: trio.SocketStream) -> None:
        buf = b""
        answered = False
        async with stream:
            while (request := await read_raw_request(stream, buf)) is not None:
                buf = request[2]
                self.requests += 1
                if not answered:
                    answered = True
                    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n"
                    await stream.send_all(head % len(_REPLY) + _REPLY)


async def _answered(service: Any) -> None:
    assert (await service.complete({"model": "openai/m", "messages": user()})).text == "hi"


@pytest.fixture
async def answers_once(nursery: trio.Nursery) -> AnswersOnce:
    server = AnswersOnce()
    await server.serve(nursery)
    return server


async def test_a_first_token_timeout_while_waiting_for_the_head_on_a_kept_alive_connection(
    answers_once: AnswersOnce, logs: Any
) -> None:
    """No response head comes on the kept-alive connection: the watchdog closes it at the
    first-token deadline (the attempt has no cancel scope, and no body to abort yet)."""
    cfg = config_for(answers_once, timeouts=timeouts(first_token=0.3))  # type: ignore[arg-type]
    async with open_service(cfg, logger=logs.logger) as service:
        await _answered(service)
        error, took = await failing(service, "openai/m", within=3)
        pool = service._actors["openai"]._client.transport.pool
        assert pool.connections_opened == 1 and pool.open_connections == 0
    assert answers_once.requests == 2
    assert error.kind == "timeout" and "first_token timeout" in error.message
    assert 0.3 <= took < 2.0


async def test_shutdown_while_waiting_for_the_head_on_a_kept_alive_connection(
    answers_once: AnswersOnce, logs: Any
) -> None:
    """The actor stopping closes the socket through the job's cancel handle."""
    cfg = config_for(answers_once, service={"shutdown_grace": 0.3})  # type: ignore[arg-type]
    errors = await shut_down_under(cfg, logs, _answered, "openai/m")
    assert answers_once.requests == 2
    assert [e.kind for e in errors] == ["connection"]
    assert "provider actor stopped" in errors[0].message


async def test_closing_a_stream_from_another_task_while_it_waits_for_the_head(
    answers_once: AnswersOnce, logs: Any
) -> None:
    """Another task closes the stream while its consumer waits on the kept-alive connection:
    the job's cancel handle closes the socket, and the consumer's wait ends at once."""
    cfg = config_for(answers_once)  # type: ignore[arg-type]
    async with open_service(cfg, logger=logs.logger) as service:
        await _answered(service)
        outcomes: list[str] = []
        with trio.fail_after(3):
            async with service.stream({"model": "openai/m", "messages": user()}) as events:

                async def consume() -> None:
                    try:
                        async for _ in events:
                            outcomes.append("event")
                        outcomes.append("end")
                    except ProviderError as exc:
                        outcomes.append(exc.kind)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(consume)
                    await trio.sleep(0.1)
                    assert outcomes == []  # still waiting for the head
                    events.close()
        assert outcomes == ["end"]
        pool = service._actors["openai"]._client.transport.pool
        assert pool.open_connections == 0 and service.health()["openai"]["in_flight"] == 0


async def test_a_stream_keeps_one_watchdog_entry_after_its_first_phase(fake: FakeUpstream, logs: Any) -> None:
    """A first phase longer than the idle timeout: its entry, checked at the idle deadline,
    is put back at the first-token deadline (1 s), then superseded by an earlier idle one
    once events come (at 0.4 s); when it comes due it is dropped, not checked and put back."""
    cfg = config_for(fake, timeouts=timeouts(first_token=1.0, idle=0.3))
    async with open_service(cfg, logger=logs.logger) as service:
        await _kept_alive(service)
        actor = service._actors["openai"]
        request = {"model": "openai/m~tokens=60~ttft_ms=400~delay_ms=20", "messages": user()}
        async with service.stream(request) as events:
            texts = []
            async for ev in events:
                if isinstance(ev, TextEvent):
                    texts.append(ev.text)
                if len(texts) == 45:  # 1.3 s in: past the first phase's deadline
                    pull = events._leg.pull
                    assert [entry[0] for entry in actor._watched if entry[2] is pull] == [pull.watch_due]
        assert "".join(texts) == expected_text(60)
