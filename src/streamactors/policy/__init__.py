"""Pure resilience policies: no trio, no httpx, no I/O.

Time comes in as `now: float` (seconds on the trio clock, or Unix seconds where the name
says `now_epoch`), randomness as an injected `random.Random`. The actors in
`streamactors.actors` wrap these and own the clock, the sleeping and the logging.

- `backoff`: the official SDKs' retry rules and delays.
- `ratelimit_headers`: OpenAI and Anthropic quota headers -> `QuotaSnapshot`.
- `bucket`: `TokenBucket`, FIFO reservations with debt.
- `adaptive`: `AdaptivePacer`, budgets + quota headers + AIMD on 429s.
- `breaker`: `CircuitBreaker`, a transition table CLOSED/OPEN/HALF_OPEN.
- `intensity`: OTP-style `RestartIntensity` and `restart_backoff`.
- `latency`: `LatencyEstimate`, `pick_two`, `weighted_choice` for routes.
"""

from .adaptive import AdaptivePacer as AdaptivePacer
from .adaptive import PacerSettings as PacerSettings
from .backoff import retry_after_seconds as retry_after_seconds
from .backoff import retry_delay as retry_delay
from .backoff import should_retry as should_retry
from .breaker import BreakerState as BreakerState
from .breaker import CircuitBreaker as CircuitBreaker
from .breaker import Transition as Transition
from .breaker import breaker_outcome as breaker_outcome
from .breaker import is_breaker_failure as is_breaker_failure
from .bucket import TokenBucket as TokenBucket
from .intensity import RestartIntensity as RestartIntensity
from .intensity import restart_backoff as restart_backoff
from .latency import LatencyEstimate as LatencyEstimate
from .latency import pick_two as pick_two
from .latency import weighted_choice as weighted_choice
from .ratelimit_headers import QuotaSnapshot as QuotaSnapshot
from .ratelimit_headers import parse_quota as parse_quota

__all__ = [
    "AdaptivePacer",
    "BreakerState",
    "CircuitBreaker",
    "LatencyEstimate",
    "PacerSettings",
    "QuotaSnapshot",
    "RestartIntensity",
    "TokenBucket",
    "Transition",
    "breaker_outcome",
    "is_breaker_failure",
    "parse_quota",
    "pick_two",
    "restart_backoff",
    "retry_after_seconds",
    "retry_delay",
    "should_retry",
]
