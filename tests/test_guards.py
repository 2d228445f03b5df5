"""Guard actor pieces that need no clock: which responses are routine news for the limiter."""

from __future__ import annotations

import httpx
import pytest

from streamactors.actors.guards import _speaks_of_limits

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
