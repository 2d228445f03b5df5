"""RestartIntensity follows OTP's rule; restart_backoff doubles to a cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamactors.policy.intensity import RestartIntensity, restart_backoff


def test_gives_up_past_max_restarts_within_the_period() -> None:
    """Two restarts in 10 s are fine; a third within the period is one too many."""
    r = RestartIntensity(max_restarts=2, within_s=10.0)
    assert r.record(0.0) is True
    assert r.record(1.0) is True
    assert r.record(2.0) is False


def test_period_boundary_is_inclusive_as_in_otp() -> None:
    """A restart at `then` still counts at `then + within_s` (OTP: Now =< Then + Period)."""
    r = RestartIntensity(max_restarts=2, within_s=10.0)
    r.record(0.0)
    r.record(0.0)
    assert r.record(10.0) is False
    r = RestartIntensity(max_restarts=2, within_s=10.0)
    r.record(0.0)
    r.record(0.0)
    assert r.record(10.5) is True
    assert r.recent(10.5) == 1


def test_zero_restarts_gives_up_at_once() -> None:
    """max_restarts=0: the first failure ends the supervisor."""
    assert RestartIntensity(max_restarts=0, within_s=5.0).record(0.0) is False


def test_otp_defaults_and_reset() -> None:
    """Defaults are OTP's: 1 restart in 5 s; `reset` forgets."""
    r = RestartIntensity()
    assert (r.max_restarts, r.within_s) == (1, 5.0)
    assert r.record(0.0) is True
    r.reset()
    assert r.record(1.0) is True
    assert r.record(2.0) is False


def test_invalid_configuration() -> None:
    """Negative settings are refused."""
    with pytest.raises(ValueError):
        RestartIntensity(max_restarts=-1)
    with pytest.raises(ValueError):
        RestartIntensity(within_s=-1.0)


@given(
    max_restarts=st.integers(0, 4),
    within=st.sampled_from([0.0, 1.0, 5.0]),
    gaps=st.lists(st.floats(0.0, 3.0), max_size=50),
)
def test_matches_the_otp_rule(max_restarts: int, within: float, gaps: list[float]) -> None:
    """Same verdicts as counting every restart ever recorded, with bounded memory."""
    r = RestartIntensity(max_restarts, within)
    history: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        history.append(now)
        expected = sum(1 for t in history if now <= t + within) <= max_restarts
        assert r.record(now) is expected
        assert len(r._times) <= max_restarts + 1


@pytest.mark.parametrize(("consecutive", "delay"), [(0, 0.05), (1, 0.1), (2, 0.2), (6, 3.2), (7, 5.0), (10_000, 5.0)])
def test_restart_backoff(consecutive: int, delay: float) -> None:
    """0.05 s doubling, capped at 5 s; huge counts do not overflow."""
    assert restart_backoff(consecutive) == delay


def test_restart_backoff_custom_and_invalid() -> None:
    """Base and cap are parameters; negative counts are refused."""
    assert restart_backoff(3, base=1.0, cap=60.0) == 8.0
    with pytest.raises(ValueError):
        restart_backoff(-1)
