"""What `streamactors stress` counts, in memory that does not grow with the tokens.

`TokenChecker` checks one stream's text against t0 t1 t2 ... as it arrives;
`LatencyHistogram` keeps latencies in log-spaced buckets (percentiles within 1%);
`Tally` sums one provider's requests. None of them keeps a per-token object, so a
run of a million tokens measures the service's memory, not the harness's.
"""

from __future__ import annotations

import math
import time
from typing import Any

import attrs

__all__ = ["LatencyHistogram", "Phase", "StreamRecord", "Tally", "TokenChecker", "ms"]

_log = math.log
_now = time.perf_counter


class TokenChecker:
    """Checks one stream's text, fragment by fragment, against t0 t1 t2 ... in O(1) memory.

    A token that arrives after a later one was seen is `reordered` if it was one of
    the (at most `MAX_GAPS`) tokens counted lost at that point, else `duplicated`.
    A fragment may end inside a token: the partial token waits for the next fragment.
    """

    MAX_GAPS = 64

    __slots__ = ("_gaps", "_partial", "duplicated", "expected", "lost", "received", "reordered")

    def __init__(self) -> None:
        self.expected = 0
        self.received = 0
        self.lost = 0
        self.duplicated = 0
        self.reordered = 0
        self._partial = ""
        self._gaps: set[int] | None = None

    def feed(self, text: str) -> None:
        """Take the next text fragment."""
        # Fast path: one whole token, the expected one (nearly every event of a stress run).
        if not self._partial and text[:1] == "t" and text[-1:] == " ":
            digits = text[1:-1]
            if digits.isdigit() and int(digits) == self.expected:
                self.expected += 1
                self.received += 1
                return
        buf = self._partial + text if self._partial else text
        parts = buf.split(" ")
        self._partial = parts.pop()
        for word in parts:
            self._token(word)

    def _token(self, word: str) -> None:
        if not word.startswith("t") or not word[1:].isdigit():
            self.lost += 1  # a mangled token is as good as lost
            return
        n = int(word[1:])
        if n == self.expected:
            self.received += 1
            self.expected += 1
        elif n > self.expected:
            if n - self.expected <= self.MAX_GAPS:
                gaps = self._gaps if self._gaps is not None else set()
                if len(gaps) + n - self.expected <= self.MAX_GAPS:
                    gaps.update(range(self.expected, n))
                    self._gaps = gaps
            self.lost += n - self.expected
            self.received += 1
            self.expected = n + 1
        elif self._gaps and n in self._gaps:
            self._gaps.discard(n)
            self.lost -= 1
            self.reordered += 1
            self.received += 1
        else:
            self.duplicated += 1

    def finish(self, total: int) -> None:
        """End of stream: anything still missing is lost."""
        if self._partial:
            self._token(self._partial)
            self._partial = ""
        if self.expected < total:
            self.lost += total - self.expected


class LatencyHistogram:
    """Durations counted in buckets 1% wide from 1 µs to ~20 min: percentiles in O(1) memory."""

    SIZE = 2100
    _GROWTH = 1.01
    _INV_LOG = 1 / math.log(_GROWTH)

    __slots__ = ("counts", "n")

    def __init__(self) -> None:
        self.counts = [0] * self.SIZE
        self.n = 0

    def add(self, seconds: float) -> None:
        """Count one duration."""
        self.n += 1
        if seconds > 1e-6:
            i = 1 + int(_log(seconds * 1e6) * self._INV_LOG)
            self.counts[i if i < self.SIZE else self.SIZE - 1] += 1
        else:
            self.counts[0] += 1

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts to this one."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.n += other.n

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (nearest rank), in seconds, to within 1%; None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q / 100 * self.n))
        seen = 0
        i = 0
        for i, c in enumerate(self.counts):  # noqa: B007 - i is the answer
            seen += c
            if seen >= rank:
                break
        return 1e-6 if i == 0 else 1e-6 * self._GROWTH ** (i - 0.5)

    def cdf(self, max_points: int = 200) -> list[list[float]]:
        """The distribution as `[ms, fraction at or below]` points, ascending, to within 1%.

        One point per non-empty bucket (at the value `percentile` gives for it), thinned to
        at most `max_points` (at least 3) by keeping a point per 1/(max_points - 2) of the
        fraction; the first and last points are always kept. Empty: [].
        """
        if not self.n:
            return []
        delta = 1 / max(1, max_points - 2)
        out: list[list[float]] = []
        seen = 0
        mark = 0.0
        for i, c in enumerate(self.counts):
            if not c:
                continue
            seen += c
            frac = seen / self.n
            if frac >= mark or seen == self.n:
                seconds = 1e-6 if i == 0 else 1e-6 * self._GROWTH ** (i - 0.5)
                out.append([float(f"{seconds * 1000:.4g}"), round(frac, 6)])
                mark = frac + delta
        return out


class Tally:
    """One provider's counts over a run."""

    __slots__ = (
        "completed",
        "duplicated",
        "errors_by_kind",
        "failed",
        "itl",
        "lost",
        "lost_in_failed",
        "reordered",
        "submitted",
        "tokens",
        "ttft",
    )

    def __init__(self) -> None:
        self.submitted = 0
        self.completed = 0
        self.failed = 0
        self.tokens = 0
        self.lost = 0
        self.duplicated = 0
        self.reordered = 0
        self.lost_in_failed = 0
        self.errors_by_kind: dict[str, int] = {}
        self.ttft = LatencyHistogram()
        self.itl = LatencyHistogram()

    def close(self, checker: TokenChecker, expected: int, error_kind: str | None) -> None:
        """Count one finished request: completed (all `expected` tokens due) or failed."""
        if error_kind is None:
            self.completed += 1
            checker.finish(expected)
        else:
            self.failed += 1
            self.errors_by_kind[error_kind] = self.errors_by_kind.get(error_kind, 0) + 1
            checker.finish(checker.expected)  # a failed stream's tail is reported as failed, not lost
            self.lost_in_failed += max(0, expected - checker.expected)
        self.tokens += checker.received
        self.lost += checker.lost
        self.duplicated += checker.duplicated
        self.reordered += checker.reordered

    def absorb(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        for name in ("submitted", "completed", "failed", "tokens", "lost", "duplicated", "reordered", "lost_in_failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind, n in other.errors_by_kind.items():
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + n
        self.ttft.merge(other.ttft)
        self.itl.merge(other.itl)

    def summary(self) -> dict[str, Any]:
        """The JSON-ready counts (`requests`/`errors` kept as the older names)."""
        return {
            "requests": self.submitted,
            "submitted": self.submitted,
            "completed": self.completed,
            "failed": self.failed,
            "errors": self.failed,
            "errors_by_kind": dict(sorted(self.errors_by_kind.items())),
            "tokens": self.tokens,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "ttft_p50_ms": ms(self.ttft.percentile(50)),
            "ttft_p99_ms": ms(self.ttft.percentile(99)),
            "itl_p50_ms": ms(self.itl.percentile(50)),
            "itl_p99_ms": ms(self.itl.percentile(99)),
        }


class StreamRecord:
    """Times and checks one stream's text events as the consumer sees them."""

    __slots__ = ("checker", "last", "started", "tally")

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.checker = TokenChecker()
        self.started = _now()
        self.last = 0.0

    def text(self, text: str) -> None:
        """One text event arrived."""
        now = _now()
        last = self.last
        if last:
            self.tally.itl.add(now - last)
        else:
            self.tally.ttft.add(now - self.started)
        self.last = now
        self.checker.feed(text)


@attrs.define
class Phase:
    """One workload phase: per-provider tallies, the streams in flight, CPU and RSS figures."""

    label: str
    tallies: dict[str, Tally]
    active: set[TokenChecker] = attrs.Factory(set)
    elapsed: float = 0.0
    cpu_s: float = 0.0
    rss_warm: int | None = None
    rss_peak: int = 0
    rss_end: int = 0
    tokens_due: int = 0
    upstream_cpu_s: float | None = None
    #: Seconds into the phase when it was warm (`rss_warm` taken); the RSS chart marks it.
    warm_at: float | None = None
    #: The phase's sampled time series (`stress.timeseries.PhaseSampler.close`).
    timeseries: dict[str, Any] | None = None

    def live_tokens(self) -> int:
        """Tokens received so far, streams in flight included."""
        return sum(t.tokens for t in self.tallies.values()) + sum(c.received for c in self.active)

    def total(self) -> Tally:
        """All providers' tallies summed."""
        out = Tally()
        for t in self.tallies.values():
            out.absorb(t)
        return out


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, rounded to the microsecond; None stays None."""
    return None if seconds is None else round(seconds * 1000, 3)
