"""Per-provider guard actors: the rate limiter and the circuit breaker.

Each owns one pure policy object (`AdaptivePacer`, `CircuitBreaker`) and serves messages
from its bounded mailbox, one at a time, so the policy is never touched concurrently.
A request/reply goes over a fresh one-slot channel (the actor never blocks replying);
fire-and-forget reports use `send_nowait` and are dropped, and counted, if the mailbox
is full, so a stalled guard can never stall the data path.

The limiter does not hold waiting requests: it answers with the time at which the
request may go (admissions are first come, first served, so those times never
decrease) and the requester sleeps until then. It counts requests still waiting, and
past `max_queue` answers "rejected" at once: admission control.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from ..config.schema import CircuitBreakerConfig, RateLimitConfig
from ..policy._headers import lowered
from ..policy.adaptive import AdaptivePacer
from ..policy.backoff import retry_after_seconds
from ..policy.breaker import BreakerState, CircuitBreaker, Transition, breaker_outcome
from ..policy.ratelimit_headers import QUOTA_PREFIXES, parse_quota

__all__ = ["REJECTED", "BreakerActor", "LimiterActor"]

#: The limiter's answer when its queue is full.
REJECTED = -1.0
_MAILBOX = 256
#: The longest a routine report waits in a guard's mailbox before it is taken in.
FLUSH_INTERVAL = 1.0


@attrs.frozen(slots=True, eq=False)
class _Acquire:
    tokens: int
    alone: bool  # no other request of the provider in flight (AIMD does not delay it)
    reply: trio.MemorySendChannel[float]


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


@attrs.frozen(slots=True, eq=False)
class _Allow:
    reply: trio.MemorySendChannel[bool]


@attrs.frozen(slots=True)
class _Verdict:
    outcome: str  # "success" | "failure" | "release"
    at: float  # trio time the request ended (a routine verdict may be read later)


class _GuardBase:
    """Mailbox plumbing shared by the guards (and the router).

    The actor waits on a wake-up event, not on its mailbox, so a report can be queued
    without waking it: routine news (a request that went and succeeded, while nothing
    constrains the provider) waits in the mailbox, in order, until the next wake-up, which
    comes with anything that matters (a call, a failure, a 429, quota headers), when the
    mailbox is half full, or `FLUSH_INTERVAL` seconds after the last one. Waking an actor
    for every request would cost more than the bookkeeping it does.
    """

    def __init__(self) -> None:
        send, recv = trio.open_memory_channel[Any](_MAILBOX)
        self._mailbox = send
        self._inbox = recv
        self._wake = trio.Event()
        self._queued = 0  # reports queued since the last wake-up
        # A report that matters is queued, unread: the state on show may be out of date, so
        # nobody may rely on it (`admits_freely`) until the actor has taken the report in.
        self._urgent = False
        self.dropped_reports = 0

    def _report(self, msg: Any, *, urgent: bool = True) -> None:
        try:
            self._mailbox.send_nowait(msg)
        except trio.WouldBlock:
            self.dropped_reports += 1
            urgent = True
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        self._queued += 1
        if urgent:
            self._urgent = True
            self._wake.set()
        elif self._queued >= _MAILBOX // 2:
            self._wake.set()

    async def _call(self, make: Callable[[Any], Any]) -> Any:
        send, recv = trio.open_memory_channel[Any](1)
        self._wake.set()  # (if the mailbox is full, the actor must empty it for this send to go)
        await self._mailbox.send(make(send))
        self._wake.set()
        try:
            return await recv.receive()
        except trio.EndOfChannel:
            raise RuntimeError(f"{type(self).__name__} stopped before answering") from None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox until the service closes it (the mailbox outlives restarts)."""
        task_status.started()
        while True:
            with trio.move_on_after(FLUSH_INTERVAL):
                await self._wake.wait()
            self._wake = trio.Event()
            if not self.drain():
                return

    def drain(self) -> bool:
        """Serve everything queued, in order, in one turn; False once the mailbox is closed.

        `status()` calls it first, as the metrics actor's readers do: a read right after a
        request then sees that request's report. It runs synchronously, so never at the
        same time as the actor's own turn.
        """
        self._queued = 0
        self._urgent = False
        inbox = self._inbox
        while True:
            try:
                msg = inbox.receive_nowait()
            except trio.WouldBlock:
                return True
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return False
            self._serve(msg)

    def _serve(self, msg: Any) -> None:
        reply = getattr(msg, "reply", None)
        try:
            self._handle(msg)
        finally:
            if reply is not None:
                reply.close()

    def close(self) -> None:
        """Stop accepting messages (service shutdown)."""
        self._mailbox.close()
        self._wake.set()

    def _handle(self, msg: Any) -> None:
        raise NotImplementedError


# The starts of the header names the limiter reads: quotas (`parse_quota`), and Retry-After
# (retry-after, retry-after-ms), each after the newline that precedes a name in `_speaks_of_limits`.
_NEWS_NAMES = tuple(b"\n" + prefix.encode() for prefix in (*QUOTA_PREFIXES, "retry-after"))


def _speaks_of_limits(headers: httpx.Headers | Mapping[str, str]) -> bool:
    """Whether a response carries quota or Retry-After headers (x-ratelimit-*,
    anthropic-ratelimit-*, retry-after, retry-after-ms), read without decoding every header."""
    if isinstance(headers, httpx.Headers):
        names = b"\n" + b"\n".join([name for name, _ in headers.raw]).lower()
    else:
        names = ("\n" + "\n".join(headers).lower()).encode()
    return any(name in names for name in _NEWS_NAMES)


class LimiterActor(_GuardBase):
    """Paces one provider's requests (budgets, quota headers, AIMD on 429s)."""

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
        result: float = await self._call(lambda reply: _Acquire(tokens, alone, reply))
        return result

    @property
    def admits_freely(self) -> bool:
        """True while nothing can delay a request: no budgets, no quota information, no 429
        back-off. A requester may then go at once and `note_admitted`, sparing a round trip;
        the answer would have been "now" anyway. Not while a report that matters (a 429,
        quota headers) waits unread: it may change that."""
        pacer = self._pacer
        return (
            not self._urgent
            and self._unbudgeted
            and pacer.snapshot is None
            and pacer.factor == 1.0
            and (pacer.blocked_until is None or pacer.blocked_until <= trio.current_time())
        )

    def cancel(self, tokens: int) -> None:
        """An admitted request was never sent."""
        self._report(_Cancel(tokens))

    def feedback(
        self, status: int | None, headers: httpx.Headers | Mapping[str, str], *, admitted: int | None = None
    ) -> None:
        """Report a response's status and headers (quota headers, Retry-After); None: no response.

        `admitted`: the estimated tokens of a request that went without asking because the
        limiter `admits_freely`; it is counted now (send rate, quota use), one report per attempt.
        Such a request's 2xx/3xx with nothing to say about quotas is routine news.
        """
        if admitted is not None and status is not None and status < 400 and not _speaks_of_limits(headers):
            self._report(_Feedback(status, {}, 0.0, trio.current_time(), admitted), urgent=False)
        else:
            self._report(_Feedback(status, headers, time.time(), trio.current_time(), admitted))

    def _handle(self, msg: Any) -> None:
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


class BreakerActor(_GuardBase):
    """Owns one provider's circuit breaker; logs and counts every transition."""

    def __init__(self, provider: str, cfg: CircuitBreakerConfig, logger: Any) -> None:
        super().__init__()
        self.provider = provider
        self._log = logger.bind(provider=provider, actor="breaker")
        self._breaker = CircuitBreaker(
            cfg.failure_threshold,
            cfg.reset_timeout,
            cfg.half_open_probes,
            cfg.failure_rate,
            cfg.window,
            cfg.min_requests,
            on_transition=self._on_transition,
        )
        self.rejected = 0

    @property
    def admits_freely(self) -> bool:
        """True while the circuit is closed and no failure waits to be counted: `allow()` would
        say yes without changing anything. (Right after a failure, `allow()` asks the actor,
        which counts the failure first: the next request cannot slip past a circuit that
        failure opens.)"""
        return not self._urgent and self._breaker.state is BreakerState.CLOSED

    async def allow(self) -> bool:
        """May a request go to the provider now? A True must be followed by one `verdict`."""
        allowed: bool = await self._call(_Allow)
        return allowed

    def verdict(self, error_kind: str | None, status: int | None, *, cancelled: bool = False) -> None:
        """Report how an allowed request ended: no error, an error (kind, status), or cancelled
        (see `breaker_outcome` for what counts)."""
        outcome = "release" if cancelled else breaker_outcome(error_kind, status)
        if outcome != "failure" and not self._queued and self._breaker.success_changes_nothing:
            return  # the breaker is up to date (nothing queued) and would not change: no report
        # A success or a release while closed changes nothing anyone waits on: routine news.
        urgent = outcome == "failure" or self._breaker.state is not BreakerState.CLOSED
        self._report(_Verdict(outcome, trio.current_time()), urgent=urgent)

    def _handle(self, msg: Any) -> None:
        now = trio.current_time()
        if type(msg) is _Allow:
            allowed = self._breaker.allow(now)
            if not allowed:
                self.rejected += 1
            msg.reply.send_nowait(allowed)
        elif type(msg) is _Verdict:
            if msg.outcome == "success":
                self._breaker.record_success(msg.at)
            elif msg.outcome == "failure":
                self._breaker.record_failure(msg.at)
            else:
                self._breaker.release()

    def _on_transition(self, t: Transition) -> None:
        self._log.warning(
            "circuit_transition",
            old=t.old.name.lower(),
            new=t.new.name.lower(),
            reason=t.reason,
            transitions=self._breaker.transition_count,
        )

    @property
    def state(self) -> BreakerState:
        """The breaker's current state."""
        return self._breaker.state

    def retry_in(self) -> float | None:
        """Seconds until an open circuit lets a probe through, else None."""
        at = self._breaker.retry_at
        return None if at is None else max(0.0, at - trio.current_time())

    def status(self) -> dict[str, Any]:
        """A snapshot for `Service.health()` (what is queued is taken in first)."""
        self.drain()
        return {
            "state": self._breaker.state.name.lower(),
            "transitions": self._breaker.transition_count,
            "rejected": self.rejected,
            "retry_in_s": self.retry_in(),
        }
