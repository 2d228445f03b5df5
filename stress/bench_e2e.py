"""End-to-end tokens/s and CPU per token: the service vs bare httpx vs the openai SDK.

All three stream the same OpenAI-format replies from one fake upstream (in its own
process, one SSE event per HTTP chunk) with every token checked:

- service: `streamactors stress` machinery (`run_stress`) through the actor service;
- bare httpx: the same requests through `httpx.AsyncClient` + our SSE decoder + orjson
  (`run_stress --baseline`, same process, right after the service);
- openai SDK: `AsyncOpenAI(...).chat.completions.create(stream=True)`. The SDK is
  asyncio-based, so it runs in a process of its own (`_sdk_openai.py`) with asyncio.

Usage: python stress/bench_e2e.py [--scenario STREAMSxTOKENS ...]   (default 1x20000 100x100000)
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import orjson
import trio

from _common import emit_json, fake_upstream, print_table
from streamactors.stress import StressOptions, run_stress

SDK_SCRIPT = Path(__file__).with_name("_sdk_openai.py")


def scenario(text: str) -> tuple[int, int]:
    streams, _, tokens = text.partition("x")
    return int(streams), int(tokens)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--scenario",
        action="append",
        type=scenario,
        metavar="STREAMSxTOKENS",
        help="concurrent streams x tokens in all (repeatable; default 1x20000 and 100x100000)",
    )
    args = p.parse_args()
    scenarios = args.scenario or [(1, 20_000), (100, 100_000)]

    rows = []
    results = []
    with fake_upstream() as url:
        for streams, tokens in scenarios:
            opts = StressOptions(
                tokens=tokens,
                concurrency=streams,
                providers=("openai",),
                upstream=url,
                baseline=True,
                idle_streams=0,
                progress=False,
            )
            r = trio.run(run_stress, opts, io.StringIO())
            sdk_run = subprocess.run(
                [sys.executable, str(SDK_SCRIPT), url, str(tokens), str(streams)], capture_output=True, check=True
            )
            sdk = orjson.loads(sdk_run.stdout.splitlines()[-1])
            entry = {
                "streams": streams,
                "tokens": tokens,
                "service": {
                    "tokens_per_s": r["tokens_per_s"],
                    "cpu_us_per_token": r["cpu_us_per_token"],
                    "lost": r["lost"],
                    "duplicated": r["duplicated"],
                },
                "bare_httpx": {
                    "tokens_per_s": r["baseline_tokens_per_s"],
                    "cpu_us_per_token": r["baseline_cpu_us_per_token"],
                    "lost": r["baseline_lost"],
                },
                "openai_sdk": sdk,
                "service_vs_bare": r["baseline_ratio"],
                "service_vs_sdk": round(r["tokens_per_s"] / sdk["tokens_per_s"], 3) if sdk["tokens_per_s"] else None,
            }
            results.append(entry)
            for name, key in (
                ("service", "service"),
                ("bare httpx", "bare_httpx"),
                ("openai SDK (asyncio)", "openai_sdk"),
            ):
                m = entry[key]
                rows.append(
                    (
                        f"{streams}x{tokens}",
                        name,
                        m["tokens_per_s"],
                        m["cpu_us_per_token"],
                        round(m["tokens_per_s"] / r["baseline_tokens_per_s"], 3),
                        m["lost"],
                    )
                )
    print_table(
        "End to end against the fake upstream (OpenAI format, one event per chunk)",
        ["streams x tokens", "client", "tokens/s", "us CPU/token", "vs bare httpx", "lost"],
        rows,
    )
    emit_json("e2e", results=results)


if __name__ == "__main__":
    main()
