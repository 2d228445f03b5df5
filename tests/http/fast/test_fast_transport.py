"""`FastTransport` over real sockets on 127.0.0.1: against the fake upstream, an h11
reference server (plain and TLS with `trustme` certificates) and raw misbehaving servers.

The reference server counts the connections it accepts and closes, so keep-alive reuse
and "an abandoned response closes its connection" are asserted from the server's side.
Timeouts run on the `autojump_clock`: a server that never answers costs no wall time.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import h11
import httpx
import orjson
import pytest
import trio
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from streamactors.http.fast import FastTransport
from streamactors.http.fast.response import ResponseStream
from streamactors.testing import FakeUpstream, token_text
from streamactors.wire.sse import SSEDecoder, SSEEvent

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


class LoopbackServer:
    """Serves each accepted connection with `handler(stream)`; counts connections; optional TLS."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.port = 0
        self.accepted = 0
        self.closed = 0
        self._changed = trio.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[LoopbackServer] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self)

    async def wait_closed(self, n: int) -> None:
        """Until the server has seen `n` connections end."""
        with trio.fail_after(10):
            while self.closed < n:
                await self._changed.wait()

    async def _handle(self, tcp: trio.SocketStream) -> None:
        self.accepted += 1
        stream: trio.abc.Stream = tcp
        try:
            if self.tls is not None:
                stream = trio.SSLStream(tcp, self.tls, server_side=True, https_compatible=True)
                await stream.do_handshake()
            await self.handler(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)
            self.closed += 1
            self._changed.set()
            self._changed = trio.Event()


@attrs.frozen
class Reply:
    """What the h11 reference server answers. Body pieces are sent one `Data` event each:
    one chunk each when the reply is chunked (no content-length header)."""

    status: int = 200
    headers: list[tuple[str, str]] = attrs.field(factory=list)
    body: list[bytes] = attrs.field(factory=list)
    trailers: list[tuple[str, str]] = attrs.field(factory=list)


def h11_app(respond: Callable[[h11.Request, bytes], Reply]) -> Handler:
    """A keep-alive HTTP/1.1 server loop on h11 around `respond(request, body)`."""

    async def handler(stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            request: h11.Request | None = None
            body = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:  # ConnectionClosed
                    return
            assert request is not None
            reply = respond(request, body)
            events: list[Any] = [h11.Response(status_code=reply.status, headers=reply.headers)]
            events += [h11.Data(data=piece) for piece in reply.body]
            events.append(h11.EndOfMessage(headers=reply.trailers))
            for ev in events:
                data = conn.send(ev)
                if data:
                    await stream.send_all(data)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    return handler


async def read_request_head(stream: trio.abc.Stream) -> bytes:
    """Bytes up to the end of a request head (the raw servers serve bodiless GETs)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = await stream.receive_some(65536)
        if not more:
            raise trio.BrokenResourceError("client went away")
        data += more
    return data


def raw_app(*responses: bytes, then: str = "close") -> Handler:
    """Answer successive requests with `responses` verbatim, then `then`: close, reset, hang or deaf."""

    async def handler(stream: trio.abc.Stream) -> None:
        for response in responses:
            await read_request_head(stream)
            await stream.send_all(response)
        if then == "hang":  # never answer, but notice the client closing
            while await stream.receive_some(65536):
                pass
        elif then == "deaf":  # read nothing more: the client's writes fill the buffers
            await trio.sleep_forever()
        elif then == "reset":
            reset(stream)

    return handler


async def _abort_later(body: ResponseStream) -> None:
    await trio.sleep(0.05)
    body.abort()


def reset(stream: trio.abc.Stream) -> None:
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    assert isinstance(stream, trio.SocketStream)
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    stream.socket.close()


def ok(request: h11.Request, body: bytes) -> Reply:
    return Reply(body=[b"hello ", b"world"])


async def start(nursery: trio.Nursery, handler: Handler, tls: ssl.SSLContext | None = None) -> LoopbackServer:
    server: LoopbackServer = await nursery.start(LoopbackServer(handler, tls).serve)
    return server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=FastTransport()) as c:
        yield c


def transport_of(client: httpx.AsyncClient) -> FastTransport:
    transport = client._transport
    assert isinstance(transport, FastTransport)
    return transport


CHAT = {"model": "m~tokens=100", "messages": [], "stream": True}


async def sse_tokens(response: httpx.Response) -> list[str]:
    decoder = SSEDecoder()
    tokens: list[str] = []
    async for chunk in response.aiter_bytes():
        events: list[SSEEvent] = []
        decoder.feed_into(chunk, events)
        for event in events:
            if event.data != "[DONE]":
                for choice in orjson.loads(event.data)["choices"]:
                    tokens.append(choice["delta"].get("content") or "")
    return [t for t in tokens if t]


class TestAgainstFakeUpstream:
    async def test_streams_an_openai_response(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        fake: FakeUpstream = await nursery.start(FakeUpstream().serve)
        async with client.stream("POST", f"{fake.base_url}/v1/chat/completions", json=CHAT) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.http_version == "HTTP/1.1"
            assert await sse_tokens(response) == [token_text(i) for i in range(100)]

    async def test_same_bytes_as_the_default_transport(self, nursery: trio.Nursery) -> None:
        fake: FakeUpstream = await nursery.start(FakeUpstream(events_per_chunk=7).serve)
        bodies = []
        for transport in (httpx.AsyncHTTPTransport(), FastTransport()):
            async with httpx.AsyncClient(transport=transport) as c:
                body = b""
                payload = {**CHAT, "model": "m~tokens=500~unicode=1"}
                async with c.stream("POST", f"{fake.base_url}/v1/chat/completions", json=payload) as response:
                    async for chunk in response.aiter_bytes():
                        body += chunk
                bodies.append(body)
        assert bodies[0] == bodies[1]
        assert bodies[0].endswith(b"data: [DONE]\n\n")

    async def test_many_events_per_read(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        """A fast upstream fills the socket faster than we read: each read carries many events."""
        fake: FakeUpstream = await nursery.start(FakeUpstream().serve)
        reads = 0
        async with client.stream(
            "POST", f"{fake.base_url}/v1/chat/completions", json={**CHAT, "model": "m~tokens=3000"}
        ) as response:
            async for _ in response.aiter_raw():
                reads += 1
                await trio.sleep(0.001)  # a slow consumer lets chunks pile up in the socket
        assert fake.chunks_sent > 3000
        assert reads < fake.chunks_sent / 5

    async def test_chunks_larger_than_a_read(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        fake: FakeUpstream = await nursery.start(FakeUpstream(events_per_chunk=2000).serve)
        payload = {**CHAT, "model": "m~tokens=5000"}
        async with client.stream("POST", f"{fake.base_url}/v1/chat/completions", json=payload) as response:
            assert await sse_tokens(response) == [token_text(i) for i in range(5000)]

    async def test_error_status_then_reuse(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        fake: FakeUpstream = await nursery.start(FakeUpstream().serve)
        url = f"{fake.base_url}/v1/chat/completions"
        response = await client.post(url, json={**CHAT, "model": "m~fail=status:429~retry_after=3"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3.0"
        assert "injected" in response.json()["error"]["message"]
        async with client.stream("POST", url, json=CHAT) as response:
            assert len(await sse_tokens(response)) == 100
        assert transport_of(client).pool.connections_opened == 1

    async def test_dropped_stream_is_a_remote_protocol_error(
        self, nursery: trio.Nursery, client: httpx.AsyncClient
    ) -> None:
        fake: FakeUpstream = await nursery.start(FakeUpstream().serve)
        payload = {**CHAT, "model": "m~tokens=50~fail=drop@10"}
        async with client.stream("POST", f"{fake.base_url}/v1/chat/completions", json=payload) as response:
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                await sse_tokens(response)
        assert transport_of(client).pool.open_connections == 0


class TestBodies:
    async def test_chunked_with_trailers(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, h11_app(lambda r, b: Reply(body=[b"a", b"bc"], trailers=[("x-sum", "3")])))
        response = await client.get(server.url)
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.content == b"abc"

    async def test_content_length(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        body = bytes(range(256)) * 1000
        pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
        server = await start(
            nursery, h11_app(lambda r, b: Reply(headers=[("content-length", str(len(body)))], body=pieces))
        )
        for _ in range(3):
            assert (await client.get(server.url)).content == body
        assert server.accepted == 1

    async def test_close_delimited(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, raw_app(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"))
        assert (await client.get(server.url)).text == "until the end"
        await server.wait_closed(1)
        assert transport_of(client).pool.open_connections == 0

    async def test_http_1_0_response(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, raw_app(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", then="hang"))
        response = await client.get(server.url)
        assert (response.http_version, response.text) == ("HTTP/1.0", "hi")
        await server.wait_closed(1)  # not kept alive: we closed it

    @pytest.mark.parametrize("encoding", ["gzip", "deflate"])
    @pytest.mark.parametrize("framing", ["chunked", "length"])
    async def test_content_encoding_is_decoded_by_httpx(
        self, nursery: trio.Nursery, client: httpx.AsyncClient, encoding: str, framing: str
    ) -> None:
        text = b"".join(b'data: {"token": %d}\n\n' % i for i in range(2000))
        packed = gzip.compress(text) if encoding == "gzip" else zlib.compress(text)
        pieces = [packed[i : i + 97] for i in range(0, len(packed), 97)]
        headers = [("content-encoding", encoding)]
        if framing == "length":
            headers.append(("content-length", str(len(packed))))
        server = await start(nursery, h11_app(lambda r, b: Reply(headers=headers, body=pieces)))
        async with client.stream("GET", server.url) as response:
            raw = b"".join([piece async for piece in response.aiter_raw()])
        assert raw == packed
        assert (await client.get(server.url)).content == text

    @pytest.mark.parametrize("status", [204, 304])
    async def test_bodiless_statuses_and_head(
        self, nursery: trio.Nursery, client: httpx.AsyncClient, status: int
    ) -> None:
        server = await start(nursery, h11_app(lambda r, b: Reply(status=status)))
        assert (await client.get(server.url)).status_code == status
        response = await client.head(server.url)
        assert response.content == b""
        assert server.accepted == 1

    async def test_interim_responses_are_skipped(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(
            nursery,
            raw_app(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        )
        assert (await client.get(server.url)).text == "ok"

    async def test_request_bodies(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        """Whole and streamed (chunked) request bodies reach an h11 server intact."""

        def echo(request: h11.Request, body: bytes) -> Reply:
            return Reply(headers=[("content-length", str(len(body)))], body=[body])

        server = await start(nursery, h11_app(echo))
        assert (await client.post(server.url, content=b"x" * 100_000)).content == b"x" * 100_000

        async def parts() -> AsyncIterator[bytes]:
            for i in range(10):
                yield b"part%d;" % i
            yield b""

        response = await client.post(server.url, content=parts())
        assert response.content == b"".join(b"part%d;" % i for i in range(10))
        assert server.accepted == 1

    async def test_header_injection_is_refused(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, h11_app(ok))
        with pytest.raises(httpx.LocalProtocolError):
            await client.get(server.url, headers={"x-evil": "a\r\nInjected: 1"})


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class TestTLS:
    def server_context(self, ca: trustme.CA, *names: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(ctx)
        return ctx

    def client_context(self, ca: trustme.CA) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return ctx

    async def test_streams_over_tls_with_reuse(self, nursery: trio.Nursery, ca: trustme.CA) -> None:
        body = [b"data: %d\n\n" % i for i in range(1000)]
        server = await start(nursery, h11_app(lambda r, b: Reply(body=body)), self.server_context(ca, "127.0.0.1"))
        async with httpx.AsyncClient(transport=FastTransport(verify=self.client_context(ca))) as c:
            for _ in range(3):
                assert (await c.get(server.url)).content == b"".join(body)
        assert server.accepted == 1

    async def test_untrusted_certificate_is_a_connect_error(self, nursery: trio.Nursery, ca: trustme.CA) -> None:
        server = await start(nursery, h11_app(ok), self.server_context(ca, "127.0.0.1"))
        async with httpx.AsyncClient(transport=FastTransport(verify=ssl.create_default_context())) as c:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await c.get(server.url)

    async def test_verify_false(self, nursery: trio.Nursery, ca: trustme.CA) -> None:
        server = await start(nursery, h11_app(ok), self.server_context(ca, "127.0.0.1"))
        async with httpx.AsyncClient(transport=FastTransport(verify=False)) as c:
            assert (await c.get(server.url)).text == "hello world"

    async def test_sni_hostname_extension(self, nursery: trio.Nursery, ca: trustme.CA) -> None:
        server = await start(nursery, h11_app(ok), self.server_context(ca, "api.example.test"))
        async with httpx.AsyncClient(transport=FastTransport(verify=self.client_context(ca))) as c:
            with pytest.raises(httpx.ConnectError):
                await c.get(server.url)
            response = await c.get(server.url, extensions={"sni_hostname": "api.example.test"})
            assert response.text == "hello world"

    async def test_handshake_timeout_is_a_connect_timeout(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        server = await start(nursery, raw_app(then="hang"))  # accepts TCP, never speaks TLS
        async with httpx.AsyncClient(transport=FastTransport(), timeout=httpx.Timeout(5.0, connect=2.0)) as c:
            start_time = trio.current_time()
            with pytest.raises(httpx.ConnectTimeout):
                await c.get(server.url.replace("http:", "https:"))
            assert trio.current_time() - start_time == pytest.approx(2.0)
            pool = transport_of(c).pool
            assert (pool.open_connections, pool.connecting) == (0, 0)


class TestPool:
    async def test_keep_alive_reuse(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, h11_app(ok))
        for _ in range(5):
            assert (await client.get(server.url)).text == "hello world"
        assert server.accepted == 1
        assert transport_of(client).pool.idle_connections == 1

    async def test_abandoned_response_closes_its_connection(
        self, nursery: trio.Nursery, client: httpx.AsyncClient
    ) -> None:
        server = await start(nursery, h11_app(lambda r, b: Reply(body=[b"x" * 1000] * 1000)))
        async with client.stream("GET", server.url) as response:
            async for _ in response.aiter_bytes():
                break
        await server.wait_closed(1)
        assert transport_of(client).pool.open_connections == 0
        assert (await client.get(server.url)).content == b"x" * 1_000_000
        assert server.accepted == 2

    async def test_closing_after_a_cancelled_read_closes_the_connection(
        self, nursery: trio.Nursery, client: httpx.AsyncClient
    ) -> None:
        server = await start(
            nursery, raw_app(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n", then="hang")
        )
        async with client.stream("GET", server.url) as response:
            chunks = response.aiter_bytes()
            assert await chunks.__anext__() == b"hi"
            with trio.move_on_after(0.05):
                await chunks.__anext__()
            await chunks.aclose()
        await server.wait_closed(1)
        assert transport_of(client).pool.open_connections == 0

    async def test_a_cancelled_read_on_a_plain_socket_can_be_taken_up_again(self, nursery: trio.Nursery) -> None:
        """A receive cancelled while it waits has read nothing (`EagerSocketStream`): the body
        goes on from where it was, whole, and the connection is kept for the next request."""
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

        async def handler(stream: trio.abc.Stream) -> None:
            await read_request_head(stream)
            await stream.send_all(head + b"2\r\nhi\r\n")
            await trio.sleep(0.2)
            await stream.send_all(b"6\r\n there\r\n0\r\n\r\n")
            await read_request_head(stream)
            await stream.send_all(head + b"2\r\nok\r\n0\r\n\r\n")

        server = await start(nursery, handler)
        transport = FastTransport()
        response = await transport.handle_async_request(httpx.Request("GET", server.url))
        body = response.stream
        assert isinstance(body, ResponseStream)
        assert await body.__anext__() == b"hi"
        with trio.move_on_after(0.05) as waited:
            await body.__anext__()
        assert waited.cancelled_caught and body.is_open
        assert [part async for part in body] == [b" there"]
        again = await transport.handle_async_request(httpx.Request("GET", server.url))
        assert await again.aread() == b"ok"
        assert server.accepted == 1
        await transport.aclose()

    async def test_an_aborted_body_fails_its_reads(self, nursery: trio.Nursery) -> None:
        """`abort()` closes the connection at once, from any task: a read waiting on it fails,
        and so does every later read (it does not look like the end of the body)."""
        server = await start(
            nursery, raw_app(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n", then="hang")
        )
        transport = FastTransport()
        response = await transport.handle_async_request(httpx.Request("GET", server.url))
        body = response.stream
        assert isinstance(body, ResponseStream)
        assert await body.__anext__() == b"hi"
        nursery.start_soon(_abort_later, body)
        with trio.fail_after(5), pytest.raises(httpx.ReadError):
            await body.__anext__()  # waits for data that never comes, until the abort
        with pytest.raises(httpx.ReadError, match="closed"):
            await body.__anext__()
        assert not body.is_open
        await server.wait_closed(1)
        assert transport.pool.open_connections == 0
        await transport.aclose()

    async def test_server_closing_an_idle_connection(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        """Without `Connection: close` the connection goes idle; once the server closes it, the
        next request sees it is stale and opens another instead of failing."""
        response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        server = await start(nursery, raw_app(response))
        assert (await client.get(server.url)).text == "ok"
        await server.wait_closed(1)
        assert (await client.get(server.url)).text == "ok"
        assert server.accepted == 2

    async def test_connection_close_is_honoured(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, h11_app(lambda r, b: Reply(headers=[("connection", "close")], body=[b"x"])))
        for _ in range(3):
            assert (await client.get(server.url)).text == "x"
        assert server.accepted == 3
        assert transport_of(client).pool.open_connections == 0

    async def test_connection_close_request_header(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, h11_app(ok))
        await client.get(server.url, headers={"connection": "close"})
        await server.wait_closed(1)
        assert transport_of(client).pool.open_connections == 0

    async def test_local_address(self, nursery: trio.Nursery) -> None:
        seen: list[str] = []

        async def peer(stream: trio.abc.Stream) -> None:
            assert isinstance(stream, trio.SocketStream)
            seen.append(stream.socket.getpeername()[0])
            await h11_app(ok)(stream)

        server = await start(nursery, peer)
        async with httpx.AsyncClient(transport=FastTransport(local_address="127.0.0.1")) as c:
            assert (await c.get(server.url)).text == "hello world"
        assert seen == ["127.0.0.1"]

    async def test_keepalive_expiry(self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
        server = await start(nursery, h11_app(ok))
        limits = httpx.Limits(keepalive_expiry=5.0)
        async with httpx.AsyncClient(transport=FastTransport(limits=limits)) as c:
            await c.get(server.url)
            await trio.sleep(4.9)
            await c.get(server.url)
            assert server.accepted == 1
            await trio.sleep(5.1)
            await c.get(server.url)
            assert server.accepted == 2

    async def test_max_connections_queues_requests(self, nursery: trio.Nursery) -> None:
        gate = trio.Event()

        async def slow(stream: trio.abc.Stream) -> None:
            while True:
                await read_request_head(stream)
                await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
                await gate.wait()
                await stream.send_all(b"0\r\n\r\n")

        server = await start(nursery, slow)
        limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
        done: list[str] = []
        async with httpx.AsyncClient(transport=FastTransport(limits=limits)) as c:

            async def get() -> None:
                done.append((await c.get(server.url)).text)

            async with trio.open_nursery() as inner:
                for _ in range(5):
                    inner.start_soon(get)
                await trio.testing.wait_all_tasks_blocked()
                assert server.accepted == 2  # the other three wait for a connection
                gate.set()
            assert done == ["a"] * 5
            assert server.accepted == 2

    async def test_max_keepalive(self, nursery: trio.Nursery) -> None:
        gate = trio.Event()

        async def gated(stream: trio.abc.Stream) -> None:
            await read_request_head(stream)
            await gate.wait()
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
            while await stream.receive_some(65536):
                pass

        server = await start(nursery, gated)
        limits = httpx.Limits(max_connections=3, max_keepalive_connections=1)
        async with httpx.AsyncClient(transport=FastTransport(limits=limits)) as c:
            async with trio.open_nursery() as inner:
                for _ in range(3):
                    inner.start_soon(c.get, server.url)
                await trio.testing.wait_all_tasks_blocked()
                gate.set()
            assert server.accepted == 3
            assert transport_of(c).pool.idle_connections == 1
            await server.wait_closed(2)

    async def test_pool_timeout(self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
        server = await start(nursery, raw_app(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", then="hang"))
        limits = httpx.Limits(max_connections=1)
        timeout = httpx.Timeout(None, pool=3.0)
        async with (
            httpx.AsyncClient(transport=FastTransport(limits=limits), timeout=timeout) as c,
            c.stream("GET", server.url),
        ):
            start_time = trio.current_time()
            with pytest.raises(httpx.PoolTimeout):
                await c.get(server.url)
            assert trio.current_time() - start_time == pytest.approx(3.0)

    async def test_idle_connection_of_another_origin_is_evicted(self, nursery: trio.Nursery) -> None:
        one = await start(nursery, h11_app(ok))
        two = await start(nursery, h11_app(ok))
        async with httpx.AsyncClient(transport=FastTransport(limits=httpx.Limits(max_connections=1))) as c:
            await c.get(one.url)
            await c.get(two.url)
            await one.wait_closed(1)
            assert transport_of(c).pool.open_connections == 1

    async def test_aclose_closes_every_socket(self, nursery: trio.Nursery) -> None:
        server = await start(nursery, h11_app(ok))
        transport = FastTransport()
        async with httpx.AsyncClient(transport=transport) as c:
            await c.get(server.url)
        await server.wait_closed(1)
        with pytest.raises(RuntimeError, match="closed"):
            await transport.handle_async_request(httpx.Request("GET", server.url))

    async def test_aclose_fails_responses_in_flight(self, nursery: trio.Nursery) -> None:
        server = await start(nursery, raw_app(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", then="hang"))
        transport = FastTransport()
        async with httpx.AsyncClient(transport=transport) as c, c.stream("GET", server.url) as response:
            await transport.aclose()
            with pytest.raises(httpx.ReadError):
                await response.aread()
        await server.wait_closed(1)


class TestErrors:
    async def test_connect_refused(self, client: httpx.AsyncClient) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
        pool = transport_of(client).pool
        assert (pool.open_connections, pool.connecting) == (0, 0)

    async def test_read_timeout_before_the_head(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        server = await start(nursery, raw_app(then="hang"))
        async with httpx.AsyncClient(transport=FastTransport(), timeout=httpx.Timeout(None, read=4.0)) as c:
            start_time = trio.current_time()
            with pytest.raises(httpx.ReadTimeout):
                await c.get(server.url)
            assert trio.current_time() - start_time == pytest.approx(4.0)
            assert transport_of(c).pool.open_connections == 0
        await server.wait_closed(1)

    async def test_read_timeout_mid_body(self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        server = await start(nursery, raw_app(head, then="hang"))
        async with httpx.AsyncClient(transport=FastTransport(), timeout=httpx.Timeout(None, read=4.0)) as c:
            async with c.stream("GET", server.url) as response:
                chunks = response.aiter_bytes()
                assert await chunks.__anext__() == b"abc"
                start_time = trio.current_time()
                with pytest.raises(httpx.ReadTimeout):
                    await chunks.__anext__()
                assert trio.current_time() - start_time == pytest.approx(4.0)
            await server.wait_closed(1)

    async def test_write_timeout(self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
        server = await start(nursery, raw_app(then="deaf"))  # never reads the request
        async with httpx.AsyncClient(transport=FastTransport(), timeout=httpx.Timeout(None, write=1.0)) as c:
            start_time = trio.current_time()
            with pytest.raises(httpx.WriteTimeout):
                await c.post(server.url, content=b"x" * 64 * 1024 * 1024)
            assert trio.current_time() - start_time == pytest.approx(1.0)
            assert transport_of(c).pool.open_connections == 0

    async def test_peer_closes_mid_body(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, raw_app(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"))
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            await client.get(server.url)

    async def test_peer_closes_short_of_content_length(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, raw_app(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"))
        with pytest.raises(httpx.RemoteProtocolError, match="5 bytes missing"):
            await client.get(server.url)

    async def test_peer_closes_without_a_response(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        server = await start(nursery, raw_app(b"HTTP/1.1 200 O"))
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.get(server.url)

    async def test_peer_resets_mid_body(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        """A reset is a `ReadError` (as with httpx's default transport); a clean close is a
        `RemoteProtocolError`. Both are `httpx.TransportError`."""
        got_first = trio.Event()

        async def handler(stream: trio.abc.Stream) -> None:
            await read_request_head(stream)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await got_first.wait()
            reset(stream)

        server = await start(nursery, handler)
        async with client.stream("GET", server.url) as response:
            chunks = response.aiter_bytes()
            assert await chunks.__anext__() == b"hello"
            got_first.set()
            with pytest.raises(httpx.ReadError):
                await chunks.__anext__()
        assert transport_of(client).pool.open_connections == 0

    @pytest.mark.parametrize(
        "response",
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        ],
    )
    async def test_malformed_responses(self, nursery: trio.Nursery, client: httpx.AsyncClient, response: bytes) -> None:
        server = await start(nursery, raw_app(response, then="hang"))
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url)
        await server.wait_closed(1)

    async def test_unsupported_scheme(self, client: httpx.AsyncClient) -> None:
        with pytest.raises(httpx.UnsupportedProtocol):
            await transport_of(client).handle_async_request(httpx.Request("GET", "ftp://127.0.0.1/"))


@settings(max_examples=40, deadline=None)
@given(
    garbage=st.binary(max_size=300),
    prefix=st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]),
)
def test_garbage_from_the_server_raises_only_httpx_errors(garbage: bytes, prefix: bytes) -> None:
    """Whatever a server sends, the caller sees a response or an httpx error, never anything else.
    (A sync test running its own trio loop per example: Hypothesis drives the examples.)"""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await start(nursery, raw_app(prefix + garbage))
            async with httpx.AsyncClient(transport=FastTransport()) as c:
                try:
                    await c.get(server.url)
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.DecodingError):
                    pass
                assert transport_of(c).pool.open_connections <= 1
            nursery.cancel_scope.cancel()

    trio.run(main)


class TestFallback:
    def test_what_falls_back(self) -> None:
        assert FastTransport().fallback is None
        assert FastTransport(proxy="http://127.0.0.1:3128").fallback is not None
        assert FastTransport(uds="/tmp/x.sock").fallback is not None
        assert FastTransport(retries=2).fallback is not None
        assert FastTransport(socket_options=[]).fallback is not None

    async def test_requests_go_through_httpx_default_transport(self, nursery: trio.Nursery) -> None:
        server = await start(nursery, h11_app(ok))
        transport = FastTransport(retries=1)
        async with httpx.AsyncClient(transport=transport) as c:
            assert (await c.get(server.url)).text == "hello world"
        assert transport.pool.connections_opened == 0
