"""`LimiterActor`: paces one provider's requests (budgets, quota headers, AIMD on 429s).

It owns one pure policy object (`AdaptivePacer`) and serves its batched mailbox (see
`mailbox`), so the pacer is never touched concurrently.

The limiter does not hold waiting requests: it answers with the time at which the
request may go (admissions are first come, first served, so those times never
decrease) and the requester sleeps until then. It counts requests still waiting, and
past `max_queue` answers "rejected" at once: admission control.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Mapping
from typing import Any

import attrs
import httpx
import trio

from ..config.schema import RateLimitConfig
from ..policy._headers import lowered
from ..policy.adaptive import AdaptivePacer
from ..policy.backoff import retry_after_seconds
from ..policy.ratelimit_headers import QUOTA_PREFIXES, parse_quota
from .mailbox import BatchedActor, Call

__all__ = ["REJECTED", "LimiterActor"]

#: The limiter's answer when its queue is full.
REJECTED = -1.0


@attrs.frozen(slots=True, eq=False)
class _Acquire(Call[float]):
    """When may a request of about `tokens` tokens go (a trio time), or `REJECTED`?"""

    tokens: int
    alone: bool  # no other request of the provider in flight (AIMD does not delay it)


@attrs.frozen(slots=True)
class _Cancel:
    tokens: int


@attrs.frozen(slots=True)
class _Feedback:
    status: int | None
    headers: Mapping[str, str]
    wall: float
    at: float  # trio time of the response: what it says is taken as of then, however late it is read
    admitted: int | None  # tokens of a request that went without asking (see `admits_freely`)


# The starts of the header names the limiter reads: quotas (`parse_quota`), and Retry-After
# (retry-after, retry-after-ms), each after the newline that precedes a name in `_speaks_of_limits`.
_NEWS_NAMES = tuple(b"\n" + prefix.encode() for prefix in (*QUOTA_PREFIXES, "retry-after"))
_NEWS = re.compile(b"|".join(re.escape(name) for name in _NEWS_NAMES))  # any of them, in one scan


def _speaks_of_limits(headers: httpx.Headers | Mapping[str, str]) -> bool:
    """Whether a response carries quota or Retry-After headers (x-ratelimit-*,
    anthropic-ratelimit-*, retry-after, retry-after-ms), read without decoding every header."""
    if isinstance(headers, httpx.Headers):
        names = b"\n" + b"\n".join([name for name, _ in headers.raw]).lower()
    else:
        names = ("\n" + "\n".join(headers).lower()).encode()
    return _NEWS.search(names) is not None


class LimiterActor(BatchedActor[_Acquire | _Cancel | _Feedback]):
    """Paces one provider's requests (budgets, quota headers, AIMD on 429s)."""

    #: Whether `settle` does anything (the fleet's shared budgets correct token estimates;
    #: a local budget does not), so the provider actor skips the call when it would not.
    settles = False

    def __init__(self, provider: str, cfg: RateLimitConfig, logger: Any) -> None:
        super().__init__()
        self.provider = provider
        self.config = cfg
        self._log = logger.bind(provider=provider, actor="limiter")
        self._pacer = AdaptivePacer(
            requests_per_minute=cfg.requests_per_minute,
            tokens_per_minute=cfg.tokens_per_minute,
            adaptive=cfg.adaptive,
        )
        self._waiting: collections.deque[float] = collections.deque()
        self._unbudgeted = cfg.requests_per_minute is None and cfg.tokens_per_minute is None
        self.rejected = 0
        self.delayed = 0

    async def acquire(self, tokens: int, *, alone: bool = False) -> float:
        """The trio time at which a request of about `tokens` tokens may go, or `REJECTED`.

        `alone`: the asker is its provider's only request in flight."""
        return await self._call(_Acquire, tokens, alone)

    @property
    def admits_freely(self) -> bool:
        """True while nothing can delay a request: no budgets, no quota information, no 429
        back-off. A requester may then go at once and `note_admitted`, sparing a round trip;
        the answer would have been "now" anyway. Not while a report that matters (a 429,
        quota headers) waits unread: it may change that."""
        return self._unbudgeted and self._pacer_idle()

    def _pacer_idle(self) -> bool:
        """Whether the pacer would add no wait, budgets aside: no report that matters unread,
        no quota information, no 429 back-off."""
        pacer = self._pacer
        return (
            not self._urgent
            and pacer.snapshot is None
            and pacer.factor == 1.0
            and (pacer.blocked_until is None or pacer.blocked_until <= trio.current_time())
        )

    def settle(self, estimate: int, used: int) -> None:
        """A request admitted at `estimate` tokens reported using `used` (see `settles`)."""

    def cancel(self, tokens: int) -> None:
        """An admitted request was never sent."""
        self._alert(_Cancel(tokens))

    def feedback(
        self, status: int | None, headers: httpx.Headers | Mapping[str, str], *, admitted: int | None = None
    ) -> None:
        """Report a response's status and headers (quota headers, Retry-After); None: no response.

        `admitted`: the estimated tokens of a request that went without asking because the
        limiter `admits_freely`; it is counted now (send rate, quota use), one report per attempt.
        Such a request's 2xx/3xx with nothing to say about quotas is routine news.
        """
        if admitted is not None and status is not None and status < 400 and not _speaks_of_limits(headers):
            self._post(_Feedback(status, {}, 0.0, trio.current_time(), admitted))
        else:
            self._alert(_Feedback(status, headers, time.time(), trio.current_time(), admitted))

    def _handle(self, msg: _Acquire | _Cancel | _Feedback) -> None:
        now = trio.current_time()
        if type(msg) is _Acquire:
            waiting = self._waiting
            while waiting and waiting[0] <= now:
                waiting.popleft()
            if len(waiting) >= self.config.max_queue:
                self.rejected += 1
                msg.reply.send_nowait(REJECTED)
                return
            ready = now + self._pacer.admit(msg.tokens, now, alone=msg.alone)
            if ready > now:
                waiting.append(ready)
                self.delayed += 1
            msg.reply.send_nowait(ready)
        elif type(msg) is _Feedback:
            if msg.admitted is not None:
                self._pacer.admit(msg.admitted, msg.at)  # no wait to hand out: it went already
            headers = lowered(msg.headers)  # once: reading an httpx.Headers decodes every entry
            snapshot = parse_quota(headers, msg.wall) if headers else None
            retry_after = retry_after_seconds(headers, msg.wall) if headers else None
            self._pacer.on_response(msg.status, snapshot, retry_after, msg.at)
            if msg.status == 429:
                self._log.info("rate_limit_backoff", factor=self._pacer.factor, retry_after_s=retry_after)
        elif type(msg) is _Cancel:
            self._pacer.cancel(msg.tokens)

    def status(self) -> dict[str, Any]:
        """A snapshot for `Service.health()` (what is queued is taken in first)."""
        self.drain()
        now = trio.current_time()
        blocked = self._pacer.blocked_until
        return {
            "waiting": sum(1 for t in self._waiting if t > now),
            "max_queue": self.config.max_queue,
            "rejected": self.rejected,
            "delayed": self.delayed,
            "aimd_factor": self._pacer.factor,
            "blocked_for_s": max(0.0, blocked - now) if blocked is not None else 0.0,
        }
