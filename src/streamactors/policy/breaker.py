"""A circuit breaker as a pure state machine: CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

Following h11's `_state.py`, every transition lives in one table, `TRANSITIONS`, keyed by
`(state, event)`, and `CircuitBreaker._fire` is the only code that changes the state:

    CLOSED    --TRIP------------> OPEN       failure_threshold consecutive failures, or
                                             failure_rate over `window` with >= min_requests
    OPEN      --COOL_DOWN-------> HALF_OPEN  the first allow() at least reset_timeout after opening
    HALF_OPEN --PROBES_PASSED---> CLOSED     half_open_probes successes
    HALF_OPEN --PROBE_FAILED----> OPEN       one failure

CLOSED admits everything; OPEN admits nothing; HALF_OPEN admits up to `half_open_probes`
requests at a time. Results reported while OPEN are ignored (they belong to requests
admitted before it opened). A request admitted by `allow()` must end in exactly one of
`record_success`, `record_failure` or `release` (no verdict: cancelled), else a probe slot
stays taken. `breaker_outcome` says which: `is_breaker_failure` names the errors that are
the provider's fault (connection, timeout, 408, 5xx); a 429 is none of them ("slow down" is
not "broken": the rate limiter handles it) and releases the admission, as our own refusals
do; any other response (a 400, say) shows the provider is up and is a success here.

The failure rate is kept in time slots (`_window.SlidingCounts`), so memory does not grow
with traffic. Entering CLOSED or OPEN starts counting afresh.
"""

from __future__ import annotations

import enum
import math
from collections import Counter, deque
from collections.abc import Callable

import attrs

from ._window import SlidingCounts

__all__ = [
    "TRANSITIONS",
    "BreakerEvent",
    "BreakerState",
    "CircuitBreaker",
    "Transition",
    "breaker_outcome",
    "is_breaker_failure",
]


class BreakerState(enum.Enum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerEvent(enum.Enum):
    """What moves the breaker from one state to another."""

    TRIP = "trip"
    COOL_DOWN = "cool_down"
    PROBES_PASSED = "probes_passed"
    PROBE_FAILED = "probe_failed"


CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

#: Every allowed transition; anything else is a bug in this module.
TRANSITIONS: dict[tuple[BreakerState, BreakerEvent], BreakerState] = {
    (CLOSED, BreakerEvent.TRIP): OPEN,
    (OPEN, BreakerEvent.COOL_DOWN): HALF_OPEN,
    (HALF_OPEN, BreakerEvent.PROBES_PASSED): CLOSED,
    (HALF_OPEN, BreakerEvent.PROBE_FAILED): OPEN,
}


@attrs.frozen(slots=True)
class Transition:
    """One state change, for logs and metrics. `reason` is human-readable."""

    old: BreakerState
    new: BreakerState
    event: BreakerEvent
    at: float
    reason: str


_BREAKER_KINDS = frozenset({"connection", "timeout"})
_STATUS_LESS_FAILURES = frozenset({"protocol", "upstream"})
_NEVER_FAILURES = frozenset({"circuit_open", "rate_limited", "internal"})


def is_breaker_failure(kind: str, status: int | None) -> bool:
    """Whether an error counts against the provider's circuit.

    `kind` is a `ProviderError.kind`. Connection errors and timeouts count; with a status,
    408 (request timeout) and 5xx count and every other status does not (4xx is the
    caller's fault); without one, a protocol error (a malformed or truncated stream) or an
    in-stream upstream error counts. A 429 never counts: it means "slow down", not
    "broken", and the rate limiter handles it. Our own refusals ("rate_limited" with no
    status, "circuit_open") and internal errors (our bug, not the provider's) never count.
    """
    if kind in _NEVER_FAILURES or status == 429:
        return False
    if kind in _BREAKER_KINDS:
        return True
    if status is not None:
        return status == 408 or status >= 500
    return kind in _STATUS_LESS_FAILURES


def breaker_outcome(kind: str | None, status: int | None) -> str:
    """How an admitted request's end counts: "success", "failure" or "release".

    `kind` and `status` are its error's (None: no error). "release" frees the admission
    with no verdict on the provider's health: a 429 (the provider answered, but asks us to
    slow down), our own refusals, and internal errors; so 429s between failures neither
    reset the count nor add to it, and a half-open probe that meets one just frees its slot.
    """
    if kind is None:
        return "success"
    if is_breaker_failure(kind, status):
        return "failure"
    if kind in _NEVER_FAILURES or status == 429:
        return "release"
    return "success"  # a 4xx: the provider is up, the caller was wrong


class CircuitBreaker:
    """Per-provider circuit breaker; time is passed in, see the module docstring."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_probes: int = 1,
        failure_rate: float | None = None,
        window: float = 60.0,
        min_requests: int = 20,
        *,
        on_transition: Callable[[Transition], None] | None = None,
        history_size: int = 64,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold!r}")
        if not (reset_timeout >= 0 and math.isfinite(reset_timeout)):
            raise ValueError(f"reset_timeout must be 0 or more seconds, got {reset_timeout!r}")
        if half_open_probes < 1:
            raise ValueError(f"half_open_probes must be at least 1, got {half_open_probes!r}")
        if failure_rate is not None and not 0 < failure_rate <= 1:
            raise ValueError(f"failure_rate must be in (0, 1], got {failure_rate!r}")
        if min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {min_requests!r}")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_probes = half_open_probes
        self.failure_rate = failure_rate
        self.min_requests = min_requests
        self.on_transition = on_transition
        self._window = SlidingCounts(window)
        self._state = CLOSED
        self._consecutive = 0
        self._opened_at = -math.inf
        self._probes_in_flight = 0
        self._probe_successes = 0
        #: Total number of transitions so far.
        self.transition_count = 0
        #: Transitions so far, by event.
        self.event_counts: Counter[BreakerEvent] = Counter()
        #: The most recent transitions, oldest first (bounded by `history_size`).
        self.history: deque[Transition] = deque(maxlen=history_size)

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN turns HALF_OPEN only when `allow` is next called)."""
        return self._state

    @property
    def success_changes_nothing(self) -> bool:
        """True when `record_success` (or `release`) would change nothing: closed, no failure
        counted, and no failure-rate window to feed."""
        return self._state is CLOSED and self._consecutive == 0 and self.failure_rate is None

    @property
    def retry_at(self) -> float | None:
        """While OPEN, the time from which a probe will be let through; else None."""
        return self._opened_at + self.reset_timeout if self._state is OPEN else None

    def allow(self, now: float) -> bool:
        """Whether a request may go to the provider now. A True in HALF_OPEN takes a probe slot."""
        if self._state is OPEN:
            if now < self._opened_at + self.reset_timeout:
                return False
            self._fire(BreakerEvent.COOL_DOWN, now, f"{self.reset_timeout} s since opening")
        if self._state is HALF_OPEN:
            if self._probes_in_flight >= self.half_open_probes:
                return False
            self._probes_in_flight += 1
        return True

    def record_success(self, now: float) -> None:
        """A request admitted by `allow` succeeded (or failed through no fault of the provider)."""
        if self._state is CLOSED:
            self._consecutive = 0
            self._window.add(now, failed=False)
        elif self._state is HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._probe_successes += 1
            if self._probe_successes >= self.half_open_probes:
                self._fire(BreakerEvent.PROBES_PASSED, now, f"{self._probe_successes} probe(s) succeeded")

    def record_failure(self, now: float) -> None:
        """A request admitted by `allow` failed in a way `is_breaker_failure` counts."""
        if self._state is CLOSED:
            self._consecutive += 1
            self._window.add(now, failed=True)
            if self._consecutive >= self.failure_threshold:
                self._fire(BreakerEvent.TRIP, now, f"{self._consecutive} consecutive failures")
            elif self.failure_rate is not None:
                requests, failures = self._window.totals(now)
                if requests >= self.min_requests and failures >= self.failure_rate * requests:
                    reason = f"{failures} of {requests} requests failed in {self._window.window} s"
                    self._fire(BreakerEvent.TRIP, now, reason)
        elif self._state is HALF_OPEN:
            self._fire(BreakerEvent.PROBE_FAILED, now, "a probe failed")

    def release(self) -> None:
        """A request admitted by `allow` ended with no verdict (cancelled); free its probe slot."""
        if self._state is HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)

    def _fire(self, event: BreakerEvent, now: float, reason: str) -> None:
        old = self._state
        new = TRANSITIONS.get((old, event))
        if new is None:  # pragma: no cover - guarded by the callers above
            raise RuntimeError(f"circuit breaker: no transition for {event.name} in {old.name}")
        self._state = new
        if new is OPEN:
            self._opened_at = now
        elif new is HALF_OPEN:
            self._probes_in_flight = self._probe_successes = 0
        if new is not HALF_OPEN:
            self._consecutive = 0
            self._window.clear()
        transition = Transition(old, new, event, now, reason)
        self.transition_count += 1
        self.event_counts[event] += 1
        self.history.append(transition)
        if self.on_transition is not None:
            self.on_transition(transition)

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state.name}, transitions={self.transition_count})"
