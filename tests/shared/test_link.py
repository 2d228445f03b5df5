"""`RedisLink` against a real redis-server: concurrent calls share one round trip; a killed,
hung or absent server answers None within the timeout, one warning per outage, and the
link comes back (scripts loaded again) when the server does."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trustme

from conftest import LogCapture, eventually
from redis_server import RedisServer, free_port
from streamactors.shared.address import RedisAddress
from streamactors.shared.fleet import Budget, Fleet
from streamactors.shared.link import RedisLink

BUDGET = Budget.per_minute(60, None, burst_s=100)  # 1 per second, 100 saved


def events(logs: LogCapture, name: str) -> list[dict[str, object]]:
    return [r for r in logs.records() if r.get("event") == name]


async def test_concurrent_calls_share_a_round_trip(redis_server: RedisServer, nursery: trio.Nursery) -> None:
    link = RedisLink(RedisAddress.parse(redis_server.url), 0.5, LogCapture([]).logger)
    await nursery.start(link.run)
    fleet = Fleet(link, "t")
    grants = []

    async def admit() -> None:
        grants.append(await fleet.admit("p", BUDGET, 1))

    async with trio.open_nursery() as callers:
        for _ in range(50):
            callers.start_soon(admit)
    assert len(grants) == 50 and all(g is not None and g.delay == 0.0 for g in grants)
    assert sorted(g.requests_left for g in grants if g is not None) == list(range(50, 100))
    assert link.commands == 50 and link.round_trips == 1  # all queued before the link ran


async def test_killed_then_restarted(redis_server: RedisServer, nursery: trio.Nursery, logs: LogCapture) -> None:
    link = RedisLink(RedisAddress.parse(redis_server.url), 0.25, logs.logger)
    await nursery.start(link.run)
    fleet = Fleet(link, "t")
    assert await fleet.admit("p", BUDGET, 1) is not None
    assert link.status() == "ok"
    redis_server.kill()
    started = trio.current_time()
    assert await fleet.admit("p", BUDGET, 1) is None  # the connection broke under this call
    assert trio.current_time() - started < 0.25
    assert link.status() == "degraded"
    for _ in range(20):  # calls while down are answered at once
        assert await fleet.admit("p", BUDGET, 1) is None
    await trio.sleep(0.5)  # several reconnection attempts fail meanwhile
    assert len(events(logs, "shared_state_degraded")) == 1  # one warning per outage
    redis_server.start()  # empty: no scripts loaded, no keys
    await eventually(lambda: link.up, within=5)
    grant = await fleet.admit("p", BUDGET, 1)
    assert grant is not None and grant.requests_left == 99  # a fresh bucket on the new server
    (restored,) = events(logs, "shared_state_restored")
    assert restored["level"] == "info" and float(str(restored["outage_s"])) > 0.5
    (degraded,) = events(logs, "shared_state_degraded")
    assert degraded["level"] == "warning" and degraded["redis"] == redis_server.url


async def test_a_hung_server_times_out(redis_server: RedisServer, nursery: trio.Nursery, logs: LogCapture) -> None:
    link = RedisLink(RedisAddress.parse(redis_server.url), 0.2, logs.logger)
    await nursery.start(link.run)
    fleet = Fleet(link, "t")
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        started = trio.current_time()
        assert await fleet.admit("p", BUDGET, 1) is None
        assert 0.2 <= trio.current_time() - started < 0.3
        assert link.status() == "degraded"
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    await eventually(lambda: link.up, within=5)
    assert await fleet.admit("p", BUDGET, 1) is not None
    assert [r["reason"] for r in events(logs, "shared_state_degraded")] == ["no reply within 0.2 s"]


async def test_starting_with_redis_down(nursery: trio.Nursery, logs: LogCapture, tmp_path: object) -> None:
    port = free_port()
    link = RedisLink(RedisAddress("127.0.0.1", port), 0.25, logs.logger)
    await nursery.start(link.run)  # does not wait for Redis
    assert link.status() == "degraded"
    assert await Fleet(link, "t").admit("p", BUDGET, 1) is None
    (degraded,) = events(logs, "shared_state_degraded")
    assert str(degraded["reason"]).startswith(
        f"OSError: all attempts to connect to 127.0.0.1:{port} failed (Connection"
    )


async def test_flushed_scripts_are_loaded_again(redis_server: RedisServer, nursery: trio.Nursery) -> None:
    link = RedisLink(RedisAddress.parse(redis_server.url), 0.25, LogCapture([]).logger)
    await nursery.start(link.run)
    fleet = Fleet(link, "t")
    assert await fleet.admit("p", BUDGET, 1) is not None
    assert redis_server.command("SCRIPT", "FLUSH").startswith(b"+OK")
    assert await fleet.admit("p", BUDGET, 1) is None  # NOSCRIPT: reconnect, which loads them
    await eventually(lambda: link.up, within=5)
    grant = await fleet.admit("p", BUDGET, 1)
    assert grant is not None and grant.requests_left == 98


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    """A TLS-only redis-server with a certificate for localhost from a CA of the test's own."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    server = RedisServer(tmp_path, tls=(chain, key, ca_file))
    server.start()
    yield server, ca_file
    server.stop()


async def test_rediss_verifies_the_server(
    tls_redis: tuple[RedisServer, Path], nursery: trio.Nursery, logs: LogCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_file = tls_redis
    untrusted = RedisLink(RedisAddress.parse(server.url), 0.5, logs.logger)
    await nursery.start(untrusted.run)  # the system's CAs do not know the test's CA
    assert not untrusted.up
    (degraded,) = events(logs, "shared_state_degraded")
    assert "CERTIFICATE_VERIFY_FAILED" in str(degraded["reason"])
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # how a private CA is trusted
    link = RedisLink(RedisAddress.parse(server.url), 0.5, logs.logger)
    await nursery.start(link.run)
    assert link.up
    grant = await Fleet(link, "t").admit("p", BUDGET, 1)
    assert grant is not None and grant.requests_left == 99
