"""`streamactors stress --html`: the run's report (the dict `--json` prints) as one HTML page.

Charts: tokens/s, RSS (with the warm-up mark and the growth after it) and streams in flight
over time; time to first token as a CDF per provider; inter-token gap percentiles; errors over
time by kind; then the report's tables. With a baseline, its curves are drawn dashed beside
the service's.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from .charts import PALETTE, Axis, Bars, Rule, Series, bar_chart, fmt_num, line_chart
from .page import page, section, table, tiles

__all__ = ["render_stress_html"]

_SERVICE = "#4e79a7"
_BASELINE = "#f28e2b"
_ALL = "#222222"
_ERROR_COLORS = ("#e15759", "#f28e2b", "#b07aa1", "#9c755f", "#edc948", "#76b7b2", "#ff9da7", "#bab0ac")


def _rates(ts: Mapping[str, Any]) -> list[float | None]:
    """Tokens per second over each point's span."""
    out: list[float | None] = []
    prev = 0.0
    for t, n in zip(ts["t_s"], ts["tokens"], strict=True):
        out.append(n / (t - prev) if t > prev else None)
        prev = t
    return out


def _phases(r: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], str, bool]]:
    """(label, series, colour, dashed) for the service and, if run, the baseline."""
    out: list[tuple[str, Mapping[str, Any], str, bool]] = []
    if r.get("timeseries"):
        out.append(("service", r["timeseries"], _SERVICE, False))
    if r.get("baseline_timeseries"):
        out.append(("baseline (bare httpx)", r["baseline_timeseries"], _BASELINE, True))
    return out


def _sampling_note(r: Mapping[str, Any]) -> str:
    ts = r.get("timeseries") or {}
    if not ts:
        return ""
    times = [0.0, *ts["t_s"]]
    longest = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    late = (
        f" The event loop was busy: up to {longest:.1f} s between two readings." if longest > 2 * ts["step_s"] else ""
    )
    return (
        f"Sampled every {fmt_num(ts['interval_s'])} s; {len(ts['t_s'])} points of {fmt_num(ts['step_s'])} s "
        f"(at most {ts['cap']:,} per series, neighbours merged beyond).{late}"
    )


def _throughput(r: Mapping[str, Any]) -> str:
    series = [Series(label, ts["t_s"], _rates(ts), color, dashed) for label, ts, color, dashed in _phases(r)]
    note = f"Mean {r['tokens_per_s'] or 0:,.0f} tokens/s over {r['elapsed_s']} s. " + _sampling_note(r)
    return line_chart(
        "tokens_per_s", "Tokens per second", series, Axis("seconds into the run"), Axis("tokens/s"), note=note
    )


def _rss(r: Mapping[str, Any]) -> str:
    series = [Series(label, ts["t_s"], ts["rss_mb"], color, dashed) for label, ts, color, dashed in _phases(r)]
    rules = []
    if r.get("warmup_s") is not None:
        rules.append(Rule(r["warmup_s"], "warm-up"))
        rules.append(Rule(r["rss_warm_mb"], f"after warm-up {r['rss_warm_mb']} MB", vertical=False))
    note = (
        f"Growth after warm-up {r['rss_growth_after_warmup_mb']:+} MB "
        f"(warm {r['rss_warm_mb']} MB, peak {r['rss_peak_mb']} MB, end {r['rss_end_mb']} MB). "
        "Each point is the highest RSS read in its span."
    )
    return line_chart("rss", "Memory (RSS)", series, Axis("seconds into the run"), Axis("MB"), rules=rules, note=note)


def _in_flight(r: Mapping[str, Any]) -> str:
    series = [
        Series(label, ts["t_s"], [float(v) for v in ts["in_flight"]], color, dashed)
        for label, ts, color, dashed in _phases(r)
    ]
    note = f"{r['concurrency']:,} at most at once; each point is the most seen in its span."
    return line_chart(
        "in_flight", "Streams in flight", series, Axis("seconds into the run"), Axis("streams"), note=note
    )


def _provider_series(per: Mapping[str, Any], make: Any) -> list[Series]:
    """A series per provider, then "all" (dark and thicker, drawn over them)."""
    out = [
        make(name, per[name], PALETTE[i % len(PALETTE)], False, 1.5)
        for i, name in enumerate(n for n in per if n != "all")
    ]
    if "all" in per:
        out.append(make("all", per["all"], _ALL, False, 2.5))
    return out


def _ttft(r: Mapping[str, Any]) -> str:
    def make(name: str, points: Sequence[Sequence[float]], color: str, dashed: bool, width: float) -> Series:
        return Series(name, [p[0] for p in points], [100 * p[1] for p in points], color, dashed, width)

    series = _provider_series(r.get("ttft_cdf_ms") or {}, make)
    base = (r.get("baseline_ttft_cdf_ms") or {}).get("all")
    if base is not None:
        series.append(make("baseline (bare httpx)", base, _BASELINE, True, 2.0))
    values = [v for s in series for v in s.x if v > 0]
    log = bool(values) and max(values) / min(values) > 100
    return line_chart(
        "ttft_cdf",
        "Time to first token (CDF)",
        series,
        Axis("ms" + (" (log scale)" if log else ""), log=log),
        Axis("% of requests", hi=100.0),
        note=f"p50 {_ms(r['ttft_p50_ms'])} ms, p99 {_ms(r['ttft_p99_ms'])} ms over all providers.",
    )


def _itl(r: Mapping[str, Any]) -> str:
    per: Mapping[str, Mapping[str, float | None]] = r.get("itl_percentiles_ms") or {}
    names = list(next(iter(per.values()), {}).keys())
    ticks = [(float(i), name) for i, name in enumerate(names)]

    def make(name: str, pct: Mapping[str, float | None], color: str, dashed: bool, width: float) -> Series:
        return Series(name, [float(i) for i in range(len(names))], [pct[k] for k in names], color, dashed, width)

    series = _provider_series(per, make)
    base = (r.get("baseline_itl_percentiles_ms") or {}).get("all")
    if base is not None:
        series.append(make("baseline (bare httpx)", base, _BASELINE, True, 2.0))
    return line_chart(
        "itl_percentiles",
        "Gap between text events (percentiles)",
        series,
        Axis("percentile", ticks=ticks, lo=-0.2, hi=len(names) - 0.8),
        Axis("ms (log scale)", log=True),
        note="The consumer's time between two text events of a stream.",
    )


def _errors(key: str, title: str, ts: Mapping[str, Any] | None) -> str:
    edges = [0.0, *ts["t_s"]] if ts else []
    errors: Mapping[str, Sequence[int]] = ts["errors"] if ts else {}
    colors = _ERROR_COLORS
    layers = [Bars(kind, counts, colors[i % len(colors)]) for i, (kind, counts) in enumerate(errors.items())]
    total = sum(sum(c) for c in errors.values())
    return bar_chart(
        key,
        title,
        edges,
        layers,
        Axis("seconds into the run"),
        Axis("errors per span"),
        note=f"{total:,} in all, by kind; a bar is one sampled span." if total else "",
        empty="no errors",
    )


def _summary(r: Mapping[str, Any]) -> list[str]:
    def v(key: str, unit: str = "") -> str:
        value = r.get(key)
        if value is None:
            return "n/a"
        return f"{value:,}{unit}" if isinstance(value, int) else f"{value:,.3f}".rstrip("0").rstrip(".") + unit

    rows = [
        ("tokens received / expected", f"{r['tokens_received']:,} / {r['tokens_expected']:,}"),
        ("lost, duplicated, reordered", f"{r['lost']}, {r['duplicated']}, {r['reordered']}"),
        ("requests submitted, completed, failed", f"{r['submitted']:,}, {r['completed']:,}, {r['failed']:,}"),
        ("errors by kind", ", ".join(f"{k} {n}" for k, n in r["errors_by_kind"].items()) or "none"),
        ("tokens lost to failed requests", v("tokens_lost_to_failed_requests")),
        ("concurrency", v("concurrency")),
        ("providers", ", ".join(r["providers"])),
        ("elapsed", v("elapsed_s", " s")),
        ("tokens/s", v("tokens_per_s")),
        ("CPU per token", v("cpu_us_per_token", " µs")),
        ("fake upstream CPU", v("upstream_cpu_s", " s")),
        ("time to first token p50 / p99", f"{v('ttft_p50_ms', ' ms')} / {v('ttft_p99_ms', ' ms')}"),
        ("gap between text events p50 / p99", f"{v('itl_p50_ms', ' ms')} / {v('itl_p99_ms', ' ms')}"),
        (
            "RSS start / warm / peak / end",
            f"{r['rss_start_mb']} / {r['rss_warm_mb']} / {r['rss_peak_mb']} / {r['rss_end_mb']} MB",
        ),
        ("RSS growth after warm-up", v("rss_growth_after_warmup_mb", " MB")),
        (
            "memory per idle stream",
            f"{v('idle_stream_kb', ' KB')} ({r['idle_streams']} open)" if r["idle_streams"] else "not measured",
        ),
    ]
    if "baseline_tokens_per_s" in r:
        rows += [
            ("baseline tokens/s", v("baseline_tokens_per_s")),
            ("service / baseline throughput", v("baseline_ratio")),
            ("baseline CPU per token", v("baseline_cpu_us_per_token", " µs")),
            (
                "baseline first token p50 / p99",
                f"{v('baseline_ttft_p50_ms', ' ms')} / {v('baseline_ttft_p99_ms', ' ms')}",
            ),
            (
                "baseline lost, duplicated, failed",
                f"{r['baseline_lost']}, {r['baseline_duplicated']}, {r['baseline_failed']}",
            ),
        ]
    providers = [
        (
            name,
            f"{p['submitted']:,}",
            f"{p['failed']:,}",
            f"{p['tokens']:,}",
            f"{p['lost']:,}",
            ", ".join(f"{k} {n}" for k, n in p["errors_by_kind"].items()),
            fmt_num(p["ttft_p50_ms"] or 0),
            fmt_num(p["ttft_p99_ms"] or 0),
            fmt_num(p["itl_p99_ms"] or 0),
        )
        for name, p in r["per_provider"].items()
    ]
    return [
        section("Summary", [table(("figure", "value"), rows)]),
        section(
            "Per provider",
            [
                table(
                    (
                        "provider",
                        "requests",
                        "failed",
                        "tokens",
                        "lost",
                        "errors",
                        "ttft p50 ms",
                        "ttft p99 ms",
                        "gap p99 ms",
                    ),
                    providers,
                    numeric=(1, 2, 3, 4, 6, 7, 8),
                )
            ],
        ),
    ]


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def render_stress_html(r: Mapping[str, Any]) -> str:
    """The report `run_stress` returns (or `--json` prints), as a self-contained HTML page."""
    ok = r["lost"] == 0 and r["duplicated"] == 0 and r["reordered"] == 0
    soak = f" in a {r['duration_s']} s soak" if r.get("duration_s") else ""
    subtitle = (
        f"{'OK' if ok else 'FAILED'}: {r['tokens_received']:,}/{r['tokens_expected']:,} tokens over "
        f"{r['submitted']:,} requests ({r['concurrency']:,} concurrent){soak} via {', '.join(r['providers'])}; "
        f"lost {r['lost']}, duplicated {r['duplicated']}, reordered {r['reordered']}, failed {r['failed']}"
    )
    headline = tiles(
        [
            (f"{r['tokens_per_s'] or 0:,.0f}", "tokens/s"),
            (f"{_ms(r['ttft_p50_ms'])} / {_ms(r['ttft_p99_ms'])} ms", "first token p50 / p99"),
            (f"{r['rss_growth_after_warmup_mb']:+} MB", "RSS growth after warm-up"),
            (f"{r['rss_peak_mb']} MB", "RSS peak"),
            (f"{r['failed']:,}", "failed requests"),
            (f"{r['lost']} / {r['duplicated']} / {r['reordered']}", "lost / duplicated / reordered"),
        ]
    )
    charts = [
        _throughput(r),
        _rss(r),
        _in_flight(r),
        _ttft(r),
        _itl(r),
        _errors("errors", "Errors over time", r.get("timeseries")),
    ]
    base = r.get("baseline_timeseries")
    if base and any(sum(c) for c in base["errors"].values()):
        charts.append(_errors("baseline_errors", "Baseline errors over time", base))
    return page("streamactors stress", subtitle, [headline, section("Over the run", charts, grid=True), *_summary(r)])
