"""How soon a client that leaves cancels the upstream, through the gateway (issue 14).

The measurement of tests/gateway/test_gateway.py::test_a_client_that_leaves_cancels_the_upstream_within_100_ms,
repeated: a raw-socket client asks the gateway for a slow stream (1,000 tokens, 20 ms apart),
reads until the first event, then closes its socket; the time runs from that close until the
fake upstream (here, on this trio loop) counts the response aborted: the gateway saw the EOF,
cancelled the handler, the service cancelled the upstream request and closed its connection,
and the fake upstream, waiting out its 20 ms delay on that socket, read the EOF. The fake
upstream is polled every 0.2 ms.

Two gateways, each measured `--runs` times, one request at a time:
- `in-process`: `run_gateway` on this trio loop, as the test runs it;
- `process`: `streamactors serve` in its own process, as deployed.

Prints min, p50, p90, p99 and max in ms per gateway, and how many exceeded 100 ms, then a JSON line.

    .venv/bin/python stress/probe_disconnect.py [--runs 200]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from _common import emit_json, print_table
from streamactors import Config
from streamactors.config.schema import LoggingConfig
from streamactors.gateway.run import run_gateway
from streamactors.logs import make_logger
from streamactors.testing import FakeUpstream

KEY = "sk-gw-probe-0123456789"
BODY = b'{"model":"openai/gpt-fake~tokens=1000~delay_ms=20","stream":true,"messages":[{"role":"user","content":"hi"}]}'
HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    b"authorization: Bearer %b\r\ncontent-length: %d\r\n\r\n" % (KEY.encode(), len(BODY))
)
POLL = 0.0002


def config_text(fake: FakeUpstream) -> str:
    return f"""
[providers.openai]
kind = "openai"
api_key = "sk-openai-0123456789"
base_url = "{fake.base_url}/v1"
max_retries = 0

[server]
api_keys = ["{KEY}"]
"""


async def one(fake: FakeUpstream, host: str, port: int) -> float:
    """Seconds from the client's close to the upstream response's abort."""
    sock = trio.socket.socket()
    await sock.connect((host, port))
    await sock.send(HEAD + BODY)
    got = b""
    while b"data: " not in got:
        data = await sock.recv(65536)
        if not data:
            raise SystemExit(f"the gateway closed the connection: {got[:300]!r}")
        got += data
    aborted = fake.responses_aborted
    closed_at = time.perf_counter()
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    with trio.fail_after(5):
        while fake.responses_aborted == aborted:  # noqa: ASYNC110 - the fake offers no event to wait on
            await trio.sleep(POLL)
    return time.perf_counter() - closed_at


async def measure(fake: FakeUpstream, host: str, port: int, runs: int) -> list[float]:
    for _ in range(5):  # warm up: imports, the upstream connection pool
        await one(fake, host, port)
    times = []
    for _ in range(runs):
        times.append(await one(fake, host, port))
        await trio.sleep(0.02)  # let the gateway finish the request's logging and cleanup
    return times


async def in_process(fake: FakeUpstream, runs: int) -> list[float]:
    cfg = Config.from_dict(
        {
            "providers": {
                "openai": {
                    "kind": "openai",
                    "api_key": "sk-openai-0123456789",
                    "base_url": f"{fake.base_url}/v1",
                    "max_retries": 0,
                }
            },
            "server": {"api_keys": [KEY]},
        }
    )
    logger = make_logger(LoggingConfig(), [KEY], stream=io.StringIO())
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(
            lambda task_status: run_gateway(
                cfg, "127.0.0.1", 0, err=io.StringIO(), logger=logger, task_status=task_status
            )
        )
        times = await measure(fake, host, port, runs)
        nursery.cancel_scope.cancel()
    return times


async def in_a_process(fake: FakeUpstream, runs: int) -> list[float]:
    workdir = Path(tempfile.mkdtemp(prefix="probe-disconnect-"))
    config = workdir / "gateway.toml"
    config.write_text(config_text(fake))
    log = workdir / "serve.log"
    with log.open("wb") as err:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "streamactors", "serve", "--config", str(config), "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        with trio.fail_after(30):
            while True:
                lines = [x for x in log.read_text().splitlines() if x.startswith("listening on http://")]
                if lines:
                    break
                if proc.poll() is not None:
                    raise SystemExit(f"streamactors serve exited: {log.read_text()[-2000:]}")
                await trio.sleep(0.05)
        host, port = lines[0].removeprefix("listening on http://").rsplit(":", 1)
        return await measure(fake, host, int(port), runs)
    finally:
        proc.terminate()
        with trio.move_on_after(10):
            await proc.wait()


def summary(times: list[float]) -> dict[str, Any]:
    ms = sorted(t * 1e3 for t in times)

    def pct(q: float) -> float:
        return ms[max(0, math.ceil(q * len(ms)) - 1)]

    return {
        "runs": len(ms),
        "min_ms": ms[0],
        "p50_ms": statistics.median(ms),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": ms[-1],
        "over_100_ms": sum(1 for t in ms if t > 100),
    }


async def main(runs: int) -> dict[str, dict[str, Any]]:
    async with trio.open_nursery() as nursery:
        fake: FakeUpstream = await nursery.start(FakeUpstream().serve)
        results = {
            "in-process": summary(await in_process(fake, runs)),
            "process": summary(await in_a_process(fake, runs)),
        }
        nursery.cancel_scope.cancel()
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args()
    results = trio.run(main, args.runs)
    keys = ["runs", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "over_100_ms"]
    print_table(
        f"client close -> upstream response aborted, one request at a time (load average {os.getloadavg()[0]:.1f})",
        ["gateway", *keys],
        [[name, *(r[k] for k in keys)] for name, r in results.items()],
    )
    emit_json("disconnect", results=results)
