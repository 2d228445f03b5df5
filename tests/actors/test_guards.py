"""Guard actor pieces: which responses are routine news for the limiter, and that news which
matters is never overtaken by an admission that reads the guard's state without asking. Also
the consumer's cancel handle, which the guards' waits use too."""

from __future__ import annotations

import httpx
import pytest
import structlog
import trio
import trio.testing

from streamactors.actors.guards import BreakerActor, LimiterActor, _speaks_of_limits
from streamactors.actors.messages import CancelHandle
from streamactors.config.schema import CircuitBreakerConfig, RateLimitConfig

PLAIN = [
    (b"date", b"Tue, 24 Nov 2026 01:28:04 GMT"),
    (b"content-type", b"text/event-stream"),
    (b"x-request-id", b"req_1"),
    (b"openai-processing-ms", b"5"),
]


@pytest.mark.parametrize(
    "name",
    [
        "X-RateLimit-Remaining-Requests",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-tokens-limit",
        "Retry-After",
        "retry-after-ms",
    ],
)
def test_quota_and_retry_headers_are_news(name: str) -> None:
    assert _speaks_of_limits(httpx.Headers([*PLAIN, (name.encode(), b"1")]))
    assert _speaks_of_limits({name: "1"})


def test_other_headers_are_routine() -> None:
    assert not _speaks_of_limits(httpx.Headers(PLAIN))
    assert not _speaks_of_limits({"x-ratelimitless": "1", "my-retry-after": "2"})
    assert not _speaks_of_limits({})


async def test_a_failure_not_yet_counted_stops_free_admission(nursery: trio.Nursery) -> None:
    """A worker may take its next job before the breaker actor has run: the failure it just
    reported must still decide that job's admission."""
    breaker = BreakerActor("p", CircuitBreakerConfig(failure_threshold=1), structlog.get_logger())
    await nursery.start(breaker.run)
    assert breaker.admits_freely
    breaker.verdict("upstream", 503)  # queued; the actor has not run since
    assert not breaker.admits_freely
    assert await breaker.allow() is False  # the actor counts the failure, then answers
    assert breaker.rejected == 1


async def test_a_success_leaves_free_admission_alone(nursery: trio.Nursery) -> None:
    breaker = BreakerActor("p", CircuitBreakerConfig(failure_threshold=1), structlog.get_logger())
    await nursery.start(breaker.run)
    breaker.verdict(None, 200)
    assert breaker.admits_freely


async def test_a_429_not_yet_read_stops_free_admission(nursery: trio.Nursery) -> None:
    limiter = LimiterActor("p", RateLimitConfig(), structlog.get_logger())
    await nursery.start(limiter.run)
    assert limiter.admits_freely
    limiter.feedback(200, httpx.Headers(PLAIN), admitted=10)  # routine: no effect on admission
    assert limiter.admits_freely
    limiter.feedback(429, httpx.Headers([(b"retry-after", b"30")]), admitted=10)
    assert not limiter.admits_freely
    await trio.testing.wait_all_tasks_blocked()  # the actor read it: now the back-off says no
    assert not limiter.admits_freely


async def test_cancel_handle_interrupts_the_current_wait_only() -> None:
    handle = CancelHandle()
    first = handle.scope()
    handle.release(first)
    second = handle.scope(deadline=5.0)
    handle.release(first)  # not the current one: changes nothing
    handle.cancel()
    assert second.cancel_called  # the wait in progress ends
    assert not first.cancel_called  # one already left is not touched (trio would log a repr)
    assert handle.scope().cancel_called  # and every later wait opens cancelled
