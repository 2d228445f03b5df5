"""CircuitBreaker: one test per row of TRANSITIONS, the failure-rate window, and properties."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamactors.policy.breaker import (
    TRANSITIONS,
    BreakerEvent,
    BreakerState,
    CircuitBreaker,
    Transition,
    breaker_outcome,
    is_breaker_failure,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(**kwargs: object) -> tuple[CircuitBreaker, list[Transition]]:
    seen: list[Transition] = []
    options: dict[str, object] = {"failure_threshold": 3, "reset_timeout": 10.0, "half_open_probes": 2}
    options.update(kwargs)
    breaker = CircuitBreaker(**options, on_transition=seen.append)  # type: ignore[arg-type]
    return breaker, seen


def trip(b: CircuitBreaker, now: float) -> None:
    for _ in range(b.failure_threshold):
        assert b.allow(now)
        b.record_failure(now)
    assert b.state is OPEN


def to_half_open(b: CircuitBreaker, now: float) -> None:
    trip(b, now)
    assert b.allow(now + b.reset_timeout)
    assert b.state is HALF_OPEN


# -- one test per row of the transition table ---------------------------------------------


def test_table_has_exactly_these_rows() -> None:
    """The table is the whole state machine; the row tests below cover each entry."""
    assert TRANSITIONS == {
        (CLOSED, BreakerEvent.TRIP): OPEN,
        (OPEN, BreakerEvent.COOL_DOWN): HALF_OPEN,
        (HALF_OPEN, BreakerEvent.PROBES_PASSED): CLOSED,
        (HALF_OPEN, BreakerEvent.PROBE_FAILED): OPEN,
    }


def test_row_closed_trip_open_on_consecutive_failures() -> None:
    """CLOSED --TRIP--> OPEN after failure_threshold consecutive failures."""
    b, seen = make()
    b.record_failure(1.0)
    b.record_failure(2.0)
    assert b.state is CLOSED
    b.record_failure(3.0)
    assert b.state is OPEN
    assert seen == [Transition(CLOSED, OPEN, BreakerEvent.TRIP, 3.0, "3 consecutive failures")]
    assert b.retry_at == 13.0
    assert b.allow(12.5) is False


def test_row_closed_trip_open_on_failure_rate() -> None:
    """CLOSED --TRIP--> OPEN when failure_rate is reached over the window with min_requests."""
    b, seen = make(failure_threshold=100, failure_rate=0.5, min_requests=4)
    b.record_success(0.0)
    b.record_failure(1.0)
    b.record_success(2.0)
    assert b.state is CLOSED
    b.record_failure(3.0)
    assert b.state is OPEN
    assert seen[0].reason == "2 of 4 requests failed in 60.0 s"


def test_row_open_cool_down_half_open() -> None:
    """OPEN --COOL_DOWN--> HALF_OPEN on the first allow() at reset_timeout after opening."""
    b, seen = make()
    trip(b, 0.0)
    assert b.allow(9.999) is False
    assert b.state is OPEN
    assert b.allow(10.0) is True
    assert b.state is HALF_OPEN
    assert seen[-1] == Transition(OPEN, HALF_OPEN, BreakerEvent.COOL_DOWN, 10.0, "10.0 s since opening")


def test_row_half_open_probes_passed_closed() -> None:
    """HALF_OPEN --PROBES_PASSED--> CLOSED after half_open_probes successes."""
    b, seen = make()
    to_half_open(b, 0.0)
    assert b.allow(10.0) is True
    assert b.allow(10.0) is False  # both probe slots taken
    b.record_success(11.0)
    assert b.state is HALF_OPEN
    b.record_success(12.0)
    assert b.state is CLOSED
    assert seen[-1] == Transition(HALF_OPEN, CLOSED, BreakerEvent.PROBES_PASSED, 12.0, "2 probe(s) succeeded")
    assert b.allow(12.0) is True


def test_row_half_open_probe_failed_open() -> None:
    """HALF_OPEN --PROBE_FAILED--> OPEN on one failure, with a fresh reset_timeout."""
    b, seen = make()
    to_half_open(b, 0.0)
    b.record_success(10.5)
    b.record_failure(11.0)
    assert b.state is OPEN
    assert seen[-1] == Transition(HALF_OPEN, OPEN, BreakerEvent.PROBE_FAILED, 11.0, "a probe failed")
    assert b.allow(20.5) is False
    assert b.allow(21.0) is True


# -- behaviour within a state -------------------------------------------------------------


def test_success_resets_the_consecutive_count() -> None:
    """Failures must be consecutive to trip on the threshold."""
    b, _ = make()
    for t in range(10):
        b.record_failure(float(t))
        b.record_failure(float(t))
        b.record_success(float(t))
    assert b.state is CLOSED


def test_failure_rate_needs_min_requests() -> None:
    """Below min_requests samples the rate does not trip."""
    b, _ = make(failure_threshold=100, failure_rate=0.5, min_requests=5)
    for t in (0.0, 1.0):
        b.record_failure(t)
        b.record_success(t)
    assert b.state is CLOSED
    b.record_failure(2.0)
    assert b.state is OPEN


def test_failure_rate_window_forgets_old_samples() -> None:
    """Failures older than the window no longer count."""
    b, _ = make(failure_threshold=100, failure_rate=0.5, min_requests=4, window=60.0)
    b.record_failure(0.0)
    b.record_failure(1.0)
    b.record_success(1.0)
    b.record_success(70.0)
    b.record_success(70.0)
    b.record_failure(71.0)
    assert b.state is CLOSED  # 1 of 3 in the window
    b.record_failure(72.0)
    assert b.state is OPEN  # 2 of 4


def test_results_while_open_are_ignored() -> None:
    """Late results from requests admitted before the trip change nothing."""
    b, seen = make()
    trip(b, 0.0)
    b.record_success(1.0)
    b.record_failure(2.0)
    assert b.state is OPEN
    assert b.retry_at == 10.0
    assert len(seen) == 1


def test_release_frees_a_probe_slot() -> None:
    """A probe that ended with no verdict gives its slot back."""
    b, _ = make(half_open_probes=1)
    to_half_open(b, 0.0)
    assert b.allow(10.0) is False
    b.release()
    assert b.allow(10.0) is True


def test_closing_starts_a_fresh_count() -> None:
    """After HALF_OPEN -> CLOSED, failures from before do not count."""
    b, _ = make(half_open_probes=1)
    to_half_open(b, 0.0)
    b.record_success(10.0)
    b.record_failure(10.0)
    b.record_failure(10.0)
    assert b.state is CLOSED


def test_counters_and_bounded_history() -> None:
    """Every transition is counted; the history keeps the latest `history_size`."""
    b = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, history_size=3)
    for t in range(4):
        b.record_failure(2.0 * t)
        assert b.allow(2.0 * t + 1.0)
        b.record_success(2.0 * t + 1.0)
    assert b.transition_count == 12
    assert b.event_counts[BreakerEvent.TRIP] == 4
    assert [tr.event for tr in b.history] == [BreakerEvent.TRIP, BreakerEvent.COOL_DOWN, BreakerEvent.PROBES_PASSED]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"reset_timeout": -1.0},
        {"half_open_probes": 0},
        {"failure_rate": 0.0},
        {"failure_rate": 1.5},
        {"min_requests": 0},
        {"window": 0.0},
    ],
)
def test_invalid_configuration(kwargs: dict[str, float]) -> None:
    """Nonsensical settings are refused at construction."""
    with pytest.raises(ValueError):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "status", "counts"),
    [
        ("connection", None, True),
        ("timeout", None, True),
        ("http_status", 429, False),
        ("http_status", 500, True),
        ("http_status", 529, True),
        ("http_status", 408, True),
        ("http_status", 400, False),
        ("http_status", 401, False),
        ("http_status", 404, False),
        ("http_status", 422, False),
        ("upstream", 529, True),
        ("upstream", 400, False),
        ("upstream", None, True),
        ("protocol", None, True),
        ("rate_limited", None, False),
        ("rate_limited", 429, False),
        ("upstream", 429, False),
        ("internal", None, False),
        ("circuit_open", None, False),
        ("circuit_open", 503, False),
    ],
)
def test_is_breaker_failure(kind: str, status: int | None, counts: bool) -> None:
    """Connection errors, timeouts, 408 and 5xx count; 429 ("slow down"), other 4xx, our own
    refusals and internal errors do not."""
    assert is_breaker_failure(kind, status) is counts


@pytest.mark.parametrize(
    ("kind", "status", "outcome"),
    [
        (None, None, "success"),
        ("http_status", 503, "failure"),
        ("timeout", None, "failure"),
        ("http_status", 400, "success"),
        ("http_status", 429, "release"),
        ("upstream", 429, "release"),
        ("rate_limited", None, "release"),
        ("circuit_open", None, "release"),
        ("internal", None, "release"),
    ],
)
def test_breaker_outcome(kind: str | None, status: int | None, outcome: str) -> None:
    """A 429 neither fails the provider nor vouches for it: the admission is released."""
    assert breaker_outcome(kind, status) == outcome


_OPS = st.sampled_from(["allow", "success", "failure", "release"])


@given(
    steps=st.lists(st.tuples(st.floats(0.0, 7.0), _OPS), max_size=80),
    probes=st.integers(1, 3),
    rate=st.sampled_from([None, 0.5]),
)
def test_never_admits_while_open_before_reset(steps: list[tuple[float, str]], probes: int, rate: float | None) -> None:
    """No allow() is True in OPEN before reset_timeout, and HALF_OPEN never exceeds its probes."""
    open_since: list[float | None] = [None]

    def watch(tr: Transition) -> None:
        open_since[0] = tr.at if tr.new is OPEN else None

    b = CircuitBreaker(
        failure_threshold=3,
        reset_timeout=10.0,
        half_open_probes=probes,
        failure_rate=rate,
        min_requests=4,
        on_transition=watch,
    )
    handlers: dict[str, Callable[[float], None]] = {
        "success": b.record_success,
        "failure": b.record_failure,
        "release": lambda now: b.release(),
    }
    now = 0.0
    pending = 0
    for gap, op in steps:
        now += gap
        if op == "allow":
            was_open = open_since[0]
            allowed = b.allow(now)
            if was_open is not None and now < was_open + 10.0:
                assert allowed is False
                assert b.state is OPEN
            pending += allowed
        elif pending:
            pending -= 1
            handlers[op](now)
        if b.state is HALF_OPEN:
            assert b._probes_in_flight <= probes


def test_success_changes_nothing_only_when_closed_quiet_and_without_a_rate_window() -> None:
    b, _ = make()
    assert b.success_changes_nothing
    b.record_failure(0.0)
    assert not b.success_changes_nothing  # a success would reset the count
    b.record_success(0.0)
    assert b.success_changes_nothing
    to_half_open(b, 1.0)
    assert not b.success_changes_nothing
    rated, _ = make(failure_rate=0.5)
    assert not rated.success_changes_nothing  # successes feed the window
