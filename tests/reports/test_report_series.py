"""The bounded series behind the HTML reports: fixed-interval readings and time bins, each
capped, merged pairwise when full, with nothing counted lost or counted twice."""

from __future__ import annotations

import random

import pytest

from streamactors.reports.series import Sampler, TimeBins


class TestSampler:
    def test_each_reading_is_a_point_until_the_cap(self) -> None:
        s = Sampler(interval=0.5, cap=8)
        for i in range(1, 5):
            s.add(i * 0.5, {"tokens": i}, {"rss_mb": 10.0 + i})
        s.close(2.5, {"tokens": 5}, {"rss_mb": 15.0})
        assert s.as_dict() == {
            "interval_s": 0.5,
            "cap": 8,
            "step_s": 0.5,
            "t_s": [0.5, 1.0, 1.5, 2.0, 2.5],
            "counts": {"tokens": [1, 2, 3, 4, 5]},
            "highs": {"rss_mb": [11.0, 12.0, 13.0, 14.0, 15.0]},
        }

    def test_full_means_neighbours_merge_counts_add_and_highs_keep_the_peak(self) -> None:
        s = Sampler(interval=1.0, cap=4)
        for i in range(1, 5):  # the 4th point fills it: 4 points become 2
            s.add(float(i), {"tokens": 10 * i}, {"in_flight": [5.0, 9.0, 2.0, 1.0][i - 1]})
        assert (s.t, s.counts, s.highs, s.step) == ([2.0, 4.0], {"tokens": [30, 70]}, {"in_flight": [9.0, 2.0]}, 2)
        # Later points gather two readings each, so every point spans the same time.
        s.add(5.0, {"tokens": 1}, {"in_flight": 3.0})
        assert s.t == [2.0, 4.0]
        s.add(6.0, {"tokens": 2}, {"in_flight": 1.0})
        assert (s.t, s.counts["tokens"], s.highs["in_flight"]) == ([2.0, 4.0, 6.0], [30, 70, 3], [9.0, 2.0, 3.0])
        s.add(7.0, {"tokens": 4}, {"in_flight": 0.0})
        s.close(7.5, {"tokens": 8}, {"in_flight": 0.0})  # the partial last point, kept though it is the 4th
        assert (s.t, s.counts["tokens"]) == ([2.0, 4.0, 6.0, 7.5], [30, 70, 3, 12])
        with pytest.raises(RuntimeError, match="closed"):
            s.add(8.0, {}, {})

    def test_a_long_run_stays_within_the_cap_and_keeps_every_count(self) -> None:
        rng = random.Random(7)
        s = Sampler(interval=0.5, cap=2000)
        total = 0
        peak = 0.0
        for i in range(1, 10_001):
            n = rng.randrange(1000)
            rss = rng.uniform(50, 150)
            total += n
            peak = max(peak, rss)
            if i < 10_000:
                s.add(i * 0.5, {"tokens": n}, {"rss_mb": rss})
            else:
                s.close(i * 0.5, {"tokens": n}, {"rss_mb": rss})
        # 10,000 readings: halved at 2,000 (step 2), at 2,000 again (step 4), once more
        # (step 8): 1,250 points of 8 readings each.
        assert s.step == 8 and len(s.t) == 1250
        assert s.t[0] == 4.0 and s.t[-1] == 5000.0
        assert all(b - a == 4.0 for a, b in zip(s.t, s.t[1:], strict=False))
        assert sum(s.counts["tokens"]) == total and max(s.highs["rss_mb"]) == peak
        assert s.as_dict()["step_s"] == 4.0

    def test_a_series_that_starts_late_reads_zero_before(self) -> None:
        s = Sampler(interval=1.0, cap=10)
        s.add(1.0, {"tokens": 5}, {"rss_mb": 1.0})
        s.add(2.0, {"tokens": 5, "error:timeout": 2}, {"rss_mb": 1.0})
        s.close(3.0, {"tokens": 5}, {"rss_mb": 1.0})
        assert s.counts == {"tokens": [5, 5, 5], "error:timeout": [0, 2, 0]}

    def test_a_sliver_at_the_end_joins_the_point_before(self) -> None:
        """A last span under half an interval would make a rate out of noise: it joins its neighbour."""
        s = Sampler(interval=1.0, cap=10)
        s.add(1.0, {"tokens": 100}, {"rss_mb": 5.0})
        s.add(2.0, {"tokens": 100}, {"rss_mb": 5.0})
        s.close(2.3, {"tokens": 90, "error:timeout": 1}, {"rss_mb": 6.0})
        assert s.as_dict()["t_s"] == [1.0, 2.3]
        assert s.counts == {"tokens": [100, 190], "error:timeout": [0, 1]} and s.highs == {"rss_mb": [5.0, 6.0]}
        s = Sampler(interval=1.0, cap=10)
        s.add(1.0, {"tokens": 100}, {"rss_mb": 5.0})
        s.close(1.6, {"tokens": 60}, {"rss_mb": 5.0})  # more than half an interval: a point of its own
        assert s.t == [1.0, 1.6]

    def test_the_last_reading_joins_the_readings_not_yet_in_a_point(self) -> None:
        s = Sampler(interval=1.0, cap=2)
        s.add(1.0, {"tokens": 1}, {})
        s.add(2.0, {"tokens": 2}, {})  # fills the cap: one point of two readings
        s.add(3.0, {"tokens": 4}, {})  # pending, half of the next point
        s.close(4.0, {"tokens": 8}, {})
        assert (s.t, s.counts["tokens"], s.step) == ([2.0, 4.0], [3, 12], 2)

    @pytest.mark.parametrize(("interval", "cap"), [(0.0, 10), (-1.0, 10), (0.5, 3), (0.5, 0)])
    def test_bad_settings(self, interval: float, cap: int) -> None:
        with pytest.raises(ValueError, match=r"^(interval|cap) must be"):
            Sampler(interval, cap)


class TestTimeBins:
    def test_events_land_in_their_bins(self) -> None:
        b = TimeBins(width=1.0, cap=10)
        for when, name in ((100.2, "ok"), (100.9, "ok"), (102.5, "error:timeout"), (103.0, "ok")):
            b.add(when, name)
        assert b.as_dict() == {
            "start_s": 100.0,
            "width_s": 1.0,
            "series": {"error:timeout": [0, 0, 1, 0], "ok": [2, 0, 0, 1]},
        }

    def test_past_the_cap_the_width_doubles_and_neighbours_merge(self) -> None:
        b = TimeBins(width=1.0, cap=4)
        for t in range(8):
            b.add(t + 0.5, "ok", n=t + 1)
        d = b.as_dict()
        assert (d["start_s"], d["width_s"], d["series"]["ok"]) == (0.0, 2.0, [1 + 2, 3 + 4, 5 + 6, 7 + 8])
        b.add(8.5, "ok")  # nine seconds no longer fit in four 2 s bins
        d = b.as_dict()
        assert (d["start_s"], d["width_s"], d["series"]["ok"]) == (0.0, 4.0, [10, 26, 1])

    def test_order_of_arrival_does_not_matter(self) -> None:
        events = [(1_700_000_000 + random.Random(i).uniform(0, 3600), f"k{i % 3}") for i in range(2000)]
        forward, backward = TimeBins(cap=50), TimeBins(cap=50)
        for when, name in events:
            forward.add(when, name)
        for when, name in reversed(events):
            backward.add(when, name)
        assert forward.as_dict() == backward.as_dict()
        d = forward.as_dict()
        assert len(d["series"]["k0"]) <= 50 and sum(sum(v) for v in d["series"].values()) == 2000
        assert d["width_s"] == 128.0  # 3,600 s in at most 50 bins: 1 s doubled to 128 s

    def test_empty(self) -> None:
        assert TimeBins().as_dict() == {"start_s": None, "width_s": 1.0, "series": {}}
