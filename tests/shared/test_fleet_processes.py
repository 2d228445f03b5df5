"""Services in separate processes sharing one Redis: the issue's measurement, in small.

Three processes, each with `requests_per_minute = 6` (a burst of 6, then one every 10 s) and
4 requests at once, each stopping 4 s after its first request: through Redis the fake
upstream sees the fleet's 6, not 12; without `[shared]` each process spends its own budget
and all 12 go (the failure this fixes). (The processes start within a few seconds of each
other on a busy machine: the 4 s leave every admitted request time to go, and the 10 s to
the next admission keep the count exact.)"""

from __future__ import annotations

import pathlib
import sys

import orjson
import trio

from redis_server import RedisServer
from streamactors.testing import FakeUpstream

WORKER = pathlib.Path(__file__).with_name("fleet_worker.py")
PROCESSES, REQUESTS, RPM, SECONDS = 3, 4, 6, 4.0


async def run_fleet(fake: FakeUpstream, redis_url: str | None) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []

    async def worker() -> None:
        args = [sys.executable, str(WORKER), fake.base_url, str(REQUESTS), str(RPM), str(SECONDS)]
        done = await trio.run_process(args + ([redis_url] if redis_url else []), capture_stdout=True, check=True)
        results.append(orjson.loads(done.stdout.splitlines()[-1]))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(PROCESSES):
                nursery.start_soon(worker)
    return results


def upstream_calls(fake: FakeUpstream) -> int:
    return sum(1 for r in fake.requests if str(r.json().get("model", "")).startswith("fleet"))


async def test_processes_share_one_budget(fake: FakeUpstream, redis_server: RedisServer) -> None:
    results = await run_fleet(fake, redis_server.url)
    assert upstream_calls(fake) == RPM  # the fleet's burst: 6 of 12
    assert sum(int(str(r["ok"])) for r in results) == RPM
    assert all(r["failed"] == {} for r in results)  # the rest wait, they do not fail
    assert sum(int(str(r["waiting"])) for r in results) == PROCESSES * REQUESTS - RPM
    for r in results:
        limits = r["rate_limit"]
        assert isinstance(limits, dict)
        assert limits["shared"] == "ok" and limits["local_admissions"] == 0
        assert limits["shared_admissions"] == REQUESTS


async def test_without_shared_each_process_spends_its_own_budget(fake: FakeUpstream) -> None:
    await run_fleet(fake, None)
    assert upstream_calls(fake) == PROCESSES * REQUESTS
