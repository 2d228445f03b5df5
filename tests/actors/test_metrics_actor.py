"""The metrics actor's own bookkeeping (the end-to-end figures are in test_routes)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from streamactors.actors.mailbox import FLUSH_INTERVAL
from streamactors.actors.metrics import _MAILBOX, LATENCY_BUCKETS, MetricsActor, RequestRecord, _Histogram


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


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


def record(provider: str = "a") -> RequestRecord:
    return RequestRecord(provider, "m", "ok", None, 0.02, 0.5, None, 5, 7, 0)


async def test_reports_wait_for_a_batch_but_reads_see_them(autojump_clock: Any, nursery: trio.Nursery) -> None:
    metrics = MetricsActor(["a"])
    await nursery.start(metrics.run)
    metrics.report(record())
    await trio.sleep(FLUSH_INTERVAL / 2)
    assert metrics._queued == 1  # routine: the actor was not woken for it
    assert metrics.provider_health("a")["requests"] == 1  # the read folds it in itself
    metrics.report(record())
    await trio.sleep(FLUSH_INTERVAL)
    assert metrics._queued == 0  # folded at the interval
    assert metrics.provider_health("a")["requests"] == 2


def test_a_full_mailbox_drops_and_counts() -> None:
    metrics = MetricsActor(["a"])
    for _ in range(_MAILBOX + 2):
        metrics.report(record())
    assert metrics.dropped == 2
    assert metrics.provider_health("a")["requests"] == _MAILBOX
    assert "streamactors_metrics_dropped_total 2\n" in metrics.prometheus({}, {})
