"""The official SDKs' retry policy: which failures retry, and how long to wait."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamactors.policy.backoff import retry_after_seconds, retry_delay, should_retry

from ._stubs import StubRandom

# Wed, 21 Oct 2015 07:28:00 GMT
DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_EPOCH = 1445412480.0


@pytest.mark.parametrize("status", [None, 408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status: int | None) -> None:
    """Connection errors, 408, 409, 429 and every 5xx are retried."""
    assert should_retry(status, {}) is True


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_4xx_not_retried(status: int) -> None:
    """Other 4xx statuses are the caller's fault and are not retried."""
    assert should_retry(status, {}) is False


def test_x_should_retry_false_overrides_5xx() -> None:
    """`x-should-retry: false` wins over a retryable status, whatever the name's case."""
    assert should_retry(500, {"X-Should-Retry": "false"}) is False
    assert should_retry(None, {"x-should-retry": "False"}) is False


def test_x_should_retry_true_overrides_4xx() -> None:
    """`x-should-retry: true` makes a 400 retryable."""
    assert should_retry(400, {"x-should-retry": " TRUE "}) is True


def test_x_should_retry_garbage_is_ignored() -> None:
    """A value other than true/false leaves the status rules in charge."""
    assert should_retry(400, {"x-should-retry": "maybe"}) is False
    assert should_retry(503, {"x-should-retry": "1"}) is True


def test_retry_after_ms_wins() -> None:
    """`retry-after-ms` is read first, in milliseconds."""
    assert retry_after_seconds({"Retry-After-Ms": "1500", "retry-after": "9"}, 0.0) == 1.5


def test_retry_after_seconds_with_fraction() -> None:
    """`retry-after` may carry fractional seconds."""
    assert retry_after_seconds({"Retry-After": "2.5"}, 0.0) == 2.5


def test_retry_after_http_date() -> None:
    """An HTTP date becomes seconds after `now_epoch`."""
    assert retry_after_seconds({"retry-after": DATE}, DATE_EPOCH - 10.0) == 10.0


def test_retry_after_http_date_in_the_past_is_negative() -> None:
    """A past date gives a negative value (which `retry_delay` then ignores)."""
    assert retry_after_seconds({"retry-after": DATE}, DATE_EPOCH + 4.0) == -4.0


def test_garbled_retry_after_ms_falls_back_to_retry_after() -> None:
    """An unreadable `retry-after-ms` does not hide a readable `retry-after`."""
    assert retry_after_seconds({"retry-after-ms": "soon", "retry-after": "3"}, 0.0) == 3.0


@pytest.mark.parametrize("value", ["soon", "nan", "inf", "", "Wed, 99 Foo"])
def test_garbled_retry_after_is_none(value: str) -> None:
    """Unreadable values, NaN and infinities mean "no Retry-After"."""
    assert retry_after_seconds({"retry-after": value}, 0.0) is None
    assert retry_after_seconds({"retry-after-ms": value}, 0.0) is None


def test_no_retry_after() -> None:
    """No header: None."""
    assert retry_after_seconds({}, 0.0) is None


@pytest.mark.parametrize(
    ("attempt", "expected"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (5000, 8.0)]
)
def test_backoff_schedule_without_jitter(attempt: int, expected: float) -> None:
    """0.5 s doubling to 8 s; a huge attempt number does not overflow."""
    assert retry_delay(attempt, {}, StubRandom(0.0), 0.0) == expected


def test_backoff_jitter_takes_off_up_to_a_quarter() -> None:
    """The delay is multiplied by `1 - 0.25 * random()`."""
    assert retry_delay(0, {}, StubRandom(0.5), 0.0) == 0.4375
    assert retry_delay(4, {}, StubRandom(0.5), 0.0) == 7.0


def test_retry_after_within_cap_is_obeyed_exactly() -> None:
    """A Retry-After of up to 60 s is used as is, with no jitter drawn."""
    assert retry_delay(0, {"retry-after": "60"}, StubRandom(), 0.0) == 60.0
    assert retry_delay(3, {"retry-after-ms": "250"}, StubRandom(), 0.0) == 0.25


def test_retry_after_over_cap_means_no_retry() -> None:
    """A Retry-After above 60 s: None, the error surfaces."""
    assert retry_delay(0, {"retry-after": "60.5"}, StubRandom(), 0.0) is None
    assert retry_delay(0, {"retry-after": DATE}, StubRandom(), DATE_EPOCH - 61.0) is None


def test_retry_after_cap_is_configurable() -> None:
    """`max_retry_after=120` follows openai-python v3's two-minute rule."""
    assert retry_delay(0, {"retry-after": "90"}, StubRandom(), 0.0, max_retry_after=120.0) == 90.0


@pytest.mark.parametrize("headers", [{"retry-after": "0"}, {"retry-after": "-3"}, {"retry-after": DATE}])
def test_non_positive_retry_after_falls_back_to_backoff(headers: dict[str, str]) -> None:
    """Zero, negative or past Retry-After values are ignored, as the SDKs do."""
    assert retry_delay(1, headers, StubRandom(0.0), DATE_EPOCH + 1.0) == 1.0


def test_negative_attempt_is_rejected() -> None:
    """Attempts count from 0."""
    with pytest.raises(ValueError, match="attempt"):
        retry_delay(-1, {}, StubRandom(0.0), 0.0)


@given(attempt=st.integers(0, 3000), r=st.floats(0.0, 1.0, exclude_max=True))
def test_backoff_bounds(attempt: int, r: float) -> None:
    """Every backoff delay lies in [0.375, 8], at most 25 % below its schedule value."""
    delay = retry_delay(attempt, {}, StubRandom(r), 0.0)
    assert delay is not None
    base = min(0.5 * 2.0 ** min(attempt, 1000), 8.0)
    assert 0.75 * base <= delay <= base <= 8.0
