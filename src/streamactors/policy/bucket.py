"""A token bucket that hands out reservations in first-come, first-served order.

The bucket holds up to `burst` tokens and refills at `rate_per_s`. It starts full, at
the time of its first use. Unlike a try-acquire bucket it never says "no": `reserve(n, now)`
books `n` tokens at the time they will be there and returns how long the caller must
wait until then. Booking moves the bucket's clock (`stamp`) ahead to that time, so the
tokens are owed from `now` on (`available(now)` is negative) and a later reservation
always waits behind an earlier one: waiting callers are served in arrival order, and none
can starve (the same design as Go's `golang.org/x/time/rate` `Reserve`).

The exact rule, with `level` and `stamp` the bucket's state:

    t     = max(now, stamp)                            # reservations never go back in time
    level = min(burst, level + rate * (t - stamp))     # refill up to `t`
    need  = min(n, burst)
    ready = t if level >= need else t + (need - level) / rate
    # commit at `ready`:
    level = min(burst, level + rate * (ready - t)) - n;  stamp = ready
    return ready - now

So with `n <= burst`, the tokens admitted in any interval `[a, b]` never exceed
`burst + rate * (b - a)`. A reservation larger than `burst` could never be met in full;
it waits for a full bucket, takes it, and leaves the rest as debt that later callers pay
for by waiting (so the long-run rate still holds).

`earliest()` and `take()` split `reserve()` in two, so that a caller combining several
buckets can find the latest of their ready times and commit to all of them at that time.
"""

from __future__ import annotations

import math

__all__ = ["TokenBucket"]


class TokenBucket:
    """`rate_per_s` tokens per second, at most `burst` saved; FIFO reservations with debt."""

    __slots__ = ("_burst", "_level", "_rate", "_stamp")

    def __init__(self, rate_per_s: float, burst: float) -> None:
        _check_positive("rate_per_s", rate_per_s)
        _check_positive("burst", burst)
        self._rate = float(rate_per_s)
        self._burst = float(burst)
        self._level = self._burst
        self._stamp: float | None = None

    @classmethod
    def per_minute(cls, limit: float, *, burst: float | None = None) -> TokenBucket:
        """A bucket for "`limit` per minute": refills at `limit / 60` per second and,
        unless `burst` says otherwise, saves up to one minute's worth (as the providers'
        own buckets do)."""
        return cls(limit / 60.0, limit if burst is None else burst)

    @property
    def rate_per_s(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> float:
        """Most tokens the bucket can hold."""
        return self._burst

    def available(self, now: float) -> float:
        """Tokens in the bucket at `now`; negative when reservations are booked past `now`."""
        if self._stamp is not None and now < self._stamp:
            return self._level - self._rate * (self._stamp - now)
        return self._level_at(now)

    def earliest(self, n: float, now: float) -> float:
        """The earliest time (not a delay) at which `n` tokens can be taken. Changes nothing."""
        _check_count(n)
        t = self._start(now)
        level = self._level_at(t)
        need = min(n, self._burst)
        if level >= need:
            return t
        return t + (need - level) / self._rate

    def take(self, n: float, at: float) -> None:
        """Commit `n` tokens at time `at` without checking that they are there.

        Use it with an `at` no earlier than `earliest(n, ...)`; a smaller one is raised to
        the time of the last commit, so the FIFO order holds even then.
        """
        _check_count(n)
        t = self._start(at)
        self._level = self._level_at(t) - n
        self._stamp = t

    def reserve(self, n: float, now: float) -> float:
        """Book `n` tokens; return the delay in seconds (>= 0) before the caller may proceed."""
        ready = self.earliest(n, now)
        self.take(n, ready)
        return ready - now

    def refund(self, n: float) -> None:
        """Give back `n` tokens (a reservation that was not used, or an overestimate).

        Delays already handed out are not shortened; later reservations benefit.
        """
        _check_count(n)
        self._level = min(self._burst, self._level + n)

    def set_rate(self, rate_per_s: float, now: float) -> None:
        """Change the refill rate from `now` on (tokens accrued until then keep the old rate)."""
        _check_positive("rate_per_s", rate_per_s)
        if self._stamp is not None and now > self._stamp:
            self._level = self._level_at(now)
            self._stamp = now
        self._rate = float(rate_per_s)

    def _start(self, now: float) -> float:
        if self._stamp is None:
            self._stamp = now
        return max(now, self._stamp)

    def _level_at(self, t: float) -> float:
        if self._stamp is None or t <= self._stamp:
            return self._level
        return min(self._burst, self._level + self._rate * (t - self._stamp))

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_s={self._rate!r}, burst={self._burst!r}, level={self._level!r})"


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_count(n: float) -> None:
    if not (n >= 0 and math.isfinite(n)):
        raise ValueError(f"token count must be 0 or more, got {n!r}")
