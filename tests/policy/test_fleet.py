"""The fleet's pure rules: which responses pause every service, and how long; what a
request may do given the fleet's circuit as last heard."""

from __future__ import annotations

import math

import pytest

from streamactors.policy.adaptive import PacerSettings
from streamactors.policy.fleet import CircuitDecision, FleetCircuit, quota_pause
from streamactors.policy.ratelimit_headers import QuotaSnapshot

S = PacerSettings()


@pytest.mark.parametrize(
    ("status", "snapshot", "retry_after", "pause"),
    [
        (200, None, None, None),
        (429, None, 2.0, 2.0),
        (429, None, None, None),  # no word on how long: AIMD, locally
        (429, None, 0.0, None),
        (429, None, 61.0, None),  # past max_wait_s: surfaces as errors, not as a fleet-wide stop
        (503, None, 2.0, None),  # only throttling statuses pause
        (429, QuotaSnapshot(remaining_tokens=0, reset_tokens_s=0.054), 1.0, 0.054),  # the reset bounds it
        (429, QuotaSnapshot(remaining_tokens=500, reset_tokens_s=3.0), 1.0, 1.0),
        (200, QuotaSnapshot(remaining_requests=0, reset_requests_s=1.5), None, 1.5),
        (
            200,
            QuotaSnapshot(remaining_requests=0, reset_requests_s=1.5, remaining_tokens=0, reset_tokens_s=6.0),
            None,
            6.0,
        ),
        (200, QuotaSnapshot(remaining_requests=1, reset_requests_s=1.5), None, None),  # low is not spent
        (200, QuotaSnapshot(remaining_requests=0, reset_requests_s=3600.0), None, None),  # a daily quota
        (200, QuotaSnapshot(remaining_requests=0), None, None),  # no reset: no telling how long
        (429, QuotaSnapshot(remaining_requests=0, reset_requests_s=5.0), 2.0, 5.0),
    ],
)
def test_quota_pause(
    status: int, snapshot: QuotaSnapshot | None, retry_after: float | None, pause: float | None
) -> None:
    assert quota_pause(status, snapshot, retry_after, S) == pause


def test_circuit_view() -> None:
    view = FleetCircuit()
    assert (view.state, view.decide(0.0), view.retry_in(0.0)) == ("closed", CircuitDecision.GO, None)
    assert view.learn("open", 5.0, now=10.0)
    assert view.decide(14.9) is CircuitDecision.REJECT and view.retry_in(12.0) == 3.0
    assert view.decide(15.0) is CircuitDecision.ASK and view.retry_in(16.0) == 0.0
    assert not view.learn("open", 1.0, now=14.0)  # same state; the retry time follows the news
    assert view.retry_at == 15.0
    assert view.learn("half_open", 0.0, now=15.0)
    assert view.decide(15.0) is CircuitDecision.ASK and view.retry_in(15.0) is None
    assert view.learn("closed", 0.0, now=16.0) and view.retry_at == -math.inf
    assert view.decide(16.0) is CircuitDecision.GO
