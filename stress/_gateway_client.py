"""One client of bench_gateway.py, in a fresh process: one kind, one measurement, one JSON line out.

Usage:
  python stress/_gateway_client.py sdk URL MODEL KEY REQUESTS [--pids PID,...]
  python stress/_gateway_client.py raw URL MODEL KEY STREAMS TOKENS [--pids PID,...] [--rss-pids PID,...]

URL is the server's base (`http://host:port`, without `/v1`); MODEL the model id that the
scenario options follow (`fake/gpt-fake` through the gateway, `gpt-fake` straight to the fake
upstream); KEY the bearer token. `--pids` are the processes whose CPU time is measured over
the measured part only (the server's and the fake upstream's), read from
`/proc/PID/task/*/schedstat` (nanoseconds, every thread); `--rss-pids` the processes whose
resident set size is sampled every 10 ms during it (the peak minus the RSS before).

- sdk: the official openai SDK's synchronous client, as an application writes it: REQUESTS
  streaming requests of 5 tokens one after another, after 20 to warm up (imports, connections,
  the server's first requests). Each request's time to first token runs from the `create`
  call to the first chunk that carries content; each reply's text is checked.
- raw: STREAMS concurrent streams sharing TOKENS tokens, after 20 short requests to warm up,
  over non-blocking sockets and one epoll: the request written by hand, the response only
  counted, not parsed: the occurrences of `"content":"t` (one per token of the fake upstream,
  whose tokens are t0, t1, ...), and its end found (the chunked body's last chunk right after
  `data: [DONE]`). So the client costs little per token and the server sets the pace; a stream
  whose count is not its token count is reported as `lost`.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import threading
import time
from typing import Any

import orjson

WARM = 20
SHORT_TOKENS = 5
PATTERN = b'"content":"t'
#: A chunked SSE body's end: the last event's blank line, its chunk's CRLF, the zero-size chunk.
END = b"\n\n\r\n0\r\n\r\n"
READ_SIZE = 262144


def cpu_ns(pid: int) -> int:
    """CPU time (user + system) of every thread of `pid` so far, in nanoseconds."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that ended meanwhile
    return total


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    """The peak RSS of some processes (summed), sampled by a thread every 10 ms."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self._now()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _now(self) -> int:
        return sum(rss_bytes(p) for p in self.pids)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._now())

    def stop(self) -> float:
        """The growth in MiB."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())
        return (self.peak - self.start) / 2**20


class Measured:
    """Wall time, this process's CPU and the watched processes' CPU over a block."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def __enter__(self) -> Measured:
        self._cpu = [cpu_ns(p) for p in self.pids]
        self._own = time.process_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.own_cpu = time.process_time() - self._own
        self.cpu = [(cpu_ns(p) - c) / 1e9 for p, c in zip(self.pids, self._cpu, strict=True)]


def _request(host: str, port: int, model: str, key: str, tokens: int) -> bytes:
    body = orjson.dumps(
        {
            "model": f"{model}~tokens={tokens}",
            "messages": [{"role": "user", "content": "bench"}],
            "max_tokens": tokens,
            "stream": True,
        }
    )
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s"
        % (host.encode(), port, key.encode(), len(body), body)
    )


def _streams(host: str, port: int, model: str, key: str, counts: list[int]) -> tuple[int, int]:
    """Run one stream per entry of `counts` (its token count) at once; (tokens received, lost)."""
    ep = select.epoll()
    conns: dict[int, list[Any]] = {}  # fd: [socket, tokens counted, tail, expected, head checked]
    try:
        for count in counts:
            sock = socket.create_connection((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(_request(host, port, model, key, count))
            sock.setblocking(False)
            conns[sock.fileno()] = [sock, 0, b"", count, False]
            ep.register(sock.fileno(), select.EPOLLIN)
        keep = len(PATTERN) - 1
        width = max(keep, len(END))
        received = lost = 0
        open_ = len(conns)
        while open_:
            for fd, _ in ep.poll():
                state = conns[fd]
                try:
                    data = state[0].recv(READ_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError(f"the server closed a stream after {state[1]} of {state[3]} tokens")
                if not state[4]:
                    if not data.startswith(b"HTTP/1.1 200"):
                        raise ConnectionError(f"the server answered {data[:200]!r}")
                    state[4] = True
                tail = state[2]
                state[1] += data.count(PATTERN) + (tail + data[:keep]).count(PATTERN)
                tail = state[2] = (tail + data[-width:])[-width:]
                if tail.endswith(END):
                    ep.unregister(fd)
                    open_ -= 1
                    received += state[1]
                    lost += state[3] - state[1]
        return received, lost
    finally:
        ep.close()
        for state in conns.values():
            state[0].close()


def run_raw(url: str, model: str, key: str, streams: int, tokens: int, pids: list[int], rss_pids: list[int]) -> Any:
    host, _, port_text = url.removeprefix("http://").partition(":")
    port = int(port_text)
    for _ in range(WARM):
        _streams(host, port, model, key, [SHORT_TOKENS])
    counts = [tokens // streams + (1 if i < tokens % streams else 0) for i in range(streams)]
    rss = RssPeak(rss_pids) if rss_pids else None
    with Measured(pids) as m:
        received, lost = _streams(host, port, model, key, counts)
    return {
        "streams": streams,
        "tokens": tokens,
        "received": received,
        "lost": lost,
        "wall_s": m.wall,
        "tokens_per_s": received / m.wall,
        "client_cpu_s": m.own_cpu,
        "cpu_s": m.cpu,
        "rss_growth_mib": rss.stop() if rss else None,
    }


def run_sdk(url: str, model: str, key: str, requests: int, pids: list[int]) -> Any:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    expected = "".join(f"t{i} " for i in range(SHORT_TOKENS))
    messages: Any = [{"role": "user", "content": "bench"}]

    def one() -> float:
        t0 = time.perf_counter()
        first = 0.0
        text = []
        stream = client.chat.completions.create(
            model=f"{model}~tokens={SHORT_TOKENS}", messages=messages, max_tokens=SHORT_TOKENS, stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if not first:
                    first = time.perf_counter()
                text.append(chunk.choices[0].delta.content)
        if "".join(text) != expected:
            raise SystemExit(f"wrong reply: {''.join(text)!r}")
        return first - t0

    for _ in range(WARM):
        one()
    with Measured(pids) as m:
        ttft = [one() for _ in range(requests)]
    client.close()
    return {"requests": requests, "ttft_s": ttft, "wall_s": m.wall, "client_cpu_s": m.own_cpu, "cpu_s": m.cpu}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["sdk", "raw"])
    p.add_argument("url")
    p.add_argument("model")
    p.add_argument("key")
    p.add_argument("numbers", type=int, nargs="+")
    p.add_argument("--pids", default="")
    p.add_argument("--rss-pids", default="")
    args = p.parse_args()
    pids = [int(x) for x in args.pids.split(",") if x]
    rss_pids = [int(x) for x in args.rss_pids.split(",") if x]
    if args.kind == "sdk":
        result = run_sdk(args.url, args.model, args.key, args.numbers[0], pids)
    else:
        streams, tokens = args.numbers
        result = run_raw(args.url, args.model, args.key, streams, tokens, pids, rss_pids)
    print(orjson.dumps({"kind": args.kind, **result}).decode(), flush=True)


if __name__ == "__main__":
    main()
