"""The gateway's HTTP/1.1 server: h11 parses the requests, this module owns the sockets and the timing.

Why not Hypercorn: under trio it does not tell the app when a client disconnects
(pgjones/hypercorn#210), so a gateway on it keeps paying for upstream tokens after the client
has left, and its sends are shielded, so a client that stops reading cannot be timed out.

One task per connection. It reads a request head (h11, at most `max_header_bytes`, within
`header_timeout`) and its body (at most `max_body_bytes`, within `body_timeout`), then runs
the app's handler while a watcher task keeps reading the socket: EOF or a reset cancels the
handler at once (the client left: stop paying for its tokens), and pipelined bytes are kept,
bounded, for the next request. The handler answers through a `Responder`, which writes the
head and frames the body by hand, one socket write per `send`: a write the kernel takes whole
costs no trip through the scheduler, and one it cannot take waits for the socket
(backpressure) for at most `send_timeout`, after which the client is dropped like one that
left. Requests the server refuses itself (malformed, too large, too slow) are answered with
`App.reject`'s response, in the API's own error shape, and the connection is closed.

Responses: with a `content-length` header the body is fixed; without one it is sent with
chunked transfer encoding (SSE), or, to an HTTP/1.0 client, delimited by closing the
connection. Keep-alive follows HTTP/1.1 (`Connection: close` honoured); HTTP/1.0 connections
carry one request.
"""

from __future__ import annotations

import email.utils
import errno
import http
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import NoReturn, Protocol

import attrs
import h11
import structlog
import trio

from ..config.schema import LoggingConfig
from ..http.fast.eager import EagerSocketStream
from ..logs import make_logger

__all__ = ["App", "Request", "Responder", "ServerLimits", "serve"]

Logger = structlog.typing.FilteringBoundLogger

_EAGER = sys.platform != "win32"  # os.write cannot write a Windows socket
_RECEIVE_SIZE = 65536
#: How long a refused request's connection is drained before it is closed (see `_Connection.linger`).
_LINGER_SECONDS = 2.0
#: accept() failures that mean "out of resources for now" (trio.serve_listeners' list): retry later.
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_RETRY_SECONDS = 0.1
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_LINES = {int(s): f"HTTP/1.1 {int(s)} {s.phrase}" for s in http.HTTPStatus}
#: Messages for the requests h11 refuses, by its status hint. h11's own messages can quote the
#: offending header line, credentials included: they are neither logged nor sent back.
_PROTOCOL_MESSAGES = {
    400: "malformed HTTP request",
    431: "request head too large",
    501: "unsupported transfer-encoding (only chunked is supported)",
}

# Responder states: before start(), the three body framings and no body (HEAD, 204, 304), after end().
_NOT_STARTED, _CHUNKED, _FIXED, _UNTIL_CLOSE, _NO_BODY, _ENDED = range(6)


@attrs.frozen
class Request:
    """One request, its body fully read (and bounded by `ServerLimits.max_body_bytes`)."""

    method: str
    #: Path and query, as sent.
    target: str
    #: In the order sent; names lower-case, values decoded as latin-1.
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def path(self) -> str:
        """The target without its query."""
        return self.target.partition("?")[0]


class App(Protocol):
    """What the server runs: the gateway's routes."""

    async def handle(self, request: Request, responder: Responder) -> None:
        """Answer `request` through `responder`. Cancelled if the client leaves or stops
        reading for `send_timeout`. An exception before the head is sent becomes a 500 (via
        `reject`); after it, the connection is closed, so write any in-stream error first."""
        ...

    def reject(
        self, method: str, target: str, status: int, message: str
    ) -> tuple[int, Sequence[tuple[str, str]], bytes]:
        """The full response (status, headers, body) for a request the server refuses itself:
        400 malformed, 408 too slow, 413 body too large, 431 head too large, 500 handler
        failure, 501 unsupported transfer coding. `method` and `target` are as sent (empty if
        unreadable), so the body can take the error shape of the API at that path. The server
        sets `content-length` and `connection` itself."""
        ...


@attrs.frozen
class ServerLimits:
    """Bounds on what one client can make the server hold or wait for."""

    max_body_bytes: int = attrs.field(default=10 * 1024 * 1024, validator=attrs.validators.gt(0))
    #: Also the bound on the pipelined bytes read while a handler runs.
    max_header_bytes: int = attrs.field(default=64 * 1024, validator=attrs.validators.gt(0))
    #: The whole request head must arrive within this (from the connection's accept for the
    #: first request, from its first byte for later ones): slowloris.
    header_timeout: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: The whole body within this, from the end of the head.
    body_timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: Idle time allowed between requests on a kept-alive connection.
    keepalive_timeout: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    #: One send blocked this long (the client stopped reading): the client is dropped.
    send_timeout: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    max_connections: int = attrs.field(default=10_000, validator=attrs.validators.gt(0))


class _DateHeader:
    """`date: <IMF-fixdate>` (RFC 9110 section 6.6.1), formatted once per second."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = ""

    def __call__(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._line = "date: " + email.utils.formatdate(second, usegmt=True)
        return self._line


_date_line = _DateHeader()


def _response_head(status: int, headers: Sequence[tuple[str, str]]) -> tuple[list[str], int | None, bool]:
    """The status line and the app's header lines, validated; the `content-length` the app
    gave (None if none); whether it asked to close (`connection: close`). `connection` and
    `content-length` lines are left out: the server writes its own."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 200 <= status <= 599:
            raise ValueError(f"response status {status} is not a final status (200-599)")
        line = f"HTTP/1.1 {status} "
    lines = [line]
    length: int | None = None
    close = False
    for name, value in headers:
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"response header {name!r}: the value holds CR, LF or NUL")
        lower = name.lower()
        if lower == "content-length":
            if not value.isdigit() or not value.isascii():
                raise ValueError(f"response header content-length: {value!r} is not a length")
            length = int(value)
            continue
        if lower == "connection":
            close = close or "close" in value.lower()
            continue
        if lower == "transfer-encoding":
            raise ValueError("response header transfer-encoding: the server frames the body itself")
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"response header name {name!r} is not a token")
        lines.append(f"{name}: {value}")
    return lines, length, close


def _request_line(prefix: bytes) -> tuple[str, str]:
    """Method and target from the start of a request h11 refused, if they can be read."""
    parts = prefix.split(b"\n", 1)[0].split(b" ")
    if len(parts) >= 2 and _TOKEN.fullmatch(parts[0].decode("latin-1")) and parts[1][:1] == b"/":
        return parts[0].decode("latin-1"), parts[1].decode("latin-1")
    return "", ""


class _ConnectionLost(Exception):
    """The client left, or stopped reading for `send_timeout` (`reason`: "gone" or "stalled")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Responder:
    """How a handler answers its request: `start`, then `send` any number of times, then `end`.

    Built by the server, one per request. A handler whose client leaves (or stops reading for
    `send_timeout`) is cancelled: its pending or next call raises `trio.Cancelled`.
    """

    __slots__ = ("_conn", "_head", "_head_sent", "_http11", "_keep_alive", "_method", "_mode", "_remaining", "_sock")

    def __init__(self, conn: _Connection, method: str, http11: bool, keep_alive: bool) -> None:
        self._conn = conn
        self._sock = conn.stream.socket
        self._method = method
        self._http11 = http11
        self._keep_alive = keep_alive
        self._mode = _NOT_STARTED
        self._head = b""
        self._head_sent = False
        self._remaining = 0

    @property
    def started(self) -> bool:
        """Whether `start` was called (the head may still wait for the first `send` or `end`)."""
        return self._mode != _NOT_STARTED

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this response."""
        return self._keep_alive

    async def start(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        """Begin the response. With a `content-length` header the body is that many bytes and
        the head is written with the first `send` (or `end`); without one the head is written
        now and the body is chunked (or, to an HTTP/1.0 client, ends when the connection
        closes). HEAD requests and 204/304 responses carry no body: what `send` gets is
        dropped. `connection` headers are the server's (`connection: close` is honoured);
        `transfer-encoding` is refused. Raises `ValueError` for a header that cannot be sent."""
        if self._mode != _NOT_STARTED:
            raise RuntimeError("start() was already called")
        lines, length, close = _response_head(status, headers)
        lines.append(_date_line())
        if close or self._conn.server.closing:
            self._keep_alive = False
        if self._method == "HEAD" or status in (204, 304):
            mode = _NO_BODY
            if length is not None:
                lines.append(f"content-length: {length}")
        elif length is not None:
            mode = _FIXED
            self._remaining = length
            lines.append(f"content-length: {length}")
        elif self._http11:
            mode = _CHUNKED
            lines.append("transfer-encoding: chunked")
        else:
            mode = _UNTIL_CLOSE
            self._keep_alive = False
        if not self._keep_alive:
            lines.append("connection: close")
        lines.append("\r\n")
        head = "\r\n".join(lines).encode("latin-1")
        self._mode = mode
        if mode in (_CHUNKED, _UNTIL_CLOSE):
            await self._write(head)
        else:
            self._head = head
            await trio.lowlevel.checkpoint_if_cancelled()

    async def send(self, data: bytes) -> None:
        """Send body bytes: one socket write. Waits while the socket cannot take them (the
        client reads slower than the handler writes), at most `send_timeout`."""
        if self._mode == _CHUNKED:
            if not data:  # an empty chunk would end the body
                await trio.lowlevel.checkpoint_if_cancelled()
                return
            frame = b"%x\r\n%b\r\n" % (len(data), data)
        else:
            frame = self._unchunked(data)
        await self._write(frame)

    def _unchunked(self, data: bytes) -> bytes:
        mode = self._mode
        if mode == _FIXED:
            remaining = self._remaining - len(data)
            if remaining < 0:
                self._keep_alive = False
                raise RuntimeError(f"send() of {len(data)} bytes overruns content-length ({self._remaining} left)")
            self._remaining = remaining
        elif mode == _NO_BODY:
            data = b""
        elif mode == _NOT_STARTED:
            raise RuntimeError("send() before start()")
        elif mode == _ENDED:
            raise RuntimeError("send() after end()")
        if self._head:
            data, self._head = self._head + data, b""
            self._head_sent = True
        return data

    async def end(self) -> None:
        """Finish the response (the last chunk, or the head of an empty fixed body). Raises
        `RuntimeError` if a fixed body is short of its content-length. A second call does nothing."""
        mode = self._mode
        if mode == _ENDED:
            await trio.lowlevel.checkpoint_if_cancelled()
            return
        if mode == _NOT_STARTED:
            raise RuntimeError("end() before start()")
        if mode == _FIXED and self._remaining:
            self._keep_alive = False
            raise RuntimeError(f"end() with {self._remaining} bytes of the content-length unsent")
        frame, self._head = self._head, b""
        if mode == _CHUNKED:
            frame += b"0\r\n\r\n"
        await self._write(frame)
        self._mode = _ENDED

    async def _write(self, data: bytes) -> None:
        """Write `data` to the socket. A write the kernel takes whole is one syscall and no
        schedule point (as `EagerSocketStream.send_all`); the rest waits for the socket, at
        most `send_timeout`."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if not data:
            return
        self._head_sent = True
        sent = 0
        if _EAGER:
            try:
                sent = os.write(self._sock.fileno(), data)
            except BlockingIOError:
                pass
            except OSError:
                await self._conn.lose("gone")
            if sent == len(data):
                return
        try:
            await self._conn.send_all(data, sent)
        except _ConnectionLost as exc:
            await self._conn.lose(exc.reason)


class _Server:
    """State shared by the connections: the app, the limits, the shutdown flag and the busy count."""

    def __init__(self, app: App, limits: ServerLimits, log: Logger) -> None:
        self.app = app
        self.limits = limits
        self.log = log
        #: Set at shutdown: every response from now on closes its connection.
        self.closing = False
        #: Connections with a request in progress (from its first byte to the response's end).
        self.busy = 0
        self._idle: trio.Event | None = None
        self._slots = trio.Semaphore(limits.max_connections)

    def leave_busy(self) -> None:
        self.busy -= 1
        if self.busy == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no connection has a request in progress."""
        while self.busy:
            self._idle = trio.Event()
            await self._idle.wait()

    async def accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        """Accept connections, at most `max_connections` open at once (the kernel's backlog holds the rest)."""
        while True:
            await self._slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as exc:
                self._slots.release()
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                self.log.error("gateway_accept_failed", error=os.strerror(exc.errno))
                await trio.sleep(_ACCEPT_RETRY_SECONDS)
                continue
            except BaseException:
                self._slots.release()
                raise
            nursery.start_soon(self._connection, stream, trio.current_time())

    async def _connection(self, stream: trio.SocketStream, accepted_at: float) -> None:
        conn = _Connection(self, stream, accepted_at)
        try:
            await conn.run()
        except (trio.BrokenResourceError, trio.ClosedResourceError, _ConnectionLost):
            pass
        except Exception as exc:  # a bug here must not take the other connections down
            self.log.error("gateway_connection_failed", client=conn.client, exc_info=exc)
        finally:
            conn.clear_busy()
            try:
                await trio.aclose_forcefully(stream)
            finally:
                self._slots.release()


class _Connection:
    """One client connection: reads requests, runs the handler for each, keeps the timing."""

    def __init__(self, server: _Server, stream: trio.SocketStream, accepted_at: float) -> None:
        self.server = server
        self.stream = stream
        self.reader = EagerSocketStream(stream)
        self.accepted_at = accepted_at
        #: Bytes received past the current request (pipelined): what came with its last read
        #: (at most 64 KiB), then at most `max_header_bytes` more while its handler runs.
        self.buffer = bytearray()
        #: Whether a request is in progress (counted in `server.busy`).
        self.busy = False
        #: After a refusal: drain what the client still sends before closing.
        self.must_linger = False
        #: Why the current handler was cancelled, if the client left ("gone") or stalled ("stalled").
        self.lost: str | None = None
        self.handler_scope = trio.CancelScope()
        try:
            host, port = stream.socket.getpeername()[:2]
            self.client = f"{host}:{port}"
        except OSError:
            self.client = ""

    def set_busy(self) -> None:
        if not self.busy:
            self.busy = True
            self.server.busy += 1

    def clear_busy(self) -> None:
        if self.busy:
            self.busy = False
            self.server.leave_busy()

    async def run(self) -> None:
        first = True
        while True:
            incoming = await self._read_request(first)
            if incoming is None:
                break
            first = False
            request, http11, keep_alive = incoming
            keep_alive = await self._respond(request, http11, keep_alive)
            self.clear_busy()
            if not keep_alive or self.server.closing:
                break
        self.clear_busy()
        if self.must_linger:
            await self.linger()

    async def _read_request(self, first: bool) -> tuple[Request, bool, bool] | None:
        """The next request and its HTTP version and keep-alive (1.1 without `connection:
        close`), or None when the connection should close (after a refusal, if one is due)."""
        limits = self.server.limits
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        prefix = bytes(self.buffer)  # the first bytes, to name method and target in a refusal
        fed = len(prefix)
        if prefix:
            conn.receive_data(prefix)
            self.buffer.clear()
            self.set_busy()
        now = trio.current_time()
        if first:
            deadline = self.accepted_at + limits.header_timeout
        elif prefix:
            deadline = now + limits.header_timeout
        else:
            deadline = now + limits.keepalive_timeout
        head: h11.Request | None = None
        refusal = 408
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                while head is None:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await self.reader.receive_some(_RECEIVE_SIZE)
                        if not data:
                            return None  # the client closed: between requests, or giving up on one
                        if not self.busy:
                            self.set_busy()
                            if not first:  # idle until now: the head's own clock starts
                                scope.deadline = trio.current_time() + limits.header_timeout
                        if len(prefix) < 1024:
                            prefix += data[:1024]
                        fed += len(data)
                        conn.receive_data(data)
                    elif isinstance(event, h11.Request):
                        # h11 checks the limit only while a head is incomplete: not one that came whole.
                        if fed > limits.max_header_bytes and fed - len(conn.trailing_data[0]) > limits.max_header_bytes:
                            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
                        head = event
                    else:  # ConnectionClosed
                        return None
            except h11.RemoteProtocolError as exc:
                refusal = exc.error_status_hint if exc.error_status_hint in _PROTOCOL_MESSAGES else 400
        if head is not None:
            return await self._read_body(conn, head)
        if refusal != 408:
            await self._refuse(*_request_line(prefix), refusal, _PROTOCOL_MESSAGES[refusal])
        elif self.busy:  # the deadline passed in the middle of a head: slowloris, or a very slow client
            await self._refuse(*_request_line(prefix), 408, "request head not received in time")
        return None

    async def _read_body(self, conn: h11.Connection, head: h11.Request) -> tuple[Request, bool, bool] | None:
        limits = self.server.limits
        method = head.method.decode("latin-1")
        target = head.target.decode("latin-1")
        headers = tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers)
        http11 = head.http_version == b"1.1"
        keep_alive = http11
        length = 0
        for name, value in headers:
            if name == "content-length":
                length = int(value)  # h11 checked it is digits, and one value
            elif name == "connection" and "close" in value.lower():
                keep_alive = False
        too_large = f"request body larger than {limits.max_body_bytes} bytes"
        if length > limits.max_body_bytes:
            await self._refuse(method, target, 413, too_large)
            return None
        if conn.they_are_waiting_for_100_continue:
            await self.send_all(b"HTTP/1.1 100 Continue\r\n\r\n", 0)
        parts: list[bytes] = []
        size = 0
        with trio.move_on_after(limits.body_timeout):
            try:
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await self.reader.receive_some(_RECEIVE_SIZE)
                        if not data:
                            return None  # the client left before its body was complete
                        conn.receive_data(data)
                    elif isinstance(event, h11.Data):
                        size += len(event.data)
                        if size > limits.max_body_bytes:
                            break
                        parts.append(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        self.buffer += conn.trailing_data[0]
                        return Request(method, target, headers, b"".join(parts)), http11, keep_alive
                    else:  # ConnectionClosed
                        return None
            except h11.RemoteProtocolError:
                size = -1
        if size > limits.max_body_bytes:
            await self._refuse(method, target, 413, too_large)
        elif size < 0:
            await self._refuse(method, target, 400, "malformed request body")
        else:
            await self._refuse(method, target, 408, "request body not received in time")
        return None

    async def _respond(self, request: Request, http11: bool, keep_alive: bool) -> bool:
        """Run the handler, watching the socket meanwhile; whether the connection may be reused."""
        server = self.server
        responder = Responder(self, request.method, http11, keep_alive and not server.closing)
        self.lost = None
        scope = self.handler_scope = trio.CancelScope()
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch)
            try:
                with scope:
                    await server.app.handle(request, responder)
                    if not responder.started:
                        raise RuntimeError("the handler returned without starting a response")
                    await responder.end()
            except Exception as exc:
                error = exc
            finally:
                nursery.cancel_scope.cancel()
        if self.lost is not None:
            server.log.info(
                "gateway_client_left" if self.lost == "gone" else "gateway_client_stalled",
                method=request.method,
                path=request.path,
                client=self.client,
                response_started=responder._head_sent,
            )
            return False
        if error is None:
            return responder.keep_alive
        server.log.error(
            "gateway_handler_failed",
            method=request.method,
            path=request.path,
            client=self.client,
            response_started=responder._head_sent,
            exc_info=error,
        )
        if responder._head_sent:
            return False  # the client sees a truncated response: the app wrote any in-stream error
        keep_alive = responder.keep_alive and not server.closing
        await self._refuse(request.method, request.target, 500, "internal error", close=not keep_alive)
        return keep_alive

    async def _watch(self) -> None:
        """While the handler runs: read the socket, so that EOF or a reset cancels it at once.
        Bytes the client pipelines meanwhile are kept for the next request, up to
        `max_header_bytes`; then reading stops (the kernel's buffer and TCP hold the rest,
        and a disconnect shows only when a send fails)."""
        bound = self.server.limits.max_header_bytes
        buffer = self.buffer
        try:
            while len(buffer) < bound:
                data = await self.reader.receive_some(min(_RECEIVE_SIZE, bound - len(buffer)))
                if not data:
                    break
                buffer += data
            else:
                return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if self.lost is None:
            self.lost = "gone"
        self.handler_scope.cancel()

    async def lose(self, reason: str) -> NoReturn:
        """The client is gone or stalled: cancel the handler; raises `trio.Cancelled` in it."""
        if self.lost is None:
            self.lost = reason
        self.handler_scope.cancel()
        await trio.lowlevel.checkpoint()
        # Only reached by a caller shielded from the handler's cancellation.
        raise trio.BrokenResourceError(f"the client connection is {reason}")

    async def send_all(self, data: bytes, sent: int) -> None:
        """Write `data[sent:]`, waiting for the socket at most `send_timeout`; raises `_ConnectionLost`."""
        view = memoryview(data)[sent:] if sent else data
        with trio.move_on_after(self.server.limits.send_timeout):
            try:
                await self.stream.send_all(view)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise _ConnectionLost("gone") from None
            return
        raise _ConnectionLost("stalled")

    async def _refuse(self, method: str, target: str, status: int, message: str, *, close: bool = True) -> None:
        """Answer with `app.reject`'s response for `status`; unless `close` is False, the
        connection then closes (after draining, see `linger`)."""
        server = self.server
        if status != 500:  # a handler's failure is logged as such
            path = target.partition("?")[0]
            server.log.info("gateway_request_refused", status=status, method=method, path=path, client=self.client)
        try:
            status, headers, body = server.app.reject(method, target, status, message)
            lines, _, _ = _response_head(status, headers)
        except Exception as exc:
            server.log.error("gateway_reject_failed", status=status, exc_info=exc)
            lines = [_STATUS_LINES.get(status, f"HTTP/1.1 {status} "), "content-type: text/plain; charset=utf-8"]
            body = message.encode()
        lines += [_date_line(), f"content-length: {len(body)}"]
        if close:
            lines.append("connection: close")
            self.must_linger = True
        lines.append("\r\n")
        await self.send_all("\r\n".join(lines).encode("latin-1") + body, 0)

    async def linger(self) -> None:
        """Close after a refusal without destroying it: stop sending, then read and drop what
        the client still sends, for at most `_LINGER_SECONDS`. Closing a socket with unread
        bytes resets the connection, and the reset can discard the refusal before the client
        has read it (a client sends its whole body before it reads the response)."""
        with trio.move_on_after(_LINGER_SECONDS):
            try:
                await self.stream.send_eof()
                while await self.reader.receive_some(_RECEIVE_SIZE):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


async def serve(
    app: App,
    host: str,
    port: int,
    limits: ServerLimits,
    *,
    shutdown: trio.Event,
    grace: float,
    logger: Logger | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `host`:`port` until `shutdown` is set.

    `task_status.started((host, port))` once listening, with the real port when `port` is 0
    (for a `host` that resolves to several addresses, the first listener's). When `shutdown`
    is set: stop accepting; answer new requests on open connections with `connection: close`;
    give requests in progress `grace` seconds to finish, then cancel their handlers; return.
    Logs go to `logger` (default: the project's JSON logger on stderr); never bodies or headers.
    """
    log: Logger = logger if logger is not None else make_logger(LoggingConfig())
    server = _Server(app, limits, log)
    listeners = await trio.open_tcp_listeners(port, host=host)
    try:
        async with trio.open_nursery() as connections:
            async with trio.open_nursery() as acceptors:
                for listener in listeners:
                    acceptors.start_soon(server.accept, listener, connections)
                task_status.started((host, listeners[0].socket.getsockname()[1]))
                await shutdown.wait()
                server.closing = True
                acceptors.cancel_scope.cancel()
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            with trio.move_on_after(grace) as waited:
                await server.wait_idle()
            if waited.cancelled_caught:
                log.info("gateway_grace_over", cancelled=server.busy)
            connections.cancel_scope.cancel()
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
