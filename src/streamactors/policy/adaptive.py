"""Adaptive pacing for one provider: configured budgets, quota headers and AIMD on 429s.

`AdaptivePacer` is pure: the limiter actor calls `admit(tokens, now)` for each request,
sleeps for the delay it returns, sends the request, and reports every response with
`on_response(status, snapshot, retry_after, now)`.

The algorithm, exactly. `admit(n, now)` computes one ready time `T` as the latest of:

1. `now`, the previous admission's ready time (first come, first served: nobody overtakes)
   and `blocked_until` (set by a 429's Retry-After, and never later than the latest quota
   reset the provider announced: OpenAI's `retry-after: 1` beside `x-ratelimit-reset-tokens:
   54ms` pauses new requests for 54 ms, not a second);
2. each configured budget: `requests_per_minute` and `tokens_per_minute` are
   `TokenBucket.per_minute` buckets (refill `limit / 60` per second, burst
   `max(1, limit * burst_s / 60)`), asked for 1 request and `n` tokens;
3. the AIMD bucket, while a 429 is being recovered from (below): 1 request at the allowed
   rate, burst 1, so requests are spaced evenly. A request admitted `alone` (the only one
   of its provider in flight) is not delayed by it, only counted (never into debt): AIMD
   lowers the rate of concurrent traffic, and one caller at a time is already paced by
   its own retry waits, as with the SDKs;
4. each quota dimension (requests with `n = 1`, tokens with `n`) of the latest
   `QuotaSnapshot`, while `T < reset_at` (`reset_at` = the response's `now` + reset):
   `left = remaining - used`, where `used` counts what was admitted since that snapshot;
   - exhausted (`left <= 0` or `left < n`): wait until `reset_at`;
   - low (`left <= low_fraction * limit`, or the limit is unknown): spread what is left
     evenly over the time to the reset: not before
     `last_at + last_n * (reset_at - last_at) / (left + last_n)`, where `last_at` and
     `last_n` are the previous admission's time and size in that dimension;
   - otherwise no wait (bursting is fine while plenty is left).

It then commits `T` to every bucket and dimension (so budgets stay exact when one gate
delays another) and returns `T - now`.

`on_response(status, snapshot, retry_after, now)`, when `adaptive` is on:

- a snapshot replaces the stored information per dimension (a dimension it lacks is
  kept) and resets `used`; a dimension with no reset, or one more than `max_wait_s` away,
  is dropped: this pacer is for per-minute quotas, and a daily quota running out should
  surface as errors, not as hour-long waits (the retry policy's 60 s rule, again);
- a throttling status (429 by default): if `0 < retry_after <= max_wait_s`,
  `blocked_until = max(blocked_until, now + retry_after)`. Whenever a quota reset is known
  (the latest `reset_at` of the quota dimensions, if still ahead), `blocked_until` is
  lowered to it: the provider's own word on when the quota is back bounds the pause. Then, unless the previous
  decrease was less than `decrease_hold_s` ago (one burst of 429s from requests already
  in flight counts once, as TCP reduces once per window), multiplicative decrease:
  when not already recovering, `ceiling` = the measured send rate (admissions in the last
  `rate_window_s` / the time since the oldest of them, at least 1 s; else the budget or
  the quota limit per second, else 1/s), capped by `requests_per_minute / 60`, and
  `factor = decrease`; when recovering, `factor = max(min_factor, factor * decrease)`.
  The AIMD bucket's rate becomes `max(factor * ceiling, 1 / spacing)`, where `spacing`
  is the pause this 429 announced (as bounded above), else `max_spacing_s` (8 s, the
  SDKs' longest backoff): however many 429s came before, admissions are never spaced
  further apart than the provider asked, so no wait grows without bound;
- a success (status 200..399) while recovering: additive increase over time,
  `factor += recovery_per_s * (now - time of the last factor change)`; at 1 the AIMD
  bucket is removed and pacing is back to budgets and quotas alone.

With `adaptive=False` only the configured budgets apply and `on_response` does nothing.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from .bucket import TokenBucket
from .ratelimit_headers import QuotaSnapshot

__all__ = ["AdaptivePacer", "PacerSettings"]


@attrs.frozen(slots=True)
class PacerSettings:
    """Tuning knobs of `AdaptivePacer`; the defaults suit per-minute provider quotas."""

    #: Budget buckets save up to this many seconds of their rate (60: a full minute).
    burst_s: float = 60.0
    #: A quota is "low" at or below this fraction of its limit; then it is spread out.
    low_fraction: float = 0.1
    #: Multiplicative decrease applied to the allowed-rate factor on a 429.
    decrease: float = 0.5
    #: Additive increase of the factor per second of time, credited on each success.
    recovery_per_s: float = 0.05
    #: The factor never drops below this.
    min_factor: float = 0.05
    #: 429s within this many seconds of a decrease do not decrease again.
    decrease_hold_s: float = 1.0
    #: The send rate that set off a 429 is measured over this many seconds.
    rate_window_s: float = 10.0
    #: Header-driven waits (Retry-After, quota resets) longer than this are ignored.
    max_wait_s: float = 60.0
    #: Without an announced pause, AIMD never spaces admissions further apart than this
    #: (openai-python's and anthropic-sdk-python's `MAX_RETRY_DELAY`).
    max_spacing_s: float = 8.0
    #: Statuses that mean "slow down".
    throttle_statuses: frozenset[int] = frozenset({429})


class _QuotaGate:
    """One quota dimension (requests or tokens) of the latest snapshot."""

    __slots__ = ("last_at", "last_n", "limit", "remaining", "reset_at", "used")

    def __init__(self) -> None:
        self.remaining: int | None = None
        self.limit: int | None = None
        self.reset_at: float | None = None
        self.used = 0
        self.last_at: float | None = None
        self.last_n = 0

    def update(
        self, remaining: int | None, limit: int | None, reset_s: float | None, now: float, max_wait: float
    ) -> None:
        if remaining is None:
            return
        if reset_s is None or reset_s > max_wait:
            self.remaining = self.reset_at = self.limit = None
            return
        self.remaining, self.limit, self.reset_at, self.used = remaining, limit, now + reset_s, 0

    def earliest(self, n: int, t: float, low_fraction: float) -> float:
        if self.remaining is None or self.reset_at is None or t >= self.reset_at:
            return t
        left = self.remaining - self.used
        if left <= 0 or left < n:
            return self.reset_at
        if self.limit is not None and left > low_fraction * self.limit:
            return t
        if self.last_at is None:
            return t
        spacing = self.last_n * (self.reset_at - self.last_at) / (left + self.last_n)
        return max(t, self.last_at + spacing)

    def commit(self, n: int, at: float) -> None:
        if self.reset_at is not None and at >= self.reset_at:
            self.remaining = self.reset_at = self.limit = None
            self.used = 0
        elif self.remaining is not None:
            self.used += n
        self.last_at, self.last_n = at, n

    def cancel(self, n: int) -> None:
        self.used = max(0, self.used - n)


class AdaptivePacer:
    """Paces one provider's requests; see the module docstring for the exact algorithm."""

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        adaptive: bool = True,
        settings: PacerSettings | None = None,
    ) -> None:
        s = settings if settings is not None else PacerSettings()
        self.settings = s
        self.adaptive = adaptive
        self._rpm = requests_per_minute
        self._requests = _budget(requests_per_minute, s.burst_s)
        self._tokens = _budget(tokens_per_minute, s.burst_s)
        self._quota_requests = _QuotaGate()
        self._quota_tokens = _QuotaGate()
        self._snapshot: QuotaSnapshot | None = None
        self._last_ready = -math.inf
        self._blocked_until = -math.inf
        self._factor = 1.0
        self._ceiling: float | None = None
        self._aimd: TokenBucket | None = None
        self._factor_changed_at = -math.inf
        self._min_rate = 1.0 / s.max_spacing_s  # the AIMD rate's floor (see `on_response`)
        self._last_decrease = -math.inf
        # Bounded record of recent admission times, to measure the send rate on a 429.
        self._sent: deque[float] = deque(maxlen=64)

    @property
    def factor(self) -> float:
        """The AIMD allowed-rate factor: 1.0 unless recovering from a 429."""
        return self._factor

    @property
    def allowed_rate(self) -> float | None:
        """Requests per second the AIMD bucket allows while recovering, else None."""
        return None if self._aimd is None else self._aimd.rate_per_s

    @property
    def blocked_until(self) -> float | None:
        """The time before which a 429's Retry-After holds every request back, if any."""
        return None if self._blocked_until == -math.inf else self._blocked_until

    @property
    def snapshot(self) -> QuotaSnapshot | None:
        """The latest quota snapshot reported (for health output)."""
        return self._snapshot

    def admit(self, tokens: int, now: float, *, alone: bool = False) -> float:
        """Admit one request estimated at `tokens` tokens; return its delay in seconds (>= 0).

        `alone`: no other request of this provider is in flight, so the AIMD bucket counts
        it but does not delay it (see the module docstring)."""
        if tokens < 0:
            raise ValueError(f"tokens must be 0 or more, got {tokens!r}")
        s = self.settings
        t = max(now, self._last_ready, self._blocked_until)
        ready = t
        if self._requests is not None:
            ready = max(ready, self._requests.earliest(1, t))
        if self._tokens is not None:
            ready = max(ready, self._tokens.earliest(tokens, t))
        aimd = self._aimd
        if aimd is not None and not alone:
            ready = max(ready, aimd.earliest(1, t))
        if self.adaptive:
            ready = max(ready, self._quota_requests.earliest(1, t, s.low_fraction))
            ready = max(ready, self._quota_tokens.earliest(tokens, t, s.low_fraction))
        for bucket, n in ((self._requests, 1), (self._tokens, tokens)):
            if bucket is not None:
                bucket.take(n, ready)
        if aimd is not None:
            aimd.take(min(1.0, max(0.0, aimd.available(ready))) if alone else 1, ready)
        self._quota_requests.commit(1, ready)
        self._quota_tokens.commit(tokens, ready)
        self._sent.append(ready)
        self._last_ready = ready
        return ready - now

    def cancel(self, tokens: int) -> None:
        """Undo an admission whose request was never sent (the caller gave up waiting).

        Budgets and quota counts get the request back; delays already handed out stand.
        """
        for bucket, n in ((self._requests, 1), (self._tokens, tokens), (self._aimd, 1)):
            if bucket is not None:
                bucket.refund(n)
        self._quota_requests.cancel(1)
        self._quota_tokens.cancel(tokens)

    def on_response(
        self,
        status: int | None,
        snapshot: QuotaSnapshot | None,
        retry_after: float | None,
        now: float,
    ) -> None:
        """Learn from one response: its status (None: no response), quota headers and Retry-After."""
        if not self.adaptive:
            return
        s = self.settings
        if snapshot is not None:
            self._snapshot = snapshot
            self._quota_requests.update(
                snapshot.remaining_requests, snapshot.limit_requests, snapshot.reset_requests_s, now, s.max_wait_s
            )
            self._quota_tokens.update(
                snapshot.remaining_tokens, snapshot.limit_tokens, snapshot.reset_tokens_s, now, s.max_wait_s
            )
        throttled = status in s.throttle_statuses
        if throttled and retry_after is not None and 0 < retry_after <= s.max_wait_s:
            self._blocked_until = max(self._blocked_until, now + retry_after)
        reset_at = self._latest_reset(now)
        if reset_at is not None and self._blocked_until > reset_at:
            self._blocked_until = reset_at
        if throttled:
            pause = self._blocked_until - now
            self._min_rate = 1.0 / (pause if pause > 0 else s.max_spacing_s)
            if now - self._last_decrease >= s.decrease_hold_s:
                self._decrease(now)
            elif self._aimd is not None:
                self._aimd.set_rate(self._aimd_rate(), now)
        elif status is not None and 200 <= status < 400 and self._aimd is not None:
            self._recover(now)

    def _latest_reset(self, now: float) -> float | None:
        """The latest quota reset still ahead (absolute time), if the provider announced one."""
        resets = [g.reset_at for g in (self._quota_requests, self._quota_tokens) if g.reset_at is not None]
        latest = max(resets, default=None)
        return latest if latest is not None and latest > now else None

    def _aimd_rate(self) -> float:
        assert self._ceiling is not None
        return max(self._factor * self._ceiling, self._min_rate)

    def _decrease(self, now: float) -> None:
        s = self.settings
        if self._aimd is None or self._ceiling is None:
            self._ceiling = self._send_rate(now)
            self._factor = s.decrease
            self._aimd = TokenBucket(self._aimd_rate(), 1.0)
        else:
            self._factor = max(s.min_factor, self._factor * s.decrease)
            self._aimd.set_rate(self._aimd_rate(), now)
        self._last_decrease = self._factor_changed_at = now

    def _recover(self, now: float) -> None:
        assert self._aimd is not None and self._ceiling is not None
        self._factor += self.settings.recovery_per_s * max(0.0, now - self._factor_changed_at)
        self._factor_changed_at = now
        if self._factor >= 1.0:
            self._factor, self._ceiling, self._aimd = 1.0, None, None
        else:
            self._aimd.set_rate(self._aimd_rate(), now)

    def _send_rate(self, now: float) -> float:
        recent = [t for t in self._sent if now - self.settings.rate_window_s <= t <= now]
        if recent:
            rate = len(recent) / max(1.0, now - min(recent))
        elif self._rpm is not None:
            rate = self._rpm / 60.0
        elif self._snapshot is not None and self._snapshot.limit_requests:
            rate = self._snapshot.limit_requests / 60.0
        else:
            rate = 1.0
        return rate if self._rpm is None else min(rate, self._rpm / 60.0)


def _budget(per_minute: float | None, burst_s: float) -> TokenBucket | None:
    if per_minute is None:
        return None
    return TokenBucket.per_minute(per_minute, burst=max(1.0, per_minute * burst_s / 60.0))
