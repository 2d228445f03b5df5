"""The fast path, before and after: tokens/s and CPU per token through the whole pipeline
(actors, codecs, normalized events to the consumer) against the fake upstream, each
event in its own HTTP chunk, next to a bare client doing the same SSE + JSON parse.

Rows:
- bare httpx: httpx's default transport, our SSE decoder, orjson (the baseline);
- service on httpx's transport: the service with httpx's default transport in place of FastTransport;
- service: the service as shipped, on FastTransport;
- bare FastTransport: the bare client on FastTransport (the floor for the service).

Scenarios: one stream, and 1,000 concurrent streams; plus the CPU of one short
(5-token) request at a time. Every figure is the best of `--repeat` runs. Each client (or
service) is opened once per scenario and warmed by one untimed run of it, so the figures are
a long-running worker's steady state: its keep-alive pool already holds the connections it
needs. (Cold, 1,000 concurrent streams also pay for 1,000 new connections: `--cold`.)

    .venv/bin/python stress/bench_pipeline.py [--tokens 200000] [--short 500] [--repeat 3] [--cold]
"""

from __future__ import annotations

import argparse
import functools
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import trio

from _common import cpu_seconds, emit_json, fake_upstream, print_table
from streamactors import Config, open_service
from streamactors.config.schema import LoggingConfig
from streamactors.http.fast import FastTransport
from streamactors.logs import make_logger
from streamactors.wire.sse import SSEDecoder

#: Streams the given models concurrently; returns the text tokens received.
Run = Callable[[list[str]], Awaitable[int]]
#: Opens a client (or a service) on the upstream URL and yields its `Run`.
Runner = Callable[[str], Any]


def _body(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "bench"}], "stream": True,
            "stream_options": {"include_usage": True}}


async def _all_at_once(one: Callable[[str], Awaitable[int]], models: list[str]) -> int:
    """Stream every model at once, each with `one`; the text tokens they received in all."""
    counts: list[int] = []

    async def run_one(model: str) -> None:
        counts.append(await one(model))

    async with trio.open_nursery() as nursery:
        for m in models:
            nursery.start_soon(run_one, m)
    return sum(counts)


def bare(make_transport: Callable[[], httpx.AsyncBaseTransport] | None) -> Runner:
    @asynccontextmanager
    async def open_client(url: str) -> AsyncIterator[Run]:
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
        transport = make_transport() if make_transport else None
        async with httpx.AsyncClient(transport=transport, limits=limits, timeout=None) as client:

            async def one(model: str) -> int:
                count = 0
                async with client.stream("POST", f"{url}/v1/chat/completions", json=_body(model)) as response:
                    decoder = SSEDecoder()
                    events: list[Any] = []
                    async for chunk in response.aiter_bytes():
                        events.clear()
                        decoder.feed_into(chunk, events)
                        for ev in events:
                            if ev.data.startswith("[DONE]"):
                                continue
                            for choice in orjson.loads(ev.data).get("choices") or ():
                                if (choice.get("delta") or {}).get("content"):
                                    count += 1
                return count

            yield functools.partial(_all_at_once, one)

    return open_client


def service(httpx_transport: bool) -> Runner:
    @asynccontextmanager
    async def open_client(url: str) -> AsyncIterator[Run]:
        # Timeouts as loose as the bare clients' (none): with 1,000 streams starting at once
        # and every reply arriving whole, a busy loop can keep a finished connect waiting for
        # its turn past the default 5 s (and on httpx's transport it does).
        cfg = Config.from_dict({"providers": {"openai": {
            "kind": "openai", "api_key": "sk-bench", "base_url": f"{url}/v1", "max_retries": 0,
            "max_concurrency": 2000,
            "timeouts": {"connect": 600.0, "first_token": 600.0, "idle": 600.0, "total": 3600.0}}}})
        logger = make_logger(LoggingConfig(level="info"), [], stream=io.StringIO())
        transports = {"openai": httpx.AsyncHTTPTransport()} if httpx_transport else None
        async with open_service(cfg, logger=logger, transports=transports) as svc:

            async def one(model: str) -> int:
                count = 0
                request = {"model": f"openai/{model}", "messages": [{"role": "user", "content": "bench"}]}
                async with svc.stream(request) as events:
                    async for ev in events:
                        if ev.type == "text":
                            count += 1
                return count

            yield functools.partial(_all_at_once, one)

    return open_client


async def measure(runner: Runner, url: str, models: list[str], repeat: int, cold: bool) -> tuple[float, float]:
    """(tokens/s, CPU µs per token), each the best over `repeat` runs: through one client
    warmed by an untimed run, or (`cold`) through a new client each run."""
    best_rate, best_cpu = 0.0, float("inf")
    for _ in range(repeat if cold else 1):
        async with runner(url) as run:
            if not cold:
                await run(models)
            for _ in range(1 if cold else repeat):
                c0, t0 = cpu_seconds(), time.perf_counter()
                n = await run(models)
                wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                best_rate, best_cpu = max(best_rate, n / wall), min(best_cpu, cpu / n * 1e6)
    return best_rate, best_cpu


async def _short_bare(
    url: str, n: int, repeat: int, make_transport: Callable[[], httpx.AsyncBaseTransport] | None
) -> float:
    """CPU ms per 5-token request, one after another, through one bare client."""
    transport = make_transport() if make_transport else None
    async with httpx.AsyncClient(transport=transport, timeout=None) as client:

        async def one() -> None:
            async with client.stream("POST", f"{url}/v1/chat/completions", json=_body("m~tokens=5")) as response:
                decoder = SSEDecoder()
                events: list[Any] = []
                async for chunk in response.aiter_bytes():
                    decoder.feed_into(chunk, events)
                for ev in events:
                    if not ev.data.startswith("[DONE]"):
                        orjson.loads(ev.data)

        for _ in range(20):
            await one()
        return await _best_batch(one, n, repeat)


ROWS: list[tuple[str, Runner]] = [
    ("bare httpx", bare(None)),
    ("service on httpx's transport", service(httpx_transport=True)),
    ("service", service(httpx_transport=False)),
    ("bare FastTransport", bare(FastTransport)),
]


async def main(args: argparse.Namespace, url: str) -> None:
    results: dict[str, dict[str, float]] = {}
    for name, runner in ROWS:
        one = await measure(runner, url, [f"m~tokens={args.tokens}"], args.repeat, args.cold)
        many = await measure(runner, url, [f"m~tokens={args.tokens // 1000}"] * 1000, args.repeat, args.cold)
        results[name] = {"one_stream_tok_s": one[0], "one_stream_cpu_us": one[1],
                         "streams_1000_tok_s": many[0], "streams_1000_cpu_us": many[1]}
    # Short requests: one client or one service, `--short` requests one after another.
    for name, _ in ROWS:
        if name.startswith("service"):
            results[name]["short_cpu_ms"] = await _short_through_one_service(url, args, "httpx" in name)
        else:
            make = FastTransport if "Fast" in name else None
            results[name]["short_cpu_ms"] = await _short_bare(url, args.short, args.repeat, make)
    base = results["bare httpx"]
    rows = []
    for name, r in results.items():
        rows.append([name, round(r["one_stream_tok_s"]), round(r["one_stream_cpu_us"], 2),
                     round(r["one_stream_tok_s"] / base["one_stream_tok_s"], 2),
                     round(r["streams_1000_tok_s"]), round(r["streams_1000_cpu_us"], 2),
                     round(r["streams_1000_tok_s"] / base["streams_1000_tok_s"], 2),
                     round(r["short_cpu_ms"], 3), round(r["short_cpu_ms"] / base["short_cpu_ms"], 2)])
    print_table(
        f"Pipeline, OpenAI format, one event per HTTP chunk, {args.tokens:,} tokens (best of {args.repeat}"
        f"{', a new client each run' if args.cold else ', warm clients'})",
        ["client", "1 stream tok/s", "us/tok", "x httpx", "1000 streams tok/s", "us/tok", "x httpx",
         "short req CPU ms", "x httpx"],
        rows,
    )
    emit_json("pipeline", tokens=args.tokens, cold=args.cold, results=results)


async def _short_through_one_service(url: str, args: argparse.Namespace, httpx_transport: bool) -> float:
    cfg = Config.from_dict({"providers": {"openai": {
        "kind": "openai", "api_key": "sk-bench", "base_url": f"{url}/v1", "max_retries": 0}}})
    logger = make_logger(LoggingConfig(level="info"), [], stream=io.StringIO())
    transports = {"openai": httpx.AsyncHTTPTransport()} if httpx_transport else None
    request = {"model": "openai/m~tokens=5", "messages": [{"role": "user", "content": "bench"}]}
    async with open_service(cfg, logger=logger, transports=transports) as svc:

        async def one() -> None:
            await svc.complete(request)

        for _ in range(20):
            await one()
        return await _best_batch(one, args.short, args.repeat)


async def _best_batch(one: Callable[[], Awaitable[None]], n: int, repeat: int) -> float:
    """CPU ms per call of `one`: `n` calls one after another, the best of `repeat` such batches."""
    best = float("inf")
    for _ in range(repeat):
        c0 = cpu_seconds()
        for _ in range(n):
            await one()
        best = min(best, (cpu_seconds() - c0) / n * 1000)
    return best


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--short", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="open a new client (and pool) for every run")
    arguments = parser.parse_args()
    with fake_upstream() as upstream_url:
        trio.run(main, arguments, upstream_url)
