"""`UpstreamClient.open`: a request with a body goes out as a head encoded once per
(method, URL, headers), and its response comes back as a `FastResponse`, with no httpx
request, response or header objects. It must send the very bytes that the httpx path
(`send(build_request(spec))`) sends, and read the response as httpx would: checked here
against a raw socket server on loopback that records every byte it gets."""

from __future__ import annotations

import functools
from typing import Any

import httpx
import pytest
import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import OPENAI_KEY
from streamactors import Config
from streamactors.http.client import UpstreamClient, body_chunks, close_response
from streamactors.http.fast.response import FastResponse, header_dict
from streamactors.testing.server import read_raw_request
from streamactors.wire.base import HttpRequestSpec

BODY = b"data: {}\n\n"


def _response(headers: list[tuple[bytes, bytes]], body: bytes = BODY) -> bytes:
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return b"HTTP/1.1 200 OK\r\n" + lines + b"content-length: %d\r\n\r\n" % len(body) + body


class RecordingServer:
    """HTTP/1.1 on loopback: records each request's bytes, answers each with `reply`."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1"))
        self.port = listeners[0].socket.getsockname()[1]

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buf = b""
        async with stream:
            while (request := await read_raw_request(stream, buf)) is not None:
                head, body, buf = request
                self.requests.append(head + b"\r\n\r\n" + body)
                await stream.send_all(self.reply)


@pytest.fixture
async def server(nursery: trio.Nursery) -> RecordingServer:
    srv = RecordingServer(_response([(b"content-type", b"text/event-stream")]))
    await srv.serve(nursery)
    return srv


def _client(port: int, **extra: Any) -> UpstreamClient:
    cfg = Config.from_dict(
        {
            "providers": {
                "openai": {
                    "kind": "openai",
                    "api_key": OPENAI_KEY,
                    "base_url": f"http://127.0.0.1:{port}/v1",
                    "max_retries": 0,
                    **extra,
                }
            }
        }
    )
    return UpstreamClient(cfg.providers["openai"])


def _spec(port: int, body: bytes = b'{"model": "m"}', *headers: tuple[str, str]) -> HttpRequestSpec:
    base = (("authorization", f"Bearer {OPENAI_KEY}"), ("content-type", "application/json"))
    return HttpRequestSpec("POST", f"http://127.0.0.1:{port}/v1/chat/completions", base + headers, body)


async def _read_all(response: Any) -> bytes:
    out = b""
    async for chunk in body_chunks(response):
        out += chunk
    await close_response(response)
    return out


async def test_the_same_bytes_go_out_as_from_the_httpx_path(server: RecordingServer) -> None:
    client = _client(server.port)
    for body in (b'{"model": "m"}', "é ✓".encode(), b"x" * 100_000):
        spec = _spec(server.port, body, ("x-extra", "1"))
        fast = await client.open(spec)
        assert type(fast) is FastResponse
        assert await _read_all(fast) == BODY
        slow = await client.send(client.build_request(spec))
        assert type(slow) is httpx.Response
        assert await _read_all(slow) == BODY
        assert server.requests[-2] == server.requests[-1]
        assert server.requests[-1].endswith(b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    # Requests with no body take the httpx path, and nothing else changes for them.
    empty = await client.open(_spec(server.port, b""))
    assert type(empty) is httpx.Response
    await _read_all(empty)
    assert b"\r\nContent-Length: 0\r\n" in server.requests[-1]
    assert server.connections == 1  # every response was read to its end: one kept-alive connection
    await client.aclose()


async def test_a_spec_with_its_own_content_length_takes_the_httpx_path(server: RecordingServer) -> None:
    # httpx sets the length in the header's own place, before x-after: not the head's end.
    client = _client(server.port)
    spec = _spec(server.port, b"{}", ("Content-Length", "7"), ("x-after", "1"))
    response = await client.open(spec)
    assert type(response) is httpx.Response
    await _read_all(response)
    await _read_all(await client.send(client.build_request(spec)))
    assert server.requests[-2] == server.requests[-1]
    assert server.requests[-1].count(b"Content-Length") == 1
    assert b"Content-Length: 2\r\nx-after: 1\r\n" in server.requests[-1]
    await client.aclose()


async def test_response_headers_read_as_httpx_reads_them(nursery: trio.Nursery) -> None:
    raw = [
        (b"Content-Type", b"text/event-stream"),
        (b"X-RateLimit-Remaining-Tokens", b"130"),
        (b"Vary", b"Accept"),
        (b"vary", b"Origin"),
        (b"X-Latin", "caf\xe9".encode("latin-1")),
    ]
    srv = RecordingServer(_response(raw))
    await srv.serve(nursery)
    client = _client(srv.port)
    fast = await client.open(_spec(srv.port))
    assert type(fast) is FastResponse
    expected = httpx.Response(200, headers=fast.raw_headers)
    assert fast.headers == {name: expected.headers[name] for name in expected.headers}
    assert fast.headers["vary"] == "Accept, Origin"
    assert fast.headers["x-latin"] == "café"
    assert fast.status_code == 200 and fast.http_version == b"HTTP/1.1" and fast.reason_phrase == b"OK"
    await _read_all(fast)
    await client.aclose()


async def test_cookies_the_upstream_sets_go_back(nursery: trio.Nursery) -> None:
    srv = RecordingServer(_response([(b"Set-Cookie", b"affinity=node-7; Path=/")]))
    await srv.serve(nursery)
    client = _client(srv.port)
    for _ in range(2):
        await _read_all(await client.open(_spec(srv.port)))
    assert b"cookie" not in srv.requests[0].lower()
    assert b"\r\nCookie: affinity=node-7\r\n" in srv.requests[1]
    await client.aclose()


async def test_a_request_that_asks_to_close_is_not_kept_alive(server: RecordingServer) -> None:
    client = _client(server.port)
    for _ in range(2):
        response = await client.open(_spec(server.port, b"{}", ("connection", "close")))
        assert type(response) is FastResponse
        await _read_all(response)
    assert server.connections == 2
    await client.aclose()


async def test_a_header_that_would_inject_a_line_is_refused_before_sending(server: RecordingServer) -> None:
    client = _client(server.port)
    with pytest.raises(httpx.LocalProtocolError):
        await client.open(_spec(server.port, b"{}", ("x-bad", "a\r\nx-injected: 1")))
    assert not server.requests
    await client.aclose()


async def test_an_environment_proxy_still_gets_the_request(
    server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The recording server plays the forward proxy: an http:// target arrives in absolute form.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = _client(server.port)
    spec = HttpRequestSpec("POST", "http://api.example.invalid/v1/chat/completions", (), b"{}")
    response = await client.open(spec)
    assert type(response) is httpx.Response
    await _read_all(response)
    assert server.requests[-1].startswith(b"POST http://api.example.invalid/v1/chat/completions HTTP/1.1\r\n")
    await client.aclose()


async def test_a_connection_closed_before_the_response_is_a_protocol_error(nursery: trio.Nursery) -> None:
    async def close_at_once(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, close_at_once, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    client = _client(port)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        await client.open(_spec(port))
    await client.aclose()


_header_bytes = st.binary(min_size=0, max_size=8).filter(lambda b: b"\r" not in b and b"\n" not in b)


@settings(max_examples=500)
@example([(b"B\xe9", b"\x80\x80")])  # UTF-8 only when name and value are joined: not UTF-8
@given(
    st.lists(
        st.tuples(st.sampled_from([b"A", b"a", b"X-Y", b"x-y", b"Set-Cookie", b"B\xe9"]), _header_bytes),
        max_size=8,
    )
)
def test_header_dict_is_what_httpx_headers_give(raw: list[tuple[bytes, bytes]]) -> None:
    headers = httpx.Headers(raw)
    assert header_dict(raw) == {name: headers[name] for name in headers}


async def test_idle_connection_hands_out_a_kept_alive_connection_for_open(server: RecordingServer) -> None:
    """`idle_connection` takes a kept-alive connection at once (None when there is none, or
    the request would take the httpx path); `open(spec, conn)` sends on it; closing it ends
    a wait for the response."""
    client = _client(server.port)
    spec = _spec(server.port)
    assert client.idle_connection(spec) is None  # nothing kept alive yet
    assert await _read_all(await client.open(spec)) == BODY
    assert client.idle_connection(_spec(server.port, b"")) is None  # no body: httpx's path
    conn = client.idle_connection(spec)
    assert conn is not None
    pool = client.transport.pool  # type: ignore[attr-defined]
    assert pool.idle_connections == 0 and pool.open_connections == 1  # taken, as acquire takes it
    assert client.idle_connection(spec) is None  # the only one is taken
    assert await _read_all(await client.open(spec, conn)) == BODY
    assert server.connections == 1 and len(server.requests) == 2
    assert pool.idle_connections == 1  # given back, kept alive

    # A server that never answers: closing the connection ends the wait for the head.
    server.reply = b""
    conn = client.idle_connection(spec)
    assert conn is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0.1)
        errors: list[BaseException] = []

        async def wait() -> None:
            try:
                await client.open(spec, conn)
            except httpx.ReadError as exc:
                errors.append(exc)

        nursery.start_soon(wait)
        await trio.sleep(0.1)
        conn.close()
    assert len(errors) == 1
    assert pool.open_connections == 0  # closed and given back
    pool.close()
    assert client.idle_connection(spec) is None  # a closed pool hands out nothing
    await client.aclose()
