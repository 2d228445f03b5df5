"""The metrics actor's own bookkeeping (the end-to-end figures are in test_routes)."""

from __future__ import annotations

from streamactors.actors.metrics import LATENCY_BUCKETS, MetricsActor, RequestRecord, _Histogram


def test_histogram_buckets_are_le_bounds() -> None:
    h = _Histogram((0.1, 1.0))
    for value in (0.0, 0.1, 0.1000001, 1.0, 1.5, 99.0):
        h.observe(value)
    assert h.counts == [2, 2, 2]  # value <= 0.1, 0.1 < value <= 1.0, above: Prometheus's `le`
    assert h.total == 6 and abs(h.sum - 101.7000001) < 1e-9


def test_folding_reports_per_provider() -> None:
    metrics = MetricsActor(["a"])
    record = RequestRecord("a", "m", "ok", None, 0.02, LATENCY_BUCKETS[-1] + 1, None, 5, 7, 1)
    metrics.report(record)
    metrics.report(RequestRecord("b", "m", "error", "timeout", None, 0.5, 0.001, None, None, 0))
    health = metrics.provider_health("a")  # folds what is queued first
    assert (health["requests"], health["output_tokens"], health["retries"]) == (1, 7, 1)
    assert metrics.provider_health("b")["errors"] == {"timeout": 1}
    text = metrics.prometheus({}, {})
    assert 'streamactors_request_duration_seconds_bucket{provider="a",le="+Inf"} 1' in text
    assert 'streamactors_request_duration_seconds_bucket{provider="a",le="120.0"} 0' in text
