"""Success/failure counts over a sliding time window, in a fixed number of slots.

Memory is bounded by the slot count, not by the request rate: each slot covers
`window / slots` seconds and holds two integers. `totals(now)` sums the slots that
are still inside the window, so the window it reports on is between
`window - window / slots` and `window` seconds long (the usual bucketed-window
approximation, as in resilience4j's time-based sliding window).
"""

from __future__ import annotations

import math

__all__ = ["SlidingCounts"]


class SlidingCounts:
    """Request and failure counts over the last `window` seconds, in `slots` slots."""

    __slots__ = ("_epochs", "_failures", "_requests", "_width", "slots", "window")

    def __init__(self, window: float, slots: int = 10) -> None:
        if not (window > 0 and math.isfinite(window)):
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots!r}")
        self.window = window
        self.slots = slots
        self._width = window / slots
        # _epochs[i] is the slot number (floor(t / width)) whose counts slot i holds.
        self._epochs: list[int | None] = [None] * slots
        self._requests = [0] * slots
        self._failures = [0] * slots

    def add(self, now: float, *, failed: bool) -> None:
        """Count one request that ended at `now`."""
        epoch = math.floor(now / self._width)
        i = epoch % self.slots
        held = self._epochs[i]
        if held != epoch:
            if held is not None and held > epoch:
                return  # older than anything the ring still holds: already out of the window
            self._epochs[i] = epoch
            self._requests[i] = 0
            self._failures[i] = 0
        self._requests[i] += 1
        if failed:
            self._failures[i] += 1

    def totals(self, now: float) -> tuple[int, int]:
        """Return `(requests, failures)` counted in the window ending at `now`."""
        current = math.floor(now / self._width)
        requests = failures = 0
        for i, epoch in enumerate(self._epochs):
            if epoch is not None and current - self.slots < epoch <= current:
                requests += self._requests[i]
                failures += self._failures[i]
        return requests, failures

    def clear(self) -> None:
        """Forget every count."""
        self._epochs = [None] * self.slots
        self._requests = [0] * self.slots
        self._failures = [0] * self.slots
