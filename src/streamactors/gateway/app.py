"""The gateway's routes: OpenAI's and Anthropic's APIs in front of a running `Service`.

`GatewayApp` is what the HTTP server (`gateway.server`) calls for each request. It checks the
API key, parses the body in the endpoint's dialect, and relays the service's events back in
that dialect, batch by batch: each `Responder.send` waits for the client's socket, so a slow
client slows the upstream read (backpressure), and a client that leaves cancels the handler,
whose `service.stream` block then cancels the upstream request.

Errors follow the SDKs' expectations. Before the first byte, the response carries the
failure's HTTP status (an upstream status as received, or the gateway's own: 400, 401, 404,
413, 429, 503, 504) and the dialect's error body. After the stream began, the stream ends with
the dialect's in-stream error (and no `[DONE]`). Every response carries `x-request-id` and
`request-id`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

import attrs
import orjson

from ..config.schema import Config
from ..errors import ProviderError, UsageError
from ..models import ChatRequest, Reply, StreamEvent
from ..service import Service
from .auth import KeyCheck
from .errors import GatewayError
from .server import Request, Responder

__all__ = ["Call", "Dialect", "GatewayApp", "StreamEncoder"]

Headers = list[tuple[str, str]]

_SSE_HEADERS: Headers = [
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
]


@attrs.frozen(slots=True)
class Call:
    """A parsed request: what to ask the service, and how the client wants the answer."""

    request: ChatRequest
    stream: bool
    #: OpenAI's `stream_options.include_usage` (Anthropic's stream always carries usage).
    include_usage: bool = False


class StreamEncoder(Protocol):
    """One streamed response in a dialect: events in, bytes for the client out."""

    def encode(self, events: Sequence[StreamEvent]) -> bytes:
        """The bytes for these events (possibly none yet)."""
        ...

    def finish(self) -> bytes:
        """The bytes that end a complete stream."""
        ...

    def error(self, exc: BaseException) -> bytes:
        """The bytes that end a stream that failed after it began."""
        ...


class Dialect(Protocol):
    """An API the gateway speaks (OpenAI Chat Completions, Anthropic Messages)."""

    def parse(self, body: bytes) -> Call:
        """The call a request body asks for; raises `GatewayError` or `UsageError`."""
        ...

    def encoder(self, call: Call, response_id: str, created: int) -> StreamEncoder:
        """A fresh encoder for one streamed response."""
        ...

    def body(self, call: Call, reply: Reply, response_id: str, created: int) -> bytes:
        """The whole non-streamed response."""
        ...

    def error(self, exc: BaseException) -> tuple[int, Headers, bytes]:
        """(status, headers, body) of an error response."""
        ...


class GatewayApp:
    """Routes requests to the service; see the module docstring.

    `draining` is set when the server begins to shut down: `/health` then answers 503.
    """

    def __init__(self, service: Service, config: Config, *, openai: Dialect, anthropic: Dialect, logger: Any) -> None:
        self.service = service
        self.config = config
        self.draining = False
        self._openai = openai
        self._anthropic = anthropic
        self._keys = KeyCheck(config.server.api_keys)
        self._log = logger
        self._models = orjson.dumps(_model_list(config))
        self._id_prefix = os.urandom(6).hex()
        self._next_id = 0

    # --- the server's interface --------------------------------------------------------

    async def handle(self, request: Request, responder: Responder) -> None:
        """Answer one request."""
        self._next_id += 1
        rid = f"req_{self._id_prefix}{self._next_id:08x}"
        ids = [("x-request-id", rid), ("request-id", rid)]
        path, method = request.path, request.method
        if path.startswith("/v1/"):
            dialect = self._anthropic if path.startswith("/v1/messages") else self._openai
            if not self._keys.allows(request.header("authorization"), request.header("x-api-key")):
                error = GatewayError(
                    "invalid or missing API key: send Authorization: Bearer <key> or x-api-key: <key>",
                    status=401,
                    type="authentication_error",
                    code="invalid_api_key",
                )
                await self._fail(responder, dialect, error, ids)
                return
            if method == "POST" and path in ("/v1/chat/completions", "/v1/messages"):
                await self._chat(request, responder, dialect, rid, ids)
            elif path == "/v1/models" and method == "GET":
                await _send(responder, 200, [("content-type", "application/json"), *ids], self._models)
            else:
                await self._fail(responder, dialect, _not_found(method, path), ids)
        elif path == "/health" and method == "GET":
            status = 503 if self.draining else 200
            body = orjson.dumps(
                {"status": "draining" if self.draining else "ok", "providers": self.service.health()},
                option=orjson.OPT_NON_STR_KEYS,
            )
            await _send(responder, status, [("content-type", "application/json"), *ids], body)
        elif path == "/metrics" and method == "GET":
            text = self.service.metrics_text().encode()
            await _send(responder, 200, [("content-type", "text/plain; version=0.0.4; charset=utf-8"), *ids], text)
        else:
            await self._fail(responder, self._openai, _not_found(method, path), ids)

    def reject(self, method: str, target: str, status: int, message: str) -> tuple[int, Headers, bytes]:
        """The response for a request the server refuses itself (too large, malformed, slow)."""
        dialect = self._anthropic if target.startswith("/v1/messages") else self._openai
        kind = "request_too_large" if status == 413 else "invalid_request_error"
        return dialect.error(GatewayError(message, status=status, type=kind))

    # --- the chat endpoints ------------------------------------------------------------

    async def _chat(self, request: Request, responder: Responder, dialect: Dialect, rid: str, ids: Headers) -> None:
        try:
            call = dialect.parse(request.body)
            self._check_model(call.request.model)
        except (GatewayError, UsageError) as exc:
            await self._fail(responder, dialect, exc, ids)
            return
        call = attrs.evolve(call, request=attrs.evolve(call.request, request_id=rid))
        created = int(time.time())
        route = self.config.routes.get(call.request.model)
        # A streamed reply's text is the client's to keep; a route that may continue a broken
        # reply on its next target needs it here.
        keep_text = not call.stream or (route is not None and route.continue_on_failure)
        async with self.service.stream(call.request, keep_text=keep_text) as events:
            if not call.stream:
                try:
                    await events.drain()
                except (ProviderError, UsageError) as exc:
                    await self._fail(responder, dialect, exc, ids)
                    return
                body = dialect.body(call, events.reply(), rid, created)
                await _send(responder, 200, [("content-type", "application/json"), *ids], body)
                return
            try:
                batch = await events.next_batch()
            except (ProviderError, UsageError) as exc:  # before the first byte: the status tells
                await self._fail(responder, dialect, exc, ids)
                return
            encoder = dialect.encoder(call, rid, created)
            await responder.start(200, [*_SSE_HEADERS, *ids])
            try:
                while batch:
                    data = encoder.encode(batch)
                    if data:
                        await responder.send(data)
                    batch = await events.next_batch()
            except ProviderError as exc:
                self._log.info("gateway_stream_error", request_id=rid, kind=exc.kind, status=exc.status)
                await responder.send(encoder.error(exc))
            else:
                await responder.send(encoder.finish())
            await responder.end()

    def _check_model(self, model: str) -> None:
        """A model that names no route and no provider is a 404, as the SDKs expect."""
        if model in self.config.routes:
            return
        provider, sep, model_id = model.partition("/")
        if sep and model_id and provider in self.config.providers:
            return
        known = ", ".join([*self.config.routes, *(f"{p}/<model>" for p in self.config.providers)]) or "none"
        raise GatewayError(
            f"model {model!r} not found: use a route alias or '<provider>/<model>' (configured: {known})",
            status=404,
            type="not_found_error",
            param="model",
            code="model_not_found",
        )

    async def _fail(self, responder: Responder, dialect: Dialect, exc: BaseException, ids: Headers) -> None:
        status, headers, body = dialect.error(exc)
        if status >= 500 or status == 429:
            self._log.info("gateway_error", status=status, error=type(exc).__name__, request_id=ids[0][1])
        await _send(responder, status, [*headers, *ids], body)


async def _send(responder: Responder, status: int, headers: Headers, body: bytes) -> None:
    await responder.start(status, [*headers, ("content-length", str(len(body)))])
    await responder.send(body)
    await responder.end()


def _not_found(method: str, path: str) -> GatewayError:
    return GatewayError(f"no route for {method} {path}", status=404, type="not_found_error", code="not_found")


def _model_list(config: Config) -> dict[str, Any]:
    """OpenAI's model list: every route alias, then every model a provider names."""
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "streamactors"} for name in config.routes]
    for name, pc in config.providers.items():
        data += [{"id": f"{name}/{m}", "object": "model", "created": 0, "owned_by": name} for m in pc.models]
    return {"object": "list", "data": data}
