"""What one service tells its fleet, and how it reads what the fleet tells it (pure).

`quota_pause(status, snapshot, retry_after, settings)`: the pause a response calls for,
for every service of the fleet, in seconds from the response (None: none). Only news that
nothing is left counts:

- a throttling status (429) with `0 < retry_after <= max_wait_s`: that long, but never past
  the latest quota reset the same response announced (as `AdaptivePacer` bounds its own
  pause: OpenAI's `retry-after: 1` beside `x-ratelimit-reset-tokens: 54ms` is 54 ms);
- quota headers with `remaining = 0` for requests or tokens, and that dimension's reset
  within `max_wait_s`: until that reset (the longer of the two when both are spent).

A low quota is left to each service's own pacing: only "nothing remains" stops the fleet.

`FleetCircuit`: the fleet's circuit as this service last heard of it (from a poll, or the
answer to a trip or a probe), and what that means for a request now:

    closed                             -> GO
    open, before its retry time        -> REJECT  (circuit_open, no request sent)
    open past its retry time,
    or half-open                       -> ASK     (the fleet decides who probes)
"""

from __future__ import annotations

import enum
import math

from .adaptive import PacerSettings
from .ratelimit_headers import QuotaSnapshot

__all__ = ["CircuitDecision", "FleetCircuit", "quota_pause"]


def quota_pause(
    status: int | None, snapshot: QuotaSnapshot | None, retry_after: float | None, settings: PacerSettings
) -> float | None:
    """Seconds every service should hold back after this response; None: no pause."""
    limit = settings.max_wait_s
    pause: float | None = None
    reset: float | None = None
    if snapshot is not None:
        spent = [
            s
            for left, s in (
                (snapshot.remaining_requests, snapshot.reset_requests_s),
                (snapshot.remaining_tokens, snapshot.reset_tokens_s),
            )
            if left == 0 and s is not None and 0 < s <= limit
        ]
        if spent:
            pause = max(spent)
        resets = [s for s in (snapshot.reset_requests_s, snapshot.reset_tokens_s) if s is not None and s <= limit]
        reset = max(resets, default=None)
    if status in settings.throttle_statuses and retry_after is not None and 0 < retry_after <= limit:
        asked = retry_after if reset is None or reset <= 0 else min(retry_after, reset)
        pause = asked if pause is None else max(pause, asked)
    return pause


class CircuitDecision(enum.Enum):
    """What `FleetCircuit.decide` says of a request."""

    GO = "go"
    REJECT = "reject"
    ASK = "ask"


class FleetCircuit:
    """The fleet's circuit as last heard: `state` ("closed" | "open" | "half_open") and,
    while open, `retry_at` (the time probes may start, on this service's clock)."""

    __slots__ = ("retry_at", "state")

    def __init__(self) -> None:
        self.state = "closed"
        self.retry_at = -math.inf

    def learn(self, state: str, retry_in: float, now: float) -> bool:
        """Take in news (`retry_in`: seconds until probes, for an open circuit); True if the
        state changed."""
        changed = state != self.state
        self.state = state
        self.retry_at = now + retry_in if state == "open" else -math.inf
        return changed

    def decide(self, now: float) -> CircuitDecision:
        """What a request may do now (see the module docstring)."""
        if self.state == "closed":
            return CircuitDecision.GO
        if self.state == "open" and now < self.retry_at:
            return CircuitDecision.REJECT
        return CircuitDecision.ASK

    def retry_in(self, now: float) -> float | None:
        """Seconds until an open circuit lets probes through; None unless open."""
        return max(0.0, self.retry_at - now) if self.state == "open" else None
