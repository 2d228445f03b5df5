"""Abandoned streams leave nothing behind: no open sockets, no tasks, no growing memory.

Streams are abandoned three ways, a third each: the consumer leaves the `stream()` block
after the first event; the consumer's task is cancelled from outside while it waits for
the next event; the service is shut down under streams in full flight. The upstream's
streams would run for a day, so every one of them is cut short.

File descriptors are this process's (`/proc/self/fd`); the fake upstream runs in the same
process, so its side of every connection must be gone too. Tasks are trio's living tasks.
RSS is compared after a warm-up round against after the whole run. All of it is real
sockets on the wall clock, since descriptors, connections and RSS are what is measured.

On the machine this was written on (two cores, the fake upstream in this process), an
abandoned stream costs 3-5 ms, a fresh connection each: 2,000 streams run by default
(about 8 s), 10,000 with `pytest -m slow` (30-40 s). After a warm-up of 1,200 streams
RSS grew by under 1 MB over 2,000 more and about 6 MB over 10,000; separate runs of
about 10,000 streams each way showed it flat after the first thousand (object counts
too): allocator settling, not a leak.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
import trio

from conftest import eventually, provider_table, user
from streamactors import Config, ProviderError, open_service
from streamactors.config.schema import LoggingConfig
from streamactors.logs import make_logger
from streamactors.testing import FakeUpstream

CONCURRENCY = 100
PROVIDERS = ("openai", "anthropic")
MB = 1024 * 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tasks_living() -> int:
    return int(trio.lowlevel.current_statistics().tasks_living)


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def request(i: int) -> dict[str, Any]:
    """A stream that would take a day: the first token at once, then one a second."""
    return {"model": f"{PROVIDERS[i % 2]}/m~tokens=100000~delay_ms=1000", "messages": user()}


async def close_early(service: Any, n: int) -> None:
    """n consumers (CONCURRENCY at a time) that leave after the first event."""
    limit = trio.CapacityLimiter(CONCURRENCY)

    async def one(i: int) -> None:
        async with limit, service.stream(request(i)) as events:
            async for _ in events:
                break

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)


async def all_reading(n: int, start: Callable[[trio.Nursery, Callable[[], None]], Awaitable[None]]) -> None:
    """Start n consumers in a nursery; cancel them all once each has read an event."""
    first = 0
    everyone = trio.Event()

    def got_first() -> None:
        nonlocal first
        first += 1
        if first == n:
            everyone.set()

    async with trio.open_nursery() as nursery:
        await start(nursery, got_first)
        with trio.fail_after(30):
            await everyone.wait()
        nursery.cancel_scope.cancel()


async def cancel_consumers(service: Any, n: int) -> None:
    """Rounds of CONCURRENCY consumers, each task cancelled from outside mid-stream."""
    for base in range(0, n, CONCURRENCY):
        size = min(CONCURRENCY, n - base)

        async def start(
            nursery: trio.Nursery, got_first: Callable[[], None], base: int = base, size: int = size
        ) -> None:
            async def one(i: int) -> None:
                async with service.stream(request(i)) as events:
                    await events.__anext__()
                    got_first()
                    async for _ in events:  # blocked here, or on the way, when the cancel comes
                        pass

            for i in range(base, base + size):
                nursery.start_soon(one, i)

        await all_reading(size, start)


async def shut_down_under_streams(cfg: Config, logger: Any, n: int) -> None:
    """Rounds of a fresh service with CONCURRENCY streams in flight, left mid-stream."""
    for base in range(0, n, CONCURRENCY):
        await _shutdown_round(cfg, logger, range(base, min(n, base + CONCURRENCY)))


async def _shutdown_round(cfg: Config, logger: Any, ids: range) -> None:
    failures: list[ProviderError] = []
    first = 0
    everyone = trio.Event()

    async def one(service: Any, i: int) -> None:
        nonlocal first
        try:
            async with service.stream(request(i)) as events:
                await events.__anext__()
                first += 1
                if first == len(ids):
                    everyone.set()
                async for _ in events:
                    pass
        except ProviderError as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:  # noqa: SIM117 - the streams outlive the service
        async with open_service(cfg, logger=logger) as service:
            for i in ids:
                nursery.start_soon(one, service, i)
            with trio.fail_after(30):
                await everyone.wait()
        # Leaving the service ended every stream (grace 0): each with an error, none hangs.
    assert len(failures) == len(ids)
    assert {f.kind for f in failures} == {"connection"}


async def abandon(cfg: Config, logger: Any, fake: FakeUpstream, per_way: int) -> None:
    async with open_service(cfg, logger=logger) as service:
        await close_early(service, per_way)
        # Abandoned connections are closed at once, not left for the service's exit.
        await eventually(lambda: fake.open_connections == 0, within=5)
        await cancel_consumers(service, per_way)
        await eventually(lambda: fake.open_connections == 0, within=5)
    await shut_down_under_streams(cfg, logger, per_way)


@pytest.mark.parametrize(
    "total", [pytest.param(2_000, id="2000"), pytest.param(10_000, id="10000", marks=pytest.mark.slow)]
)
async def test_abandoned_streams_leave_no_sockets_tasks_or_memory(
    total: int, fake: FakeUpstream, tmp_path: Path
) -> None:
    # The real logger, writing to a file: request lines kept in memory would be growth the test adds.
    log_file = (tmp_path / "service.log").open("w")
    logger = make_logger(LoggingConfig(format="json", level="info"), [], stream=log_file)
    cfg = Config.from_dict(
        {"providers": provider_table(fake, max_concurrency=CONCURRENCY), "service": {"shutdown_grace": 0.0}}
    )
    fds0, tasks0 = open_fds(), tasks_living()

    async def settled() -> None:
        await eventually(lambda: fake.open_connections == 0 and open_fds() <= fds0, within=10)
        await eventually(lambda: tasks_living() <= tasks0, within=10)

    with trio.fail_after(600), log_file:
        # Warm-up: the allocator's high-water mark settles over the first few hundred streams.
        await abandon(cfg, logger, fake, 4 * CONCURRENCY)
        await settled()
        rss_warm = rss()
        await abandon(cfg, logger, fake, total // 3)
        await settled()
        growth = rss() - rss_warm
        assert open_fds() == fds0
        assert tasks_living() == tasks0
    assert fake.responses_completed == 0, "a stream ran to its end: it was not abandoned"
    assert growth < 10 * MB, f"RSS grew by {growth / MB:.1f} MB over {total} abandoned streams"


async def test_the_log_file_is_complete_and_closed_when_the_service_exits(fake: FakeUpstream, tmp_path: Path) -> None:
    """JSON logs are block-buffered: the last lines must be flushed, and the file closed, on exit."""
    path = tmp_path / "service.log"
    cfg = Config.from_dict({"providers": provider_table(fake), "logging": {"file": str(path)}})
    for _ in range(3):  # each run appends; none leaves the file open
        async with open_service(cfg) as service:
            await service.complete({"model": "openai/m~tokens=3", "messages": user()})
        open_files = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if _link(fd)}
        assert str(path) not in open_files
        last = orjson.loads(path.read_text().splitlines()[-1])
        assert last["event"] == "service_stopped"
    events = [orjson.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events.count("service_started") == events.count("service_stopped") == 3
    assert events.count("request_end") == 3


def _link(fd: str) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return True
