"""The limiter actor: which responses are routine news, and that news which matters (or a
report lost to a full mailbox) is never overtaken by an admission that reads the limiter's
state without asking."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import structlog
import trio
import trio.testing

from streamactors.actors.limiter import REJECTED, LimiterActor, _speaks_of_limits
from streamactors.actors.mailbox import MAILBOX
from streamactors.config.schema import RateLimitConfig

PLAIN = [
    (b"date", b"Tue, 24 Nov 2026 01:28:04 GMT"),
    (b"content-type", b"text/event-stream"),
    (b"x-request-id", b"req_1"),
    (b"openai-processing-ms", b"5"),
]


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


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


async def test_a_report_lost_to_a_full_mailbox_stops_free_admission(nursery: trio.Nursery) -> None:
    limiter = LimiterActor("p", RateLimitConfig(), structlog.get_logger())
    await nursery.start(limiter.run)
    for _ in range(MAILBOX + 1):  # routine reports, faster than the actor runs
        limiter.feedback(200, httpx.Headers(PLAIN), admitted=10)
    assert limiter.dropped_reports == 1
    assert not limiter.admits_freely  # what was lost might have mattered
    await trio.testing.wait_all_tasks_blocked()
    assert limiter.admits_freely  # the actor has caught up: nothing constrains the provider


async def test_acquire_paces_then_rejects_past_the_queue(autojump_clock: Any, nursery: trio.Nursery) -> None:
    limiter = LimiterActor("p", RateLimitConfig(requests_per_minute=60, max_queue=1), structlog.get_logger())
    await nursery.start(limiter.run)
    assert not limiter.admits_freely  # a budget: every request asks
    answers = [await limiter.acquire(10) for _ in range(200)]
    assert REJECTED in answers
    admitted = answers[: answers.index(REJECTED)]
    assert admitted == sorted(admitted) and admitted[-1] > trio.current_time()  # one waits
    assert set(answers[len(admitted) :]) == {REJECTED}  # the queue of one stays full
    status = limiter.status()
    assert (status["waiting"], status["delayed"], status["rejected"]) == (1, 1, 200 - len(admitted))
