"""The provider actor's HTTP side: `UpstreamClient`, and the mapping of transport
failures to `ProviderError` kinds."""

from __future__ import annotations

import functools
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from typing import NamedTuple, Protocol, cast

import httpx
import trio

from ..config.schema import ProviderConfig
from ..wire.base import HttpRequestSpec
from .fast import FastTransport
from .fast.h1 import encode_request_head
from .fast.pool import Connection, Origin
from .fast.response import FastResponse, ResponseStream

__all__ = [
    "READ_SIZE",
    "BodyChunks",
    "UpstreamClient",
    "UpstreamResponse",
    "body_chunks",
    "classify_transport_error",
    "close_response",
    "environment_proxy",
    "set_read_size",
]

#: The most one read of a `FastTransport` response takes, the response head's included (about
#: 70 one-token OpenAI events). The transport's default (64 KiB, for bulk bodies) would let one
#: read and its decoded events wait in memory per stream for a consumer or a turn; the provider
#: actor reads less still while its consumer is behind (`set_read_size`).
READ_SIZE = 16 * 1024

# Cached URLs and merged header sets per client; model ids in URL paths (Gemini, Azure)
# and per-request signatures (SigV4) make many distinct keys, so the caches are bounded.
_CACHE_LIMIT = 256

#: What `UpstreamClient.open` returns: a `FastResponse` from the fast path, else httpx's.
UpstreamResponse = httpx.Response | FastResponse


class _EncodedHead(NamedTuple):
    """A request head encoded once per (method, URL, headers), all but its Content-Length."""

    origin: Origin
    method: bytes
    #: The request line and header lines, validated, up to where Content-Length goes.
    lines: bytes
    #: False when the request's own headers ask for `Connection: close`.
    keep_alive: bool


@functools.cache
def _httpx_default_headers() -> httpx.Headers:
    """What httpx.AsyncClient sends unless told otherwise: accept, accept-encoding, connection,
    user-agent (asked of a client once, on first use: importing this module builds nothing)."""
    return httpx.AsyncClient(transport=httpx.AsyncBaseTransport(), trust_env=False).headers


class UpstreamClient:
    """Sends one provider's requests straight to an httpx transport.

    It does what `httpx.AsyncClient.send` would for our requests (which use no auth flow,
    no redirects and no event hooks): httpx's default headers, the cookie jar, and the
    timeout extension. Skipping the client's layers costs nothing in behaviour and saves
    about a tenth of a millisecond per request. Requests are still `httpx.Request`s (URL
    handling, header validation and body encoding stay httpx's), so any httpx transport
    works: `FastTransport` by default, httpx's own behind a proxy, a `MockTransport` in tests.

    Only the connect timeout goes to the transport. Sending the request and waiting for its
    first event fall under the attempt's first-token deadline, and the body under the idle
    deadline: trio deadlines in the provider actor, so time spent waiting on a slow
    consumer is never counted as upstream idleness (and no timer is set per socket write).
    """

    def __init__(self, pc: ProviderConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._limits = httpx.Limits(
            max_connections=pc.max_concurrency,
            max_keepalive_connections=pc.max_concurrency,
            keepalive_expiry=30.0,
        )
        if transport is None:
            # Bulk chunked decoding on trio sockets; behind a proxy FastTransport hands every
            # request to httpx's own transport (see streamactors.http.fast).
            proxy = pc.proxy.reveal() if pc.proxy else None
            transport = FastTransport(limits=self._limits, proxy=proxy, read_size=READ_SIZE)
            self._env_proxies = {} if proxy else urllib.request.getproxies_environment()
        else:
            self._env_proxies = {}  # a transport given is used for everything
        #: The transport for every request the environment does not send through a proxy.
        self.transport = transport
        self._proxied: dict[str, httpx.AsyncBaseTransport] = {}
        #: Cookies the upstream set (a load balancer's affinity cookie, say) go back, as with the SDKs.
        self.cookies = httpx.Cookies()
        timeout = httpx.Timeout(connect=pc.timeouts.connect, read=None, write=None, pool=None)
        self._extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[str, tuple[httpx.URL, httpx.AsyncBaseTransport]] = {}
        self._headers: dict[tuple[bytes, tuple[tuple[str, str], ...]], httpx.Headers] = {}
        self._default_headers = _httpx_default_headers()
        self._timeouts = timeout.as_dict()
        fast = transport if type(transport) is FastTransport and transport.fallback is None else None
        #: The transport whose requests go out as pre-encoded heads (see `open`), if any.
        self._fast: FastTransport | None = fast
        self._heads: dict[tuple[str, str, tuple[tuple[str, str], ...]], _EncodedHead | None] = {}

    async def open(self, spec: HttpRequestSpec, conn: Connection | None = None) -> UpstreamResponse:
        """Send `spec`; the response's body is not read yet (close it when done).

        The same bytes go out as from `send(build_request(spec))`, but a request with a body,
        sent by `FastTransport` without a proxy or cookies, skips httpx's objects: its head
        is encoded and validated once per (method, URL, headers) and the response comes
        back as a `FastResponse`. Anything else takes `build_request` and `send`.

        `conn`: the connection `idle_connection(spec)` gave, to send on (it is released as
        any connection of the pool is, whatever happens)."""
        body = spec.body
        fast = self._fast
        head = self._fast_head(spec)
        if head is not None:
            assert fast is not None
            response = await fast.send_head(
                head.origin,
                head.lines + b"Content-Length: %d\r\n\r\n" % len(body),
                body,
                self._timeouts,
                method=head.method,
                keep_alive=head.keep_alive,
                conn=conn,
            )
            if "set-cookie" in response.headers:
                self.cookies.extract_cookies(response.to_httpx(self.build_request(spec)))
            return response
        if conn is not None:
            assert fast is not None
            fast.pool.release(conn, reuse=False)
            raise RuntimeError("open: a connection was given for a request that goes through httpx")
        return await self.send(self.build_request(spec))

    def idle_connection(self, spec: HttpRequestSpec) -> Connection | None:
        """A kept-alive connection that `open(spec, conn)` sends on at once: the request's
        only waits are then on that connection's socket, and closing the connection ends
        them. None when no connection to its origin is idle, or `spec` does not take the
        pre-encoded path (see `open`). The caller must pass it to `open`."""
        head = self._fast_head(spec)
        return self._fast.pool.take_idle(head.origin) if head is not None and self._fast is not None else None

    def _fast_head(self, spec: HttpRequestSpec) -> _EncodedHead | None:
        """The encoded head `open` sends `spec` with, or None if `spec` takes httpx's path."""
        if self._fast is None or not spec.body or self.cookies:
            return None
        key = (spec.method, spec.url, spec.headers)
        heads = self._heads
        try:
            return heads[key]
        except KeyError:
            if len(heads) >= _CACHE_LIMIT:
                heads.clear()
            head = heads[key] = self._encode_head(spec)
            return head

    def _encode_head(self, spec: HttpRequestSpec) -> _EncodedHead | None:
        """The head `open` sends for `spec` (built from `build_request`'s own headers), or
        None when `spec` goes through httpx: another transport routes it (a proxy), its
        scheme is not served, it sets its own Content-Length, or a header would not pass
        validation (httpx raises for it)."""
        url, transport = self._route(spec.url)
        scheme = url.raw_scheme
        if transport is not self._fast or scheme not in (b"http", b"https"):
            return None
        request = self.build_request(spec)
        *raw, last = request.headers.raw
        if last[0].lower() != b"content-length":  # the spec set its own: httpx put it in its place
            return None
        method = spec.method.encode("ascii")
        try:
            lines = encode_request_head(method, url.raw_path, raw)[:-2]
        except ValueError:
            return None
        keep_alive = "close" not in request.headers.get("connection", "").lower()
        origin: Origin = (scheme, url.raw_host, url.port or (443 if scheme == b"https" else 80))
        return _EncodedHead(origin, method, lines, keep_alive)

    def build_request(self, spec: HttpRequestSpec) -> httpx.Request:
        """The `httpx.Request` for `spec`: what `httpx.AsyncClient.build_request` makes, header
        for header and in the same order (Host, httpx's defaults, the codec's, Content-Length)."""
        url = self._route(spec.url)[0]
        key = (url.netloc, spec.headers)
        base = self._headers.get(key)
        if base is None:
            if len(self._headers) >= _CACHE_LIMIT:
                self._headers.clear()
            base = self._headers[key] = httpx.Headers({"Host": url.netloc.decode("ascii")})
            base.update(self._default_headers)
            base.update(spec.headers)
        body = spec.body
        if body or spec.method not in ("POST", "PUT", "PATCH"):
            headers = httpx.Headers(base, encoding=base.encoding)
            if body:
                headers["Content-Length"] = str(len(body))
        else:  # an empty POST body: httpx puts "Content-Length: 0" right after Host
            raw = base.raw
            headers = httpx.Headers([raw[0], (b"Content-Length", b"0"), *raw[1:]], encoding=base.encoding)
        # Given as a stream with its headers complete, httpx adds none and looks none up.
        request = httpx.Request(
            spec.method, url, headers=headers, stream=httpx.ByteStream(body), extensions=self._extensions
        )
        request.read()
        if self.cookies:
            self.cookies.set_cookie_header(request)
        return request

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; the response's body is not read yet (close it when done)."""
        transport = self._route(str(request.url))[1] if self._env_proxies else self.transport
        response = await transport.handle_async_request(request)
        response.request = request
        if "set-cookie" in response.headers:
            self.cookies.extract_cookies(response)
        return response

    def _route(self, raw_url: str) -> tuple[httpx.URL, httpx.AsyncBaseTransport]:
        routed = self._urls.get(raw_url)
        if routed is None:
            if len(self._urls) >= _CACHE_LIMIT:
                self._urls.clear()
            url = httpx.URL(raw_url)
            transport = self.transport
            proxy = environment_proxy(url, self._env_proxies)
            if proxy is not None:
                transport = self._proxied.get(proxy) or self._proxied.setdefault(
                    proxy, httpx.AsyncHTTPTransport(limits=self._limits, proxy=proxy)
                )
            routed = self._urls[raw_url] = (url, transport)
        return routed

    async def aclose(self) -> None:
        """Close the transport and its connections."""
        for transport in (self.transport, *self._proxied.values()):
            await transport.aclose()


class BodyChunks(Protocol):
    """An async iterator of body pieces that can be closed early (`contextlib.aclosing`)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def __anext__(self) -> Awaitable[bytes]: ...

    def aclose(self) -> Awaitable[None]: ...


def body_chunks(response: UpstreamResponse) -> BodyChunks:
    """The response body, decoded (`Content-Encoding`), one piece per network read.

    A `FastTransport` body with no content encoding is iterated as it is: httpx's
    decoding layers would hand back the same bytes at a few microseconds per read.
    """
    if type(response) is FastResponse:
        if "content-encoding" not in response.headers:
            return response.stream
        decoded = response.to_httpx()
    else:
        assert isinstance(response, httpx.Response)
        if type(response.stream) is ResponseStream and "content-encoding" not in response.headers:
            return response.stream
        decoded = response
    return cast(AsyncGenerator[bytes, None], decoded.aiter_bytes())


def set_read_size(chunks: BodyChunks, size: int) -> None:
    """Make the next reads of a `FastTransport` body (as `body_chunks` returns it) take at most
    `size` bytes; other bodies read what httpx reads."""
    if type(chunks) is ResponseStream:
        chunks.read_size = size


async def close_response(response: UpstreamResponse) -> None:
    """Close a response whatever its transport, never left half closed by a cancellation:
    a `FastTransport` response closes without waiting (so it cannot be cancelled); any other
    is closed under a shield."""
    if type(response) is FastResponse or type(response.stream) is ResponseStream:
        await response.aclose()
    else:
        with trio.CancelScope(shield=True):
            await response.aclose()


def environment_proxy(url: httpx.URL, proxies: Mapping[str, str]) -> str | None:
    """The proxy that `proxies` (as from `urllib.request.getproxies_environment()`: HTTPS_PROXY,
    HTTP_PROXY, ALL_PROXY, NO_PROXY) names for `url`, as httpx and the SDKs honour them."""
    if not proxies or urllib.request.proxy_bypass_environment(url.host, proxies):  # type: ignore[attr-defined]
        return None
    return proxies.get(url.scheme) or proxies.get("all")


def classify_transport_error(exc: Exception) -> tuple[str, str]:
    """(kind, message) for an httpx exception, by type, most specific first."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", f"{type(exc).__name__}: {exc or 'timed out'}"
    if isinstance(exc, httpx.RemoteProtocolError):
        # The peer broke HTTP framing, typically by closing mid-body.
        return "connection", f"connection lost: {exc}"
    return "connection", f"{type(exc).__name__}: {exc}"
