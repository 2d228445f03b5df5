"""`FastTransport`: an httpx transport for long-lived streaming responses over HTTP/1.1.

Use it where httpx's default transport would go: `httpx.AsyncClient(transport=FastTransport())`.
httpx still builds the request (URL, auth, headers, body encoding) and still decodes
`Content-Encoding` (gzip, deflate, ...) in `Response.aiter_bytes()`: the stream handed to
httpx yields the raw, still-encoded body. `send_head()` takes a request whose head is encoded
already (what `streamactors.http.client.UpstreamClient.open` sends) and returns a
`FastResponse`, with no httpx objects on either side.

What it does differently from httpx's default transport (httpcore + h11): each read of the
response body is one `receive_some` of up to `read_size` (64 KiB) bytes, decoded in bulk, so
one read holding a hundred small chunks becomes one bytes object (and a downstream SSE
decoder gets a hundred events per call) instead of a hundred trips through h11, httpcore
and httpx. Sockets are trio's; TLS is the standard library's `ssl` through `trio.SSLStream`.
Sends and receives take fewer trips through trio's scheduler and hold no bytes while they wait (`eager.py`).

Falls back to `httpx.AsyncHTTPTransport` (every request goes through it) when constructed
with what it does not support: `proxy`, `http2=True` (or `http1=False`), `uds`, `retries`
or `socket_options`. Proxies taken from the environment are httpx's business: the client
mounts its own default transports for them. Only `http://` and `https://` URLs are served.

Errors are httpx's own, chosen by type: `ConnectTimeout`, `ReadTimeout`, `WriteTimeout`,
`PoolTimeout` from the request's `extensions["timeout"]` (read and write timeouts apply to
each socket operation, as in httpcore); `ConnectError` when the connection or TLS handshake
fails; `ReadError`/`WriteError` when the socket fails (a reset by the peer is a `ReadError`,
as with httpx's default transport); `RemoteProtocolError` when the peer breaks HTTP
framing, including closing the connection before the body is complete; `LocalProtocolError`
for a header value that would inject a line.

A connection goes back to the pool only after its response was read to the end; a response
closed early, a failed or cancelled read closes its connection. Close every response
(`async with client.stream(...)` or `await response.aclose()`), as with any httpx transport:
an unclosed response keeps its connection, and its slot in the pool, until the transport
is closed.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import trio

from .body import decoder_for
from .eager import EagerSocketStream
from .h1 import (
    DEFAULT_MAX_HEAD_BYTES,
    FramingError,
    ResponseHead,
    ResponseHeadReader,
    body_framing,
    encode_request_head,
)
from .pool import Connection, ConnectionPool, Origin, PoolTimeoutError
from .response import FastResponse, ResponseStream, describe, receive, send

__all__ = ["DEFAULT_READ_SIZE", "FastTransport"]

#: Bytes asked of the socket per read (one read per body piece handed to httpx).
DEFAULT_READ_SIZE = 64 * 1024

_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_DEFAULT_PORTS = {b"http": 80, b"https": 443}


class FastTransport(httpx.AsyncBaseTransport):
    """An HTTP/1.1 transport on trio sockets with a bulk body decoder (see the module docstring).

    The arguments mirror `httpx.AsyncHTTPTransport`'s; `verify` takes an `ssl.SSLContext`
    or a bool, and `limits` sets the pool (max connections, max keep-alive, keep-alive expiry).
    """

    def __init__(
        self,
        verify: ssl.SSLContext | bool = True,
        cert: str | tuple[str, str] | tuple[str, str, str] | None = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        proxy: httpx.Proxy | httpx.URL | str | None = None,
        uds: str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[Any] | None = None,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
    ) -> None:
        #: The `httpx.AsyncHTTPTransport` serving every request, when asked for what this one lacks.
        self.fallback: httpx.AsyncHTTPTransport | None = None
        if proxy is not None or http2 or not http1 or uds is not None or retries or socket_options is not None:
            self.fallback = httpx.AsyncHTTPTransport(
                verify=verify,
                cert=cert,
                trust_env=trust_env,
                http1=http1,
                http2=http2,
                limits=limits,
                proxy=proxy,
                uds=uds,
                local_address=local_address,
                retries=retries,
                socket_options=socket_options,
            )
        self._verify = verify
        self._cert = cert
        self._trust_env = trust_env
        self._ssl_context: ssl.SSLContext | None = None
        self._local_address = local_address
        self.read_size = read_size
        self.max_head_bytes = max_head_bytes
        #: The keep-alive pool (its counters are handy in tests and metrics).
        self.pool = ConnectionPool(
            max_connections=limits.max_connections,
            max_keepalive=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.fallback is not None:
            return await self.fallback.handle_async_request(request)
        url = request.url
        scheme = url.raw_scheme
        default_port = _DEFAULT_PORTS.get(scheme)
        if default_port is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme.decode('ascii')!r}", request=request)
        origin: Origin = (scheme, url.raw_host, url.port or default_port)
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        conn = await self._acquire(origin, timeouts, request)
        try:
            conn.requests += 1
            await self._send_request(conn, request, timeouts.get("write"))
        except BaseException:
            self.pool.release(conn, reuse=False)
            raise
        keep_alive = "close" not in request.headers.get("connection", "").lower()
        head, stream = await self._receive_head(conn, request.method.encode("ascii"), timeouts, keep_alive, request)
        return httpx.Response(
            status_code=head.status_code,
            headers=head.headers,
            stream=stream,
            extensions={"http_version": head.http_version, "reason_phrase": head.reason_phrase},
        )

    async def send_head(
        self,
        origin: Origin,
        head: bytes,
        body: bytes,
        timeouts: Mapping[str, float | None],
        *,
        method: bytes = b"POST",
        keep_alive: bool = True,
        conn: Connection | None = None,
    ) -> FastResponse:
        """Send a request whose head is encoded already, and read the response head.

        `head` is the request line and header lines with their closing blank line (as
        `encode_request_head` makes them, with Content-Length), `body` the whole body.
        `keep_alive` is False when the request itself asks for `Connection: close`.
        Raises the same httpx errors as `handle_async_request`, without a request attached.
        Only for a transport without a fallback (`fallback is None`). `conn`: a connection to
        `origin` taken from the pool already (`ConnectionPool.take_idle`), to send on."""
        if self.fallback is not None:
            raise RuntimeError("send_head: this transport sends everything through its fallback")
        if conn is None:
            conn = await self._acquire(origin, timeouts, None)
        try:
            conn.requests += 1
            await send(conn.stream, head + body if body else head, timeouts.get("write"), None)
        except BaseException:
            self.pool.release(conn, reuse=False)
            raise
        response_head, stream = await self._receive_head(conn, method, timeouts, keep_alive, None)
        return FastResponse(
            response_head.status_code,
            response_head.headers,
            stream,
            response_head.http_version,
            response_head.reason_phrase,
        )

    async def aclose(self) -> None:
        """Close every pooled connection, idle or in use (their responses then fail with `ReadError`)."""
        self.pool.close()
        if self.fallback is not None:
            await self.fallback.aclose()

    # --- internals ---------------------------------------------------------------

    async def _acquire(
        self, origin: Origin, timeouts: Mapping[str, float | None], request: httpx.Request | None
    ) -> Connection:
        async def opener() -> Connection:
            return await self._open(origin, request, timeouts.get("connect"))

        try:
            return await self.pool.acquire(origin, opener, pool_timeout=timeouts.get("pool"))
        except PoolTimeoutError as exc:
            raise httpx.PoolTimeout(str(exc), request=request) from exc

    async def _receive_head(
        self,
        conn: Connection,
        method: bytes,
        timeouts: Mapping[str, float | None],
        keep_alive: bool,
        request: httpx.Request | None,
    ) -> tuple[ResponseHead, ResponseStream]:
        """Read the response head off `conn` (the request is sent) and open its body stream;
        on any failure the connection is closed."""
        read_timeout = timeouts.get("read")
        try:
            reader = ResponseHeadReader(self.max_head_bytes)
            while True:
                data = await receive(conn.stream, self.read_size, read_timeout, request)
                if not data:
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
                head = reader.feed(data)
                if head is not None:
                    break
            framing = body_framing(head, method)
            decoder = decoder_for(framing)
            first = decoder.feed(reader.unused) if reader.unused else b""
        except FramingError as exc:
            self.pool.release(conn, reuse=False)
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except BaseException:
            self.pool.release(conn, reuse=False)
            raise
        keep_alive = framing.keep_alive and keep_alive
        stream = ResponseStream(self.pool, conn, decoder, first, request, read_timeout, keep_alive, self.read_size)
        return head, stream

    def _get_ssl_context(self) -> ssl.SSLContext:
        # Built on first use: loading the CA bundle costs tens of milliseconds, wasted on plain HTTP.
        if self._ssl_context is None:
            if isinstance(self._verify, ssl.SSLContext) and self._cert is None:
                self._ssl_context = self._verify
            else:
                ctx = httpx.create_ssl_context(verify=self._verify, cert=self._cert, trust_env=self._trust_env)
                if ctx is not self._verify:
                    ctx.set_alpn_protocols(["http/1.1"])
                self._ssl_context = ctx
        return self._ssl_context

    async def _open(
        self, origin: Origin, request: httpx.Request | None, connect_timeout: float | None
    ) -> Connection:
        scheme, raw_host, port = origin
        host = raw_host.decode("ascii")
        try:
            with trio.fail_after(connect_timeout) if connect_timeout is not None else trio.CancelScope():
                tcp = await trio.open_tcp_stream(host, port, local_address=self._local_address)
                try:
                    stream: trio.abc.Stream = EagerSocketStream(tcp)
                    if scheme == b"https":
                        sni = (request.extensions.get("sni_hostname") if request is not None else None) or host
                        tls = trio.SSLStream(
                            stream, self._get_ssl_context(), server_hostname=sni, https_compatible=True
                        )
                        await tls.do_handshake()
                        if tls.selected_alpn_protocol() not in (None, "http/1.1"):
                            raise httpx.ConnectError(
                                f"the server chose {tls.selected_alpn_protocol()!r} over ALPN; "
                                "this transport speaks only HTTP/1.1",
                                request=request,
                            )
                        stream = tls
                except BaseException:
                    tcp.socket.close()
                    raise
        except trio.TooSlowError as exc:
            message = f"connecting to {host}:{port} took over {connect_timeout} s"
            raise httpx.ConnectTimeout(message, request=request) from exc
        except (OSError, trio.BrokenResourceError) as exc:
            raise httpx.ConnectError(describe(exc), request=request) from exc
        return Connection(origin, stream, tcp.socket)

    async def _send_request(self, conn: Connection, request: httpx.Request, write_timeout: float | None) -> None:
        url = request.url
        try:
            head = encode_request_head(request.method.encode("ascii"), url.raw_path, request.headers.raw)
        except ValueError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        try:
            body: bytes | None = request.content  # read already when the body was given whole
        except httpx.RequestNotRead:
            body = None
        stream = conn.stream
        if body is not None:
            await send(stream, head + body if body else head, write_timeout, request)
            return
        assert isinstance(request.stream, httpx.AsyncByteStream), "an async client gives async request streams"
        chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
        await send(stream, head, write_timeout, request)
        async for part in request.stream:
            if part:
                await send(stream, b"%x\r\n%b\r\n" % (len(part), part) if chunked else part, write_timeout, request)
        if chunked:
            await send(stream, b"0\r\n\r\n", write_timeout, request)
