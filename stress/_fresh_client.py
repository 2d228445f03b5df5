"""One client of bench_fresh.py, in a fresh process: one kind, one scenario, one JSON line out.

Usage:
  python stress/_fresh_client.py KIND URL streams STREAMS TOKENS
  python stress/_fresh_client.py KIND URL short REQUESTS

KIND is one of:
- raw: a trio socket, HTTP/1.1 written by hand, the body split on blank lines and each `data:`
  line parsed with orjson: the parse ceiling, no HTTP library at all;
- httpx: `httpx.AsyncClient` streaming + our SSE decoder + orjson (what `stress --baseline` runs);
- service: `streamactors.open_service` with the default settings (logging on: JSON at info level
  to stderr), the provider pointed at the fake upstream; only `max_concurrency` is raised to the
  number of streams, so that every kind holds the same number of connections;
- sdk: the openai SDK's `AsyncOpenAI` streaming, under asyncio.

Every kind is warmed with 20 short requests first (imports, connections, caches), then measured:
`streams` reports tokens/s over STREAMS concurrent streams of TOKENS tokens in all, every token
checked (`TokenChecker`), and the RSS growth: the peak resident set size sampled every 5 ms by a
thread during the run, minus the RSS right before it; `short` reports the CPU time (user +
system) per request of REQUESTS 5-token requests, one after another.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psutil

from streamactors.stress.stats import TokenChecker

WARM = 20
SHORT_TOKENS = 5
Stream = Callable[[int, TokenChecker], Awaitable[None]]


def _body(count: int) -> bytes:
    return orjson.dumps(
        {
            "model": f"fake-model~tokens={count}",
            "messages": [{"role": "user", "content": "bench"}],
            "max_tokens": count,
            "stream": True,
        }
    )


class _RssPeak:
    """The peak RSS, sampled by a thread (so that it sees the peak whatever loop runs)."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        return (self.peak - self.start) / 2**20


# --- the kinds: each gives `one(count, checker)`, streaming one request of `count` tokens ---


def _raw_kind(url: str) -> Callable[[], Any]:
    import trio

    host, _, port = url.removeprefix("http://").partition(":")
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        "authorization: Bearer sk-fake-bench-key\r\n"
    ).encode()
    idle: list[Any] = []  # keep-alive connections, as any HTTP client keeps them

    async def one(count: int, checker: TokenChecker) -> None:
        body = _body(count)
        conn = idle.pop() if idle else await trio.open_tcp_stream(host, int(port))
        await conn.send_all(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        buf = b""
        loads = orjson.loads
        done = False
        while not (done and buf.endswith(b"0\r\n\r\n")):
            data = await conn.receive_some(65536)
            if not data:
                raise ConnectionError("the upstream closed the connection")
            buf += data
            # The chunked framing lines sit between events; each event's `data: ` line is parsed.
            *events, buf = buf.split(b"\n\n")
            for ev in events:
                at = ev.find(b"data: ")
                if at < 0:
                    continue
                payload = ev[at + 6 :]
                if payload == b"[DONE]":
                    done = True
                    continue
                choices = loads(payload).get("choices")
                if choices:
                    text = choices[0]["delta"].get("content")
                    if text:
                        checker.feed(text)
        idle.append(conn)

    return lambda: one


def _httpx_kind(url: str) -> Any:
    import httpx

    from streamactors.wire.sse import SSEDecoder

    client = httpx.AsyncClient(
        base_url=url, headers={"authorization": "Bearer sk-fake-bench-key"}, timeout=60, limits=httpx.Limits()
    )

    async def one(count: int, checker: TokenChecker) -> None:
        decoder = SSEDecoder()
        async with client.stream("POST", "/v1/chat/completions", content=_body(count)) as response:
            response.raise_for_status()
            events: list[Any] = []
            async for data in response.aiter_raw():
                events.clear()
                decoder.feed_into(data, events)
                for ev in events:
                    if ev.data == "[DONE]":
                        continue
                    choices = orjson.loads(ev.data).get("choices")
                    if choices:
                        text = choices[0]["delta"].get("content")
                        if text:
                            checker.feed(text)

    return one


async def _run_trio(kind: str, url: str, scenario: str, args: list[int]) -> dict[str, Any]:
    if kind == "service":
        import streamactors

        streams = args[0] if scenario == "streams" else 1
        cfg = streamactors.Config.from_dict(
            {
                "providers": {
                    "fake": {
                        "kind": "openai",
                        "base_url": f"{url}/v1",
                        "api_key": "sk-fake-bench-key",
                        "max_concurrency": max(100, streams),
                    }
                }
            }
        )
        async with streamactors.open_service(cfg) as service:

            async def one(count: int, checker: TokenChecker) -> None:
                request = {
                    "model": f"fake/fake-model~tokens={count}",
                    "messages": [{"role": "user", "content": "bench"}],
                    "max_tokens": count,
                }
                async with service.stream(request) as events:
                    async for ev in events:
                        if type(ev) is streamactors.TextEvent:
                            checker.feed(ev.text)

            return await _measure_trio(one, scenario, args)
    one = _raw_kind(url)() if kind == "raw" else _httpx_kind(url)
    return await _measure_trio(one, scenario, args)


async def _measure_trio(one: Stream, scenario: str, args: list[int]) -> dict[str, Any]:
    import trio

    for _ in range(WARM):
        await one(SHORT_TOKENS, TokenChecker())
    if scenario == "short":
        (requests,) = args
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(requests):
            checker = TokenChecker()
            await one(SHORT_TOKENS, checker)
            checker.finish(SHORT_TOKENS)
            if checker.received != SHORT_TOKENS:
                raise SystemExit(f"a short request lost tokens: {checker.received}")
        return _short_result(requests, time.process_time() - cpu0, time.perf_counter() - t0)
    streams, tokens = args
    totals = {"received": 0, "lost": 0, "duplicated": 0}

    async def stream(i: int) -> None:
        count = tokens // streams + (1 if i < tokens % streams else 0)
        checker = TokenChecker()
        await one(count, checker)
        checker.finish(count)
        totals["received"] += checker.received
        totals["lost"] += checker.lost
        totals["duplicated"] += checker.duplicated

    rss = _RssPeak()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(streams):
            nursery.start_soon(stream, i)
    return _streams_result(totals, time.perf_counter() - t0, time.process_time() - cpu0, rss.stop())


async def _run_sdk(url: str, scenario: str, args: list[int]) -> dict[str, Any]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-fake-bench-key", max_retries=0)

    async def one(count: int, checker: TokenChecker) -> None:
        stream = await client.chat.completions.create(
            model=f"fake-model~tokens={count}",
            messages=[{"role": "user", "content": "bench"}],
            max_tokens=count,
            stream=True,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                checker.feed(chunk.choices[0].delta.content)

    for _ in range(WARM):
        await one(SHORT_TOKENS, TokenChecker())
    if scenario == "short":
        (requests,) = args
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(requests):
            await one(SHORT_TOKENS, TokenChecker())
        return _short_result(requests, time.process_time() - cpu0, time.perf_counter() - t0)
    streams, tokens = args
    totals = {"received": 0, "lost": 0, "duplicated": 0}

    async def stream(i: int) -> None:
        count = tokens // streams + (1 if i < tokens % streams else 0)
        checker = TokenChecker()
        await one(count, checker)
        checker.finish(count)
        totals["received"] += checker.received
        totals["lost"] += checker.lost
        totals["duplicated"] += checker.duplicated

    rss = _RssPeak()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(stream(i) for i in range(streams)))
    result = _streams_result(totals, time.perf_counter() - t0, time.process_time() - cpu0, rss.stop())
    await client.close()
    return result


def _short_result(requests: int, cpu: float, wall: float) -> dict[str, Any]:
    return {
        "requests": requests,
        "cpu_us_per_request": cpu * 1e6 / requests,
        "wall_us_per_request": wall * 1e6 / requests,
    }


def _streams_result(totals: dict[str, int], wall: float, cpu: float, rss_mib: float) -> dict[str, Any]:
    received = totals["received"]
    return {
        **totals,
        "tokens_per_s": received / wall,
        "cpu_us_per_token": cpu * 1e6 / received if received else 0.0,
        "rss_growth_mib": rss_mib,
    }


def main() -> None:
    kind, url, scenario, *rest = sys.argv[1:]
    args = [int(a) for a in rest]
    if kind == "sdk":
        result = asyncio.run(_run_sdk(url, scenario, args))
    else:
        import trio

        result = trio.run(_run_trio, kind, url, scenario, args)
    print(orjson.dumps({"kind": kind, "scenario": scenario, **result}).decode(), flush=True)


if __name__ == "__main__":
    main()
