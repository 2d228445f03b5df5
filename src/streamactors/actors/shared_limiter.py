"""`SharedLimiterActor`: a `LimiterActor` whose budgets and quota news belong to the fleet.

With `[shared]`, `requests_per_minute` and `tokens_per_minute` hold across every service of
the namespace: each admission books one request and its estimated tokens in the fleet's
buckets with one Redis script call (`Fleet.admit`, on the server's clock), then the local
pacer adds what only this service knows (AIMD after its own 429s, quota spreading). The
tokens are charged by estimate and corrected once the response reports its usage
(`settle`); corrections, and admissions given back (`cancel`), travel with the next poll.

Quota news goes to the fleet: a 429's Retry-After, or quota headers saying nothing is left
until a reset (`policy.fleet.quota_pause`), pause every service until then (`Fleet.pause`);
the others hear of it in their next admission (the script waits for the pause) or poll.

When Redis does not answer (down, slow), admissions fall back to a local share of the
budgets (the budget divided by the number of services last seen polling), and any pause
already heard of still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import attrs
import trio

from ..config.schema import RateLimitConfig
from ..policy._headers import lowered
from ..policy.adaptive import AdaptivePacer, PacerSettings
from ..policy.backoff import retry_after_seconds
from ..policy.fleet import quota_pause
from ..policy.ratelimit_headers import parse_quota
from ..shared.fleet import Budget, Fleet, FleetState
from .limiter import REJECTED, LimiterActor, _Acquire, _Cancel, _Feedback, _speaks_of_limits
from .mailbox import Call

__all__ = ["SharedLimiterActor"]


@attrs.frozen(slots=True, eq=False)
class _Granted(Call[float]):
    """The fleet admitted a request: when may it go, after `delay` seconds (or `REJECTED`)?"""

    tokens: int
    alone: bool
    delay: float


@attrs.frozen(slots=True)
class _Paused:
    until: float  # trio time


@attrs.frozen(slots=True)
class _Went:
    """A request the fleet admitted at once went without asking this actor (see `acquire`)."""

    tokens: int
    at: float


# The mailbox carries these messages beside the base class's (`_handle` dispatches on the exact
# type), but the base class's message union cannot name them: these casts say so to mypy.
_GRANTED = cast(Callable[[trio.MemorySendChannel[float], int, bool, float], _Acquire], _Granted)


def _msg(msg: _Paused | _Went) -> _Acquire:
    return cast(_Acquire, msg)


class SharedLimiterActor(LimiterActor):
    """Paces one provider's requests against the fleet's budgets (see the module docstring)."""

    #: `settle` is worth calling: token estimates are corrected in the fleet's budget.
    settles = True

    def __init__(self, provider: str, cfg: RateLimitConfig, logger: Any, fleet: Fleet) -> None:
        super().__init__(provider, cfg, logger)
        self._fleet = fleet
        settings = PacerSettings()
        self._budget = Budget.per_minute(cfg.requests_per_minute, cfg.tokens_per_minute, settings.burst_s)
        # The budgets are the fleet's: the local pacer keeps what this service learns alone.
        self._pacer = AdaptivePacer(adaptive=cfg.adaptive, settings=settings)
        self._fallback: AdaptivePacer | None = None
        self._fallback_share = 0
        self._paused_until = -1.0
        self._owed_tokens = 0  # tokens used beyond the estimates (negative: fewer), not yet told
        self._given_requests = 0
        self._given_tokens = 0
        #: Services of the namespace using this provider, as of the last poll.
        self.workers = 1
        #: What the fleet's buckets held at the last admission (None: no admission yet).
        self.fleet_left: tuple[int, int] | None = None
        self._admits_sent = 0
        self._left_of = 0  # the admission whose answer `fleet_left` holds (in the order sent)
        self.shared_admissions = 0
        self.local_admissions = 0

    @property
    def admits_freely(self) -> bool:
        """As `LimiterActor.admits_freely`, and never while the fleet pauses the provider."""
        return self._paused_until <= trio.current_time() and super().admits_freely

    async def acquire(self, tokens: int, *, alone: bool = False) -> float:
        """The trio time at which a request of about `tokens` tokens may go, or `REJECTED`:
        the fleet's budgets first (one Redis round trip), this service's own pacing next."""
        if not self._budget.empty and self._fleet.link.up:
            self._admits_sent += 1
            sent = self._admits_sent
            grant = await self._fleet.admit(self.provider, self._budget, tokens)
            if grant is not None:
                # Concurrent admissions share round trips and their callers wake in any order:
                # what the buckets held is the latest sent's answer, not the latest woken's.
                if sent > self._left_of:
                    self._left_of = sent
                    self.fleet_left = (grant.requests_left, grant.tokens_left)
                if grant.delay <= 0 and self._nothing_local():
                    # Nothing here would delay it: go now, and let the pacer count it later
                    # (spares the caller a wait for this actor's turn, as `admits_freely` does).
                    self.shared_admissions += 1
                    now = trio.current_time()
                    self._post(_msg(_Went(tokens, now)))
                    return now
                return await self._call(_GRANTED, tokens, alone, grant.delay)
        return await self._call(_Acquire, tokens, alone)

    def _nothing_local(self) -> bool:
        """Whether this service's own pacing would add no wait (the pacer idle, as
        `LimiterActor.admits_freely` asks, budgets aside; the fleet's pause over)."""
        return self._paused_until <= trio.current_time() and self._pacer_idle()

    def settle(self, estimate: int, used: int) -> None:
        """A request admitted at `estimate` tokens used `used`: correct the fleet's budget."""
        self._owed_tokens += used - estimate

    def fleet_news(self, state: FleetState | None) -> None:
        """What the latest poll read (None: no answer); then send the corrections owed."""
        if state is not None:
            self.workers = max(1, state.workers)
            if state.pause > 0:
                until = trio.current_time() + state.pause
                if until > self._paused_until + 0.001:
                    self._alert(_msg(_Paused(until)))
        owed_requests, owed_tokens = self._given_requests, self._given_tokens - self._owed_tokens
        if (owed_requests or owed_tokens) and self._fleet.link.up and not self._budget.empty:
            self._fleet.give_back(self.provider, self._budget, owed_requests, owed_tokens)
            self._given_requests = self._given_tokens = self._owed_tokens = 0

    def _handle(self, msg: Any) -> None:
        now = trio.current_time()
        if type(msg) is _Granted:
            self.shared_admissions += 1
            self._admit(msg, now + msg.delay, None)
        elif type(msg) is _Acquire:
            fallback = None
            if not self._budget.empty:
                self.local_admissions += 1
                fallback = self._fallback_pacer()
            self._admit(msg, now, fallback)
        elif type(msg) is _Went:
            self._pacer.admit(msg.tokens, msg.at)  # counted (send rate, quotas); it went already
        elif type(msg) is _Paused:
            self._paused_until = max(self._paused_until, msg.until)
        elif type(msg) is _Cancel:
            super()._handle(msg)
            if not self._budget.empty:  # what the fleet booked for it goes back with the next poll
                self._given_requests += 1
                self._given_tokens += msg.tokens
        else:
            super()._handle(msg)
            if type(msg) is _Feedback and (msg.status == 429 or _speaks_of_limits(msg.headers)):
                self._tell_fleet(msg)

    def _admit(self, msg: _Acquire | _Granted, start: float, fallback: AdaptivePacer | None) -> None:
        now = trio.current_time()
        waiting = self._waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        if len(waiting) >= self.config.max_queue:
            self.rejected += 1
            if type(msg) is _Granted:
                self._given_requests += 1
                self._given_tokens += msg.tokens
            msg.reply.send_nowait(REJECTED)
            return
        start = max(start, self._paused_until)
        if fallback is not None:
            start += fallback.admit(msg.tokens, start)
        ready = start + self._pacer.admit(msg.tokens, start, alone=msg.alone)
        if ready > now:
            waiting.append(ready)
            self.delayed += 1
        msg.reply.send_nowait(ready)

    def _fallback_pacer(self) -> AdaptivePacer:
        """This service's share of the budgets, for while the fleet cannot be asked."""
        if self._fallback is None or self._fallback_share != self.workers:
            cfg, n = self.config, self.workers
            self._fallback = AdaptivePacer(
                requests_per_minute=None if cfg.requests_per_minute is None else cfg.requests_per_minute / n,
                tokens_per_minute=None if cfg.tokens_per_minute is None else cfg.tokens_per_minute / n,
                adaptive=False,
            )
            self._fallback_share = n
        return self._fallback

    def _tell_fleet(self, msg: _Feedback) -> None:
        headers = lowered(msg.headers)
        snapshot = parse_quota(headers, msg.wall) if headers else None
        retry_after = retry_after_seconds(headers, msg.wall) if headers else None
        pause = quota_pause(msg.status, snapshot, retry_after, self._pacer.settings)
        if pause is None:
            return
        self._paused_until = max(self._paused_until, msg.at + pause)
        self._fleet.pause(self.provider, pause - (trio.current_time() - msg.at))
        self._log.info("fleet_pause", pause_s=round(pause, 3), status=msg.status)

    def status(self) -> dict[str, Any]:
        """`LimiterActor.status()`, plus the fleet's side."""
        out = super().status()
        now = trio.current_time()
        out.update(
            {
                "shared": self._fleet.link.status(),
                "fleet_workers": self.workers,
                "fleet_paused_for_s": max(0.0, self._paused_until - now),
                "fleet_requests_left": None if self.fleet_left is None else self.fleet_left[0],
                "fleet_tokens_left": None if self.fleet_left is None else self.fleet_left[1],
                "shared_admissions": self.shared_admissions,
                "local_admissions": self.local_admissions,
            }
        )
        return out
