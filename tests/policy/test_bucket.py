"""TokenBucket: FIFO reservations with debt, exact delays, and the rate bound."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamactors.policy.bucket import TokenBucket


def test_starts_full_then_queues_in_order() -> None:
    """Up to `burst` go at once; the rest wait in line, each behind the previous one."""
    b = TokenBucket(rate_per_s=2.0, burst=2.0)
    assert [b.reserve(1, 0.0) for _ in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.5]
    assert b.available(0.0) == -3.0


def test_refills_over_time() -> None:
    """Tokens come back at `rate_per_s`, up to `burst`."""
    b = TokenBucket(rate_per_s=2.0, burst=4.0)
    assert b.reserve(4, 10.0) == 0.0
    assert b.available(11.0) == 2.0
    assert b.available(100.0) == 4.0
    assert b.reserve(3, 11.0) == 0.5


def test_later_caller_waits_behind_debt() -> None:
    """A small request arriving later does not overtake a waiting big one."""
    b = TokenBucket(rate_per_s=1.0, burst=10.0)
    assert b.reserve(10, 0.0) == 0.0
    assert b.reserve(8, 1.0) == 7.0  # ready at 8.0
    assert b.reserve(1, 2.0) == 7.0  # ready at 9.0, not 3.0


def test_reservation_larger_than_burst_waits_for_a_full_bucket_and_leaves_debt() -> None:
    """n > burst: goes once the bucket is full, and the excess delays the next caller."""
    b = TokenBucket(rate_per_s=1.0, burst=2.0)
    assert b.reserve(1, 0.0) == 0.0
    assert b.reserve(5, 0.0) == 1.0  # waits for a full bucket (2 tokens) at 1.0
    assert b.available(1.0) == -3.0
    assert b.reserve(1, 1.0) == 4.0


def test_zero_tokens_still_queue_behind_debt() -> None:
    """A zero-sized reservation waits until the debt is paid (it keeps its place in line)."""
    b = TokenBucket(rate_per_s=1.0, burst=1.0)
    b.reserve(3, 0.0)
    assert b.reserve(0, 0.0) == 2.0


def test_refund_helps_later_callers_and_is_capped() -> None:
    """Refunded tokens are available again, never beyond `burst`."""
    b = TokenBucket(rate_per_s=1.0, burst=2.0)
    assert b.reserve(2, 0.0) == 0.0
    b.refund(1)
    assert b.reserve(1, 0.0) == 0.0
    b.refund(50)
    assert b.available(0.0) == 2.0


def test_earliest_changes_nothing() -> None:
    """`earliest` is a query; `take` commits."""
    b = TokenBucket(rate_per_s=4.0, burst=1.0)
    b.take(1, 0.0)
    assert b.earliest(1, 0.0) == 0.25
    assert b.earliest(1, 0.0) == 0.25
    b.take(1, 1.0)
    assert b.available(1.0) == 0.0
    assert b.earliest(1, 0.5) == 1.25


def test_take_before_the_last_commit_is_moved_forward() -> None:
    """Committing at a time before the last commit counts at the last commit's time."""
    b = TokenBucket(rate_per_s=1.0, burst=1.0)
    b.take(1, 5.0)
    b.take(1, 2.0)
    assert b.available(5.0) == -1.0


def test_now_going_backwards_adds_no_tokens() -> None:
    """A smaller `now` than the last reservation is treated as that reservation's time."""
    b = TokenBucket(rate_per_s=1.0, burst=1.0)
    assert b.reserve(1, 10.0) == 0.0
    assert b.reserve(1, 9.0) == 2.0  # ready at 11.0


def test_set_rate_keeps_tokens_accrued_at_the_old_rate() -> None:
    """Tokens earned before `set_rate` use the old rate; later ones the new."""
    b = TokenBucket(rate_per_s=1.0, burst=10.0)
    b.reserve(10, 0.0)
    b.set_rate(4.0, 2.0)  # 2 tokens at the old rate
    assert b.available(3.0) == 6.0
    assert b.rate_per_s == 4.0


def test_per_minute() -> None:
    """`per_minute(limit)` refills limit/60 per second and saves a minute's worth."""
    b = TokenBucket.per_minute(120)
    assert (b.rate_per_s, b.burst) == (2.0, 120.0)
    assert TokenBucket.per_minute(120, burst=4).burst == 4.0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (float("inf"), 1.0)])
def test_invalid_configuration(rate: float, burst: float) -> None:
    """Rate and burst must be positive and finite."""
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


@pytest.mark.parametrize("n", [-1.0, float("nan")])
def test_invalid_counts(n: float) -> None:
    """Token counts must be 0 or more."""
    b = TokenBucket(1.0, 1.0)
    with pytest.raises(ValueError):
        b.reserve(n, 0.0)
    with pytest.raises(ValueError):
        b.refund(n)


@given(
    rate=st.sampled_from([0.5, 1.0, 3.0, 10.0]),
    burst=st.sampled_from([1.0, 2.0, 5.0]),
    steps=st.lists(st.tuples(st.floats(0.0, 3.0), st.floats(0.0, 1.0)), min_size=1, max_size=40),
)
def test_never_admits_more_than_rate_times_t_plus_burst(
    rate: float, burst: float, steps: list[tuple[float, float]]
) -> None:
    """Over any interval [a, b] of admission times, admitted tokens <= burst + rate * (b - a)."""
    b = TokenBucket(rate, burst)
    now = 0.0
    admitted: list[tuple[float, float]] = []
    for gap, fraction in steps:
        now += gap
        n = fraction * burst
        delay = b.reserve(n, now)
        assert delay >= 0.0
        admitted.append((now + delay, n))
    times = [t for t, _ in admitted]
    # FIFO, up to float rounding (now + (ready - now) may differ from ready by an ulp).
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(times))
    for i in range(len(admitted)):
        total = 0.0
        for j in range(i, len(admitted)):
            total += admitted[j][1]
            assert total <= burst + rate * (admitted[j][0] - admitted[i][0]) + 1e-9 * (1 + total)
