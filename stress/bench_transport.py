"""Benchmark: consuming one long OpenAI-format stream, and many short requests, three ways.

    .venv/bin/python stress/bench_transport.py [--tokens 200000] [--short 2000] [--repeat 3]

The fake upstream runs in a subprocess (`python -m streamactors mock-upstream --port 0`),
one SSE event per HTTP chunk as real providers send them. The client side is measured
three ways, each feeding what it reads to the same `SSEDecoder` and parsing every event
with `orjson`:

- `httpx`: `httpx.AsyncClient` with its default transport (httpcore + h11);
- `fasthttp`: `httpx.AsyncClient(transport=FastTransport())`;
- `raw`: a trio socket, a hand-written request, and fasthttp's sans-IO head reader and
  bulk chunked decoder with nothing else in between: the floor for the other two.

Reported: tokens/s (wall) and client CPU per token for the long stream, and client CPU
and wall time per request for a short 5-token request on a kept-alive connection (the
server's CPU is in the other process and is not counted; "server busy" is the share of
one core the server used during the long stream: near 100 %, the server, not the client,
set the pace). Each figure is the best of `--repeat` runs; the runs of the three clients
are interleaved.

The fake upstream is a Python server that renders and sends one chunk at a time, so a
client that keeps up with it sees one event per read. A second section ("replay") records
the fake upstream's exact responses (same bytes, one event per HTTP chunk) and serves them
from a subprocess as fast as the socket takes them: there the client sets the pace and
many chunks arrive per read, as they do for a busy service. `--no-replay` skips it.
Two tables, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import psutil
import trio

from streamactors.http.fast import ChunkedDecoder, FastTransport, ResponseHeadReader
from streamactors.http.fast.body import decoder_for
from streamactors.http.fast.h1 import body_framing
from streamactors.testing.server import read_raw_request
from streamactors.wire.sse import SSEDecoder, SSEEvent

PATH = "/v1/chat/completions"
TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=5.0, pool=None)  # as transport.make_client sets it


def body_for(tokens: int) -> dict[str, Any]:
    return {"model": f"m~tokens={tokens}", "messages": [], "stream": True}


class Counter:
    """The consumer all three clients share: SSE split, orjson parse, count content tokens."""

    def __init__(self) -> None:
        self.decoder = SSEDecoder()
        self.tokens = 0

    def feed(self, data: bytes) -> None:
        events: list[SSEEvent] = []
        self.decoder.feed_into(data, events)
        for event in events:
            if event.data == "[DONE]":
                continue
            chunk = orjson.loads(event.data)
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    self.tokens += 1


Client = Callable[[int], Awaitable[int]]  # stream one request of n tokens, return the tokens counted


def httpx_client(base: str, transport: httpx.AsyncBaseTransport | None) -> tuple[Client, httpx.AsyncClient]:
    client = httpx.AsyncClient(base_url=base, transport=transport, timeout=TIMEOUT)

    async def one(tokens: int) -> int:
        counter = Counter()
        async with client.stream("POST", PATH, json=body_for(tokens)) as response:
            async for chunk in response.aiter_bytes():
                counter.feed(chunk)
        return counter.tokens

    return one, client


class RawClient:
    """One kept-alive trio socket; the request is written by hand, the response read in bulk."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.stream: trio.SocketStream | None = None

    async def __call__(self, tokens: int) -> int:
        if self.stream is None:
            self.stream = await trio.open_tcp_stream(self.host, self.port)
        stream = self.stream
        payload = orjson.dumps(body_for(tokens))
        await stream.send_all(
            b"POST %b HTTP/1.1\r\nHost: %b:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            % (PATH.encode(), self.host.encode(), self.port, len(payload), payload)
        )
        reader = ResponseHeadReader()
        while (head := reader.feed(await stream.receive_some(65536))) is None:
            pass
        decoder = decoder_for(body_framing(head, b"POST"))
        assert isinstance(decoder, ChunkedDecoder)
        counter = Counter()
        counter.feed(decoder.feed(reader.unused))
        while not decoder.done:
            data = await stream.receive_some(65536)
            if not data:
                raise RuntimeError("server closed the connection mid-body")
            counter.feed(decoder.feed(data))
        return counter.tokens

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(client: Client, tokens: int, requests: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) for `requests` sequential requests of `tokens` tokens."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests):
        got = await client(tokens)
        if got != tokens:
            raise RuntimeError(f"expected {tokens} tokens, counted {got}")
    return time.perf_counter() - wall, time.process_time() - cpu


async def bench(base: str, args: argparse.Namespace, server: psutil.Process) -> dict[str, dict[str, float]]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    one_httpx, c1 = httpx_client(base, None)
    one_fast, c2 = httpx_client(base, FastTransport())
    raw = RawClient(host, int(port))
    clients: dict[str, Client] = {"httpx": one_httpx, "fasthttp": one_fast, "raw": raw}
    best: dict[str, dict[str, float]] = {name: {} for name in clients}
    try:
        for client in clients.values():  # warm up: connect, first-use costs
            await measure(client, 5, 50)
        for _ in range(args.repeat):
            for name, client in clients.items():
                server_cpu = cpu_seconds(server)
                wall, cpu = await measure(client, args.tokens, 1)
                server_busy = (cpu_seconds(server) - server_cpu) / wall
                b = best[name]
                if args.tokens / wall > b.get("tokens_per_s", 0.0):
                    b["tokens_per_s"] = args.tokens / wall
                    b["server_busy"] = server_busy
                b["cpu_us_per_token"] = min(b.get("cpu_us_per_token", float("inf")), cpu / args.tokens * 1e6)
                wall, cpu = await measure(client, 5, args.short)
                b["short_cpu_ms"] = min(b.get("short_cpu_ms", float("inf")), cpu / args.short * 1e3)
                b["short_wall_ms"] = min(b.get("short_wall_ms", float("inf")), wall / args.short * 1e3)
    finally:
        await c1.aclose()
        await c2.aclose()
        await raw.aclose()
    return best


async def record(base: str, tokens: int) -> bytes:
    """The fake upstream's whole response (head and chunked body) to a request for `tokens` tokens."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    payload = orjson.dumps(body_for(tokens))
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(
            b"POST %b HTTP/1.1\r\nHost: %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            % (PATH.encode(), host.encode(), len(payload), payload)
        )
        raw = bytearray()
        reader = ResponseHeadReader()
        while (head := reader.feed(data := await stream.receive_some(65536))) is None:
            raw += data
        raw += data
        decoder = decoder_for(body_framing(head, b"POST"))
        decoder.feed(reader.unused)
        while not decoder.done:
            data = await stream.receive_some(65536)
            raw += data
            decoder.feed(data)
    return bytes(raw)


async def serve_replay(long_response: bytes, short_response: bytes) -> None:
    """Serve recorded responses as fast as the socket takes them: the 5-token one to requests
    for 5 tokens, the long one to every other request."""

    async def handle(stream: trio.SocketStream) -> None:
        buf = b""
        while (request := await read_raw_request(stream, buf)) is not None:
            _, body, buf = request
            await stream.send_all(short_response if b'tokens=5"' in body else long_response)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(f"listening on http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(handle, listeners)


def start_server(*argv: str) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("listening on "):
        server.kill()
        raise RuntimeError(f"{argv} said {line!r}")
    return server, line.split()[-1]


def run_against(argv: list[str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    server, base = start_server(*argv)
    try:
        return trio.run(bench, base, args, psutil.Process(server.pid))
    finally:
        server.terminate()
        server.wait()


def print_table(title: str, results: dict[str, dict[str, float]]) -> None:
    base = results["httpx"]
    print(title)
    print(
        f"  {'client':<10}{'tokens/s':>12}{'vs httpx':>10}{'CPU us/token':>14}{'server busy':>13}"
        f"{'short CPU ms':>14}{'vs httpx':>10}{'short wall ms':>15}"
    )
    for name, r in results.items():
        print(
            f"  {name:<10}{r['tokens_per_s']:>12,.0f}{r['tokens_per_s'] / base['tokens_per_s']:>9.2f}x"
            f"{r['cpu_us_per_token']:>14.2f}{r['server_busy']:>12.0%} {r['short_cpu_ms']:>14.3f}"
            f"{r['short_cpu_ms'] / base['short_cpu_ms']:>9.2f}x{r['short_wall_ms']:>15.3f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200_000, help="tokens in the long stream")
    parser.add_argument("--short", type=int, default=2000, help="short (5-token) requests per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per client; the best is kept")
    parser.add_argument("--events-per-chunk", type=int, default=1, help="SSE events per HTTP chunk")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay (client-bound) runs")
    parser.add_argument("--replay-server", nargs=2, metavar=("LONG", "SHORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_server:
        long_path, short_path = args.replay_server
        with open(long_path, "rb") as f_long, open(short_path, "rb") as f_short:
            responses = f_long.read(), f_short.read()
        trio.run(serve_replay, *responses)
        return 0
    upstream = ["-m", "streamactors", "mock-upstream", "--port", "0", "--events-per-chunk", str(args.events_per_chunk)]
    sections = {"live": run_against(upstream, args)}
    if not args.no_replay:
        with tempfile.TemporaryDirectory() as tmp:
            paths = [os.path.join(tmp, "long.http"), os.path.join(tmp, "short.http")]
            server, base = start_server(*upstream)
            try:
                for path, tokens in zip(paths, (args.tokens, 5), strict=True):
                    with open(path, "wb") as f:
                        f.write(trio.run(record, base, tokens))
            finally:
                server.terminate()
                server.wait()
            sections["replay"] = run_against([os.path.abspath(__file__), "--replay-server", *paths], args)
    print(
        f"long stream: {args.tokens} tokens, {args.events_per_chunk} SSE event(s) per HTTP chunk; "
        f"short: 5 tokens x {args.short}; best of {args.repeat}; client CPU only"
    )
    print_table("live: the fake upstream (python -m streamactors mock-upstream)", sections["live"])
    if "replay" in sections:
        print_table("replay: the same responses, recorded, sent as fast as the socket takes them", sections["replay"])
    summary = {
        "bench": "transport",
        "tokens": args.tokens,
        "events_per_chunk": args.events_per_chunk,
        "short_requests": args.short,
        "repeat": args.repeat,
        "python": sys.version.split()[0],
        **{
            section: {name: {k: round(v, 3) for k, v in r.items()} for name, r in results.items()}
            for section, results in sections.items()
        },
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
