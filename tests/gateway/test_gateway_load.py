"""Backpressure through the gateway over real sockets (issue 14): 1,000 clients that stop
reading hold the upstream back, the gateway's RSS stays within a stated bound, and every reply
is complete once they read again.

`streamactors serve` runs as a subprocess, so that its RSS is its own (read from
/proc/PID/status); the fake upstream and the 1,000 raw-socket clients run here, on the trio
loop. Each client asks for a reply of `TOKENS` tokens, then reads nothing until every stream
has sent tokens and the fake upstream has stopped sending (`chunks_sent` still for
`PLATEAU_SECONDS`): a client that does not read fills the kernel's buffers, the gateway's
write to it waits, its handler stops taking batches, the service's provider task stops reading
the upstream socket, whose buffers fill in turn, and the fake upstream's send waits. Then every
client reads to the end, checking the response head, the chunked framing and every token.

What a stalled stream holds, measured (1,000 streams, 2 cores, other work on the machine):
- the clients' receive buffers, kept small while they do not read (`CLIENT_RCVBUF`: ~6 KB
  queued) and the gateway's send buffer to each (~16 KB);
- in the gateway: the service's event channel (`[service] event_buffer` batches, each at most
  one 64 KiB read of the upstream socket), the batch its provider task is putting in, and the
  batch being written: ~3 reads with `event_buffer = 1`, set here. With the default of 16 a
  stalled stream holds ~20 reads (1.3 MB of upstream SSE, ~0.75 MB of RSS), and showing the
  upstream held back would take replies of over 10,000 tokens, 10 million tokens in all;
- the gateway's upstream socket's receive buffer, which the kernel grows while the gateway
  reads fast (median ~330 KB queued, some streams ~750 KB; net.ipv4.tcp_rmem allows up to
  32 MiB here), and the fake upstream's send buffer (~63 KB).
So the fake upstream sends ~1,050-2,600 of a reply's 4,004 chunks per stream on average (the
kernel's buffers differ from run to run); a few replies, whose upstream socket the kernel grew
most, can go through whole, so the bound is on the mean. The kernel's TCP memory
(/proc/net/sockstat, machine-wide) grows by ~200-600 MiB: printed, not asserted.

Bounds (measured, then given headroom): a mean of at most `MAX_MEAN_CHUNKS_PER_STREAM` chunks
sent per stream while nobody reads (measured 1,046-2,589); a gateway RSS growth over its RSS
after one warm-up request of at most `MAX_STALLED_RSS_GROWTH_MIB` while stalled (measured
+92 to +309 MiB, at most ~0.3 MB a stream) and `MAX_RSS_GROWTH_MIB` at its peak (VmHWM),
reached while the replies drain (measured +374 to +575 MiB: the OpenAI decoder keeps each
reply's text pieces, ~80 bytes a token, for the cited text of annotations).

Cost: up to ~40 s of CPU on each of the two cores (the gateway's; the fake upstream's and
the clients'), so about 45 s is expected on an idle 2-core machine (not seen: this one always
had other work; 58-107 s were); the timeouts only guard against a hang.
"""

from __future__ import annotations

import collections
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest
import trio

from streamactors.testing import FakeUpstream, token_text

pytestmark = pytest.mark.slow

STREAMS = 1000
TOKENS = 4000
#: Every stream's first token comes this long after its request, so that all have started
#: before the upstream sends and each gets a thousandth of the gateway from the start.
TTFT_MS = 3000
#: The clients' receive buffer while they do not read (the kernel doubles it); raised to
#: `DRAIN_RCVBUF` before they read.
CLIENT_RCVBUF = 4096
DRAIN_RCVBUF = 256 * 1024
#: The fake upstream's chunks for one reply: one a token, and four more (role, finish, usage, [DONE]).
CHUNKS_PER_REPLY = TOKENS + 4
#: Bounds, measured then given headroom (see the module docstring).
MAX_MEAN_CHUNKS_PER_STREAM = 3200
MAX_STALLED_RSS_GROWTH_MIB = 400
MAX_RSS_GROWTH_MIB = 800
PLATEAU_SECONDS = 1.0
STALL_TIMEOUT = 120.0
DRAIN_TIMEOUT = 240.0
GATEWAY_KEY = "sk-gw-load-0123456789"
CONTENT = re.compile(rb'"content":"([^"\\]*)"')


class CountingUpstream(FakeUpstream):
    """The fake upstream, counting the chunks it sends on each connection."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.sent_on: collections.Counter[int] = collections.Counter()

    async def _send_chunk(self, stream: trio.SocketStream, pending: list[bytes], filt: Any, out: bytearray) -> None:
        self.sent_on[id(stream)] += 1
        await super()._send_chunk(stream, pending, filt, out)


def sending_everywhere(fake: CountingUpstream) -> bool:
    """Whether every stream has sent tokens, not only its role chunk (the warm-up request's
    upstream connection is kept by the gateway and serves one of them)."""
    counts = fake.sent_on.values()
    return len(counts) >= STREAMS and min(counts) > 2


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of process `pid` from /proc/PID/status, in KiB (VmRSS now, VmHWM the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tcp_mem_pages() -> int:
    """The kernel's memory for TCP socket buffers, in pages, machine-wide."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1])
    return 0


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise AssertionError(f"this test needs {needed} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class ReplyReader:
    """Checks one streamed reply as its bytes arrive, storing only what is incomplete: the
    response head, the chunked framing (every size line and CRLF), and the SSE events' text,
    which must be t0 t1 ... t{TOKENS-1} in order, followed by the `stop` finish and `[DONE]`."""

    def __init__(self, expected: bytes) -> None:
        self.expected = expected
        self.matched = 0
        self.raw = b""
        self.head: bytes | None = None
        self.chunk_left = 0
        self.need_crlf = False
        self.ended = False
        self.sse = b""
        self.finished = False
        self.done = False

    def feed(self, data: bytes) -> None:
        raw, i = self.raw + data, 0
        while not self.ended:
            if self.head is None:
                end = raw.find(b"\r\n\r\n")
                if end < 0:
                    break
                self.head, i = raw[:end], end + 4
                assert self.head.startswith(b"HTTP/1.1 200 "), self.head
                assert b"\r\ntransfer-encoding: chunked" in self.head, self.head
            elif self.chunk_left:
                piece = raw[i : i + self.chunk_left]
                i += len(piece)
                self.chunk_left -= len(piece)
                self._payload(piece)
                if self.chunk_left:
                    break
                self.need_crlf = True
            elif self.need_crlf:
                if len(raw) - i < 2:
                    break
                assert raw[i : i + 2] == b"\r\n", raw[i : i + 20]
                i += 2
                self.need_crlf = False
            else:
                end = raw.find(b"\r\n", i)
                if end < 0:
                    break
                size = int(raw[i:end], 16)
                i = end + 2
                if size == 0:
                    assert raw[i:] == b"\r\n", raw[i:]  # no trailers, nothing after the body
                    i = len(raw)
                    self.ended = True
                self.chunk_left = size
        self.raw = raw[i:]

    def _payload(self, data: bytes) -> None:
        sse = self.sse + data
        cut = sse.rfind(b"\n\n") + 2
        if not cut:
            self.sse = sse
            return
        events, self.sse = sse[:cut], sse[cut:]
        assert not self.done, f"events after [DONE]: {events[:200]!r}"
        text = b"".join(CONTENT.findall(events))
        assert text == self.expected[self.matched : self.matched + len(text)], (self.matched, text[:100])
        self.matched += len(text)
        if b'"finish_reason":"stop"' in events:
            self.finished = True
        if events.endswith(b"data: [DONE]\n\n"):
            self.done = True

    def check_complete(self) -> None:
        assert self.ended and not self.raw and not self.sse
        assert self.matched == len(self.expected), (self.matched, len(self.expected))
        assert self.finished and self.done


async def start_gateway(tmp_path: Path, fake: FakeUpstream) -> tuple[trio.Process, str, str]:
    """`streamactors serve` in a subprocess; (process, host, port)."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[providers.fake]
kind = "openai"
api_key = "sk-up-0123456789"
base_url = "{fake.base_url}/v1"
max_concurrency = {STREAMS + 10}
max_retries = 0

[service]
event_buffer = 1

[logging]
file = "{tmp_path / "gateway.log"}"

[server]
api_keys = ["{GATEWAY_KEY}"]
"""
    )
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "streamactors", "serve", "--config", str(config), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    said = b""
    with trio.fail_after(30):
        while b"listening on http://" not in said or not said.endswith(b"\n"):
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, f"serve exited early: {said.decode()!r}"
            said += chunk
    line = said.decode().split("listening on http://", 1)[1].splitlines()[0]
    host, port = line.rsplit(":", 1)
    return proc, host, port


def request_bytes(tokens: int, ttft_ms: int = 0) -> bytes:
    model = b"fake/gpt-fake~tokens=%d~ttft_ms=%d" % (tokens, ttft_ms)
    body = b'{"model":"%b","stream":true,"messages":[{"role":"user","content":"hi"}]}' % model
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %b\r\ncontent-length: %d\r\n\r\n%b" % (GATEWAY_KEY.encode(), len(body), body)
    )


async def read_reply(sock: trio.socket.SocketType, reader: ReplyReader) -> None:
    while not reader.ended:
        data = await sock.recv(65536)
        assert data, f"the gateway closed the connection after {reader.matched} bytes of text"
        reader.feed(data)


async def test_1000_slow_clients_hold_the_upstream_back_within_a_bounded_rss(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    fake: CountingUpstream = await nursery.start(CountingUpstream().serve)
    raise_fd_limit(2 * STREAMS + 500)  # the clients' sockets and the fake upstream's, here
    proc, host, port = await start_gateway(tmp_path, fake)
    addr = (host, int(port))
    clients: list[trio.socket.SocketType] = []
    try:
        # One request first, so that the RSS baseline includes what a first request loads.
        warm = trio.socket.socket()
        await warm.connect(addr)
        await warm.send(request_bytes(5))
        first = ReplyReader("".join(token_text(i) for i in range(5)).encode())
        await read_reply(warm, first)
        first.check_complete()
        warm.close()
        await trio.sleep(0.2)
        base_kib = rss_kib(proc.pid)
        chunks0, completed0, tcp0 = fake.chunks_sent, fake.responses_completed, tcp_mem_pages()

        for _ in range(STREAMS):
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
            await sock.connect(addr)
            clients.append(sock)
        request = request_bytes(TOKENS, TTFT_MS)
        started = time.monotonic()
        for sock in clients:
            await sock.send(request)

        # Nobody reads. Wait until every stream has sent tokens and the fake upstream is held back.
        last, still_since = -1, started
        samples: deque[tuple[float, int, int]] = deque(maxlen=20)  # (s, chunks sent, RSS growth KiB)
        while True:
            await trio.sleep(0.1)
            now, sent = time.monotonic(), fake.chunks_sent
            samples.append((round(now - started, 1), sent - chunks0, rss_kib(proc.pid) - base_kib))
            if sent != last:
                last, still_since = sent, now
            elif now - still_since >= PLATEAU_SECONDS and sending_everywhere(fake):
                break
            assert now - started < STALL_TIMEOUT, f"not held back in time: {list(samples)}"
        held_after = time.monotonic() - started
        mean = (fake.chunks_sent - chunks0) / STREAMS
        counts = sorted(fake.sent_on.values())
        whole = fake.responses_completed - completed0
        stalled_growth = (rss_kib(proc.pid) - base_kib) / 1024
        tcp_mib = (tcp_mem_pages() - tcp0) * resource.getpagesize() / 2**20
        spread = (
            ", ".join(f"p{q} {counts[len(counts) * q // 100]:,}" for q in (10, 50, 90, 99)) + f", max {counts[-1]:,}"
        )
        print(
            f"\n{STREAMS:,} streams of {TOKENS:,} tokens, nobody reading: held back after {held_after:.1f} s; "
            f"upstream chunks sent a stream: mean {mean:,.0f}, {spread}; {whole} sent whole; "
            f"gateway RSS +{stalled_growth:,.0f} MiB (base {base_kib / 1024:,.0f} MiB); "
            f"kernel TCP memory +{tcp_mib:,.0f} MiB"
        )
        assert mean <= MAX_MEAN_CHUNKS_PER_STREAM, f"the upstream was not held back: {mean=:,.0f} ({spread})"
        assert stalled_growth <= MAX_STALLED_RSS_GROWTH_MIB, (stalled_growth, list(samples))

        # Everyone reads to the end: every reply complete, token by token.
        expected = "".join(token_text(i) for i in range(TOKENS)).encode()
        readers = [ReplyReader(expected) for _ in clients]
        drain_start, cpu_here, cpu_gateway = time.monotonic(), time.process_time(), cpu_seconds(proc.pid)
        with trio.fail_after(DRAIN_TIMEOUT):
            async with trio.open_nursery() as readers_nursery:
                for sock, reader in zip(clients, readers, strict=True):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, DRAIN_RCVBUF)
                    readers_nursery.start_soon(read_reply, sock, reader)
        drained_in = time.monotonic() - drain_start
        cpu_here, cpu_gateway = time.process_time() - cpu_here, cpu_seconds(proc.pid) - cpu_gateway
        for reader in readers:
            reader.check_complete()
        assert fake.responses_completed == completed0 + STREAMS
        assert fake.chunks_sent - chunks0 == STREAMS * CHUNKS_PER_REPLY
        peak_growth = (rss_kib(proc.pid, "VmHWM") - base_kib) / 1024
        print(
            f"every reply complete after {drained_in:.1f} s of reading (CPU: {cpu_gateway:.1f} s the gateway's, "
            f"{cpu_here:.1f} s the clients' and fake upstream's); gateway RSS peak +{peak_growth:,.0f} MiB"
        )
        assert peak_growth <= MAX_RSS_GROWTH_MIB, peak_growth
    finally:
        for sock in clients:
            sock.close()
        proc.terminate()
        with trio.move_on_after(10):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
