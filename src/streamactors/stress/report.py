"""The `streamactors stress` report (a dict, printed for people and as one JSON line) and
the progress shown while a phase runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .stats import Phase, ms
from .timeseries import chart_data

if TYPE_CHECKING:
    from .options import StressOptions

__all__ = ["ProgressDisplay", "build_report", "print_report"]

_MB = 1024 * 1024


def _rate(tokens: int, seconds: float) -> float | None:
    return round(tokens / seconds, 1) if seconds > 0 else None


def _per_token_us(cpu_s: float, tokens: int) -> float | None:
    return round(cpu_s * 1e6 / tokens, 3) if tokens else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def build_report(
    opts: StressOptions,
    providers: list[str],
    main: Phase,
    base: Phase | None,
    idle: dict[str, Any],
    rss_start: int,
) -> dict[str, Any]:
    t = main.total()
    ttft50, ttft99 = ms(t.ttft.percentile(50)), ms(t.ttft.percentile(99))
    itl50, itl99 = ms(t.itl.percentile(50)), ms(t.itl.percentile(99))
    assert main.rss_warm is not None
    report: dict[str, Any] = {
        "tokens_expected": main.tokens_due,
        "tokens_received": t.tokens,
        "lost": t.lost,
        "duplicated": t.duplicated,
        "reordered": t.reordered,
        "errors": t.failed,
        "errors_by_kind": dict(sorted(t.errors_by_kind.items())),
        "tokens_lost_to_failed_requests": t.lost_in_failed,
        "requests": t.submitted,
        "submitted": t.submitted,
        "completed": t.completed,
        "failed": t.failed,
        "concurrency": opts.concurrency,
        "providers": providers,
        "duration_s": opts.duration,
        "elapsed_s": round(main.elapsed, 3),
        "tokens_per_s": _rate(t.tokens, main.elapsed),
        "cpu_s": round(main.cpu_s, 3),
        "cpu_us_per_token": _per_token_us(main.cpu_s, t.tokens),
        # The fake upstream's CPU over the phase (None with --upstream): near elapsed_s
        # means the upstream, not the service, set the pace.
        "upstream_cpu_s": None if main.upstream_cpu_s is None else round(main.upstream_cpu_s, 3),
        "ttft_p50_ms": ttft50,
        "ttft_p99_ms": ttft99,
        # What the gateway adds before the first token: time to first token minus the
        # delay the fake upstream's scenario imposes.
        "gateway_overhead_ms_p50": _minus(ttft50, opts.ttft_ms),
        "gateway_overhead_ms_p99": _minus(ttft99, opts.ttft_ms),
        "itl_p50_ms": itl50,
        "itl_p99_ms": itl99,
        "itl_added_p50_ms": _minus(itl50, opts.delay_ms),
        "itl_added_p99_ms": _minus(itl99, opts.delay_ms),
        "rss_start_mb": round(rss_start / _MB, 1),
        "rss_warm_mb": round(main.rss_warm / _MB, 1),
        "rss_peak_mb": round(main.rss_peak / _MB, 1),
        "rss_end_mb": round(main.rss_end / _MB, 1),
        "rss_growth_after_warmup_mb": round((main.rss_end - main.rss_warm) / _MB, 2),
        **idle,
        "per_provider": {name: tally.summary() for name, tally in main.tallies.items()},
    }
    if base is not None:
        b = base.total()
        b_ttft50, b_ttft99 = ms(b.ttft.percentile(50)), ms(b.ttft.percentile(99))
        b_itl50, b_itl99 = ms(b.itl.percentile(50)), ms(b.itl.percentile(99))
        b_rate = _rate(b.tokens, base.elapsed)
        b_cpu = _per_token_us(base.cpu_s, b.tokens)
        rate = report["tokens_per_s"]
        cpu = report["cpu_us_per_token"]
        report.update(
            {
                "baseline_tokens_per_s": b_rate,
                "baseline_ratio": round(rate / b_rate, 3) if rate and b_rate else None,
                "baseline_cpu_us_per_token": b_cpu,
                "cpu_per_token_vs_baseline": round(cpu / b_cpu, 3) if cpu and b_cpu else None,
                "baseline_elapsed_s": round(base.elapsed, 3),
                "baseline_upstream_cpu_s": None if base.upstream_cpu_s is None else round(base.upstream_cpu_s, 3),
                "baseline_tokens_received": b.tokens,
                "baseline_lost": b.lost,
                "baseline_duplicated": b.duplicated,
                "baseline_failed": b.failed,
                "baseline_errors_by_kind": dict(sorted(b.errors_by_kind.items())),
                "baseline_ttft_p50_ms": b_ttft50,
                "baseline_ttft_p99_ms": b_ttft99,
                "baseline_itl_p50_ms": b_itl50,
                "baseline_itl_p99_ms": b_itl99,
                "gateway_overhead_vs_baseline_ms_p50": _minus(ttft50, b_ttft50),
                "gateway_overhead_vs_baseline_ms_p99": _minus(ttft99, b_ttft99),
                "itl_added_vs_baseline_ms_p50": _minus(itl50, b_itl50),
                "itl_added_vs_baseline_ms_p99": _minus(itl99, b_itl99),
            }
        )
    report.update(chart_data(main, base))
    return report


# --- output ----------------------------------------------------------------------------


class ProgressDisplay:
    """Progress while a phase runs: a rich bar on a terminal, else a plain line every 2 s
    on stderr (stdout stays clean for the report and its JSON line)."""

    def __init__(self, label: str, opts: StressOptions, out: Any) -> None:
        self.label = label
        self.opts = opts
        self.out = out
        self.enabled = opts.progress
        self.rich = self.enabled and bool(getattr(out, "isatty", lambda: False)())
        self._bar: Any = None
        self._task: Any = None
        self._next = 0.0

    def start(self) -> None:
        if not self.rich:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        # auto_refresh=False: rich would otherwise refresh from a thread of its own,
        # which takes the GIL from the event loop being measured.
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=Console(file=self.out),
            auto_refresh=False,
            transient=True,
        )
        self._bar.start()
        total = self.opts.duration or 1.0
        self._task = self._bar.add_task(self.label, total=total, info="")

    def update(self, phase: Phase, elapsed: float, rss: int, target: int) -> None:
        if not self.enabled or elapsed < self._next:
            return
        self._next = elapsed + (0.25 if self.rich else 2.0)
        tokens = phase.live_tokens()
        submitted = sum(t.submitted for t in phase.tallies.values())
        failed = sum(t.failed for t in phase.tallies.values())
        done = sum(t.completed for t in phase.tallies.values()) + failed
        rate = tokens / elapsed if elapsed > 0 else 0.0
        info = (
            f"{tokens:>10,} tokens  {rate:>9,.0f} tok/s  {done:>6,}/{submitted:,} requests  "
            f"{failed:,} failed  RSS {rss / _MB:6.1f} MB"
        )
        if self.rich:
            # Fits an 80-column terminal beside the bar.
            info = f"{tokens:,} tok  {rate:,.0f}/s  {done:,}/{submitted:,} req  {failed:,} failed  {rss / _MB:.0f} MB"
            total = self.opts.duration or max(1, target)
            self._bar.update(
                self._task, total=total, completed=min(elapsed if self.opts.duration else tokens, total), info=info
            )
            self._bar.refresh()
        else:
            print(f"  [{self.label}] {info}  {elapsed:6.1f} s", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.3f}{unit}" if abs(value) < 100 else f"{value:,.0f}{unit}"


def _signed(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+,.3f}" if abs(value) < 100 else f"{value:+,.0f}"


def print_report(r: dict[str, Any], out: Any) -> None:
    ok = r["lost"] == 0 and r["duplicated"] == 0 and r["reordered"] == 0
    soak = f" in a {r['duration_s']} s soak" if r["duration_s"] else ""
    lines = [
        f"streamactors stress: {r['tokens_received']:,}/{r['tokens_expected']:,} tokens over "
        f"{r['submitted']:,} requests ({r['concurrency']} concurrent){soak} via {', '.join(r['providers'])}",
        f"  {'OK' if ok else 'FAILED'}: lost {r['lost']}, duplicated {r['duplicated']}, reordered {r['reordered']}; "
        f"requests submitted {r['submitted']:,}, completed {r['completed']:,}, failed {r['failed']:,} "
        f"{r['errors_by_kind'] or ''}",
        f"  {_fmt(r['tokens_per_s'])} tokens/s in {r['elapsed_s']} s; {_fmt(r['cpu_us_per_token'])} us CPU per token"
        + (f" (fake upstream used {r['upstream_cpu_s']} s of CPU)" if r["upstream_cpu_s"] is not None else ""),
        f"  time to first token p50 {_fmt(r['ttft_p50_ms'])} ms, p99 {_fmt(r['ttft_p99_ms'])} ms "
        f"(gateway overhead p50 {_fmt(r['gateway_overhead_ms_p50'])} ms, p99 {_fmt(r['gateway_overhead_ms_p99'])} ms)",
        f"  gap between text events p50 {_fmt(r['itl_p50_ms'])} ms, p99 {_fmt(r['itl_p99_ms'])} ms",
        f"  RSS start {r['rss_start_mb']} MB, after warm-up {r['rss_warm_mb']} MB, peak {r['rss_peak_mb']} MB, "
        f"end {r['rss_end_mb']} MB (growth after warm-up {r['rss_growth_after_warmup_mb']} MB)",
    ]
    if r["idle_streams"]:
        lines.append(f"  memory per idle stream {_fmt(r['idle_stream_kb'])} KB ({r['idle_streams']} open at once)")
    if "baseline_tokens_per_s" in r:
        lines.append(
            f"  baseline (bare httpx + SSE parse): {_fmt(r['baseline_tokens_per_s'])} tokens/s, "
            f"{_fmt(r['baseline_cpu_us_per_token'])} us CPU per token; service/baseline throughput "
            f"{_fmt(r['baseline_ratio'])}, CPU per token {_fmt(r['cpu_per_token_vs_baseline'])}x"
            + (f"; it failed {r['baseline_failed']} {r['baseline_errors_by_kind']}" if r["baseline_failed"] else "")
        )
        lines.append(
            f"  vs baseline: first token {_signed(r['gateway_overhead_vs_baseline_ms_p50'])} ms p50, "
            f"{_signed(r['gateway_overhead_vs_baseline_ms_p99'])} ms p99; gap between text events "
            f"{_signed(r['itl_added_vs_baseline_ms_p99'])} ms p99"
        )
    width = max(len(p) for p in r["per_provider"]) if r["per_provider"] else 8
    lines.append(
        f"  {'provider':<{width}} {'requests':>9} {'failed':>7} {'tokens':>10} {'ttft p50':>9} "
        f"{'ttft p99':>9} {'gap p99':>8}"
    )
    for name, p in r["per_provider"].items():
        lines.append(
            f"  {name:<{width}} {p['submitted']:>9,} {p['failed']:>7,} {p['tokens']:>10,} "
            f"{_fmt(p['ttft_p50_ms']):>9} {_fmt(p['ttft_p99_ms']):>9} {_fmt(p['itl_p99_ms']):>8}"
        )
    print("\n".join(lines), file=out, flush=True)
