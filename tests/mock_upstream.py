"""The fake upstream's scenarios without a socket, for tests in virtual time.

`MockUpstream` answers the service's requests through an `httpx.MockTransport` (the seam
`open_service(transports=...)`) with what `streamactors.testing.FakeUpstream` would send:
the scenario comes from the model id (`m~tokens=5~ttft_ms=300~fail=status:503`), and each
provider's exact bytes from the same renderers. Its delays are `trio.sleep`s, so under
`MockClock(autojump_threshold=0)` (the `autojump_clock` fixture of tests/conftest.py) a
3 s time to first token costs no wall time and every wait is exact.

One body read is one event, as the fake upstream sends them. What only a socket shows
(a TCP reset, a half-sent chunk, kernel buffers, connections closing, gzip, faults that
replace the response head) is not modelled: those tests stay with `FakeUpstream` on the
wall clock, and a scenario asking for one here fails loudly instead of passing quietly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import httpx
import orjson
import trio

from streamactors.testing import RecordedRequest, Scenario, parse_scenario
from streamactors.testing.routing import route_request
from streamactors.testing.script import Delay, Drop, Reset, TruncatedChunk, UnknownEvent, WrongShape, build_steps
from streamactors.testing.server import CREDENTIAL_HEADERS, HEAD_FAULTS, status_fault_headers

__all__ = ["BASE_URL", "MockUpstream"]

#: Where configs for a `MockUpstream` point (never resolved: the transport answers).
BASE_URL = "http://upstream.invalid"

#: Every provider the tests configure; the one transport serves them all.
PROVIDERS = ("openai", "anthropic", "gemini", "bedrock")


class MockUpstream:
    """A scripted upstream behind an `httpx.MockTransport`, with the fake upstream's counters.

    Attributes (as on `FakeUpstream`, times are trio's clock):
        requests: every request received, in order.
        error_sent_at: when each HTTP-status fault was answered.
        responses_started / responses_completed / responses_aborted: streamed bodies begun,
            sent to their end, and closed by the client before their end.
        aborted_at: when each of those was closed.
        open_responses / most_open: bodies streaming now, and the most ever at once
            (what `FakeUpstream.open_connections` bounds over sockets).
        chunks_sent: body reads served.
    """

    base_url = BASE_URL

    def __init__(self, defaults: Scenario | None = None) -> None:
        self.defaults = defaults or Scenario()
        self.requests: list[RecordedRequest] = []
        self.error_sent_at: list[float] = []
        self.responses_started = 0
        self.responses_completed = 0
        self.responses_aborted = 0
        self.aborted_at: list[float] = []
        self.open_responses = 0
        self.most_open = 0
        self.chunks_sent = 0
        self.transport = httpx.MockTransport(self.handle)

    def transports(self, *names: str) -> dict[str, httpx.AsyncBaseTransport]:
        """`open_service(transports=...)` for the named providers (default: every one the tests use)."""
        return {name: self.transport for name in names or PROVIDERS}

    async def handle(self, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode("ascii")
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = request.content
        self.requests.append(RecordedRequest(request.method, target, headers, body, trio.current_time()))
        try:
            payload = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            payload = {}
        route = route_request(target.split("?", 1)[0], payload if isinstance(payload, dict) else {})
        if route is None:
            return _json(404, b'{"error": {"message": "no such route", "type": "not_found"}}')
        fmt, model, render = route
        scenario = parse_scenario(model, self.defaults)
        if scenario.fail in HEAD_FAULTS or scenario.gzip or scenario.inject == "badutf8":
            raise NotImplementedError(f"{model!r}: not modelled by MockUpstream; use FakeUpstream")
        if scenario.echo_auth:
            scenario = attrs.evolve(scenario, echo=" ".join(headers[h] for h in CREDENTIAL_HEADERS if h in headers))
        status = scenario.fail_status
        if status is not None:
            extra = status_fault_headers(fmt, scenario)
            message = f"injected HTTP {status}" + (f": {scenario.echo}" if scenario.echo else "")
            self.error_sent_at.append(trio.current_time())
            return _json(status, fmt.error_body(status, message), extra)
        self.responses_started += 1
        stream = _Body(self, render(build_steps(scenario), scenario.model, payload))
        return httpx.Response(
            200, headers={"content-type": fmt.CONTENT_TYPE, "cache-control": "no-cache"}, stream=stream
        )


def _json(status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=[(b"content-type", b"application/json"), *(extra or ())], content=body)


class _Body(httpx.AsyncByteStream):
    """A streamed body: one rendered item per read, `Delay`s slept, `Drop` a lost connection.

    A class, not an async generator: a body closed early leaves nothing for trio's finalizer."""

    def __init__(self, upstream: MockUpstream, items: Iterator[Any]) -> None:
        self._upstream = upstream
        self._items = items
        self._open = True
        upstream.open_responses += 1
        upstream.most_open = max(upstream.most_open, upstream.open_responses)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if not self._open:
            raise StopAsyncIteration
        for item in self._items:
            if isinstance(item, bytes):
                self._upstream.chunks_sent += 1
                return item
            if isinstance(item, TruncatedChunk | Reset | UnknownEvent | WrongShape):
                raise NotImplementedError(f"{type(item).__name__}: not modelled by MockUpstream; use FakeUpstream")
            if isinstance(item, Drop):
                self._end(aborted=True)
                raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
            if isinstance(item, Delay):
                await trio.sleep(item.seconds)
        self._end(aborted=False)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if self._open:  # closed by the client before its end
            self._end(aborted=True)

    def _end(self, aborted: bool) -> None:
        self._open = False
        self._upstream.open_responses -= 1
        if aborted:
            self._upstream.responses_aborted += 1
            self._upstream.aborted_at.append(trio.current_time())
        else:
            self._upstream.responses_completed += 1
