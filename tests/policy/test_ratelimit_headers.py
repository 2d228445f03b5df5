"""Quota headers: OpenAI Go durations, Anthropic RFC 3339 times, and garbage tolerance."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamactors.policy.ratelimit_headers import QuotaSnapshot, parse_go_duration, parse_quota, parse_rfc3339

NOW = 1735732800.0  # 2025-01-01T12:00:00Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("0", 0.0),
        ("1.5h", 5400.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        (".5s", 0.5),
        ("+2s", 2.0),
        (" 7s ", 7.0),
        ("30", 30.0),
        ("0.25", 0.25),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    """Go `time.Duration` strings, and plain seconds, parse to seconds."""
    assert parse_go_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1s", "1x", "s", "1s2", "2 s", "nan", "inf", "1..5s", "abc"])
def test_malformed_go_durations(text: str) -> None:
    """Anything else is None."""
    assert parse_go_duration(text) is None


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2025-01-01T12:00:30Z", NOW + 30.0),
        ("2025-01-01t12:00:30z", NOW + 30.0),
        ("2025-01-01T12:00:30.5+01:00", NOW + 30.5 - 3600.0),
        ("2025-01-01T12:00:30", NOW + 30.0),
    ],
)
def test_rfc3339(text: str, epoch: float) -> None:
    """RFC 3339 times (any case, any offset; none means UTC) become Unix seconds."""
    assert parse_rfc3339(text) == epoch


@pytest.mark.parametrize("text", ["", "soon", "2025-13-01T00:00:00Z", "99999-01-01T00:00:00Z"])
def test_malformed_rfc3339(text: str) -> None:
    """Unreadable times are None."""
    assert parse_rfc3339(text) is None


def test_openai_headers() -> None:
    """All six OpenAI headers, with any name case."""
    headers = {
        "X-RateLimit-Limit-Requests": "500",
        "x-ratelimit-limit-tokens": "200000",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-remaining-tokens": "199000",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert parse_quota(headers, NOW) == QuotaSnapshot(
        remaining_requests=499,
        remaining_tokens=199000,
        limit_requests=500,
        limit_tokens=200000,
        reset_requests_s=0.12,
        reset_tokens_s=360.0,
    )


def test_anthropic_headers() -> None:
    """Anthropic's requests and tokens groups; resets relative to `now_epoch`."""
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2025-01-01T12:00:01Z",
        "anthropic-ratelimit-tokens-limit": "80000",
        "anthropic-ratelimit-tokens-remaining": "79000",
        "anthropic-ratelimit-tokens-reset": "2025-01-01T12:00:45.5Z",
        # ignored: the tokens group is already the most restrictive limit
        "anthropic-ratelimit-input-tokens-remaining": "1",
    }
    assert parse_quota(headers, NOW) == QuotaSnapshot(
        remaining_requests=49,
        remaining_tokens=79000,
        limit_requests=50,
        limit_tokens=80000,
        reset_requests_s=1.0,
        reset_tokens_s=45.5,
    )


def test_anthropic_input_output_takes_the_more_restrictive_group() -> None:
    """Without `tokens-*`, the group with the smaller remaining fraction wins, whole."""
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "400000",
        "anthropic-ratelimit-input-tokens-remaining": "100000",  # 25 %
        "anthropic-ratelimit-input-tokens-reset": "2025-01-01T12:00:10Z",
        "anthropic-ratelimit-output-tokens-limit": "80000",
        "anthropic-ratelimit-output-tokens-remaining": "70000",  # 87.5 %
        "anthropic-ratelimit-output-tokens-reset": "2025-01-01T12:00:02Z",
    }
    snap = parse_quota(headers, NOW)
    assert snap == QuotaSnapshot(remaining_tokens=100000, limit_tokens=400000, reset_tokens_s=10.0)


def test_anthropic_input_output_without_limits_takes_the_smaller_remaining() -> None:
    """With a limit missing, the smaller remaining count wins."""
    headers = {
        "anthropic-ratelimit-input-tokens-remaining": "100000",
        "anthropic-ratelimit-output-tokens-remaining": "70000",
        "anthropic-ratelimit-output-tokens-limit": "80000",
    }
    assert parse_quota(headers, NOW) == QuotaSnapshot(remaining_tokens=70000, limit_tokens=80000)


def test_reset_in_the_past_is_zero() -> None:
    """A reset time already passed means "now", never a negative wait."""
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2024-01-01T00:00:00Z",
    }
    assert parse_quota(headers, NOW) == QuotaSnapshot(remaining_requests=0, reset_requests_s=0.0)


def test_malformed_values_are_ignored() -> None:
    """Each unreadable field is None; the readable ones survive."""
    headers = {
        "x-ratelimit-remaining-requests": "-3",
        "x-ratelimit-remaining-tokens": "lots",
        "x-ratelimit-limit-requests": "1000.0",
        "x-ratelimit-reset-requests": "soon",
        "x-ratelimit-reset-tokens": "1s",
        "anthropic-ratelimit-tokens-reset": "yesterday",
    }
    assert parse_quota(headers, NOW) == QuotaSnapshot(limit_requests=1000, reset_tokens_s=1.0)


def test_no_quota_headers() -> None:
    """None when there is nothing usable."""
    assert parse_quota({"content-type": "text/event-stream"}, NOW) is None
    assert parse_quota({"x-ratelimit-remaining-requests": "nope"}, NOW) is None


_NAMES = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-limit",
    "anthropic-ratelimit-output-tokens-remaining",
    "retry-after",
]


@given(st.dictionaries(st.sampled_from(_NAMES), st.text(max_size=30)), st.floats(allow_nan=False))
def test_never_raises(headers: dict[str, str], now: float) -> None:
    """Whatever a peer sends, parsing returns a snapshot or None."""
    snap = parse_quota(headers, now)
    assert snap is None or isinstance(snap, QuotaSnapshot)
