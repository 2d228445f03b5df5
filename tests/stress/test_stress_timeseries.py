"""The stress report's chart data: the phase sampled at a fixed interval (tokens, errors by
kind, RSS, streams in flight), latency CDFs and gap percentiles, in the `--json` report."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest

from streamactors.stress import StressOptions, run_stress
from streamactors.stress.stats import LatencyHistogram, Phase, Tally, TokenChecker
from streamactors.stress.timeseries import PhaseSampler

MB = 1024 * 1024


def _stream(phase: Phase, tokens: int) -> TokenChecker:
    checker = TokenChecker()
    for i in range(tokens):
        checker.feed(f"t{i} ")
    phase.active.add(checker)
    return checker


def _end(phase: Phase, provider: str, checker: TokenChecker, expected: int, kind: str | None) -> None:
    phase.active.discard(checker)
    phase.tallies[provider].close(checker, expected, kind)


class TestPhaseSampler:
    def test_a_known_phase_read_at_each_tick(self) -> None:
        """Tokens and errors per span (streams in flight included), the highest RSS and
        streams in flight seen in each span; the last reading at the end."""
        phase = Phase("service", {"openai": Tally(), "anthropic": Tally()})
        s = PhaseSampler(interval=0.5)
        a = _stream(phase, 30)
        b = _stream(phase, 20)
        s.see(100 * MB, 2)
        s.see(90 * MB, 2)
        assert s.next_at == 0.5
        s.tick(phase, 0.5)
        assert s.next_at == 1.0
        _end(phase, "openai", a, 30, None)  # 30 tokens, all counted in the first span already
        _end(phase, "anthropic", b, 40, "upstream")
        c = _stream(phase, 5)
        s.see(120 * MB, 1)
        s.tick(phase, 1.0)
        _end(phase, "openai", c, 10, "timeout")
        d = _stream(phase, 7)
        _end(phase, "openai", d, 7, None)
        s.see(110 * MB, 0)
        s.tick(phase, 1.7)  # late: the next reading is not brought forward
        assert s.next_at == 2.0
        result = s.close(phase, 1.9, 105 * MB)  # under half an interval: joins the reading before
        assert result == {
            "interval_s": 0.5,
            "cap": 2000,
            "step_s": 0.5,
            "t_s": [0.5, 1.0, 1.9],
            "tokens": [50, 5, 7],
            "rss_mb": [100.0, 120.0, 110.0],
            "in_flight": [2, 1, 0],
            "errors": {"timeout": [0, 0, 1], "upstream": [0, 1, 0]},
        }

    def test_a_busy_loop_spaces_the_readings_out(self) -> None:
        phase = Phase("service", {"openai": Tally()})
        s = PhaseSampler(interval=0.5)
        s.tick(phase, 3.0)  # the loop came back 2.5 s late
        assert s.next_at == 3.25
        assert s.close(phase, 3.5, MB)["t_s"] == [3.0, 3.5]


class TestLatencyCdf:
    def test_points_per_bucket_at_the_percentile_values(self) -> None:
        h = LatencyHistogram()
        for seconds in (0.001, 0.001, 0.002, 0.010):
            h.add(seconds)
        cdf = h.cdf()
        assert [frac for _, frac in cdf] == [0.5, 0.75, 1.0]
        assert [ms for ms, _ in cdf] == pytest.approx([1.0, 2.0, 10.0], rel=0.011)
        assert cdf[-1][0] == pytest.approx(h.percentile(100) * 1000, rel=1e-3)  # type: ignore[operator]
        assert LatencyHistogram().cdf() == []

    def test_thinned_to_at_most_max_points_keeping_both_ends(self) -> None:
        h = LatencyHistogram()
        for i in range(1, 100_001):
            h.add(i / 100_000)  # 10 µs .. 1 s: about 1,150 buckets
        cdf = h.cdf(max_points=50)
        assert len(cdf) <= 50
        assert cdf[0][0] == pytest.approx(0.01, rel=0.011) and cdf[-1] == [pytest.approx(1000, rel=0.011), 1.0]
        fractions = [frac for _, frac in cdf]
        assert fractions == sorted(fractions)
        assert max(b - a for a, b in itertools.pairwise(fractions)) < 0.05


def _check_series(ts: dict[str, Any], r: dict[str, Any], interval: float) -> None:
    n = len(ts["t_s"])
    assert n >= 1 and ts["interval_s"] == interval and ts["cap"] == 2000 and ts["step_s"] == interval
    assert len(ts["tokens"]) == len(ts["rss_mb"]) == len(ts["in_flight"]) == n
    assert all(len(c) == n for c in ts["errors"].values())
    assert ts["t_s"] == sorted(ts["t_s"])
    assert max(ts["in_flight"]) <= r["concurrency"]
    assert min(ts["rss_mb"]) > 10


class TestInTheReport:
    async def test_the_json_report_carries_the_series_and_they_add_up(self) -> None:
        """A 1 s soak read every 0.1 s, with faults and the baseline: every token and error is
        in exactly one span, the last span ends with the phase, and both phases are charted."""
        opts = StressOptions(
            tokens=600,
            requests=30,
            concurrency=6,
            providers=("openai", "anthropic"),
            delay_ms=1,
            duration=1.0,
            fail_rate=0.1,
            midstream_rate=0.1,
            idle_streams=0,
            baseline=True,
            sample_interval=0.1,
            json=True,
            progress=False,
        )
        r = await run_stress(opts, io.StringIO())
        ts = r["timeseries"]
        _check_series(ts, r, 0.1)
        assert len(ts["t_s"]) >= 5  # 1 s and the drain, read every 0.1 s
        assert sum(ts["tokens"]) == r["tokens_received"]
        assert {k: sum(v) for k, v in ts["errors"].items() if sum(v)} == r["errors_by_kind"]
        assert ts["t_s"][-1] == pytest.approx(r["elapsed_s"], abs=0.002)
        assert max(ts["rss_mb"]) <= r["rss_peak_mb"] + 0.1
        assert 0 < r["warmup_s"] <= r["elapsed_s"]

        base = r["baseline_timeseries"]
        _check_series(base, r, 0.1)
        assert sum(base["tokens"]) == r["baseline_tokens_received"]
        assert sum(sum(v) for v in base["errors"].values()) == r["baseline_failed"]
        assert base["t_s"][-1] == pytest.approx(r["baseline_elapsed_s"], abs=0.002)

        assert list(r["ttft_cdf_ms"]) == ["all", "openai", "anthropic"]
        for name, cdf in r["ttft_cdf_ms"].items():
            assert cdf[-1][1] == 1.0 and cdf == sorted(cdf), name
        # The CDF crosses 99% at p99 (thinned: at the first point kept past it).
        cdf = r["ttft_cdf_ms"]["all"]
        below = [ms for ms, frac in cdf if frac < 0.99]
        above = [ms for ms, frac in cdf if frac >= 0.99]
        assert (below[-1] if below else 0) < r["ttft_p99_ms"] * 1.001 and above[0] > r["ttft_p99_ms"] * 0.999
        assert list(r["itl_percentiles_ms"]["all"]) == ["p50", "p90", "p99", "p99.9", "max"]
        assert r["itl_percentiles_ms"]["all"]["p50"] == r["itl_p50_ms"]
        assert r["itl_percentiles_ms"]["all"]["p99"] == r["itl_p99_ms"]
        assert list(r["baseline_ttft_cdf_ms"]) == ["all"] and r["baseline_ttft_cdf_ms"]["all"][-1][1] == 1.0
        assert r["baseline_itl_percentiles_ms"]["all"]["p99"] == r["baseline_itl_p99_ms"]
