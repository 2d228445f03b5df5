"""Choosing a target: latency estimates, power of two choices, weighted choice.

`pick_two` is the "power of two choices" rule (Mitzenmacher): draw two distinct targets
at random and take the one with the lower latency estimate. It comes close to always
picking the best target while never sending everything to one, and it needs no global
sort. A target with no estimate yet counts as 0 s, so new targets get tried. Record a
failure as a long latency (its timeout, say) so that a failing target is avoided.

All randomness comes from `rng.random()` calls, so a stub `random.Random` fixes it in tests.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

__all__ = ["LatencyEstimate", "pick_two", "weighted_choice"]

K = TypeVar("K", bound=Hashable)


class LatencyEstimate:
    """Exponentially weighted moving average of latencies, in seconds.

    `value = alpha * sample + (1 - alpha) * value`; the first sample sets `value`.
    """

    __slots__ = ("alpha", "count", "value")

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.alpha = alpha
        #: The estimate, None until the first sample.
        self.value: float | None = None
        #: How many samples were observed.
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Add one latency sample."""
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"latency must be 0 or more seconds, got {seconds!r}")
        self.value = seconds if self.value is None else self.alpha * seconds + (1 - self.alpha) * self.value
        self.count += 1

    def __repr__(self) -> str:
        return f"LatencyEstimate(value={self.value!r}, count={self.count!r})"


def pick_two(candidates: Sequence[K], estimates: Mapping[K, LatencyEstimate], rng: random.Random) -> K:
    """Power of two choices: of two distinct random candidates, the one with the lower estimate.

    Draws two `rng.random()` values (none for a single candidate). Ties go to the first drawn.
    """
    n = len(candidates)
    if n == 0:
        raise ValueError("pick_two needs at least one candidate")
    if n == 1:
        return candidates[0]
    i = min(int(rng.random() * n), n - 1)
    j = min(int(rng.random() * (n - 1)), n - 2)
    if j >= i:
        j += 1
    a, b = candidates[i], candidates[j]
    return b if _latency(estimates, b) < _latency(estimates, a) else a


def weighted_choice(weights: Sequence[float], rng: random.Random) -> int:
    """Index `i` drawn with probability `weights[i] / sum(weights)`; draws one `rng.random()`.

    Zero weights are never chosen. Raises ValueError for no weights, a negative or
    non-finite weight, or an all-zero list.
    """
    if not weights:
        raise ValueError("weighted_choice needs at least one weight")
    if any(not (w >= 0 and math.isfinite(w)) for w in weights):
        raise ValueError(f"weights must be finite and 0 or more, got {list(weights)!r}")
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    if total <= 0:
        raise ValueError("weighted_choice needs a positive weight")
    i = bisect.bisect_right(cumulative, rng.random() * total)
    # Rounding can put the point at `total`; step back to the last index with a weight.
    i = min(i, len(weights) - 1)
    while weights[i] == 0:
        i -= 1
    return i


def _latency(estimates: Mapping[K, LatencyEstimate], key: K) -> float:
    estimate = estimates.get(key)
    return 0.0 if estimate is None or estimate.value is None else estimate.value
