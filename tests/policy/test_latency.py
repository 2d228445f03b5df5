"""Latency estimates, power of two choices and weighted choice."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamactors.policy.latency import LatencyEstimate, pick_two, weighted_choice

from ._stubs import StubRandom


def test_ewma() -> None:
    """The first sample sets the value; later ones are blended with weight alpha."""
    e = LatencyEstimate(alpha=0.5)
    assert (e.value, e.count) == (None, 0)
    e.observe(1.0)
    assert e.value == 1.0
    e.observe(3.0)
    assert (e.value, e.count) == (2.0, 2)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_ewma_rejects_impossible_samples(bad: float) -> None:
    """Latencies are finite and 0 or more."""
    with pytest.raises(ValueError):
        LatencyEstimate().observe(bad)


def test_ewma_alpha_must_be_a_weight() -> None:
    """alpha lies in (0, 1]."""
    with pytest.raises(ValueError):
        LatencyEstimate(alpha=0.0)


def estimates(**values: float) -> dict[str, LatencyEstimate]:
    out = {}
    for name, value in values.items():
        out[name] = LatencyEstimate()
        out[name].observe(value)
    return out


def test_pick_two_takes_the_faster_of_two_distinct_draws() -> None:
    """Draw i=0 ("a"), then j from the others: 0.5 * 2 = 1 -> skips i -> "c"; "c" is faster."""
    est = estimates(a=2.0, b=0.1, c=1.0)
    assert pick_two(["a", "b", "c"], est, StubRandom(0.0, 0.5)) == "c"
    assert pick_two(["a", "b", "c"], est, StubRandom(0.0, 0.0)) == "b"


def test_pick_two_unknown_targets_count_as_zero() -> None:
    """A target with no estimate yet is preferred, so it gets measured."""
    assert pick_two(["a", "new"], estimates(a=0.5), StubRandom(0.0, 0.0)) == "new"


def test_pick_two_tie_goes_to_the_first_draw() -> None:
    """Equal estimates: the first drawn wins."""
    assert pick_two(["a", "b"], estimates(a=1.0, b=1.0), StubRandom(0.99, 0.0)) == "b"


def test_pick_two_single_and_empty() -> None:
    """One candidate needs no draw; none is an error."""
    assert pick_two(["only"], {}, StubRandom()) == "only"
    with pytest.raises(ValueError):
        pick_two([], {}, StubRandom())


@given(st.lists(st.floats(0.0, 10.0), min_size=2, max_size=6), st.integers(0, 2**32))
def test_pick_two_never_picks_the_slowest(latencies: list[float], seed: int) -> None:
    """With distinct estimates, the strictly slowest target is never chosen."""
    names = [f"t{i}" for i in range(len(latencies))]
    est = {n: LatencyEstimate() for n in names}
    for n, value in zip(names, latencies, strict=True):
        est[n].observe(value)
    slowest = max(latencies)
    chosen = pick_two(names, est, random.Random(seed))
    if latencies.count(slowest) == 1:
        assert est[chosen].value != slowest


def test_weighted_choice() -> None:
    """The point `random() * total` falls into cumulative slots; zero weights are skipped."""
    assert weighted_choice([1.0, 0.0, 3.0], StubRandom(0.0)) == 0
    assert weighted_choice([1.0, 0.0, 3.0], StubRandom(0.2)) == 0
    assert weighted_choice([1.0, 0.0, 3.0], StubRandom(0.25)) == 2
    assert weighted_choice([1.0, 0.0, 3.0], StubRandom(0.99)) == 2


def test_weighted_choice_rounding_at_the_top_never_picks_a_zero_weight() -> None:
    """Even a point at the very top lands on the last positive weight."""
    assert weighted_choice([1.0, 0.0], StubRandom(1.0)) == 0


@pytest.mark.parametrize("weights", [[], [0.0, 0.0], [1.0, -1.0], [float("nan")], [float("inf")]])
def test_weighted_choice_invalid(weights: list[float]) -> None:
    """Empty, all-zero, negative or non-finite weights are refused."""
    with pytest.raises(ValueError):
        weighted_choice(weights, StubRandom(0.5))


@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, 7.0]), min_size=1, max_size=8), st.floats(0.0, 1.0))
def test_weighted_choice_never_picks_zero(weights: list[float], r: float) -> None:
    """Whatever the draw, a zero weight is never chosen."""
    if sum(weights) == 0:
        return
    assert weights[weighted_choice(weights, StubRandom(r))] > 0
