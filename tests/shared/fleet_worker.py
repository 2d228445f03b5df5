"""One service in a process of its own, for the multi-process fleet tests.

    python fleet_worker.py UPSTREAM_URL REQUESTS RPM SECONDS [REDIS_URL]

Starts a service for `openai` at the fake upstream with `requests_per_minute = RPM` (and
`[shared]` at REDIS_URL, if given), sends REQUESTS requests at once, and after SECONDS
(from the first request) cancels those still waiting; prints one JSON line: how many
completed, failed (by kind) and were still waiting, and the service's limiter health.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import orjson
import trio

from streamactors import Config, ProviderError, open_service
from streamactors.config.schema import LoggingConfig
from streamactors.logs import make_logger


async def main(upstream: str, requests: int, rpm: float, seconds: float, redis_url: str | None) -> None:
    data: dict[str, Any] = {
        "providers": {
            "openai": {
                "kind": "openai",
                "api_key": "sk-fleet-test",
                "base_url": f"{upstream}/v1",
                "max_retries": 0,
                "rate_limit": {"requests_per_minute": rpm},
            }
        }
    }
    if redis_url:
        data["shared"] = {"redis_url": redis_url, "namespace": "fleet-test"}
    logger = make_logger(LoggingConfig(level="warning"), [], stream=io.StringIO())
    out: dict[str, Any] = {"ok": 0, "failed": {}, "waiting": 0}
    async with open_service(Config.from_dict(data), logger=logger) as service:

        async def one() -> None:
            out["waiting"] += 1
            try:
                await service.complete(
                    {"model": "openai/fleet~tokens=1", "messages": [{"role": "user", "content": "x"}]}
                )
                out["ok"] += 1
            except ProviderError as exc:
                out["failed"][exc.kind] = out["failed"].get(exc.kind, 0) + 1
            out["waiting"] -= 1

        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                for _ in range(requests):
                    nursery.start_soon(one)
        out["rate_limit"] = service.health()["openai"]["rate_limit"]
    print(orjson.dumps(out).decode(), flush=True)


if __name__ == "__main__":
    upstream, requests, rpm, seconds, *rest = sys.argv[1:]
    trio.run(main, upstream, int(requests), float(rpm), float(seconds), rest[0] if rest else None)
