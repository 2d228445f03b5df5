"""OTP-style restart intensity, and the backoff between restarts of one child.

Erlang's supervisor gives up when more than `intensity` restarts happen within `period`
seconds (`supervisor.erl` `add_restart/1`: a restart at `Then` still counts at `Now` while
`Now =< Then + Period`). `RestartIntensity` applies the same rule to the times it is given,
keeping only the restarts still inside the period (at most `max_restarts + 1` of them).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["RestartIntensity", "restart_backoff"]


class RestartIntensity:
    """Allows `max_restarts` restarts within any `within_s` seconds (OTP defaults: 1 in 5 s)."""

    __slots__ = ("_times", "max_restarts", "within_s")

    def __init__(self, max_restarts: int = 1, within_s: float = 5.0) -> None:
        if max_restarts < 0:
            raise ValueError(f"max_restarts must be 0 or more, got {max_restarts!r}")
        if not (within_s >= 0 and math.isfinite(within_s)):
            raise ValueError(f"within_s must be 0 or more seconds, got {within_s!r}")
        self.max_restarts = max_restarts
        self.within_s = within_s
        self._times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Count a restart at `now`. True: go ahead and restart; False: the supervisor gives up."""
        self._times.append(now)
        while self._times and now > self._times[0] + self.within_s:
            self._times.popleft()
        while len(self._times) > self.max_restarts + 1:
            self._times.popleft()  # an exceeded intensity stays exceeded; older entries add nothing
        return len(self._times) <= self.max_restarts

    def recent(self, now: float) -> int:
        """How many recorded restarts still count at `now`."""
        return sum(1 for t in self._times if now <= t + self.within_s)

    def reset(self) -> None:
        """Forget every restart (after the supervisor itself was restarted, say)."""
        self._times.clear()


def restart_backoff(consecutive: int, *, base: float = 0.05, cap: float = 5.0) -> float:
    """Seconds to wait before restarting a child that has failed `consecutive` times in a row.

    `base * 2**consecutive`, capped: 0.05, 0.1, 0.2, ... 3.2, then 5.0 from the 7th on.
    `consecutive` counts the restarts that did not help (0 for the first restart).
    """
    if consecutive < 0:
        raise ValueError(f"consecutive must be 0 or more, got {consecutive!r}")
    return min(base * 2.0 ** min(consecutive, 1000), cap)
