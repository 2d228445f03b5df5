"""`SharedBreakerActor`: a `BreakerActor` whose circuit belongs to the fleet.

Each service still counts its own failures (the local `CircuitBreaker`, now a detector).
When it trips, the service opens the fleet's circuit (`Fleet.trip`) and starts counting
afresh; every other service hears of it at its next poll (`FleetWatcher`, every 0.25 s) and
rejects with `circuit_open` from then on, without contacting the provider. Once the reset
timeout has passed, a request asks the fleet (`Fleet.probe`): at most `half_open_probes`
probes are in flight across the fleet, each on a lease that ends with its verdict
(`Fleet.probe_done`), or by itself after the provider's total timeout (a service that died
mid-probe does not hold the circuit open). One failed probe reopens the circuit for all;
`half_open_probes` successes close it for all.

While Redis does not answer, the service decides on its own detector, exactly as a
`BreakerActor` does; once Redis is back, a detector that opened meanwhile opens the fleet's
circuit (news the others should have), and the fleet's state rules again.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable
from typing import Any, cast

import attrs
import trio

from ..config.schema import CircuitBreakerConfig
from ..policy.breaker import BreakerState, Transition, breaker_outcome
from ..policy.fleet import CircuitDecision, FleetCircuit
from ..shared.fleet import Fleet, FleetState
from ..shared.scripts import PROBE_CLOSED, PROBE_DENIED, PROBE_GRANTED
from .breaker import BreakerActor, _Allow, _Verdict
from .mailbox import Call

__all__ = ["SharedBreakerActor"]


@attrs.frozen(slots=True, eq=False)
class _Decide(Call[CircuitDecision]):
    """What may a request do, by the fleet's circuit as last heard (or the local one)?"""


@attrs.frozen(slots=True)
class _News:
    state: FleetState
    at: float
    tripped: bool = False  # the answer to this service's own trip


@attrs.frozen(slots=True)
class _Probed:
    answer: int
    retry_in: float
    probe_id: str


# The mailbox carries these messages beside the base class's (`_handle` dispatches on the exact
# type), but the base class's message union cannot name them: these casts say so to mypy.
_DECIDE = cast(Callable[[trio.MemorySendChannel[CircuitDecision]], _Allow], _Decide)


def _msg(msg: _News | _Probed) -> _Verdict:
    return cast(_Verdict, msg)


class SharedBreakerActor(BreakerActor):
    """One provider's circuit, shared with the fleet (see the module docstring)."""

    def __init__(self, provider: str, cfg: CircuitBreakerConfig, logger: Any, fleet: Fleet, probe_lease: float) -> None:
        super().__init__(provider, cfg, logger)
        self._fleet = fleet
        self._probe_lease = probe_lease
        self._view = FleetCircuit()
        self._probes: collections.deque[str] = collections.deque()  # this service's probes in flight
        self._probe_ids = itertools.count(1)
        self._tripping = False

    @property
    def _shared(self) -> bool:
        return self._fleet.link.up

    @property
    def admits_freely(self) -> bool:
        """True while the circuit that rules (the fleet's, or the local one while Redis does
        not answer) is closed and nothing queued could change that."""
        if self._urgent:
            return False
        if self._shared:
            return self._view.state == "closed"
        return self._breaker.state is BreakerState.CLOSED

    async def allow(self) -> bool:
        """May a request go to the provider now? A True must be followed by one `verdict`."""
        decision = await self._call(_DECIDE)
        if decision is not CircuitDecision.ASK:
            return decision is CircuitDecision.GO
        probe_id = f"{self._fleet.worker}:{next(self._probe_ids)}"
        answer = await self._fleet.probe(self.provider, self._cfg.half_open_probes, self._probe_lease, probe_id)
        if answer is None:  # Redis did not answer: the local circuit decides
            return await self._call(_Allow)
        self._alert(_msg(_Probed(answer.answer, answer.retry_in, probe_id)))
        if answer.answer == PROBE_DENIED:
            self.rejected += 1
            return False
        return True

    def verdict(self, error_kind: str | None, status: int | None, *, cancelled: bool = False) -> None:
        """As `BreakerActor.verdict`; a verdict that may end one of this service's probes is
        always news."""
        if self._probes:
            outcome = "release" if cancelled else breaker_outcome(error_kind, status)
            self._alert(_Verdict(outcome, trio.current_time()))
        else:
            super().verdict(error_kind, status, cancelled=cancelled)

    def fleet_news(self, state: FleetState | None) -> None:
        """What the latest poll read (None: no answer). A detector that opened while Redis was
        away opens the fleet's circuit now."""
        if state is None:
            return
        if state.circuit != self._view.state:
            self._alert(_msg(_News(state, trio.current_time())))
        if self._breaker.state is BreakerState.OPEN and not self._tripping:
            self._trip()

    def _trip(self) -> None:
        self._tripping = True

        def tripped(state: FleetState | None) -> None:
            self._tripping = False
            if state is not None:
                self._alert(_msg(_News(state, trio.current_time(), tripped=True)))

        self._fleet.trip(self.provider, self._cfg.reset_timeout, tripped)

    def _handle(self, msg: Any) -> None:
        now = trio.current_time()
        if type(msg) is _Decide:
            if self._shared:
                decision = self._view.decide(now)
            else:
                decision = CircuitDecision.GO if self._breaker.allow(now) else CircuitDecision.REJECT
            if decision is CircuitDecision.REJECT:
                self.rejected += 1
            msg.reply.send_nowait(decision)
        elif type(msg) is _Verdict and self._probes:
            probe_id = self._probes.popleft()
            self._fleet.probe_done(self.provider, probe_id, msg.outcome, self._cfg.half_open_probes, self._news_from)
        elif type(msg) is _News:
            self._learn(msg.state, msg.at)
            if msg.tripped and self._breaker.state is BreakerState.OPEN:
                self._breaker = self._new_breaker()  # the fleet knows: count afresh
        elif type(msg) is _Probed:
            if msg.answer == PROBE_GRANTED:
                self._probes.append(msg.probe_id)
                self._learn(FleetState("half_open", 0.0, 0.0, 0), now)
            elif msg.answer == PROBE_CLOSED:
                self._learn(FleetState("closed", 0.0, 0.0, 0), now)
            elif msg.retry_in > 0:
                self._learn(FleetState("open", msg.retry_in, 0.0, 0), now)
        else:
            super()._handle(msg)

    def _news_from(self, state: FleetState | None) -> None:
        if state is not None:
            self._alert(_msg(_News(state, trio.current_time())))

    def _learn(self, state: FleetState, now: float) -> None:
        old = self._view.state
        if not self._view.learn(state.circuit, state.retry_in, now):
            return
        self._log.warning("circuit_transition", old=old, new=state.circuit, reason="fleet", fleet=True)
        if state.circuit == "closed":
            self._probes.clear()
            if self._breaker.state is not BreakerState.CLOSED:
                self._breaker = self._new_breaker()

    def _on_transition(self, t: Transition) -> None:
        super()._on_transition(t)
        if t.new is BreakerState.OPEN and self._shared:
            # Open here at once (the fleet will agree): no request slips out meanwhile.
            self._view.learn("open", self._cfg.reset_timeout, t.at)
            if not self._tripping:
                self._trip()

    @property
    def state(self) -> BreakerState:
        """The state that rules: the fleet's while Redis answers, else the local one."""
        return BreakerState(self._view.state) if self._shared else self._breaker.state

    def retry_in(self) -> float | None:
        """Seconds until an open circuit lets a probe through, else None."""
        if self._shared:
            return self._view.retry_in(trio.current_time())
        return super().retry_in()

    def status(self) -> dict[str, Any]:
        """`BreakerActor.status()` for the circuit that rules, plus the fleet's side."""
        out = super().status()
        out.update(
            {
                "state": self.state.value,
                "retry_in_s": self.retry_in(),
                "shared": self._fleet.link.status(),
                "fleet_state": self._view.state,
                "local_state": self._breaker.state.value,
                "probes_in_flight": len(self._probes),
            }
        )
        return out
