"""`Fleet`: the typed calls the guards make to the shared Redis (through the `RedisLink`).

Each method runs one script (`scripts`) for one provider of this service's namespace and
turns its reply into a small frozen value; None means "no answer" (Redis down, slow, or an
error reply): the caller then decides on its local state alone. Methods that return nothing
to wait for (`give_back`, `pause`, `poll`, `trip`, `probe_done`) are posted: they cost the
caller no wait, and share the link's next round trip with whatever else is queued.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import attrs

from .connection import Reply
from .link import RedisLink
from .scripts import ADMIT, CIRCUIT_STATES, PAUSE, POLL, PROBE, PROBE_DONE, TRIP

__all__ = ["Budget", "Fleet", "FleetState", "Grant", "ProbeAnswer", "ProviderKeys", "worker_id"]

_US = 1e-6


@attrs.frozen(slots=True)
class Budget:
    """A provider's shared budgets: rates per second and bursts (a rate of 0: no budget)."""

    requests_rate: float = 0.0
    requests_burst: float = 0.0
    tokens_rate: float = 0.0
    tokens_burst: float = 0.0

    @classmethod
    def per_minute(cls, requests: float | None, tokens: float | None, burst_s: float = 60.0) -> Budget:
        """`requests` and `tokens` per minute (None: no such budget), each saving up to
        `burst_s` seconds of its rate, as `AdaptivePacer`'s local budgets do."""
        r, t = requests or 0.0, tokens or 0.0
        return cls(
            r / 60.0, max(1.0, r * burst_s / 60.0) if r else 0.0, t / 60.0, max(1.0, t * burst_s / 60.0) if t else 0.0
        )

    @property
    def empty(self) -> bool:
        """No budget at all: nothing to admit through Redis."""
        return not self.requests_rate and not self.tokens_rate


@attrs.frozen(slots=True)
class Grant:
    """An admission: wait `delay` seconds (from when the reply came), then go.
    `requests_left` and `tokens_left` are what the fleet's buckets hold now."""

    delay: float
    requests_left: int
    tokens_left: int


@attrs.frozen(slots=True)
class FleetState:
    """What one poll read: the fleet's circuit ("closed" | "open" | "half_open"), seconds
    until an open one lets probes through, seconds the fleet is paused for, and how many
    services of the namespace use this provider (polled within the last few seconds)."""

    circuit: str
    retry_in: float
    pause: float
    workers: int


@attrs.frozen(slots=True)
class ProbeAnswer:
    """The fleet's answer to "may this request go?" while its circuit is not closed:
    `answer` is `scripts.PROBE_DENIED`, `PROBE_CLOSED` (go: it closed meanwhile) or
    `PROBE_GRANTED` (go, as one of the fleet's probes); `retry_in` while still open."""

    answer: int
    retry_in: float


@attrs.frozen(slots=True)
class ProviderKeys:
    """The Redis keys of one provider of one namespace (see `scripts`)."""

    budget: str
    pause: str
    circuit: str
    probes: str
    workers: str

    @classmethod
    def of(cls, namespace: str, provider: str) -> ProviderKeys:
        base = f"{namespace}:{{{provider}}}:"
        return cls(base + "budget", base + "pause", base + "circuit", base + "probes", base + "workers")


def worker_id() -> str:
    """This service's name among the fleet's: host, process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class Fleet:
    """One service's view of its namespace in the shared Redis (see the module docstring)."""

    def __init__(self, link: RedisLink, namespace: str, worker: str | None = None) -> None:
        self.link = link
        self.namespace = namespace
        self.worker = worker or worker_id()
        self._keys: dict[str, ProviderKeys] = {}

    def keys(self, provider: str) -> ProviderKeys:
        """The keys of `provider` (made once)."""
        keys = self._keys.get(provider)
        if keys is None:
            keys = self._keys[provider] = ProviderKeys.of(self.namespace, provider)
        return keys

    async def admit(self, provider: str, budget: Budget, tokens: int) -> Grant | None:
        """Book one request of about `tokens` tokens in the fleet's budgets (one round trip)."""
        k = self.keys(provider)
        reply = await self.link.call(ADMIT, (k.budget, k.pause), (*_budget_args(budget), tokens, 1, 0, 0))
        if reply is None:
            return None
        return Grant(reply[0] * _US, reply[1], reply[2])

    def give_back(self, provider: str, budget: Budget, requests: int, tokens: int) -> None:
        """Return `requests` and `tokens` to the fleet's budgets (negative `tokens`: charge
        more, when a response used more than its estimate)."""
        k = self.keys(provider)
        self.link.post(ADMIT, (k.budget, k.pause), (*_budget_args(budget), 0, 0, requests, tokens))

    def pause(self, provider: str, seconds: float) -> None:
        """Hold every service of the fleet back from `provider` for `seconds` from now."""
        self.link.post(PAUSE, (self.keys(provider).pause,), (seconds,))

    def poll(self, provider: str, alive_s: float, done: Callable[[FleetState | None], None]) -> None:
        """Read the fleet's circuit and pause for `provider`, and say this service is alive."""
        k = self.keys(provider)

        def read(reply: Reply | None) -> None:
            done(
                None
                if reply is None
                else FleetState(CIRCUIT_STATES[reply[0]], reply[1] * _US, reply[2] * _US, reply[3])
            )

        self.link.post(POLL, (k.circuit, k.pause, k.workers), (self.worker, alive_s), read)

    def trip(self, provider: str, reset_timeout: float, done: Callable[[FleetState | None], None]) -> None:
        """Open the fleet's circuit (if not open already)."""
        k = self.keys(provider)

        def read(reply: Reply | None) -> None:
            done(None if reply is None else FleetState(CIRCUIT_STATES[reply[0]], reply[1] * _US, 0.0, 0))

        self.link.post(TRIP, (k.circuit, k.probes), (reset_timeout,), read)

    async def probe(self, provider: str, probes: int, lease_s: float, probe_id: str) -> ProbeAnswer | None:
        """Ask to send a request while the fleet's circuit is open or half-open."""
        k = self.keys(provider)
        reply = await self.link.call(PROBE, (k.circuit, k.probes), (probes, lease_s, probe_id))
        return None if reply is None else ProbeAnswer(reply[0], reply[1] * _US)

    def probe_done(
        self, provider: str, probe_id: str, outcome: str, probes: int, done: Callable[[FleetState | None], None]
    ) -> None:
        """Report how a probe ended ("success" | "failure" | "release")."""
        k = self.keys(provider)

        def read(reply: Reply | None) -> None:
            done(None if reply is None else FleetState(CIRCUIT_STATES[reply], 0.0, 0.0, 0))

        self.link.post(PROBE_DONE, (k.circuit, k.probes), (probe_id, outcome, probes), read)


def _budget_args(budget: Budget) -> tuple[float, float, float, float]:
    return budget.requests_rate, budget.requests_burst, budget.tokens_rate, budget.tokens_burst
