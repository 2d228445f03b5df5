"""`BreakerActor`: owns one provider's circuit breaker.

It owns one pure policy object (`CircuitBreaker`) and serves its batched mailbox (see
`mailbox`), so the breaker is never touched concurrently; every transition is logged and
counted.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from ..config.schema import CircuitBreakerConfig
from ..policy.breaker import BreakerState, CircuitBreaker, Transition, breaker_outcome
from .mailbox import BatchedActor, Call

__all__ = ["BreakerActor"]


@attrs.frozen(slots=True, eq=False)
class _Allow(Call[bool]):
    """May a request go now?"""


@attrs.frozen(slots=True)
class _Verdict:
    outcome: str  # "success" | "failure" | "release"
    at: float  # trio time the request ended (a routine verdict may be read later)


class BreakerActor(BatchedActor[_Allow | _Verdict]):
    """Owns one provider's circuit breaker; logs and counts every transition."""

    def __init__(self, provider: str, cfg: CircuitBreakerConfig, logger: Any) -> None:
        super().__init__()
        self.provider = provider
        self._log = logger.bind(provider=provider, actor="breaker")
        self._cfg = cfg
        self._breaker = self._new_breaker()
        self.rejected = 0

    def _new_breaker(self) -> CircuitBreaker:
        """A circuit breaker in its first state, from the provider's config."""
        cfg = self._cfg
        return CircuitBreaker(
            cfg.failure_threshold,
            cfg.reset_timeout,
            cfg.half_open_probes,
            cfg.failure_rate,
            cfg.window,
            cfg.min_requests,
            on_transition=self._on_transition,
        )

    @property
    def admits_freely(self) -> bool:
        """True while the circuit is closed and no failure waits to be counted: `allow()` would
        say yes without changing anything. (Right after a failure, `allow()` asks the actor,
        which counts the failure first: the next request cannot slip past a circuit that
        failure opens.)"""
        return not self._urgent and self._breaker.state is BreakerState.CLOSED

    async def allow(self) -> bool:
        """May a request go to the provider now? A True must be followed by one `verdict`."""
        return await self._call(_Allow)

    def verdict(self, error_kind: str | None, status: int | None, *, cancelled: bool = False) -> None:
        """Report how an allowed request ended: no error, an error (kind, status), or cancelled
        (see `breaker_outcome` for what counts)."""
        outcome = "release" if cancelled else breaker_outcome(error_kind, status)
        if outcome != "failure" and not self._queued and self._breaker.success_changes_nothing:
            return  # the breaker is up to date (nothing queued) and would not change: no report
        # A success or a release while closed changes nothing anyone waits on: routine news.
        if outcome == "failure" or self._breaker.state is not BreakerState.CLOSED:
            self._alert(_Verdict(outcome, trio.current_time()))
        else:
            self._post(_Verdict(outcome, trio.current_time()))

    def _handle(self, msg: _Allow | _Verdict) -> None:
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
