"""Bounded time series behind the HTML reports: `Sampler` (readings at a fixed interval) and
`TimeBins` (events counted into bins of time).

Both keep at most `cap` points per series, however long the run or the log: when full,
neighbouring points merge in pairs and the resolution halves (RRDtool's consolidation does the
same), so the whole shape survives in memory that does not grow with time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_CAP", "DEFAULT_INTERVAL", "Sampler", "TimeBins"]

#: Seconds between two readings of a stress run.
DEFAULT_INTERVAL = 0.5
#: Points kept per series: 1,000 s of a stress run at full resolution, coarser beyond.
DEFAULT_CAP = 2000


class Sampler:
    """Readings taken about every `interval` seconds, kept as at most `cap` points per series.

    Each point covers the span of time from the previous point's `t` (or 0) to its own.
    A *count* series holds what happened in the span (tokens, errors of one kind): merging
    adds. A *high* series holds the highest reading seen in the span (RSS, streams in
    flight): merging keeps the larger, so a peak is never averaged away. Once `cap` points
    are stored, neighbours merge and every later point gathers twice as many readings
    (`step`), so the points stay evenly spaced. `close()` takes the last reading and ends
    the series.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, cap: int = DEFAULT_CAP) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        if cap < 2 or cap % 2:
            raise ValueError(f"cap must be an even number of at least 2, not {cap!r}")
        self.interval = interval
        self.cap = cap
        #: Readings gathered into each stored point.
        self.step = 1
        self.t: list[float] = []
        self.counts: dict[str, list[int]] = {}
        self.highs: dict[str, list[float]] = {}
        self._n = 0
        self._t = 0.0
        self._counts: dict[str, int] = {}
        self._highs: dict[str, float] = {}
        self._closed = False

    def add(self, t: float, counts: Mapping[str, int], highs: Mapping[str, float]) -> None:
        """One reading at time `t`: what happened since the last one, and the highest gauges in that span.

        A series first named in a later reading reads 0 in the points before it.
        """
        self._take(t, counts, highs)
        if self._n >= self.step:
            self._push()

    def close(self, t: float, counts: Mapping[str, int], highs: Mapping[str, float]) -> None:
        """The last reading, at the end of the run: stored with any readings not yet in a point.

        That last point is never merged with its neighbour to make room (it may be the
        `cap`-th), unless it spans less than half a point's time: then it joins the point
        before it, so that no rate is read off a sliver of time.
        """
        self._take(t, counts, highs)
        if self.t and self._t - self.t[-1] < self.interval * self.step / 2:
            self.t[-1] = self._t
            for name, n in self._counts.items():
                self.counts.setdefault(name, [0] * len(self.t))[-1] += n
            for name, value in self._highs.items():
                gauge = self.highs.setdefault(name, [0.0] * len(self.t))
                gauge[-1] = max(gauge[-1], value)
        else:
            self._push(last=True)
        self._closed = True

    def _take(self, t: float, counts: Mapping[str, int], highs: Mapping[str, float]) -> None:
        if self._closed:
            raise RuntimeError("the series is closed: it takes no more readings")
        self._n += 1
        self._t = t
        pending = self._counts
        for name, n in counts.items():
            pending[name] = pending.get(name, 0) + n
        top = self._highs
        for name, value in highs.items():
            old = top.get(name)
            top[name] = value if old is None or value > old else old

    def _push(self, *, last: bool = False) -> None:
        before = len(self.t)
        self.t.append(self._t)
        for name, column in self.counts.items():
            column.append(self._counts.pop(name, 0))
        for name, n in self._counts.items():
            self.counts[name] = [0] * before + [n]
        for name, gauge in self.highs.items():
            gauge.append(self._highs.pop(name, 0.0))
        for name, value in self._highs.items():
            self.highs[name] = [0.0] * before + [value]
        self._n = 0
        self._counts = {}
        self._highs = {}
        if len(self.t) == self.cap and not last:
            self._halve()

    def _halve(self) -> None:
        self.t = self.t[1::2]
        for name, counts in self.counts.items():
            self.counts[name] = [a + b for a, b in zip(counts[0::2], counts[1::2], strict=True)]
        for name, highs in self.highs.items():
            self.highs[name] = [max(a, b) for a, b in zip(highs[0::2], highs[1::2], strict=True)]
        self.step *= 2

    def as_dict(self) -> dict[str, Any]:
        """The stored points, JSON-ready: times in seconds rounded to the millisecond."""
        return {
            "interval_s": self.interval,
            "cap": self.cap,
            "step_s": self.interval * self.step,
            "t_s": [round(t, 3) for t in self.t],
            "counts": {name: list(column) for name, column in self.counts.items()},
            "highs": {name: [round(v, 3) for v in column] for name, column in self.highs.items()},
        }


class TimeBins:
    """Events counted into bins `width` seconds wide, bin i being [i * width, (i + 1) * width).

    At most `cap` bins span the first to the last event: past that the width doubles and
    neighbouring bins merge. Bins are aligned on multiples of the width (on the epoch, for
    Unix times), so the order events arrive in does not change the result.
    """

    def __init__(self, width: float = 1.0, cap: int = 240) -> None:
        if not width > 0:
            raise ValueError(f"width must be positive, not {width!r}")
        if cap < 2:
            raise ValueError(f"cap must be at least 2, not {cap!r}")
        self.width = width
        self.cap = cap
        self.bins: dict[str, dict[int, int]] = {}
        self._lo: int | None = None
        self._hi = 0

    def add(self, when: float, name: str, n: int = 1) -> None:
        """Count `n` events of series `name` at time `when` (seconds)."""
        i = math.floor(when / self.width)
        lo = i if self._lo is None else min(self._lo, i)
        hi = i if self._lo is None else max(self._hi, i)
        while hi - lo + 1 > self.cap:
            self._double()
            i, lo, hi = i // 2, lo // 2, hi // 2
        self._lo, self._hi = lo, hi
        series = self.bins.setdefault(name, {})
        series[i] = series.get(i, 0) + n

    def _double(self) -> None:
        self.width *= 2
        for name, series in self.bins.items():
            merged: dict[int, int] = {}
            for i, n in series.items():
                merged[i // 2] = merged.get(i // 2, 0) + n
            self.bins[name] = merged
        assert self._lo is not None
        self._lo //= 2
        self._hi //= 2

    def as_dict(self) -> dict[str, Any]:
        """Every series over the same bins, first event's bin to last: the start, the width, the counts."""
        if self._lo is None:
            return {"start_s": None, "width_s": self.width, "series": {}}
        lo, n = self._lo, self._hi - self._lo + 1
        series = {}
        for name, bins in sorted(self.bins.items()):
            dense = [0] * n
            for i, count in bins.items():
                dense[i - lo] = count
            series[name] = dense
        return {"start_s": lo * self.width, "width_s": self.width, "series": series}
