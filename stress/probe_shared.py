"""What `[shared]` costs and how fast the fleet hears news (issue 15's closing figures).

Starts a private redis-server on a free port (never the machine's own) and the fake upstream
in its own process, then measures, in this process:

1. cost: short (5-token) requests one at a time through a service with a requests budget,
   without `[shared]` and with it (every admission one Redis script call): CPU and wall
   time per request, best of `--repeat` batches, alternating;
2. round trips: `--requests` requests at `--concurrency` through a `[shared]` service with a
   budget that never binds: Redis commands and network round trips per admission (polls
   counted apart);
3. news: two `[shared]` services (each its own link and watcher, as two processes would
   have); the first trips its circuit (failure_threshold = 1), the second sends a request
   every 2 ms until one is rejected with `circuit_open`: the time from the trip to that
   rejection, `--trials` times.

    .venv/bin/python stress/probe_shared.py [--requests 2000] [--concurrency 50] [--repeat 5] [--trials 20]
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

import trio

from _common import emit_json, fake_upstream, print_table
from streamactors import Config, ProviderError, open_service
from streamactors.config import LoggingConfig
from streamactors.logs import make_logger
from streamactors.service import Service

REQUEST = {"messages": [{"role": "user", "content": "probe"}]}


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.01)
    raise SystemExit("redis-server did not start")


def config(url: str, redis: str | None, namespace: str, **provider: Any) -> Config:
    data: dict[str, Any] = {
        "providers": {
            "openai": {"kind": "openai", "api_key": "sk-probe", "base_url": f"{url}/v1", "max_retries": 0, **provider}
        }
    }
    if redis:
        data["shared"] = {"redis_url": redis, "namespace": namespace}
    return Config.from_dict(data)


def quiet() -> Any:
    return make_logger(LoggingConfig(level="warning"), [], stream=io.StringIO())


async def ask(service: Service, model: str) -> str:
    try:
        await service.complete({"model": f"openai/{model}", **REQUEST})
    except ProviderError as exc:
        return exc.kind
    return "ok"


async def cost(url: str, redis: str, requests: int, repeat: int) -> dict[str, Any]:
    budget = {"rate_limit": {"requests_per_minute": 10_000_000}}  # every request asks; none waits
    best: dict[str, tuple[float, float]] = {}
    for round_ in range(repeat):
        for label, shared in (("local", None), ("shared", redis)):
            cfg = config(url, shared, f"cost-{round_}", **budget)
            async with open_service(cfg, logger=quiet()) as service:
                for _ in range(50):  # warm: connections, caches
                    await ask(service, "m~tokens=5")
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(requests):
                    await ask(service, "m~tokens=5")
                cpu = (time.process_time() - c0) / requests
                wall = (time.perf_counter() - t0) / requests
            old = best.get(label, (float("inf"), float("inf")))
            best[label] = (min(old[0], cpu), min(old[1], wall))
    return {label: {"cpu_us": round(c * 1e6, 1), "wall_us": round(w * 1e6, 1)} for label, (c, w) in best.items()}


async def round_trips(url: str, redis: str, requests: int, concurrency: int) -> dict[str, Any]:
    cfg = config(url, redis, "trips", rate_limit={"requests_per_minute": 10_000_000}, max_concurrency=concurrency)
    async with open_service(cfg, logger=quiet()) as service:
        link = service._fleet.link  # type: ignore[union-attr]
        commands0, trips0, t0 = link.commands, link.round_trips, time.perf_counter()
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await ask(service, "m~tokens=1")

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        elapsed = time.perf_counter() - t0
        limits = service.health()["openai"]["rate_limit"]
        polls = elapsed / 0.25  # one poll command (and round trip) per provider per 0.25 s
        admissions = limits["shared_admissions"]
        return {
            "admissions": admissions,
            "commands_per_admission": round((link.commands - commands0 - polls) / admissions, 3),
            "round_trips_per_admission": round((link.round_trips - trips0 - polls) / admissions, 3),
            "round_trips_per_admission_with_polls": round((link.round_trips - trips0) / admissions, 3),
            "elapsed_s": round(elapsed, 3),
        }


async def news(url: str, redis: str, trials: int) -> dict[str, Any]:
    seen: list[float] = []
    for trial in range(trials):
        cfg = config(url, redis, f"news-{trial}", circuit_breaker={"failure_threshold": 1, "reset_timeout": 60})
        async with open_service(cfg, logger=quiet()) as a, open_service(cfg, logger=quiet()) as b:
            assert await ask(b, "healthy~tokens=1") == "ok"
            await trio.sleep(0.05 + 0.25 * (trial % 5) / 5)  # trips fall anywhere in the poll interval
            assert await ask(a, "broken~fail=status:503") == "http_status"
            tripped = time.perf_counter()
            while await ask(b, "healthy~tokens=1") == "ok":  # noqa: ASYNC110 - b's traffic is the point
                await trio.sleep(0.002)
            seen.append(time.perf_counter() - tripped)
    return {
        "trials": trials,
        "mean_ms": round(statistics.mean(seen) * 1000, 1),
        "p50_ms": round(statistics.median(seen) * 1000, 1),
        "max_ms": round(max(seen) * 1000, 1),
        "min_ms": round(min(seen) * 1000, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--cost-requests", type=int, default=300)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fake_upstream() as url:
        proc, redis = start_redis(tmp)
        try:
            result = {
                "cost": trio.run(cost, url, redis, args.cost_requests, args.repeat),
                "round_trips": trio.run(round_trips, url, redis, args.requests, args.concurrency),
                "circuit_news": trio.run(news, url, redis, args.trials),
            }
        finally:
            proc.kill()
            proc.wait()
    c = result["cost"]
    print_table(
        f"Short requests (5 tokens), one at a time, with a requests budget; "
        f"best of {args.repeat} x {args.cost_requests}",
        ["limiter", "µs CPU/request", "µs wall/request"],
        [[k, v["cpu_us"], v["wall_us"]] for k, v in c.items()]
        + [
            [
                "shared - local",
                round(c["shared"]["cpu_us"] - c["local"]["cpu_us"], 1),
                round(c["shared"]["wall_us"] - c["local"]["wall_us"], 1),
            ]
        ],
    )
    r = result["round_trips"]
    print_table(
        f"{r['admissions']} admissions at concurrency {args.concurrency} through Redis",
        ["commands/admission", "round trips/admission", "with polls"],
        [[r["commands_per_admission"], r["round_trips_per_admission"], r["round_trips_per_admission_with_polls"]]],
    )
    n = result["circuit_news"]
    print_table(
        "A circuit opened in one service: time until the other rejects with circuit_open",
        ["trials", "min ms", "p50 ms", "mean ms", "max ms"],
        [[n["trials"], n["min_ms"], n["p50_ms"], n["mean_ms"], n["max_ms"]]],
    )
    emit_json("probe_shared", **result)


if __name__ == "__main__":
    main()
