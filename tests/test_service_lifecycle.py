"""Supervised restarts, clean shutdown, the submission channel and the request logs.

A bug or crash mid-stream, the restart and the concurrency limit run in virtual time
(`autojump_clock`) against the socketless `upstream`. The rest use the fake upstream over
real sockets on the wall clock: the two that watch the upstream's connections close must,
and the others time nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from conftest import ANTHROPIC_KEY, OPENAI_KEY, config_for, eventually, user
from mock_upstream import MockUpstream
from streamactors import ErrorEvent, FinishEvent, ProviderError, open_service
from streamactors.models import StreamEvent
from streamactors.wire.openai import OpenAICodec, OpenAIStreamDecoder


class BuggyDecoder(OpenAIStreamDecoder):
    """A decoder with a bug that fires on the third event (not a WireError: a crash)."""

    def _on_event(self, event: str | None, data: str, out: list[Any]) -> None:
        self._n = getattr(self, "_n", 0) + 1
        if self._n == 3:
            raise RuntimeError("decoder bug")
        super()._on_event(event, data, out)


class BuggyCodec(OpenAICodec):
    def new_decoder(self, model_id: str = "") -> OpenAIStreamDecoder:
        return BuggyDecoder() if model_id.startswith("boom") else super().new_decoder(model_id)


async def test_a_bug_in_one_job_fails_that_request_alone(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """A decoder that raises RuntimeError on one request while 50 others of the same provider
    stream: that request gets `kind="internal"` with its partial reply, the traceback is
    logged once, the 50 complete exactly, and the actor is not restarted (it did not crash)."""
    cfg = config_for(upstream, max_concurrency=60)
    codec = BuggyCodec(f"{upstream.base_url}/v1/chat/completions", {"authorization": f"Bearer {OPENAI_KEY}"})
    replies: list[str] = []
    async with open_service(
        cfg, logger=logs.logger, transports=upstream.transports(), codecs={"openai": codec}
    ) as service:

        async def other(task_status: trio.TaskStatus[None]) -> None:
            async with service.stream({"model": "openai/m~tokens=200~delay_ms=2", "messages": user()}) as events:
                await events.__anext__()
                task_status.started()
                async for _ in events:
                    pass
            replies.append(events.reply().text)

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for _ in range(50):
                    await nursery.start(other)
                assert service.health()["openai"]["in_flight"] == 50
                with pytest.raises(ProviderError) as info:
                    await service.complete({"model": "openai/boom~tokens=10", "messages": user()})
        assert (await service.complete({"model": "openai/m~tokens=3", "messages": user()})).text == "t0 t1 t2 "
        outcomes = service.health()["openai"]["outcomes"]
    err = info.value
    assert (err.kind, err.retryable) == ("internal", False)
    assert "RuntimeError: decoder bug" in err.message
    assert err.partial is not None and err.partial.text == "t0 "  # the events before the bug
    assert replies == ["".join(f"t{i} " for i in range(200))] * 50
    assert outcomes == {"ok": 51, "error": 1}
    records = logs.records()
    bugs = [r for r in records if r["event"] == "internal_error"]
    assert len(bugs) == 1 and "RuntimeError: decoder bug" in bugs[0]["exception"]
    assert "Traceback" in bugs[0]["exception"]
    events = [r["event"] for r in records]
    assert "child_crashed" not in events and "child_restarted" not in events


class CrashingLogger:
    """A logger that raises when the provider actor's own bookkeeping logs the end of a request
    whose model starts with "crash": a bug of the actor itself, after that job was handled."""

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


async def test_a_crash_of_the_actor_itself_restarts_it_and_fails_its_streams(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """Not one job's failure but the actor's: its in-flight streams fail (instead of hanging),
    its supervisor restarts it, and it serves again; the other provider is untouched."""
    async with open_service(
        config_for(upstream), logger=CrashingLogger(logs.logger), transports=upstream.transports()
    ) as service:
        async with service.stream({"model": "openai/m~tokens=100000~delay_ms=10", "messages": user()}) as slow:
            await slow.__anext__()
            # That job is served; the actor crashes in its bookkeeping right after.
            assert (await service.complete({"model": "openai/crash~tokens=2", "messages": user()})).text == "t0 t1 "
            with trio.fail_after(5), pytest.raises(ProviderError) as info:
                async for _ in slow:
                    pass
        assert info.value.kind == "connection"
        assert info.value.partial is not None and info.value.partial.text.startswith("t0 ")
        assert (await service.complete({"model": "anthropic/m~tokens=3", "messages": user()})).text == "t0 t1 t2 "
        with trio.fail_after(5):
            while True:  # the restart waits out the supervisor's backoff
                try:
                    reply = await service.complete({"model": "openai/m~tokens=3", "messages": user()})
                    break
                except ProviderError:
                    await trio.sleep(0.05)
        assert reply.text == "t0 t1 t2 "
    events = [r["event"] for r in logs.records()]
    assert "child_crashed" in events
    assert "child_restarted" in events


async def test_a_provider_streams_at_most_max_concurrency_at_once_and_a_burst_all_at_once(
    upstream: MockUpstream, logs: Any, autojump_clock: Any
) -> None:
    """Ten requests at once against max_concurrency=4: four stream together at once (the
    worker pool grows for the burst), never a fifth; the rest wait their turn and finish.
    In virtual time the samples, 5 ms apart, fall inside the first 300 ms wave on any machine."""
    cfg = config_for(upstream, max_concurrency=4)
    async with open_service(cfg, logger=logs.logger, transports=upstream.transports()) as service:
        seen: list[int] = []
        done: list[str] = []

        async def one() -> None:
            # Each stream holds its first token 300 ms (between waves in_flight dips for a moment).
            reply = await service.complete({"model": "openai/m~tokens=5~ttft_ms=300", "messages": user()})
            done.append(reply.text)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(one)
                while len(done) < 10:
                    seen.append(service.health()["openai"]["in_flight"])
                    await trio.sleep(0.005)
        assert done == ["t0 t1 t2 t3 t4 "] * 10
        assert max(seen) == 4
        assert seen[1:6] == [4] * 5  # the first four started together and ran side by side
        assert upstream.most_open <= 4  # never more than four responses open upstream at once


async def test_leaving_the_service_leaves_no_tasks_or_sockets(fake: Any, make_config: Any, logs: Any) -> None:
    """Real sockets, wall clock: what is checked is that the fake's end of every connection closes."""
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    cfg = make_config(service={"shutdown_grace": 0.2})
    failures: list[ProviderError] = []

    async def long_stream(service: Any, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with service.stream({"model": "openai/m~tokens=100000~delay_ms=10", "messages": user()}) as ev:
                task_status.started()
                async for _ in ev:
                    pass
        except ProviderError as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery, open_service(cfg, logger=logs.logger) as service:
        await service.complete({"model": "anthropic/m~tokens=5", "messages": user()})
        await nursery.start(long_stream, service)
        # The in-flight stream ends with an error within the grace period, not a hang.
    assert [f.kind for f in failures] == ["connection"]
    await eventually(lambda: fake.open_connections == 0)
    await trio.testing.wait_all_tasks_blocked()  # the fake's handler may still be closing
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before


async def test_submission_channel_streams_events_and_closes(make_config: Any, logs: Any) -> None:
    async with open_service(make_config(), logger=logs.logger) as service:
        send, recv = trio.open_memory_channel[StreamEvent](8)
        await service.submissions.send(({"model": "openai/m~tokens=4", "messages": user()}, send))
        events = [ev async for ev in recv]  # ends when the service closes the channel
    assert [e.text for e in events if e.type == "text"] == ["t0 ", "t1 ", "t2 ", "t3 "]
    assert isinstance(events[-1], FinishEvent)


async def test_submission_errors_arrive_as_a_final_error_event(make_config: Any, logs: Any) -> None:
    async with open_service(make_config(), logger=logs.logger) as service:
        send, recv = trio.open_memory_channel[StreamEvent](8)
        await service.submissions.send(({"model": "anthropic/m~tokens=6~fail=midstream@2", "messages": user()}, send))
        events = [ev async for ev in recv]
        send2, recv2 = trio.open_memory_channel[StreamEvent](8)
        await service.submissions.send(({"model": "nope/m", "messages": user()}, send2))
        bad = [ev async for ev in recv2]
    assert [e.type for e in events] == ["text", "text", "error"]
    last = events[-1]
    assert isinstance(last, ErrorEvent) and isinstance(last.error, ProviderError)
    assert last.error.kind == "upstream"
    assert last.error.partial is not None and last.error.partial.text == "t0 t1 "
    assert len(bad) == 1 and bad[0].type == "error"


async def test_submitter_closing_early_cancels_the_upstream(fake: Any, make_config: Any, logs: Any) -> None:
    """Real sockets, wall clock: what is measured is the upstream seeing the connection close."""
    async with open_service(make_config(), logger=logs.logger) as service:
        send, recv = trio.open_memory_channel[StreamEvent](0)
        await service.submissions.send(({"model": "openai/m~tokens=100000~delay_ms=20", "messages": user()}, send))
        await recv.receive()
        await recv.aclose()
        t0 = trio.current_time()
        await eventually(lambda: fake.responses_aborted > 0)
        assert trio.current_time() - t0 < 0.15


async def test_request_logs_have_one_start_and_end_line_each_without_secrets(make_config: Any, logs: Any) -> None:
    async with open_service(make_config(), logger=logs.logger) as service:
        await service.complete({"model": "openai/gpt-x~tokens=7", "messages": user(), "request_id": "req-42"})
        with pytest.raises(ProviderError):
            await service.complete({"model": "anthropic/m~fail=status:401", "messages": user()})
    records = logs.records()
    ends = [r for r in records if r["event"] == "request_end"]
    starts = [r for r in records if r["event"] == "request_start"]
    assert len(starts) == len(ends) == 2
    ok = next(r for r in ends if r["request_id"] == "req-42")
    assert ok["provider"] == "openai" and ok["model"] == "gpt-x~tokens=7"
    assert ok["status"] == "ok" and ok["http_status"] == 200
    assert ok["finish_reason"] == "stop"
    assert ok["input_tokens"] == 10 and ok["output_tokens"] == 7
    assert ok["cache_read_tokens"] is ok["cache_write_tokens"] is ok["reasoning_tokens"] is None  # not reported
    assert ok["ttft_ms"] is not None and ok["duration_ms"] >= ok["ttft_ms"]
    bad = next(r for r in ends if r["provider"] == "anthropic")
    assert bad["status"] == "error" and bad["error_kind"] == "http_status" and bad["error_status"] == 401
    assert OPENAI_KEY not in logs.text and ANTHROPIC_KEY not in logs.text


async def test_upstream_error_echoing_the_key_is_scrubbed(fake: Any, make_config: Any, logs: Any) -> None:
    """An error body that repeats our credential never reaches the exception or the log."""
    import streamactors.testing.formats.openai as fmt

    original = fmt.error_body
    fmt.error_body = lambda status, message: original(status, f"Incorrect API key provided: {OPENAI_KEY}")
    try:
        async with open_service(make_config(), logger=logs.logger) as service:
            with pytest.raises(ProviderError) as info:
                await service.complete({"model": "openai/m~fail=status:401", "messages": user()})
    finally:
        fmt.error_body = original
    assert OPENAI_KEY not in str(info.value) and OPENAI_KEY not in repr(info.value)
    assert "[REDACTED]" in info.value.message
    assert OPENAI_KEY not in logs.text
