"""The stress harness: small real runs against the fake upstream in its own process,
and the pieces that count (token checker, latency histogram) on their own."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from streamactors.stress import StressOptions, run_stress
from streamactors.stress.stats import LatencyHistogram, Tally, TokenChecker

REPORT_KEYS = {
    # the keys the first harness reported
    "tokens_expected",
    "tokens_received",
    "lost",
    "duplicated",
    "errors",
    "errors_by_kind",
    "tokens_lost_to_failed_requests",
    "requests",
    "completed",
    "concurrency",
    "providers",
    "elapsed_s",
    "tokens_per_s",
    "cpu_s",
    "cpu_us_per_token",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "rss_start_mb",
    "rss_peak_mb",
    "rss_end_mb",
    "per_provider",
    # and the operator tools' additions
    "submitted",
    "failed",
    "reordered",
    "duration_s",
    "gateway_overhead_ms_p50",
    "gateway_overhead_ms_p99",
    "itl_p50_ms",
    "itl_p99_ms",
    "itl_added_p50_ms",
    "itl_added_p99_ms",
    "rss_warm_mb",
    "rss_growth_after_warmup_mb",
    "idle_streams",
    "idle_stream_kb",
    "upstream_cpu_s",
}
BASELINE_KEYS = {
    "baseline_tokens_per_s",
    "baseline_ratio",
    "baseline_cpu_us_per_token",
    "cpu_per_token_vs_baseline",
    "baseline_tokens_received",
    "baseline_lost",
    "baseline_duplicated",
    "baseline_failed",
    "baseline_ttft_p50_ms",
    "baseline_itl_p99_ms",
    "gateway_overhead_vs_baseline_ms_p50",
    "itl_added_vs_baseline_ms_p99",
}
PER_PROVIDER_KEYS = {
    "requests",
    "submitted",
    "completed",
    "failed",
    "errors",
    "errors_by_kind",
    "tokens",
    "lost",
    "duplicated",
    "reordered",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "itl_p99_ms",
}


async def _run(**kw: Any) -> tuple[dict[str, Any], str]:
    out = io.StringIO()
    report = await run_stress(StressOptions(json=True, progress=False, **kw), out)
    text = out.getvalue()
    assert orjson.loads(text.strip().splitlines()[-1]) == orjson.loads(orjson.dumps(report))
    return report, text


class TestRunStress:
    async def test_every_token_arrives_once_and_the_report_has_every_key(self) -> None:
        """5,000 tokens over 20 concurrent requests through every provider kind, with the baseline."""
        r, text = await _run(tokens=5000, concurrency=20, baseline=True, idle_streams=9)
        assert r.keys() >= REPORT_KEYS | BASELINE_KEYS
        assert (r["tokens_received"], r["lost"], r["duplicated"], r["reordered"]) == (5000, 0, 0, 0)
        assert r["submitted"] == r["completed"] == 20 and r["failed"] == 0
        assert (r["baseline_tokens_received"], r["baseline_lost"], r["baseline_duplicated"]) == (5000, 0, 0)
        assert r["baseline_ratio"] > 0 and r["cpu_us_per_token"] > 0
        assert r["idle_streams"] == 9 and r["idle_stream_kb"] is not None
        assert len(r["per_provider"]) == 9
        for name, p in r["per_provider"].items():
            assert p.keys() >= PER_PROVIDER_KEYS, name
            assert p["tokens"] > 0 and p["lost"] == 0, name
        assert sum(p["tokens"] for p in r["per_provider"].values()) == 5000
        assert "OK: lost 0, duplicated 0" in text and "baseline (bare httpx" in text

    async def test_injected_faults_account_for_every_request(self) -> None:
        """With failures before and during streams, completed + failed == submitted and nothing repeats."""
        r, _ = await _run(
            tokens=3000,
            requests=60,
            concurrency=12,
            providers=("openai", "anthropic", "bedrock"),
            fail_rate=0.2,
            midstream_rate=0.2,
            idle_streams=0,
            baseline=True,
        )
        assert r["submitted"] == 60
        assert r["completed"] + r["failed"] == r["submitted"]
        assert r["failed"] > 0 and sum(r["errors_by_kind"].values()) == r["failed"]
        assert r["duplicated"] == 0 and r["lost"] == 0 and r["reordered"] == 0
        assert r["tokens_received"] + r["tokens_lost_to_failed_requests"] == r["tokens_expected"]
        assert r["baseline_duplicated"] == 0 and r["baseline_lost"] == 0

    async def test_injected_faults_during_the_idle_stream_phase_do_not_end_the_run(self) -> None:
        """Idle streams meet the injected faults too: a failed one is one fewer to measure."""
        r, _ = await _run(
            tokens=500, requests=10, concurrency=10, providers=("openai",), fail_rate=0.5, idle_streams=10
        )
        assert r["completed"] + r["failed"] == r["submitted"] == 10
        assert 1 <= r["idle_streams"] <= 10 and r["idle_stream_kb"] is not None

    async def test_fallback_routes_absorb_failures_before_the_first_token(self) -> None:
        """With --fallback, a 503 before the first token moves to the next provider: only
        mid-stream failures surface, and every request is still accounted for."""
        r, _ = await _run(
            tokens=4000,
            requests=200,
            concurrency=20,
            providers=("openai", "anthropic", "gemini"),
            fail_rate=0.1,
            midstream_rate=0.05,
            idle_streams=0,
            fallback=True,
        )
        assert r["submitted"] == 200 and r["completed"] + r["failed"] == 200
        # Without the routes about 20 requests would fail with a 503; with them only those whose
        # both targets failed (1% of 200, so about 2), and mid-stream failures (about 5%).
        assert set(r["errors_by_kind"]) <= {"upstream", "http_status"}
        assert r["errors_by_kind"].get("http_status", 0) < 10
        assert r["duplicated"] == 0 and r["lost"] == 0 and r["reordered"] == 0
        assert r["tokens_received"] + r["tokens_lost_to_failed_requests"] == r["tokens_expected"]

    async def test_soak_submits_until_the_time_is_up_then_drains(self) -> None:
        """`duration` keeps submitting 50-token requests, then every submitted one finishes."""
        r, text = await _run(
            tokens=500, requests=10, concurrency=5, providers=("openai",), duration=0.5, idle_streams=0
        )
        assert r["duration_s"] == 0.5 and r["submitted"] >= 5
        assert r["completed"] == r["submitted"] and r["tokens_received"] == r["tokens_expected"] == 50 * r["submitted"]
        assert "soak" in text


class TestTokenChecker:
    def _check(self, fragments: list[str], total: int) -> TokenChecker:
        c = TokenChecker()
        for f in fragments:
            c.feed(f)
        c.finish(total)
        return c

    def test_in_order(self) -> None:
        c = self._check([f"t{i} " for i in range(5)], 5)
        assert (c.received, c.lost, c.duplicated, c.reordered) == (5, 0, 0, 0)

    def test_fragments_split_anywhere(self) -> None:
        """Tokens split across fragments, and several per fragment, count once each."""
        text = "".join(f"t{i} " for i in range(12))
        for cut in range(1, len(text)):
            c = self._check([text[:cut], text[cut:]], 12)
            assert (c.received, c.lost, c.duplicated) == (12, 0, 0), cut
        c = self._check(["t0 t", "1", " t2", " t3 "], 4)
        assert (c.received, c.lost) == (4, 0)

    def test_loss_in_the_middle_and_at_the_end(self) -> None:
        c = self._check(["t0 ", "t1 ", "t4 ", "t5 "], 8)
        assert (c.received, c.lost, c.duplicated) == (4, 2 + 2, 0)

    def test_duplicates(self) -> None:
        c = self._check(["t0 ", "t1 ", "t1 ", "t2 ", "t0 "], 3)
        assert (c.received, c.lost, c.duplicated) == (3, 0, 2)

    def test_reordering_is_told_apart_from_loss_and_duplicates(self) -> None:
        c = self._check(["t0 ", "t2 ", "t1 ", "t3 "], 4)
        assert (c.received, c.lost, c.duplicated, c.reordered) == (4, 0, 0, 1)
        c = self._check(["t0 ", "t2 ", "t1 ", "t1 "], 3)
        assert (c.lost, c.duplicated, c.reordered) == (0, 1, 1)

    def test_a_mangled_token_counts_as_lost(self) -> None:
        c = self._check(["t0 ", "tX ", "t1 "], 2)
        assert (c.received, c.lost) == (2, 1)

    def test_an_unterminated_last_token_still_counts(self) -> None:
        c = self._check(["t0 t1"], 2)
        assert (c.received, c.lost) == (2, 0)

    def test_a_failed_stream_reports_its_tail_as_failed_not_lost(self) -> None:
        tally = Tally()
        c = TokenChecker()
        c.feed("t0 t1 ")
        tally.close(c, 10, "upstream")
        assert (tally.failed, tally.lost, tally.lost_in_failed, tally.tokens) == (1, 0, 8, 2)
        assert tally.errors_by_kind == {"upstream": 1}


class TestLatencyHistogram:
    def test_percentiles_within_one_percent(self) -> None:
        h = LatencyHistogram()
        for i in range(1, 1001):
            h.add(i / 1000)  # 1 ms .. 1 s
        for q, want in ((50, 0.5), (99, 0.99), (100, 1.0)):
            got = h.percentile(q)
            assert got == pytest.approx(want, rel=0.011), q

    def test_empty_tiny_and_huge(self) -> None:
        h = LatencyHistogram()
        assert h.percentile(50) is None
        h.add(0.0)
        h.add(1e9)
        assert h.percentile(1) == 1e-6
        assert h.percentile(100) > 1000

    def test_merge(self) -> None:
        a, b = LatencyHistogram(), LatencyHistogram()
        a.add(0.001)
        b.add(0.1)
        a.merge(b)
        assert a.n == 2 and a.percentile(100) == pytest.approx(0.1, rel=0.011)
