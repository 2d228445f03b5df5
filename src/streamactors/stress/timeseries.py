"""What the stress report's charts are drawn from: the phase's counters read at a fixed interval
(`PhaseSampler`), and the latency distributions at the end (`chart_data`).

Sampling must not disturb what it measures, so it reads only what the run keeps anyway (the
tallies, the set of streams in flight, the RSS the progress loop already reads) and keeps at
most `DEFAULT_CAP` points per series (`reports.series.Sampler` merges neighbours beyond).
"""

from __future__ import annotations

from typing import Any

from ..reports.series import DEFAULT_CAP, DEFAULT_INTERVAL, Sampler
from .stats import LatencyHistogram, Phase, Tally, ms

__all__ = ["ITL_PERCENTILES", "PhaseSampler", "chart_data"]

_MB = 1024 * 1024

#: The inter-token gap percentiles charted, by name.
ITL_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9), ("max", 100.0))


class PhaseSampler:
    """Reads a running phase every `interval` seconds into a bounded series.

    The phase's progress loop calls `see` on each of its turns (two comparisons: the
    highest RSS and number of streams in flight since the last reading) and `tick` once
    `next_at` has passed; `close` takes the last reading when the phase ends.
    A point holds the tokens and the errors of each kind in its span, and the highest
    RSS (MB) and streams in flight seen in it.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, cap: int = DEFAULT_CAP) -> None:
        self.series = Sampler(interval, cap)
        self.interval = interval
        #: Seconds into the phase of the next reading.
        self.next_at = interval
        self._tokens = 0
        self._errors: dict[str, int] = {}
        self._rss = 0
        self._in_flight = 0

    def see(self, rss: int, in_flight: int) -> None:
        """Note the current RSS (bytes) and streams in flight."""
        if rss > self._rss:
            self._rss = rss
        if in_flight > self._in_flight:
            self._in_flight = in_flight

    def tick(self, phase: Phase, elapsed: float) -> None:
        """Take a reading `elapsed` seconds into the phase."""
        counts, highs = self._reading(phase)
        self.series.add(elapsed, counts, highs)
        # A late reading (a busy loop) does not bring the next one forward: no bursts.
        self.next_at = max(self.next_at + self.interval, elapsed + self.interval / 2)

    def close(self, phase: Phase, elapsed: float, rss: int) -> dict[str, Any]:
        """The last reading, at the end of the phase; returns the series, JSON-ready.

        `{"interval_s", "cap", "step_s", "t_s", "tokens", "rss_mb", "in_flight", "errors": {kind: counts}}`:
        point i spans `t_s[i - 1]` (or 0) to `t_s[i]`.
        """
        self.see(rss, len(phase.active))
        counts, highs = self._reading(phase)
        self.series.close(elapsed, counts, highs)
        d = self.series.as_dict()
        points = len(d["t_s"])
        counts_d: dict[str, list[int]] = d["counts"]
        return {
            "interval_s": d["interval_s"],
            "cap": d["cap"],
            "step_s": d["step_s"],
            "t_s": d["t_s"],
            "tokens": counts_d.pop("tokens", [0] * points),
            "rss_mb": d["highs"].get("rss_mb", [0.0] * points),
            "in_flight": [int(v) for v in d["highs"].get("in_flight", [0.0] * points)],
            "errors": {name.removeprefix("error:"): column for name, column in sorted(counts_d.items())},
        }

    def _reading(self, phase: Phase) -> tuple[dict[str, int], dict[str, float]]:
        tokens = phase.live_tokens()
        counts = {"tokens": tokens - self._tokens}
        self._tokens = tokens
        errors: dict[str, int] = {}
        for tally in phase.tallies.values():
            for kind, n in tally.errors_by_kind.items():
                errors[kind] = errors.get(kind, 0) + n
        for kind, n in errors.items():
            if n != self._errors.get(kind, 0):
                counts["error:" + kind] = n - self._errors.get(kind, 0)
        self._errors = errors
        highs = {"rss_mb": self._rss / _MB, "in_flight": float(self._in_flight)}
        self._rss = 0
        self._in_flight = 0
        return counts, highs


def _itl(h: LatencyHistogram) -> dict[str, float | None]:
    return {name: ms(h.percentile(q)) for name, q in ITL_PERCENTILES}


def chart_data(main: Phase, base: Phase | None) -> dict[str, Any]:
    """The report's chart keys: the sampled series, the warm-up time, time to first token as a
    CDF and inter-token gap percentiles (per provider and "all"); the baseline's with `base`."""
    total = main.total()
    tallies: dict[str, Tally] = {"all": total, **main.tallies}
    out: dict[str, Any] = {
        "timeseries": main.timeseries,
        "warmup_s": None if main.warm_at is None else round(main.warm_at, 3),
        "ttft_cdf_ms": {name: t.ttft.cdf() for name, t in tallies.items()},
        "itl_percentiles_ms": {name: _itl(t.itl) for name, t in tallies.items()},
    }
    if base is not None:
        b = base.total()
        out.update(
            {
                "baseline_timeseries": base.timeseries,
                "baseline_warmup_s": None if base.warm_at is None else round(base.warm_at, 3),
                "baseline_ttft_cdf_ms": {"all": b.ttft.cdf()},
                "baseline_itl_percentiles_ms": {"all": _itl(b.itl)},
            }
        )
    return out
