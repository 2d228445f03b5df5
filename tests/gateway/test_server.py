"""The gateway's HTTP/1.1 server over real loopback sockets: keep-alive and framing, the client
that leaves (its handler cancelled at once), backpressure, bounded requests, the timeouts,
handler failures and shutdown.

Most tests run in virtual time (`autojump_clock`): a loopback peer in the same trio run is
fine, since the kernel delivers loopback bytes within the sending call, so a task waiting on
a socket with bytes for it is never mistaken for idle. The tests that measure how fast a
disconnect cancels a handler use the wall clock (said in each docstring).
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import attrs
import orjson
import pytest
import trio
import trio.testing

from conftest import LogCapture
from streamactors.gateway.server import Request, Responder, ServerLimits, serve

Handler = Callable[[Request, Responder], Awaitable[None]]

DATE = b"date: Thu, 01 Jan 2026 00:00:00 GMT"
_DATE_RE = re.compile(rb"date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


class App:
    """A test app: a handler per path; refusals as JSON naming what the server passed."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.requests: list[Request] = []
        self.rejected: list[tuple[str, str, int, str]] = []

    async def handle(self, request: Request, responder: Responder) -> None:
        self.requests.append(request)
        await self.routes[request.path](request, responder)

    def reject(self, method: str, target: str, status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
        self.rejected.append((method, target, status, message))
        return status, [("content-type", "application/json")], refusal_body(method, target, message)


def refusal_body(method: str, target: str, message: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "method": method, "target": target}})


@attrs.define
class Running:
    port: int
    shutdown: trio.Event
    stopped: trio.Event


async def start(
    nursery: trio.Nursery, app: App, logs: LogCapture, limits: ServerLimits | None = None, grace: float = 5.0
) -> Running:
    shutdown, stopped = trio.Event(), trio.Event()

    async def run(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        try:
            await serve(
                app,
                "127.0.0.1",
                0,
                limits or ServerLimits(),
                shutdown=shutdown,
                grace=grace,
                logger=logs.logger,
                task_status=task_status,
            )
        finally:
            stopped.set()

    host, port = await nursery.start(run)
    assert host == "127.0.0.1"
    assert port > 0
    return Running(port, shutdown, stopped)


Connect = Callable[..., Awaitable[trio.SocketStream]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """`await connect(port, rcvbuf=None)`: a client connection, closed at the test's end."""
    streams: list[trio.SocketStream] = []

    async def open_connection(port: int, rcvbuf: int | None = None) -> trio.SocketStream:
        sock = trio.socket.socket()
        try:
            if rcvbuf is not None:  # before connecting: the window the kernel offers follows it
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            await sock.connect(("127.0.0.1", port))
        except BaseException:
            sock.close()
            raise
        streams.append(trio.SocketStream(sock))
        return streams[-1]

    yield open_connection
    for stream in streams:
        await trio.aclose_forcefully(stream)


async def read_exactly(stream: trio.SocketStream, size: int) -> bytes:
    out = bytearray()
    with trio.fail_after(60):
        while len(out) < size:
            data = await stream.receive_some(size - len(out))
            assert data, f"EOF after {bytes(out)!r}"
            out += data
    return bytes(out)


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    out = bytearray()
    with trio.fail_after(60):
        while data := await stream.receive_some(65536):
            out += data
    return bytes(out)


def normalize(data: bytes) -> bytes:
    """`data` with every date header replaced by `DATE` (each checked to be an IMF-fixdate of the same length)."""
    return _DATE_RE.sub(DATE, data)


async def expect(stream: trio.SocketStream, expected: bytes) -> None:
    got = await read_exactly(stream, len(expected))
    assert normalize(got) == expected


async def expect_eof(stream: trio.SocketStream) -> None:
    with trio.fail_after(60):
        assert await stream.receive_some(65536) == b""


def response(status: str, headers: Sequence[str], framing: Sequence[str], body: bytes = b"") -> bytes:
    """A response as the server writes it: the app's headers, the date, then the server's framing headers."""
    lines = [f"HTTP/1.1 {status}", *headers]
    head = "".join(line + "\r\n" for line in lines).encode() + DATE + b"\r\n"
    return head + "".join(line + "\r\n" for line in framing).encode() + b"\r\n" + body


def fixed(body: bytes, *, close: bool = False, status: str = "200 OK") -> bytes:
    framing = [f"content-length: {len(body)}"] + (["connection: close"] if close else [])
    return response(status, ["content-type: text/plain"], framing, body)


def refusal(status: str, message: str, method: str = "", target: str = "", *, close: bool = True) -> bytes:
    body = refusal_body(method, target, message)
    framing = [f"content-length: {len(body)}"] + (["connection: close"] if close else [])
    return response(status, ["content-type: application/json"], framing, body)


def chunked(*chunks: bytes, close: bool = False) -> bytes:
    framing = ["transfer-encoding: chunked"] + (["connection: close"] if close else [])
    body = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return response("200 OK", ["content-type: text/event-stream"], framing, body)


def get(path: str, *extra: str, version: str = "1.1") -> bytes:
    return "".join(f"{line}\r\n" for line in [f"GET {path} HTTP/{version}", "host: test", *extra, ""]).encode()


def post(path: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: test", f"content-length: {len(body)}", *extra, ""]
    return "".join(f"{line}\r\n" for line in lines).encode() + body


async def hello(request: Request, responder: Responder) -> None:
    await responder.start(200, [("content-type", "text/plain"), ("content-length", "5")])
    await responder.send(b"hello")
    await responder.end()


async def echo(request: Request, responder: Responder) -> None:
    """The body back, as two chunks: the method and target, then the body."""
    await responder.start(200, [("content-type", "text/event-stream")])
    await responder.send(f"{request.method} {request.target}\n".encode())
    await responder.send(request.body)
    await responder.end()


# --- keep-alive and framing ---


async def test_keep_alive_carries_fixed_and_chunked_responses_and_chunked_request_bodies(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    app = App({"/hello": hello, "/echo": echo})
    server = await start(nursery, app, logs)
    stream = await connect(server.port)
    await stream.send_all(get("/hello"))
    await expect(stream, fixed(b"hello"))
    await stream.send_all(post("/echo?x=1", b'{"a": 1}', "content-type: application/json"))
    await expect(stream, chunked(b"POST /echo?x=1\n", b'{"a": 1}'))
    await stream.send_all(
        b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    await expect(stream, chunked(b"POST /echo\n", b"abcde"))
    assert [(r.method, r.target, r.path, r.body) for r in app.requests] == [
        ("GET", "/hello", "/hello", b""),
        ("POST", "/echo?x=1", "/echo", b'{"a": 1}'),
        ("POST", "/echo", "/echo", b"abcde"),
    ]
    assert app.requests[1].headers == (
        ("host", "test"),
        ("content-length", "8"),
        ("content-type", "application/json"),
    )
    assert app.requests[1].header("Content-Type") == "application/json"
    assert app.requests[1].header("authorization") is None
    with trio.move_on_after(1):  # still open, and nothing more was sent
        await stream.receive_some(1)
        pytest.fail("the server sent more, or closed")


async def test_connection_close_from_the_client_is_honoured(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/hello": hello, "/echo": echo}), logs)
    stream = await connect(server.port)
    await stream.send_all(get("/hello", "Connection: Close"))
    assert normalize(await read_to_eof(stream)) == fixed(b"hello", close=True)
    stream = await connect(server.port)
    await stream.send_all(post("/echo", b"x", "connection: close"))
    assert normalize(await read_to_eof(stream)) == chunked(b"POST /echo\n", b"x", close=True)


async def test_an_http_1_0_client_gets_a_close_delimited_stream_and_one_request_per_connection(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/hello": hello, "/echo": echo}), logs)
    stream = await connect(server.port)
    await stream.send_all(get("/echo", version="1.0"))
    expected = response("200 OK", ["content-type: text/event-stream"], ["connection: close"], b"GET /echo\n")
    assert normalize(await read_to_eof(stream)) == expected
    stream = await connect(server.port)
    await stream.send_all(get("/hello", version="1.0"))
    assert normalize(await read_to_eof(stream)) == fixed(b"hello", close=True)


async def test_a_head_request_gets_the_head_only_and_the_connection_stays_open(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/hello": hello}), logs)
    stream = await connect(server.port)
    await stream.send_all(b"HEAD /hello HTTP/1.1\r\nhost: test\r\n\r\n")
    await expect(stream, response("200 OK", ["content-type: text/plain"], ["content-length: 5"]))
    await stream.send_all(get("/hello"))
    await expect(stream, fixed(b"hello"))


async def test_expect_100_continue_is_answered_before_the_body(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/echo": echo}), logs)
    stream = await connect(server.port)
    await stream.send_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
    await expect(stream, b"HTTP/1.1 100 Continue\r\n\r\n")
    await stream.send_all(b"body")
    await expect(stream, chunked(b"POST /echo\n", b"body"))


async def test_pipelined_requests_are_answered_in_order_and_do_not_cancel_the_handler(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    async def slow(request: Request, responder: Responder) -> None:
        await trio.sleep(1)  # the watcher reads the pipelined requests meanwhile
        await echo(request, responder)

    server = await start(nursery, App({"/slow": slow, "/hello": hello}), logs)
    stream = await connect(server.port)
    await stream.send_all(post("/slow", b"one") + get("/hello") + post("/slow", b"two"))
    await expect(stream, chunked(b"POST /slow\n", b"one") + fixed(b"hello") + chunked(b"POST /slow\n", b"two"))
    assert trio.current_time() == 2.0


async def test_pipelined_bytes_kept_while_a_handler_runs_are_bounded_by_max_header_bytes(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    kept: list[int] = []

    async def slow(request: Request, responder: Responder) -> None:
        await trio.sleep(1)
        kept.append(len(responder._conn.buffer))
        await hello(request, responder)

    server = await start(nursery, App({"/slow": slow}), logs, ServerLimits(max_header_bytes=4096))
    stream = await connect(server.port)
    await stream.send_all(get("/slow"))
    await trio.testing.wait_all_tasks_blocked()  # the handler runs: what comes now is pipelined
    await stream.send_all(b"x" * 100_000)  # a "request head" without end
    expected = fixed(b"hello") + refusal("431 Request Header Fields Too Large", "request head too large")
    assert normalize(await read_to_eof(stream)) == expected
    assert kept == [4096]


async def test_accepted_sockets_have_tcp_nodelay(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    seen: list[int] = []

    async def nodelay(request: Request, responder: Responder) -> None:
        seen.append(responder._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        await hello(request, responder)

    server = await start(nursery, App({"/": nodelay}), logs)
    stream = await connect(server.port)
    await stream.send_all(get("/"))
    await expect(stream, fixed(b"hello"))
    assert seen == [1]


# --- the client that leaves ---


async def _measure_disconnect(
    path: str, handler: Handler, logs: LogCapture, connect: Connect, *, rcvbuf: int | None = None
) -> float:
    """Serve `handler` (then wait forever), close the client once every task is blocked (the
    handler waiting for its socket or for nothing), and return the wall time from the close
    to the handler's cancellation."""
    cancelled = trio.Event()
    cancelled_at: list[float] = []

    async def watched(request: Request, responder: Responder) -> None:
        try:
            await handler(request, responder)
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled_at.append(time.perf_counter())
            cancelled.set()
            raise

    async with trio.open_nursery() as nursery:
        server = await start(nursery, App({path: watched}), logs)
        stream = await connect(server.port, rcvbuf=rcvbuf)
        await stream.send_all(get(path))
        await trio.testing.wait_all_tasks_blocked(0.05)
        if rcvbuf is not None:  # unread bytes wait in the client: close with a reset
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        closed_at = time.perf_counter()
        await stream.aclose()
        with trio.fail_after(10):
            await cancelled.wait()
        server.shutdown.set()
    return cancelled_at[0] - closed_at


async def test_a_client_that_leaves_before_the_response_cancels_the_handler_at_once(
    logs: LogCapture, connect: Connect
) -> None:
    """Wall clock: the point is the real time from the client's close to the cancellation."""

    async def nothing_yet(request: Request, responder: Responder) -> None:
        pass

    elapsed = await _measure_disconnect("/wait", nothing_yet, logs, connect)
    assert elapsed < 0.1
    assert [r["event"] for r in logs.records()] == ["gateway_client_left"]
    assert logs.records()[0]["response_started"] is False


async def test_a_client_that_leaves_during_a_stream_cancels_the_handler_at_once(
    logs: LogCapture, connect: Connect
) -> None:
    """Wall clock: the point is the real time from the client's close to the cancellation."""

    async def streaming(request: Request, responder: Responder) -> None:
        await responder.start(200, [("content-type", "text/event-stream")])
        await responder.send(b"data: 1\n\n")

    elapsed = await _measure_disconnect("/stream", streaming, logs, connect)
    assert elapsed < 0.1
    assert logs.records()[0]["event"] == "gateway_client_left"
    assert logs.records()[0]["response_started"] is True


async def test_a_reset_while_the_handler_is_blocked_sending_cancels_it_at_once(
    logs: LogCapture, connect: Connect
) -> None:
    """Wall clock: the point is the real time from the client's reset to the cancellation."""
    sent = [0]

    async def flood(request: Request, responder: Responder) -> None:
        await responder.start(200, [("content-type", "text/event-stream")])
        while True:  # until the socket buffers are full: then send() blocks
            await responder.send(b"x" * 16384)
            sent[0] += 16384

    elapsed = await _measure_disconnect("/flood", flood, logs, connect, rcvbuf=65536)
    assert sent[0] > 0
    assert elapsed < 0.1
    assert [(r["event"], r["response_started"]) for r in logs.records()] == [("gateway_client_left", True)]


# --- backpressure ---


async def test_a_client_that_does_not_read_blocks_the_handler_after_a_bounded_amount_then_is_dropped(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    sent = [0]
    blocked_since = [0.0]
    cancelled_at: list[float] = []
    cancelled = trio.Event()

    async def flood(request: Request, responder: Responder) -> None:
        await responder.start(200, [("content-type", "text/event-stream")])
        try:
            for _ in range(4096):  # 64 MiB if nothing pushed back
                blocked_since[0] = trio.current_time()
                await responder.send(b"x" * 16384)
                sent[0] += 16384
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            cancelled.set()
            raise

    limits = ServerLimits(send_timeout=7.0)
    server = await start(nursery, App({"/flood": flood}), logs, limits)
    stream = await connect(server.port, rcvbuf=65536)
    await stream.send_all(get("/flood"))
    await trio.testing.wait_all_tasks_blocked()
    # The handler waits in send(): what it got out is bounded by the socket buffers (4 MiB of
    # send buffer at most here, and the client's 128 KiB window), not by the 64 MiB it has.
    assert 0 < sent[0] < 8 * 1024 * 1024
    assert not cancelled_at
    await cancelled.wait()  # the client still reads nothing
    assert cancelled_at == [blocked_since[0] + 7.0]
    received = await read_to_eof(stream)
    assert sent[0] < len(received) < sent[0] + 16384 + 100  # what the sends wrote, the last one in part
    assert [(r["event"], r["response_started"]) for r in logs.records()] == [("gateway_client_stalled", True)]


async def test_a_slow_reader_within_the_send_timeout_gets_the_whole_stream(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    chunk = bytes(range(256)) * 64  # 16 KiB

    async def stream_many(request: Request, responder: Responder) -> None:
        await responder.start(200, [("content-type", "text/event-stream")])
        for _ in range(512):  # 8 MiB
            await responder.send(chunk)
        await responder.end()

    server = await start(nursery, App({"/many": stream_many}), logs, ServerLimits(send_timeout=7.0))
    stream = await connect(server.port, rcvbuf=65536)
    await stream.send_all(get("/many"))
    expected = chunked(*[chunk] * 512)
    got = bytearray()
    while len(got) < len(expected):
        await trio.sleep(5)  # a pause shorter than the send timeout between reads
        got += await read_exactly(stream, min(1 << 20, len(expected) - len(got)))
    assert normalize(bytes(got)) == expected
    assert logs.records() == []


# --- bounded requests ---


async def test_a_body_over_the_limit_by_content_length_is_refused_with_413(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    app = App({"/echo": echo})
    server = await start(nursery, app, logs, ServerLimits(max_body_bytes=1000))
    stream = await connect(server.port)
    await stream.send_all(post("/echo", b"x" * 1000))  # at the limit: fine
    await expect(stream, chunked(b"POST /echo\n", b"x" * 1000))
    await stream.send_all(post("/v1/messages?beta=true", b"x" * 1001))
    expected = refusal(
        "413 Request Entity Too Large", "request body larger than 1000 bytes", "POST", "/v1/messages?beta=true"
    )
    assert normalize(await read_to_eof(stream)) == expected
    assert len(app.requests) == 1


async def test_a_chunked_body_over_the_limit_is_refused_with_413_while_it_is_read(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    app = App({"/echo": echo})
    server = await start(nursery, app, logs, ServerLimits(max_body_bytes=1000))
    stream = await connect(server.port)
    await stream.send_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n")
    await stream.send_all(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
    await stream.send_all(b"1\r\nx\r\n")  # one byte over, and the body has not ended
    expected = refusal("413 Request Entity Too Large", "request body larger than 1000 bytes", "POST", "/echo")
    assert normalize(await read_to_eof(stream)) == expected
    assert app.requests == []


@pytest.mark.parametrize(
    ("raw", "method", "target"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", "", ""),
        (b"GET /v1/models HTTP/1.1\r\nhost: test\r\nbad header line\r\n\r\n", "GET", "/v1/models"),
        (b"GET /v1/models HTTP/1.1\r\n\r\n", "GET", "/v1/models"),  # HTTP/1.1 without host
        (b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", "POST", "/x"),
    ],
)
async def test_a_malformed_request_is_refused_with_400(
    nursery: trio.Nursery,
    logs: LogCapture,
    autojump_clock: trio.testing.MockClock,
    raw: bytes,
    method: str,
    target: str,
    connect: Connect,
) -> None:
    app = App({})
    server = await start(nursery, app, logs)
    stream = await connect(server.port)
    await stream.send_all(raw)
    assert normalize(await read_to_eof(stream)) == refusal("400 Bad Request", "malformed HTTP request", method, target)
    assert [r["event"] for r in logs.records()] == ["gateway_request_refused"]


async def test_a_malformed_chunked_body_is_refused_with_400(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/echo": echo}), logs)
    stream = await connect(server.port)
    await stream.send_all(b"POST /echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")
    assert normalize(await read_to_eof(stream)) == refusal("400 Bad Request", "malformed request body", "POST", "/echo")


async def test_an_unsupported_transfer_coding_is_refused_with_501(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({}), logs)
    stream = await connect(server.port)
    await stream.send_all(b"POST /x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: gzip\r\n\r\n")
    message = "unsupported transfer-encoding (only chunked is supported)"
    assert normalize(await read_to_eof(stream)) == refusal("501 Not Implemented", message, "POST", "/x")


async def test_a_head_over_the_limit_is_refused_with_431(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({}), logs, ServerLimits(max_header_bytes=4096))
    stream = await connect(server.port)
    await stream.send_all(get("/v1/chat/completions", "x-big: " + "a" * 5000))
    expected = refusal("431 Request Header Fields Too Large", "request head too large", "GET", "/v1/chat/completions")
    assert normalize(await read_to_eof(stream)) == expected


# --- timeouts ---


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/hello": hello}), logs, ServerLimits(keepalive_timeout=3.0))
    stream = await connect(server.port)
    await trio.sleep(1)
    await stream.send_all(get("/hello"))
    await expect(stream, fixed(b"hello"))
    await trio.sleep(2.5)  # idle, but within the timeout: still served
    await stream.send_all(get("/hello"))
    await expect(stream, fixed(b"hello"))
    await expect_eof(stream)
    assert trio.current_time() == 1 + 2.5 + 3.0
    assert logs.records() == []


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout_without_a_response(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({}), logs, ServerLimits(header_timeout=4.0))
    stream = await connect(server.port)
    await expect_eof(stream)
    assert trio.current_time() == 4.0


async def _trickle(stream: trio.SocketStream, data: bytes, every: float) -> None:
    try:
        for i in range(len(data)):
            await stream.send_all(data[i : i + 1])
            await trio.sleep(every)
    except trio.BrokenResourceError:
        pass


async def test_a_head_trickled_byte_by_byte_is_cut_at_the_header_timeout_with_408(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/hello": hello}), logs, ServerLimits(header_timeout=10.0))
    stream = await connect(server.port)
    nursery.start_soon(_trickle, stream, get("/hello", "x-slow: " + "a" * 100), 1.0)
    expected = refusal("408 Request Timeout", "request head not received in time", "GET", "/hello")
    assert normalize(await read_to_eof(stream)) == expected
    assert trio.current_time() == 10.0


async def test_on_a_kept_alive_connection_the_head_timeout_runs_from_its_first_byte(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    limits = ServerLimits(header_timeout=10.0, keepalive_timeout=5.0)
    server = await start(nursery, App({"/hello": hello}), logs, limits)
    stream = await connect(server.port)
    await stream.send_all(get("/hello"))
    await expect(stream, fixed(b"hello"))
    await trio.sleep(4)
    nursery.start_soon(_trickle, stream, get("/hello", "x-slow: " + "a" * 100), 1.0)
    expected = refusal("408 Request Timeout", "request head not received in time", "GET", "/hello")
    assert normalize(await read_to_eof(stream)) == expected
    assert trio.current_time() == 4 + 10.0


async def test_a_body_trickled_byte_by_byte_is_cut_at_the_body_timeout_with_408(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    app = App({"/echo": echo})
    server = await start(nursery, app, logs, ServerLimits(body_timeout=20.0))
    stream = await connect(server.port)
    await stream.send_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n")
    nursery.start_soon(_trickle, stream, b"x" * 100, 1.0)
    expected = refusal("408 Request Timeout", "request body not received in time", "POST", "/echo")
    assert normalize(await read_to_eof(stream)) == expected
    assert trio.current_time() == 20.0
    assert app.requests == []


# --- handler failures ---


async def test_a_handler_failing_before_the_head_gets_a_500_via_reject_logged_and_the_connection_lives_on(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    async def broken(request: Request, responder: Responder) -> None:
        raise ValueError("boom")

    app = App({"/v1/chat/completions": broken, "/hello": hello})
    server = await start(nursery, app, logs)
    stream = await connect(server.port)
    secret = "sk-test-OPENAI-0123456789abcdef"
    await stream.send_all(
        post("/v1/chat/completions?x=1", b'{"secret-body": 1}', f"authorization: Bearer {secret}", "x-k: v")
    )
    expected = refusal("500 Internal Server Error", "internal error", "POST", "/v1/chat/completions?x=1", close=False)
    await expect(stream, expected)
    await stream.send_all(get("/hello"))
    await expect(stream, fixed(b"hello"))
    [record] = logs.records()
    assert record["event"] == "gateway_handler_failed"
    assert record["level"] == "error"
    assert (record["method"], record["path"], record["response_started"]) == ("POST", "/v1/chat/completions", False)
    assert "ValueError: boom" in record["exception"]
    assert "secret-body" not in logs.text
    assert "0123456789abcdef" not in logs.text
    assert "x=1" not in logs.text


@pytest.mark.parametrize(
    ("handler_name", "error"),
    [("send_before_start", "send() before start()"), ("returns_silently", "without starting a response")],
)
async def test_a_misused_responder_is_a_handler_failure(
    nursery: trio.Nursery,
    logs: LogCapture,
    autojump_clock: trio.testing.MockClock,
    handler_name: str,
    error: str,
    connect: Connect,
) -> None:
    async def send_before_start(request: Request, responder: Responder) -> None:
        await responder.send(b"x")

    async def returns_silently(request: Request, responder: Responder) -> None:
        pass

    handler = {"send_before_start": send_before_start, "returns_silently": returns_silently}[handler_name]
    server = await start(nursery, App({"/": handler}), logs)
    stream = await connect(server.port)
    await stream.send_all(get("/"))
    await expect(stream, refusal("500 Internal Server Error", "internal error", "GET", "/", close=False))
    assert error in logs.records()[0]["exception"]


@pytest.mark.parametrize(
    "headers",
    [
        [("x-injected", "a\r\nset-cookie: b")],
        [("bad name", "v")],
        [("transfer-encoding", "chunked")],
        [("content-length", "-1")],
    ],
)
async def test_a_response_header_that_cannot_be_sent_is_a_handler_failure(
    nursery: trio.Nursery,
    logs: LogCapture,
    autojump_clock: trio.testing.MockClock,
    headers: list[tuple[str, str]],
    connect: Connect,
) -> None:
    async def bad_head(request: Request, responder: Responder) -> None:
        await responder.start(200, headers)

    server = await start(nursery, App({"/": bad_head}), logs)
    stream = await connect(server.port)
    await stream.send_all(get("/"))
    await expect(stream, refusal("500 Internal Server Error", "internal error", "GET", "/", close=False))
    assert "ValueError" in logs.records()[0]["exception"]


async def test_a_fixed_body_overrun_before_anything_is_written_is_a_500(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    async def overrun(request: Request, responder: Responder) -> None:
        await responder.start(200, [("content-length", "3")])
        await responder.send(b"abcd")

    server = await start(nursery, App({"/": overrun}), logs)
    stream = await connect(server.port)
    await stream.send_all(get("/"))
    # The refusal closes: a response with a content-length the app broke does not keep the connection.
    assert normalize(await read_to_eof(stream)) == refusal("500 Internal Server Error", "internal error", "GET", "/")
    assert "overruns content-length" in logs.records()[0]["exception"]


@pytest.mark.parametrize("kind", ["chunked", "short fixed body"])
async def test_a_handler_failing_after_the_head_closes_the_connection(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, kind: str, connect: Connect
) -> None:
    async def fails_midway(request: Request, responder: Responder) -> None:
        if kind == "chunked":
            await responder.start(200, [("content-type", "text/event-stream")])
            await responder.send(b"data: 1\n\n")
            raise RuntimeError("upstream broke")
        await responder.start(200, [("content-type", "text/plain"), ("content-length", "10")])
        await responder.send(b"hello")  # 5 of 10: end() refuses

    server = await start(nursery, App({"/": fails_midway}), logs)
    stream = await connect(server.port)
    await stream.send_all(get("/"))
    if kind == "chunked":
        expected = response("200 OK", ["content-type: text/event-stream"], ["transfer-encoding: chunked"])
        expected += b"9\r\ndata: 1\n\n\r\n"  # and no last chunk: the client sees the stream cut
    else:
        expected = response("200 OK", ["content-type: text/plain"], ["content-length: 10"], b"hello")
    assert normalize(await read_to_eof(stream)) == expected
    [record] = logs.records()
    assert (record["event"], record["response_started"]) == ("gateway_handler_failed", True)


async def test_one_connections_failure_does_not_affect_another(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    async def slow_stream(request: Request, responder: Responder) -> None:
        await responder.start(200, [("content-type", "text/event-stream")])
        for i in range(5):
            await trio.sleep(1)
            await responder.send(b"%d" % i)
        await responder.end()

    async def broken(request: Request, responder: Responder) -> None:
        await responder.start(200, [("content-type", "text/event-stream")])
        raise RuntimeError("boom")

    class BrokenReject(App):
        def reject(
            self, method: str, target: str, status: int, message: str
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            raise KeyError("the app's reject is broken too")

    server = await start(nursery, BrokenReject({"/slow": slow_stream, "/broken": broken}), logs)
    good = await connect(server.port)
    await good.send_all(get("/slow"))
    await trio.sleep(1.5)
    broken_stream = await connect(server.port)
    await broken_stream.send_all(get("/broken"))
    head = response("200 OK", ["content-type: text/event-stream"], ["transfer-encoding: chunked"])
    assert normalize(await read_to_eof(broken_stream)) == head
    garbage = await connect(server.port)
    await garbage.send_all(b"garbage\r\n\r\n")
    assert (await read_to_eof(garbage)).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert normalize(await read_exactly(good, len(chunked(b"0", b"1", b"2", b"3", b"4")))) == chunked(
        b"0", b"1", b"2", b"3", b"4"
    )
    assert trio.current_time() == 5.0
    events = [r["event"] for r in logs.records()]
    assert events == ["gateway_handler_failed", "gateway_request_refused", "gateway_reject_failed"]


async def test_a_reject_that_fails_still_answers_with_the_status_in_plain_text(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    class BrokenReject(App):
        def reject(
            self, method: str, target: str, status: int, message: str
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            raise KeyError("broken")

    server = await start(nursery, BrokenReject({}), logs)
    stream = await connect(server.port)
    await stream.send_all(b"garbage\r\n\r\n")
    expected = response(
        "400 Bad Request",
        ["content-type: text/plain; charset=utf-8"],
        ["content-length: 22", "connection: close"],
        b"malformed HTTP request",
    )
    assert normalize(await read_to_eof(stream)) == expected


# --- connections and shutdown ---


async def test_at_most_max_connections_are_served_at_once(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/hello": hello}), logs, ServerLimits(max_connections=1))
    first = await connect(server.port)
    await first.send_all(get("/hello"))
    await expect(first, fixed(b"hello"))
    second = await connect(server.port)  # the kernel completes the handshake: it waits in the backlog
    await second.send_all(get("/hello"))
    await trio.sleep(1)
    await first.aclose()
    await expect(second, fixed(b"hello"))
    assert trio.current_time() == 1.0


async def test_shutdown_stops_accepting_closes_after_new_requests_and_cancels_streams_at_the_grace(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    cancelled_at: list[float] = []

    async def forever(request: Request, responder: Responder) -> None:
        await responder.start(200, [("content-type", "text/event-stream")])
        try:
            while True:
                await responder.send(b"tick")
                await trio.sleep(1)
        except trio.Cancelled:
            cancelled_at.append(trio.current_time())
            raise

    server = await start(nursery, App({"/forever": forever, "/hello": hello}), logs, grace=10.0)
    streaming = await connect(server.port)
    await streaming.send_all(get("/forever"))
    idle = await connect(server.port)
    await idle.send_all(get("/hello"))
    await expect(idle, fixed(b"hello"))
    await trio.sleep(0.5)
    server.shutdown.set()
    await trio.sleep(1)
    with pytest.raises(OSError):
        await connect(server.port)
    await idle.send_all(get("/hello"))  # a new request on an open connection: answered, then closed
    assert normalize(await read_to_eof(idle)) == fixed(b"hello", close=True)
    with trio.fail_after(60):
        await server.stopped.wait()
    assert cancelled_at == [0.5 + 10.0]
    assert trio.current_time() == 0.5 + 10.0
    received = normalize(await read_to_eof(streaming))
    head = response("200 OK", ["content-type: text/event-stream"], ["transfer-encoding: chunked"])
    assert received == head + b"4\r\ntick\r\n" * 11  # at 0, 1, ... 10: then cut, with no last chunk
    assert logs.records()[-1]["event"] == "gateway_grace_over"
    assert logs.records()[-1]["cancelled"] == 1


async def test_shutdown_returns_as_soon_as_the_requests_in_progress_finish(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    async def three_seconds(request: Request, responder: Responder) -> None:
        await trio.sleep(3)
        await hello(request, responder)

    server = await start(nursery, App({"/slow": three_seconds, "/hello": hello}), logs, grace=10.0)
    slow = await connect(server.port)
    await slow.send_all(get("/slow"))
    idle = await connect(server.port)  # connected, no request: closed when serve returns
    await trio.sleep(1)
    server.shutdown.set()
    assert normalize(await read_to_eof(slow)) == fixed(b"hello", close=True)
    with trio.fail_after(60):
        await server.stopped.wait()
    assert trio.current_time() == 3.0
    await expect_eof(idle)
    assert logs.records() == []


async def test_shutdown_with_nothing_in_progress_returns_at_once(
    nursery: trio.Nursery, logs: LogCapture, autojump_clock: trio.testing.MockClock, connect: Connect
) -> None:
    server = await start(nursery, App({"/hello": hello}), logs)
    stream = await connect(server.port)
    await stream.send_all(get("/hello"))
    await expect(stream, fixed(b"hello"))
    server.shutdown.set()
    await server.stopped.wait()
    assert trio.current_time() == 0.0
    await expect_eof(stream)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="send_timeout"):
        ServerLimits(send_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        ServerLimits(max_connections=-1)
