"""What users see: every client in a fresh process, the service with its default settings.

Side by side in one run, against one fake upstream process (one SSE event per HTTP chunk):
the parse ceiling (a raw socket + split + orjson), bare httpx (+ our SSE decoder + orjson),
streamactors (`open_service` with the defaults: logging on, JSON at info to stderr) and the openai
SDK (asyncio). Each (client, scenario, repeat) is a fresh process (`_fresh_client.py`), warmed
with 20 requests, and the median of the repeats is reported. The clients take turns (each
repeat runs every kind once), so that drift on a shared machine does not favour one of them.
The fake upstream and the clients are pinned to different cores when the machine has two or
more (`os.sched_setaffinity`, as `taskset` pins them).

Scenarios: 1 stream of --tokens tokens (tokens/s); --streams concurrent streams sharing
--tokens-many tokens (tokens/s, and the RSS growth while they run); --short 5-token requests one
after another (CPU µs per request).

Usage: python stress/bench_fresh.py [--repeat 3] [--tokens 200000] [--streams 1000]
       [--tokens-many 1000000] [--short 2000] [--kinds raw,httpx,service,sdk]

A kind written `service@DIR` runs the service from the source tree DIR (on PYTHONPATH), beside
the installed one: an earlier commit (`git worktree add /tmp/before <commit>`, then
`--kinds raw,httpx,service@/tmp/before/src,service`) is measured in the same run, taking turns.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from _common import emit_json, fake_upstream, print_table, two_cores

CLIENT = Path(__file__).with_name("_fresh_client.py")
KINDS = ("raw", "httpx", "service", "sdk")
NAMES = {"raw": "raw socket + split + orjson", "httpx": "bare httpx", "service": "streamactors", "sdk": "openai SDK"}


def _client(kind: str, url: str, scenario: str, args: list[int], core: set[int] | None) -> dict[str, Any]:
    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, core)

    client, _, source = kind.partition("@")
    run = subprocess.run(
        [sys.executable, str(CLIENT), client, url, scenario, *map(str, args)],
        env={**os.environ, "PYTHONPATH": source} if source else None,
        capture_output=True,
        preexec_fn=pin,
        check=False,
        timeout=900,
    )
    if run.returncode != 0:
        raise SystemExit(f"{kind} {scenario} failed:\n{run.stderr.decode()[-2000:]}")
    result: dict[str, Any] = orjson.loads(run.stdout.splitlines()[-1])
    return result


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tokens", type=int, default=200_000, help="tokens of the one-stream scenario")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--tokens-many", type=int, default=1_000_000, help="tokens in all over --streams streams")
    p.add_argument("--short", type=int, default=2000, help="short requests, one after another")
    p.add_argument("--kinds", default=",".join(KINDS))
    args = p.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    client_core, upstream_core = two_cores()

    results: dict[str, dict[str, Any]] = {k: {} for k in kinds}
    with fake_upstream() as url:
        if upstream_core is not None:
            _pin_upstream(url, upstream_core)
        # Round robin: each repeat runs every kind in turn, so that a slower minute of a shared
        # machine weighs on every kind alike, not on whichever kind's block it fell in.
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        scenarios = {
            "one": ("streams", [1, args.tokens]),
            "many": ("streams", [args.streams, args.tokens_many]),
            "short": ("short", [args.short]),
        }
        for name, (scenario, scenario_args) in scenarios.items():
            for _ in range(args.repeat):
                for kind in kinds:
                    r = _client(kind, url, scenario, scenario_args, client_core)
                    if r.get("lost") or r.get("duplicated"):
                        raise SystemExit(f"{kind} lost or duplicated tokens: {r}")
                    runs.setdefault((kind, name), []).append(r)
        for kind in kinds:
            one, many, short = runs[kind, "one"], runs[kind, "many"], runs[kind, "short"]
            results[kind] = {
                "one_stream_tokens_per_s": _median(one, "tokens_per_s"),
                "many_streams_tokens_per_s": _median(many, "tokens_per_s"),
                "many_streams_rss_growth_mib": _median(many, "rss_growth_mib"),
                "short_cpu_us_per_request": _median(short, "cpu_us_per_request"),
                "short_wall_us_per_request": _median(short, "wall_us_per_request"),
            }

    def ratio(kind: str, key: str) -> str:
        base = results.get("httpx", {}).get(key)
        value = results[kind][key]
        return f"{value:,.0f} ({value / base:.2f}x httpx)" if base and kind not in ("httpx",) else f"{value:,.0f}"

    rows = [
        ["1 stream, tokens/s", *(ratio(k, "one_stream_tokens_per_s") for k in kinds)],
        [f"{args.streams:,} streams, tokens/s", *(ratio(k, "many_streams_tokens_per_s") for k in kinds)],
        [
            f"{args.streams:,} streams, RSS growth MiB",
            *(f"+{results[k]['many_streams_rss_growth_mib']:,.0f}" for k in kinds),
        ],
        [
            f"{args.short:,} short requests, µs CPU each",
            *(f"{results[k]['short_cpu_us_per_request']:,.0f}" for k in kinds),
        ],
        [
            f"{args.short:,} short requests, µs wall each",
            *(f"{results[k]['short_wall_us_per_request']:,.0f}" for k in kinds),
        ],
    ]
    pinned = "pinned to different cores" if client_core else "not pinned (one core)"
    print_table(
        f"fresh process per client and run, median of {args.repeat}, default settings; upstream and clients {pinned}",
        ["scenario", *(_name(k) for k in kinds)],
        rows,
    )
    emit_json("fresh", repeat=args.repeat, pinned=bool(client_core), results=results)


def _name(kind: str) -> str:
    client, _, source = kind.partition("@")
    return f"{NAMES[client]} ({source})" if source else NAMES[client]


def _us(result: dict[str, Any], key: str) -> str:
    return f"{result[key]:,.0f}"


def _pin_upstream(url: str, core: set[int]) -> None:
    """Pin the fake upstream process (found by its port) to its core."""
    import psutil

    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            os.sched_setaffinity(conn.pid, core)
            return


if __name__ == "__main__":
    main()
