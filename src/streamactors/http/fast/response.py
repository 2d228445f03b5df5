"""The socket side of one exchange: `send` and `receive` with httpx's timeouts and errors,
and `ResponseStream`, the raw body handed to httpx.

`receive` is one `receive_some` of up to `size` bytes; `ResponseStream` feeds each read to
the body decoder and yields what it returns, so a read holding many chunks reaches httpx
(and the SSE decoder after it) as one bytes object. The connection goes back to the pool
the moment the decoder reports the end of the body; any failure, cancellation or early
`aclose()` closes it instead.
"""

from __future__ import annotations

import httpx
import trio

from .body import BodyDecoder, UntilCloseDecoder
from .eager import EagerSocketStream
from .h1 import FramingError
from .pool import Connection, ConnectionPool

__all__ = ["FastResponse", "ResponseStream", "describe", "header_dict", "receive", "send"]

_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def send(
    stream: trio.abc.Stream, data: bytes, write_timeout: float | None, request: httpx.Request | None
) -> None:
    """`stream.send_all(data)`, raising `httpx.WriteTimeout` or `httpx.WriteError`."""
    try:
        if write_timeout is None:
            await stream.send_all(data)
        else:
            with trio.fail_after(write_timeout):
                await stream.send_all(data)
    except trio.TooSlowError as exc:
        raise httpx.WriteTimeout(f"sending the request took over {write_timeout} s", request=request) from exc
    except _IO_ERRORS as exc:
        raise httpx.WriteError(describe(exc), request=request) from exc


async def receive(
    stream: trio.abc.Stream, size: int, read_timeout: float | None, request: httpx.Request | None
) -> bytes:
    """One `stream.receive_some(size)` (b"" at EOF), raising `httpx.ReadTimeout` or `httpx.ReadError`."""
    try:
        if read_timeout is None:
            data = await stream.receive_some(size)
        else:
            with trio.fail_after(read_timeout):
                data = await stream.receive_some(size)
    except trio.TooSlowError as exc:
        raise httpx.ReadTimeout(f"no data for {read_timeout} s", request=request) from exc
    except _IO_ERRORS as exc:
        raise httpx.ReadError(describe(exc), request=request) from exc
    return data if type(data) is bytes else bytes(data)


def describe(exc: BaseException) -> str:
    """A message naming the underlying error (trio wraps OSError and SSLError as `__cause__`)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


class ResponseStream(httpx.AsyncByteStream):
    """The raw body of one response: one bytes object per socket read, decoded in bulk.

    An iterator class, not an async generator, so that nothing is left for a finalizer
    when the consumer stops early: `aclose()` closes the connection at once.
    """

    __slots__ = (
        "_aborted",
        "_conn",
        "_decoder",
        "_first",
        "_keep_alive",
        "_pool",
        "_read_timeout",
        "_request",
        "_resumable",
        "body_bytes",
        "read_size",
    )

    def __init__(
        self,
        pool: ConnectionPool,
        conn: Connection,
        decoder: BodyDecoder,
        first: bytes,
        request: httpx.Request | None,
        read_timeout: float | None,
        keep_alive: bool,
        read_size: int,
    ) -> None:
        self._pool = pool
        #: The most one read takes; the reader may change it between reads (a reader whose
        #: consumer is behind reads less, so that less waits decoded in memory).
        self.read_size = read_size
        #: Body bytes handed out so far (after chunk framing): what the reader has taken.
        self.body_bytes = 0
        self._conn: Connection | None = conn
        self._decoder = decoder
        self._first = first
        self._request = request
        self._read_timeout = read_timeout
        self._keep_alive = keep_alive
        self._aborted = False
        # A cancelled receive on a plain socket has read nothing (see `EagerSocketStream`), so
        # the body can go on after it; under TLS a cancelled read may leave a record half read.
        self._resumable = type(conn.stream) is EagerSocketStream
        if decoder.done:
            self._release()

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            self.body_bytes += len(first)
            return first
        decoder = self._decoder
        while (conn := self._conn) is not None:
            try:
                data = await receive(conn.stream, self.read_size, self._read_timeout, self._request)
                if data:
                    body = decoder.feed(data)
                else:
                    decoder.eof()
                    body = b""
            except FramingError as exc:
                self._close()
                raise httpx.RemoteProtocolError(str(exc), request=self._request) from exc
            except trio.Cancelled:
                if not self._resumable:
                    self._close()
                raise
            except BaseException:  # a failed read leaves the connection in an unknown state
                self._close()
                raise
            if decoder.done:
                self._release()
            if body:
                self.body_bytes += len(body)
                return body
        if self._aborted:
            raise httpx.ReadError("the connection was closed (timed out or abandoned)", request=self._request)
        raise StopAsyncIteration

    @property
    def is_open(self) -> bool:
        """Whether the body can still be read (its end not reached, not closed, not aborted)."""
        return self._conn is not None

    def abort(self) -> None:
        """Close the connection now, from any task: a read waiting on it fails at once, and
        every later read fails (`httpx.ReadError`) rather than seeming to end the body."""
        if self._conn is not None:
            self._aborted = True
            self._close()

    async def aclose(self) -> None:
        if self._conn is not None:
            self._close()  # closed before its end: the rest of the body would still be on the wire

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            decoder = self._decoder
            reuse = self._keep_alive and not decoder.unused and type(decoder) is not UntilCloseDecoder
            self._pool.release(conn, reuse=reuse)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn, reuse=False)


def header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Response headers as a dict keyed by lower-case name, as `httpx.Headers` reads them:
    same-named values joined with ", ", decoded as ASCII, else UTF-8, else ISO-8859-1 (the
    first that decodes every name and value, each on its own)."""
    for encoding in ("ascii", "utf-8"):
        try:
            return _header_dict(raw, encoding)
        except UnicodeDecodeError:
            pass
    return _header_dict(raw, "iso-8859-1")


def _header_dict(raw: list[tuple[bytes, bytes]], encoding: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode(encoding).lower()
        text = value.decode(encoding)
        out[key] = out[key] + ", " + text if key in out else text
    return out


class FastResponse:
    """A response read by `FastTransport.send_head`: its status, its headers and its body
    stream, with no `httpx.Request`, `httpx.Response` or `httpx.Headers` built for it.

    `headers` is keyed by lower-case name (look names up in lower case). `to_httpx()` gives
    the `httpx.Response` over the same body, for what needs one (`Content-Encoding`
    decoding, cookie extraction)."""

    __slots__ = ("headers", "http_version", "raw_headers", "reason_phrase", "status_code", "stream")

    def __init__(
        self,
        status_code: int,
        raw_headers: list[tuple[bytes, bytes]],
        stream: ResponseStream,
        http_version: bytes = b"HTTP/1.1",
        reason_phrase: bytes = b"",
    ) -> None:
        self.status_code = status_code
        #: The headers as they came, names in the peer's casing, in order.
        self.raw_headers = raw_headers
        self.headers = header_dict(raw_headers)
        self.stream = stream
        self.http_version = http_version
        self.reason_phrase = reason_phrase

    def to_httpx(self, request: httpx.Request | None = None) -> httpx.Response:
        """An `httpx.Response` over the same headers and body (closing either closes both)."""
        response = httpx.Response(
            status_code=self.status_code,
            headers=self.raw_headers,
            stream=self.stream,
            request=request,
            extensions={"http_version": self.http_version, "reason_phrase": self.reason_phrase},
        )
        return response

    async def aclose(self) -> None:
        """Close the body (its connection is closed unless the body was read to its end)."""
        await self.stream.aclose()
