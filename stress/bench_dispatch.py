"""Per-request dispatch cost: CPU and time for short (5-token) requests, one after another,
through the service vs the same requests through bare httpx (+ the same SSE parse).

Both run in this process against one fake upstream (its own process); the CPU is this
process's, so it is the client side only. Uses `run_stress --baseline` with `--requests`.

Usage: python stress/bench_dispatch.py [--requests 500] [--tokens-per-request 5] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import io

import trio

from _common import emit_json, fake_upstream, print_table
from streamactors.stress import StressOptions, run_stress


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--tokens-per-request", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--providers", default="openai", help="comma-separated provider kinds (default openai)")
    args = p.parse_args()

    n, per = args.requests, args.tokens_per_request
    with fake_upstream() as url:
        opts = StressOptions(
            tokens=n * per,
            requests=n,
            concurrency=args.concurrency,
            providers=tuple(args.providers.split(",")),
            upstream=url,
            baseline=True,
            idle_streams=0,
            progress=False,
        )
        r = trio.run(run_stress, opts, io.StringIO())
    assert r["lost"] == 0 and r["baseline_lost"] == 0 and r["failed"] == 0, r
    service_cpu = r["cpu_us_per_token"] * per / 1000
    bare_cpu = r["baseline_cpu_us_per_token"] * per / 1000
    service_ms = r["elapsed_s"] / n * args.concurrency * 1000
    bare_ms = r["baseline_elapsed_s"] / n * args.concurrency * 1000
    rows = [
        ("service", round(service_cpu, 3), round(service_ms, 3)),
        ("bare httpx", round(bare_cpu, 3), round(bare_ms, 3)),
        ("service - bare", round(service_cpu - bare_cpu, 3), round(service_ms - bare_ms, 3)),
    ]
    print_table(
        f"{n} requests of {per} tokens, {args.concurrency} at a time ({args.providers})",
        ["client", "ms CPU/request", "ms wall/request"],
        rows,
    )
    emit_json(
        "dispatch",
        requests=n,
        tokens_per_request=per,
        concurrency=args.concurrency,
        service_cpu_ms_per_request=round(service_cpu, 4),
        bare_cpu_ms_per_request=round(bare_cpu, 4),
        dispatch_overhead_cpu_ms=round(service_cpu - bare_cpu, 4),
        cpu_ratio=round(service_cpu / bare_cpu, 3) if bare_cpu else None,
    )


if __name__ == "__main__":
    main()
