"""Run by bench_e2e.py in a process of its own: the openai SDK's `AsyncOpenAI` streaming
(asyncio) against the fake upstream, every token checked as the harness checks them.

Usage: python stress/_sdk_openai.py URL TOKENS CONCURRENCY   (prints one JSON line)
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from openai import AsyncOpenAI

from streamactors.stress.stats import TokenChecker


async def run(url: str, tokens: int, concurrency: int) -> dict[str, float | int]:
    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-fake-bench-key", max_retries=0)
    per, extra = divmod(tokens, concurrency)
    totals = {"received": 0, "lost": 0, "duplicated": 0, "failed": 0}

    async def one(i: int) -> None:
        count = per + (1 if i < extra else 0)
        checker = TokenChecker()
        try:
            stream = await client.chat.completions.create(
                model=f"fake-model~tokens={count}",
                messages=[{"role": "user", "content": "bench"}],
                max_tokens=count,
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    checker.feed(chunk.choices[0].delta.content)
        except Exception:  # any SDK failure counts as a failed request
            totals["failed"] += 1
            checker.finish(checker.expected)
        else:
            checker.finish(count)
        totals["received"] += checker.received
        totals["lost"] += checker.lost
        totals["duplicated"] += checker.duplicated

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    await client.close()
    received = totals["received"]
    return {
        **totals,
        "elapsed_s": round(elapsed, 3),
        "tokens_per_s": round(received / elapsed, 1),
        "cpu_us_per_token": round(cpu * 1e6 / received, 3) if received else 0.0,
    }


if __name__ == "__main__":
    url, tokens, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(orjson.dumps(asyncio.run(run(url, tokens, concurrency))).decode())
