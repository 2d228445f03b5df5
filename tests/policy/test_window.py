"""SlidingCounts: bucketed success/failure counts with bounded memory."""

from __future__ import annotations

import pytest

from streamactors.policy._window import SlidingCounts


def test_counts_within_the_window() -> None:
    """Samples count until their slot leaves the window (slots of window / slots seconds)."""
    w = SlidingCounts(window=60.0, slots=10)
    w.add(0.0, failed=True)
    w.add(5.0, failed=False)
    w.add(6.0, failed=False)
    assert w.totals(6.0) == (3, 1)
    assert w.totals(59.9) == (3, 1)
    assert w.totals(60.0) == (1, 0)  # slot [0, 6) has left
    assert w.totals(66.0) == (0, 0)


def test_reused_slot_is_reset() -> None:
    """A slot reused for a later period starts from zero."""
    w = SlidingCounts(window=10.0, slots=2)
    w.add(0.0, failed=True)
    w.add(10.0, failed=False)
    assert w.totals(10.0) == (1, 0)


def test_sample_older_than_the_ring_is_dropped() -> None:
    """A late sample whose slot was already reused is ignored."""
    w = SlidingCounts(window=10.0, slots=2)
    w.add(10.0, failed=False)
    w.add(0.0, failed=True)
    assert w.totals(10.0) == (1, 0)


def test_clear() -> None:
    """`clear` forgets everything."""
    w = SlidingCounts(window=10.0)
    w.add(1.0, failed=True)
    w.clear()
    assert w.totals(1.0) == (0, 0)


def test_invalid() -> None:
    """Window and slots must be positive."""
    with pytest.raises(ValueError):
        SlidingCounts(window=0.0)
    with pytest.raises(ValueError):
        SlidingCounts(window=1.0, slots=0)
