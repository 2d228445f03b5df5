"""The built-in fake upstream: a real HTTP/1.1 server on loopback that streams in each
provider's exact format.

Behaviour is chosen per request by the model id (see `script.parse_scenario`), so one
server serves every test: `gpt-4o~tokens=5~fail=status:429~retry_after=1`. Requests are
recorded (bounded) so tests can assert on the exact bytes the library sent.
"""

from __future__ import annotations

import base64
import collections
import random
import socket
import struct
import time
import urllib.parse
import zlib
from types import ModuleType
from typing import Any

import attrs
import h11
import orjson
import trio

from .routing import route_request
from .script import (
    BAD_UTF8_MARK,
    Delay,
    Drop,
    Reset,
    Scenario,
    TruncatedChunk,
    UnknownEvent,
    WrongShape,
    build_steps,
    parse_scenario,
)

__all__ = ["TINY_PNG", "FakeUpstream", "RecordedRequest", "serve_fake_upstream", "status_fault_headers"]

MAX_REQUEST_BYTES = 16 * 1024 * 1024

#: A valid 1x1 PNG: what `GET /media/...` serves.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

#: Faults that replace the response head (and body) instead of breaking the stream.
HEAD_FAULTS = ("html200", "json200", "ctype")
#: Request headers that carry credentials (what `echo_auth=1` repeats in error messages).
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key", "x-amz-security-token")
_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>The upstream is having a bad day.</p></body></html>"
)


async def read_raw_request(stream: trio.abc.ReceiveStream, buf: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Read one HTTP/1.1 request by hand, for bare servers that must answer as fast as the
    socket goes (benchmarks) or record the exact bytes (tests): (head, body, the bytes after
    it), with `buf` the bytes already read; None if the peer closed before a whole head. The
    body is read by its Content-Length (no chunked request bodies)."""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buf += data
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buf += data
    return head, buf[:length], buf[length:]


def status_fault_headers(fmt: ModuleType, scenario: Scenario) -> list[tuple[bytes, bytes]]:
    """The headers of a status fault's response: Retry-After, and quota headers in the
    format's own names when the scenario asks for them (`quota_tokens`, `quota_reset_ms`)."""
    extra: list[tuple[bytes, bytes]] = []
    if scenario.retry_after is not None:
        extra.append((b"retry-after", str(scenario.retry_after).encode()))
    quota_headers = getattr(fmt, "quota_headers", None)
    if scenario.quota_tokens is not None and quota_headers is not None:
        extra += quota_headers(scenario.quota_tokens, scenario.quota_reset_ms / 1000, time.time())
    return extra


class _BodyFilter:
    """Per-response byte transforms: the invalid-UTF-8 injection, then gzip."""

    def __init__(self, scenario: Scenario) -> None:
        self.bad_utf8 = scenario.inject == "badutf8"
        self.gzip = zlib.compressobj(wbits=31) if scenario.gzip else None

    def __call__(self, data: bytes) -> bytes:
        if self.bad_utf8:
            data = data.replace(BAD_UTF8_MARK.encode(), b"\xff")
        if self.gzip is not None:
            data = self.gzip.compress(data) + self.gzip.flush(zlib.Z_SYNC_FLUSH)
        return data

    def finish(self) -> bytes:
        return self.gzip.flush() if self.gzip is not None else b""


#: `fail=badshape`: a text delta whose text is the number 5, in each format.
_WRONG_SHAPE = {
    "openai": b'data: {"choices": [{"index": 0, "delta": {"content": 5}}]}\n\n',
    "anthropic": b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
    b'"delta": {"type": "text_delta", "text": 5}}\n\n',
    "gemini": b'data: {"candidates": [{"content": {"parts": [{"text": 5}]}, "index": 0}]}\r\n\r\n',
}


def _wrong_shape(fmt: ModuleType) -> bytes:
    if fmt.CONTENT_TYPE == "application/vnd.amazon.eventstream":
        headers = {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}
        return fmt.encode_frame(headers, b'{"contentBlockIndex": 0, "delta": {"text": 5}}')  # type: ignore[no-any-return]
    return _WRONG_SHAPE[fmt.__name__.rpartition(".")[2]]


def _unknown_event(fmt: ModuleType, name: str) -> bytes:
    if fmt.CONTENT_TYPE == "application/vnd.amazon.eventstream":
        headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
        return fmt.encode_frame(headers, b'{"p": "abc"}')  # type: ignore[no-any-return]
    return b'event: %b\ndata: {"type": "%b"}\n\n' % (name.encode(), name.encode())


@attrs.frozen
class RecordedRequest:
    """A request as the fake upstream received it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # trio time of arrival

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def json(self) -> Any:
        return orjson.loads(self.body)


@attrs.define
class FakeUpstream:
    """A fake provider server. Start it with `await nursery.start(fake.serve)`.

    Attributes:
        defaults: the scenario a model id without options gets.
        events_per_chunk: how many SSE events travel in one HTTP chunk (1, as real providers).
        fail_rate / midstream_rate: random fault injection for stress runs (seeded by `seed`).
    """

    defaults: Scenario = attrs.field(factory=Scenario)
    events_per_chunk: int = 1
    fail_rate: float = 0.0
    midstream_rate: float = 0.0
    seed: int = 0
    record: int = 1000
    #: Lifetime of the OAuth2 tokens `/token` issues (google-auth refreshes within ~3m45s of expiry).
    token_expires_in: int = 3600
    host: str = "127.0.0.1"
    port: int = 0
    requests: collections.deque[RecordedRequest] = attrs.field(init=False)
    open_connections: int = attrs.field(init=False, default=0)
    closed_connections: int = attrs.field(init=False, default=0)
    responses_started: int = attrs.field(init=False, default=0)
    responses_completed: int = attrs.field(init=False, default=0)
    responses_aborted: int = attrs.field(init=False, default=0)
    chunks_sent: int = attrs.field(init=False, default=0)
    tokens_issued: int = attrs.field(init=False, default=0)
    error_sent_at: collections.deque[float] = attrs.field(init=False, factory=lambda: collections.deque(maxlen=1000))
    _rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.requests = collections.deque(maxlen=self.record)
        self._rng = random.Random(self.seed)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[FakeUpstream] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; `task_status.started(self)` once listening."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host, backlog=4096)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.open_connections += 1
        try:
            await self._connection(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass
        finally:
            self.open_connections -= 1
            self.closed_connections += 1
            await trio.aclose_forcefully(stream)

    async def _connection(self, stream: trio.SocketStream) -> None:
        leftover = b""
        while True:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
            if leftover:
                conn.receive_data(leftover)
            request: h11.Request | None = None
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    if not data and request is None:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_REQUEST_BYTES:
                        return
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return
            assert request is not None
            leftover = bytes(conn.trailing_data[0])
            keep_alive = await self._respond(stream, request, bytes(body))
            if not keep_alive:
                return

    async def _respond(self, stream: trio.SocketStream, request: h11.Request, body: bytes) -> bool:
        target = request.target.decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        self.requests.append(RecordedRequest(request.method.decode(), target, headers, body, trio.current_time()))
        try:
            payload = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            payload = {}
        path, _, query = target.partition("?")
        if path.startswith("/media/"):
            return await self._media(stream, path, query)
        if path.endswith("/token"):  # an OAuth2 token endpoint, for google-auth's refresh
            self.tokens_issued += 1
            token = orjson.dumps(
                {
                    "access_token": f"ya29.fake-token-{self.tokens_issued}",
                    "expires_in": self.token_expires_in,
                    "token_type": "Bearer",
                }
            )
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
                % (len(token), token)
            )
            return True
        route = route_request(path, payload if isinstance(payload, dict) else {})
        if route is None:
            await self._send_error(stream, 404, b'{"error": {"message": "no such route", "type": "not_found"}}')
            return True
        fmt, model, render = route
        scenario = parse_scenario(model, self.defaults)
        if self.fail_rate and self._rng.random() < self.fail_rate:
            scenario = attrs.evolve(scenario, fail="status:503")
        elif self.midstream_rate and self._rng.random() < self.midstream_rate:
            scenario = attrs.evolve(scenario, fail="midstream", fail_at=scenario.tokens // 2)
        if scenario.echo_auth:
            echo = " ".join(headers[h] for h in CREDENTIAL_HEADERS if h in headers)
            scenario = attrs.evolve(scenario, echo=echo)
        status = scenario.fail_status
        if status is not None:
            message = f"injected HTTP {status}" + (f": {scenario.echo}" if scenario.echo else "")
            await self._send_error(stream, status, fmt.error_body(status, message), status_fault_headers(fmt, scenario))
            self.error_sent_at.append(trio.current_time())
            return True
        content_type = fmt.CONTENT_TYPE
        if scenario.fail in HEAD_FAULTS:
            if scenario.fail != "ctype":
                body = _HTML_PAGE if scenario.fail == "html200" else fmt.error_body(500, "injected error in a 200")
                ctype = b"text/html" if scenario.fail == "html200" else b"application/json"
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: %b\r\ncontent-length: %d\r\n\r\n%b" % (ctype, len(body), body)
                )
                return True
            content_type, scenario = "text/plain; charset=utf-8", attrs.evolve(scenario, fail=None)
        self.responses_started += 1
        filt = _BodyFilter(scenario)
        encoding = b"content-encoding: gzip\r\n" if scenario.gzip else b""
        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: %b\r\n%btransfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
            % (content_type.encode(), encoding)
        )
        out = bytearray(head)  # framed chunks wait here until a pause, 64 KiB, or the end
        pending: list[bytes] = []
        try:
            for item in render(build_steps(scenario), scenario.model, payload):
                if isinstance(item, UnknownEvent):
                    item = _unknown_event(fmt, item.name)
                elif isinstance(item, WrongShape):
                    item = _wrong_shape(fmt)
                if isinstance(item, bytes):
                    pending.append(item)
                    if len(pending) >= self.events_per_chunk:
                        await self._send_chunk(stream, pending, filt, out)
                    continue
                if pending:
                    await self._send_chunk(stream, pending, filt, out)
                await self._flush(stream, out)
                if isinstance(item, TruncatedChunk):
                    await stream.send_all(b"%x\r\n%b" % (item.declared, item.data))
                    self.responses_aborted += 1
                    return False
                if isinstance(item, Reset):
                    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.responses_aborted += 1
                    return False
                if isinstance(item, Delay):
                    if await self._client_left_during(stream, item.seconds):
                        self.responses_aborted += 1
                        return False
                elif isinstance(item, Drop):
                    self.responses_aborted += 1
                    return False
            if pending:
                await self._send_chunk(stream, pending, filt, out)
            if tail := filt.finish():
                await self._send_chunk(stream, [tail], None, out)
            out += b"0\r\n\r\n"
            await self._flush(stream, out)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.responses_aborted += 1
            return False
        self.responses_completed += 1
        return True

    async def _media(self, stream: trio.SocketStream, path: str, query: str) -> bool:
        """`GET /media/<name>?...`: an image for the library's media fetcher to download.

        The body is a 1x1 PNG, padded to `size` bytes when given. Query parameters:
        `type` (the content-type; `none` sends none; default image/png), `size`, `status`
        (an error status instead), `delay` (seconds before the body), `chunked=1` (no
        content-length: the size is known only by reading)."""
        params = urllib.parse.parse_qs(query)

        def param(name: str, default: str) -> str:
            return params.get(name, [default])[0]

        status = int(param("status", "200"))
        if status != 200:
            await self._send_error(stream, status, b'{"error": "injected"}')
            return True
        body = TINY_PNG.ljust(int(param("size", "0")), b"\0")
        ctype = param("type", "image/png")
        head = [b"HTTP/1.1 200 OK"]
        if ctype != "none":
            head.append(b"content-type: " + ctype.encode("latin-1"))
        chunked = param("chunked", "0") == "1"
        head.append(b"transfer-encoding: chunked" if chunked else b"content-length: %d" % len(body))
        await stream.send_all(b"\r\n".join(head) + b"\r\n\r\n")
        delay = float(param("delay", "0"))
        if delay and await self._client_left_during(stream, delay):
            return False
        try:
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                await stream.send_all(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                await stream.send_all(b"0\r\n\r\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    @staticmethod
    async def _client_left_during(stream: trio.SocketStream, seconds: float) -> bool:
        """Sleep, but notice at once if the client closes the connection meanwhile."""
        with trio.move_on_after(seconds):
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return True
            if not data:
                return True
            # A client does not send while its response streams; treat stray bytes as a close.
            return True
        return False

    async def _send_chunk(
        self, stream: trio.SocketStream, pending: list[bytes], filt: _BodyFilter | None, out: bytearray
    ) -> None:
        """Frame `pending` as one HTTP chunk into `out`; write `out` once it holds 64 KiB.

        Each event stays its own HTTP chunk, as providers send them; only the socket writes
        are batched, as TCP would batch them anyway when the sender is ahead."""
        data = b"".join(pending) if len(pending) > 1 else pending[0]
        pending.clear()
        if filt is not None:
            data = filt(data)
            if not data:
                return
        self.chunks_sent += 1
        out += b"%x\r\n%b\r\n" % (len(data), data)
        if len(out) >= 65536:
            await self._flush(stream, out)

    @staticmethod
    async def _flush(stream: trio.SocketStream, out: bytearray) -> None:
        if out:
            data = bytes(out)
            out.clear()
            await stream.send_all(data)

    @staticmethod
    async def _send_error(
        stream: trio.SocketStream, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        reason = {
            400: b"Bad Request",
            401: b"Unauthorized",
            403: b"Forbidden",
            404: b"Not Found",
            429: b"Too Many Requests",
            500: b"Internal Server Error",
            503: b"Service Unavailable",
        }.get(status, b"Error")
        lines = [
            b"HTTP/1.1 %d %b" % (status, reason),
            b"content-type: application/json",
            b"content-length: %d" % len(body),
        ]
        lines += [k + b": " + v for k, v in extra or ()]
        await stream.send_all(b"\r\n".join(lines) + b"\r\n\r\n" + body)


async def serve_fake_upstream(
    port: int,
    *,
    host: str = "127.0.0.1",
    events_per_chunk: int = 1,
    defaults: Scenario | None = None,
    fail_rate: float = 0.0,
    midstream_rate: float = 0.0,
    task_status: trio.TaskStatus[FakeUpstream] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a `FakeUpstream` until cancelled (used by `streamactors mock-upstream`)."""
    fake = FakeUpstream(
        defaults=defaults or Scenario(),
        events_per_chunk=events_per_chunk,
        fail_rate=fail_rate,
        midstream_rate=midstream_rate,
        host=host,
        port=port,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        task_status.started(fake)
