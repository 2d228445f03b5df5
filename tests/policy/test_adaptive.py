"""AdaptivePacer: budgets, quota headers, 429 blocking and AIMD, with exact delays."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamactors.policy.adaptive import AdaptivePacer, PacerSettings
from streamactors.policy.ratelimit_headers import QuotaSnapshot

ONE_SECOND_BURST = PacerSettings(burst_s=1.0)


def admits(pacer: AdaptivePacer, now: float, count: int, tokens: int = 0) -> list[float]:
    return [pacer.admit(tokens, now) for _ in range(count)]


def test_nothing_known_means_no_wait() -> None:
    """No budget, no headers, no 429: every request goes at once."""
    assert admits(AdaptivePacer(), 3.0, 5) == [0.0] * 5


def test_requests_per_minute_budget() -> None:
    """60 rpm with a one-second burst: one request per second, in order."""
    pacer = AdaptivePacer(requests_per_minute=60, settings=ONE_SECOND_BURST)
    assert admits(pacer, 0.0, 3) == [0.0, 1.0, 2.0]


def test_default_budget_burst_is_a_minute() -> None:
    """By default a minute's budget may go at once, as the providers' buckets allow."""
    pacer = AdaptivePacer(requests_per_minute=3)
    assert admits(pacer, 0.0, 4) == [0.0, 0.0, 0.0, 20.0]


def test_tokens_per_minute_budget() -> None:
    """600 tpm with a one-second burst: 10 tokens per second."""
    pacer = AdaptivePacer(tokens_per_minute=600, settings=ONE_SECOND_BURST)
    assert pacer.admit(10, 0.0) == 0.0
    assert pacer.admit(5, 0.0) == 0.5


def test_budgets_commit_at_the_combined_time() -> None:
    """When one budget delays a request, the other is charged at the delayed time."""
    pacer = AdaptivePacer(requests_per_minute=60, tokens_per_minute=6000, settings=ONE_SECOND_BURST)
    assert pacer.admit(100, 0.0) == 0.0
    assert pacer.admit(50, 0.0) == 1.0  # rpm says 1.0, tpm would allow 0.5
    assert pacer.admit(100, 1.0) == 1.0  # tpm refilled to 100 by 2.0


def test_first_come_first_served() -> None:
    """A small request does not overtake a big one waiting for tokens."""
    pacer = AdaptivePacer(tokens_per_minute=600, settings=ONE_SECOND_BURST)
    assert pacer.admit(10, 0.0) == 0.0
    assert pacer.admit(10, 0.0) == 1.0
    assert pacer.admit(0, 0.5) == 0.5  # needs no tokens, still goes after 1.0


def test_quota_exhausted_waits_until_reset() -> None:
    """remaining-requests 0: new requests wait for the reset, then go."""
    pacer = AdaptivePacer()
    pacer.on_response(200, QuotaSnapshot(remaining_requests=0, reset_requests_s=2.0), None, 10.0)
    assert pacer.admit(0, 10.0) == 2.0
    assert pacer.admit(0, 13.0) == 0.0


def test_quota_tokens_too_few_for_the_request_waits_until_reset() -> None:
    """A request needing more tokens than remain waits for the tokens reset."""
    pacer = AdaptivePacer()
    pacer.on_response(200, QuotaSnapshot(remaining_tokens=100, limit_tokens=100, reset_tokens_s=5.0), None, 0.0)
    assert pacer.admit(150, 1.0) == 4.0


def test_low_quota_is_spread_evenly_until_reset() -> None:
    """4 of 100 left, reset in 8 s: one request every 2 s, then wait for the reset."""
    pacer = AdaptivePacer()
    snap = QuotaSnapshot(remaining_requests=4, limit_requests=100, reset_requests_s=8.0)
    pacer.on_response(200, snap, None, 0.0)
    assert admits(pacer, 0.0, 6) == [0.0, 2.0, 4.0, 6.0, 8.0, 8.0]


def test_low_token_quota_is_spread_by_size() -> None:
    """Tokens are spread in proportion to each request's size."""
    pacer = AdaptivePacer()
    snap = QuotaSnapshot(remaining_tokens=1000, limit_tokens=100000, reset_tokens_s=10.0)
    pacer.on_response(200, snap, None, 0.0)
    assert admits(pacer, 0.0, 3, tokens=100) == [0.0, 1.0, 2.0]


def test_plenty_left_bursts() -> None:
    """Above `low_fraction` of the limit nothing is held back."""
    pacer = AdaptivePacer()
    pacer.on_response(200, QuotaSnapshot(remaining_requests=50, limit_requests=100, reset_requests_s=8.0), None, 0.0)
    assert admits(pacer, 0.0, 3) == [0.0, 0.0, 0.0]


def test_quota_with_long_reset_is_ignored() -> None:
    """A reset further away than `max_wait_s` (a daily quota) does not hold requests back."""
    pacer = AdaptivePacer()
    pacer.on_response(200, QuotaSnapshot(remaining_requests=0, reset_requests_s=3600.0), None, 0.0)
    assert pacer.admit(0, 0.0) == 0.0


def test_new_snapshot_replaces_the_count() -> None:
    """A fresh snapshot restarts the count of requests admitted since the last one."""
    pacer = AdaptivePacer()
    pacer.on_response(200, QuotaSnapshot(remaining_requests=1, reset_requests_s=30.0), None, 0.0)
    assert admits(pacer, 0.0, 2) == [0.0, 30.0]
    pacer = AdaptivePacer()
    pacer.on_response(200, QuotaSnapshot(remaining_requests=1, reset_requests_s=30.0), None, 0.0)
    assert pacer.admit(0, 0.0) == 0.0
    pacer.on_response(200, QuotaSnapshot(remaining_requests=40, limit_requests=50, reset_requests_s=30.0), None, 0.5)
    assert pacer.admit(0, 0.5) == 0.0


def test_snapshot_without_a_dimension_keeps_the_old_one() -> None:
    """A snapshot lacking request fields leaves the request quota as it was."""
    pacer = AdaptivePacer()
    pacer.on_response(200, QuotaSnapshot(remaining_requests=0, reset_requests_s=5.0), None, 0.0)
    pacer.on_response(200, QuotaSnapshot(remaining_tokens=9000, reset_tokens_s=1.0), None, 1.0)
    assert pacer.admit(0, 1.0) == 4.0
    assert pacer.snapshot == QuotaSnapshot(remaining_tokens=9000, reset_tokens_s=1.0)


def test_429_with_retry_after_blocks_then_aimd_spaces() -> None:
    """Retry-After holds everyone back; after it the AIMD bucket spaces requests out."""
    pacer = AdaptivePacer()
    pacer.on_response(429, None, 2.0, 5.0)
    assert pacer.blocked_until == 7.0
    # No admissions to measure: the ceiling defaults to 1/s, halved to 0.5/s.
    assert pacer.factor == 0.5
    assert pacer.allowed_rate == 0.5
    assert admits(pacer, 5.0, 2) == [2.0, 4.0]


def test_retry_after_beyond_max_wait_does_not_block() -> None:
    """A Retry-After longer than `max_wait_s` is left to the retry policy (the error surfaces)."""
    pacer = AdaptivePacer()
    pacer.on_response(429, None, 61.0, 0.0)
    assert pacer.blocked_until is None


def test_decrease_starts_from_the_measured_send_rate() -> None:
    """4 requests over 2 s then a 429: ceiling 2/s, allowed 1/s."""
    pacer = AdaptivePacer()
    for t in (0.0, 0.5, 1.0, 1.5):
        assert pacer.admit(0, t) == 0.0
    pacer.on_response(429, None, None, 2.0)
    assert pacer.allowed_rate == 1.0
    assert admits(pacer, 2.0, 3) == [0.0, 1.0, 2.0]


def test_ceiling_is_capped_by_the_budget() -> None:
    """With 60 rpm configured, the ceiling is at most 1/s even if the burst went faster."""
    pacer = AdaptivePacer(requests_per_minute=60)
    admits(pacer, 0.0, 8)
    pacer.on_response(429, None, None, 2.0)
    assert pacer.allowed_rate == 0.5


def test_burst_of_429s_decreases_once_per_hold() -> None:
    """429s within `decrease_hold_s` of a decrease count once; later ones decrease again."""
    pacer = AdaptivePacer()
    pacer.on_response(429, None, None, 2.0)
    pacer.on_response(429, None, None, 2.5)
    assert pacer.factor == 0.5
    pacer.on_response(429, None, None, 3.0)
    assert pacer.factor == 0.25
    assert pacer.allowed_rate == 0.25


def test_factor_never_drops_below_min_factor() -> None:
    """Repeated decreases stop at `min_factor`."""
    pacer = AdaptivePacer(settings=PacerSettings(min_factor=0.2))
    for t in range(5):
        pacer.on_response(429, None, None, float(t))
    assert pacer.factor == 0.2


def test_successes_recover_additively_over_time() -> None:
    """Each success adds `recovery_per_s` per second since the last change; at 1.0 pacing stops."""
    pacer = AdaptivePacer(settings=PacerSettings(recovery_per_s=0.25))
    for t in (0.0, 0.5, 1.0, 1.5):
        pacer.admit(0, t)
    pacer.on_response(429, None, None, 2.0)
    assert (pacer.factor, pacer.allowed_rate) == (0.5, 1.0)
    pacer.on_response(200, None, None, 3.0)
    assert (pacer.factor, pacer.allowed_rate) == (0.75, 1.5)
    pacer.on_response(500, None, None, 3.5)  # neither success nor throttle
    assert pacer.factor == 0.75
    pacer.on_response(200, None, None, 4.0)
    assert (pacer.factor, pacer.allowed_rate) == (1.0, None)


def test_a_request_alone_is_not_delayed_by_aimd_and_runs_up_no_debt() -> None:
    """One caller at a time, retrying as the provider asks, is never slowed by AIMD however
    many 429s came before; nor does it leave a debt that a later concurrent request pays."""
    pacer = AdaptivePacer()
    now = 0.0
    for _ in range(30):  # every admission 429s; the factor falls to its floor
        assert pacer.admit(0, now, alone=True) == 0.0
        pacer.on_response(429, None, 1.0, now)
        now += 1.0
    assert pacer.factor == pacer.settings.min_factor
    # Concurrent requests now: spaced by the AIMD bucket, never more than the 1 s announced.
    assert admits(pacer, now, 3) == [0.0, 1.0, 2.0]


def test_aimd_never_spaces_admissions_further_apart_than_announced() -> None:
    """The AIMD rate's floor is one request per announced pause (Retry-After, bounded by the
    quota reset), else per 8 s (the SDKs' longest backoff): the wait does not grow with 429s."""
    pacer = AdaptivePacer()
    for t in range(10):
        pacer.on_response(429, None, 2.0, float(t * 2))
    assert pacer.factor == pacer.settings.min_factor
    assert pacer.allowed_rate == 0.5  # floor 1 / 2 s; the factor alone would say 0.05/s
    quiet = AdaptivePacer()
    for t in range(10):
        quiet.on_response(429, None, None, float(t * 2))
    assert quiet.allowed_rate == 1 / 8


def test_a_quota_reset_bounds_the_retry_after_pause() -> None:
    """`retry-after: 1` with `x-ratelimit-reset-tokens: 54ms`: new requests wait 54 ms."""
    pacer = AdaptivePacer()
    pacer.on_response(429, QuotaSnapshot(remaining_tokens=130, reset_tokens_s=0.054), 1.0, 10.0)
    assert pacer.blocked_until == pytest.approx(10.054)
    assert pacer.admit(0, 10.0) == pytest.approx(0.054)
    assert pacer.allowed_rate == pytest.approx(1 / 0.054)


def test_a_later_quota_reset_lowers_an_earlier_pause() -> None:
    """The latest word on when the quota is back wins over an earlier, longer Retry-After."""
    pacer = AdaptivePacer()
    pacer.on_response(429, None, 5.0, 0.0)
    assert pacer.blocked_until == 5.0
    pacer.on_response(200, QuotaSnapshot(remaining_requests=3, reset_requests_s=0.5), None, 1.0)
    assert pacer.blocked_until == 1.5


def test_success_without_a_429_changes_nothing() -> None:
    """No recovery is needed when nothing was throttled."""
    pacer = AdaptivePacer()
    pacer.on_response(200, None, None, 1.0)
    assert (pacer.factor, pacer.allowed_rate, pacer.blocked_until) == (1.0, None, None)


def test_not_adaptive_uses_budgets_only() -> None:
    """`adaptive=False` ignores quota headers and 429s."""
    pacer = AdaptivePacer(requests_per_minute=60, adaptive=False, settings=ONE_SECOND_BURST)
    pacer.on_response(429, QuotaSnapshot(remaining_requests=0, reset_requests_s=30.0), 10.0, 0.0)
    assert (pacer.factor, pacer.blocked_until, pacer.snapshot) == (1.0, None, None)
    assert admits(pacer, 0.0, 2) == [0.0, 1.0]


def test_cancel_gives_the_budget_back() -> None:
    """A request that was never sent returns its request and tokens."""
    pacer = AdaptivePacer(requests_per_minute=60, tokens_per_minute=600, settings=ONE_SECOND_BURST)
    assert pacer.admit(10, 0.0) == 0.0
    pacer.cancel(10)
    assert pacer.admit(10, 0.0) == 0.0


def test_negative_tokens_rejected() -> None:
    """Token estimates are 0 or more."""
    with pytest.raises(ValueError):
        AdaptivePacer().admit(-1, 0.0)


@given(
    steps=st.lists(
        st.tuples(
            st.floats(0.0, 2.0),
            st.integers(0, 50),
            st.sampled_from([None, 200, 429, 500]),
            st.integers(0, 5),
            st.sampled_from([None, 0.5, 3.0]),
        ),
        max_size=40,
    )
)
def test_budget_holds_whatever_the_provider_says(
    steps: list[tuple[float, int, int | None, int, float | None]],
) -> None:
    """Admissions stay in order and within the rpm budget under any mix of responses."""
    pacer = AdaptivePacer(requests_per_minute=120, settings=ONE_SECOND_BURST)  # 2/s, burst 2
    now = 0.0
    times: list[float] = []
    for gap, tokens, status, remaining, reset in steps:
        now += gap
        times.append(now + pacer.admit(tokens, now))
        snap = QuotaSnapshot(remaining_requests=remaining, limit_requests=10, reset_requests_s=reset)
        pacer.on_response(status, snap, 1.0 if status == 429 else None, now)
    # In order, up to float rounding (now + (ready - now) may differ from ready by an ulp).
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(times))
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= 2.0 + 2.0 * (times[j] - times[i]) + 1e-9
