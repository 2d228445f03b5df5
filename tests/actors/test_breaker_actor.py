"""The breaker actor: a failure not yet counted is never overtaken by an admission that reads
the breaker's state without asking; routine verdicts wait in the mailbox."""

from __future__ import annotations

import structlog
import trio
import trio.testing

from streamactors.actors.breaker import BreakerActor
from streamactors.config.schema import CircuitBreakerConfig


async def test_a_failure_not_yet_counted_stops_free_admission(nursery: trio.Nursery) -> None:
    """A worker may take its next job before the breaker actor has run: the failure it just
    reported must still decide that job's admission."""
    breaker = BreakerActor("p", CircuitBreakerConfig(failure_threshold=1), structlog.get_logger())
    await nursery.start(breaker.run)
    assert breaker.admits_freely
    breaker.verdict("upstream", 503)  # queued; the actor has not run since
    assert not breaker.admits_freely
    assert await breaker.allow() is False  # the actor counts the failure, then answers
    assert breaker.rejected == 1


async def test_a_success_leaves_free_admission_alone(nursery: trio.Nursery) -> None:
    breaker = BreakerActor("p", CircuitBreakerConfig(failure_threshold=1), structlog.get_logger())
    await nursery.start(breaker.run)
    breaker.verdict(None, 200)
    assert breaker.admits_freely


async def test_status_counts_what_is_queued_first(nursery: trio.Nursery) -> None:
    breaker = BreakerActor("p", CircuitBreakerConfig(failure_threshold=2), structlog.get_logger())
    await nursery.start(breaker.run)
    breaker.verdict("upstream", 503)
    breaker.verdict("upstream", 503)  # the actor has not run: status() takes both in itself
    assert breaker.status()["state"] == "open"
    assert breaker.state.name == "OPEN" and breaker.retry_in() is not None
