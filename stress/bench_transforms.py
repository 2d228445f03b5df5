"""The cost of stream transforms per token: the service's pipeline with none and with each
built-in, in one run, against the fake upstream (OpenAI format, one event per HTTP chunk).

Rows (per-request transforms; transforms set in the config cost the same):
- none: the plain pipeline (the service opens the untransformed stream);
- Redact: one pattern, `sk-[A-Za-z0-9]{20,48}`, max_match 64 (it holds 64 characters);
- StopSequences: four strings that never match (the scan every token pays);
- BlockList: five words that never match;
- Coalesce: min_chars 64, max_delay_ms 50;
- all four, in that order.

Columns: the service's CPU per upstream token (best of `--repeat`, rows interleaved so that
drift touches them alike), the same minus the "none" row, and the transform alone: `feed()` of
one fragment at a time, no I/O (best of 5).

    .venv/bin/python stress/bench_transforms.py [--tokens 200000] [--streams 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import trio

from _common import cpu_seconds, emit_json, fake_upstream, print_table
from streamactors import Coalesce, Config, open_service
from streamactors.config.schema import LoggingConfig
from streamactors.logs import make_logger
from streamactors.models import TextEvent
from streamactors.testing import token_text
from streamactors.transforms import BlockList, Redact, StopSequences, Transform

Factory = Callable[[], list[Transform]]

ROWS: list[tuple[str, Factory]] = [
    ("none", lambda: []),
    ("Redact", lambda: [Redact([r"sk-[A-Za-z0-9]{20,48}"])]),
    ("StopSequences", lambda: [StopSequences(["\n\nHuman:", "<|end|>", "STOP", "###"])]),
    ("BlockList", lambda: [BlockList(["darn", "heck", "blast", "drat", "rats"])]),
    ("Coalesce", lambda: [Coalesce(64, 50)]),
    (
        "all four",
        lambda: [
            Redact([r"sk-[A-Za-z0-9]{20,48}"]),
            StopSequences(["\n\nHuman:", "<|end|>", "STOP", "###"]),
            BlockList(["darn", "heck", "blast", "drat", "rats"]),
            Coalesce(64, 50),
        ],
    ),
]


async def measure(url: str, tokens: int, streams: int, repeat: int) -> dict[str, dict[str, float]]:
    """CPU µs per upstream token through the service, for one stream and for `streams` at once."""
    cfg = Config.from_dict(
        {
            "providers": {
                "openai": {
                    "kind": "openai",
                    "api_key": "sk-bench",
                    "base_url": f"{url}/v1",
                    "max_retries": 0,
                    "max_concurrency": 2000,
                    "timeouts": {"connect": 600.0, "first_token": 600.0, "idle": 600.0, "total": 3600.0},
                }
            }
        }
    )
    logger = make_logger(LoggingConfig(level="info"), [], stream=io.StringIO())
    results = {name: {"one_cpu_us": float("inf"), "many_cpu_us": float("inf")} for name, _ in ROWS}
    async with open_service(cfg, logger=logger) as svc:

        async def one(model: str, make: Factory) -> None:
            request = {"model": f"openai/{model}", "messages": [{"role": "user", "content": "bench"}]}
            async with svc.stream(request, transforms=make()) as events:
                async for _ in events:
                    pass

        async def many(n: int, per: int, make: Factory) -> None:
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(one, f"m~tokens={per}", make)

        for _, make in ROWS:  # warm: connections pooled, code paths run once
            await one("m~tokens=1000", make)
            await many(streams, 10, make)
        for _ in range(repeat):
            for name, make in ROWS:
                c0 = cpu_seconds()
                await one(f"m~tokens={tokens}", make)
                results[name]["one_cpu_us"] = min(results[name]["one_cpu_us"], (cpu_seconds() - c0) / tokens * 1e6)
                per = max(1, tokens // streams)
                c0 = cpu_seconds()
                await many(streams, per, make)
                cpu = (cpu_seconds() - c0) / (per * streams) * 1e6
                results[name]["many_cpu_us"] = min(results[name]["many_cpu_us"], cpu)
    return results


def alone(make: Factory, n: int = 100_000) -> float:
    """µs per fragment through the transforms alone (`feed` of one event at a time), best of 5."""
    fragments = [[TextEvent(token_text(i))] for i in range(n)]
    best = float("inf")
    for _ in range(5):
        transforms = make()
        t0 = time.process_time()
        for batch in fragments:
            events = batch
            for t in transforms:
                events = t.feed(events)
        for t in transforms:
            t.close()
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


async def main(args: argparse.Namespace, url: str) -> None:
    results = await measure(url, args.tokens, args.streams, args.repeat)
    for name, make in ROWS:
        results[name]["alone_us"] = alone(make) if name != "none" else 0.0
    base = results["none"]
    rows = [
        [
            name,
            round(r["one_cpu_us"], 2),
            round(r["one_cpu_us"] - base["one_cpu_us"], 2),
            round(r["many_cpu_us"], 2),
            round(r["many_cpu_us"] - base["many_cpu_us"], 2),
            round(r["alone_us"], 2),
        ]
        for name, r in results.items()
    ]
    print_table(
        f"Transforms, OpenAI format, one event per HTTP chunk, {args.tokens:,} tokens (best of {args.repeat})",
        ["transforms", "1 stream us/tok", "+ vs none", f"{args.streams} streams us/tok", "+ vs none", "alone us/tok"],
        rows,
    )
    emit_json("transforms", tokens=args.tokens, streams=args.streams, results=results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    with fake_upstream() as upstream_url:
        trio.run(main, arguments, upstream_url)
