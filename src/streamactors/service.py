"""`open_service(cfg)`: the running actor tree and the `Service` handle users talk to."""

from __future__ import annotations

import difflib
import itertools
import os
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from .actors.messages import ReplyMessage, StreamJob
from .actors.provider import ProviderActor
from .config import Config
from .errors import ProviderError, UsageError
from .logs import make_logger
from .models import ChatRequest, ErrorEvent, Reply, StreamEvent
from .providers import build_authorizer, build_codec
from .stream import EventStream
from .supervision.supervisor import ChildSpec, Restart, supervise
from .wire.base import ProviderCodec

__all__ = ["Service", "Submission", "open_service"]

#: What goes into `Service.submissions`: a request and the channel its events go to.
Submission = tuple[ChatRequest | Mapping[str, Any], trio.MemorySendChannel[StreamEvent]]

# How often the submission watcher looks for submitters that closed their receive end.
_WATCH_INTERVAL = 0.05


class Service:
    """A running streamactors service. Get one from `open_service(cfg)`.

    - `await service.complete(request)` returns a `Reply`.
    - `async with service.stream(request) as events:` yields normalized events.
    - `await service.submissions.send((request, reply_send))` streams events into
      `reply_send` and closes it at the end; failures arrive as a final `error` event.
    """

    def __init__(self, config: Config, actors: Mapping[str, ProviderActor], logger: Any) -> None:
        self.config = config
        self._actors = dict(actors)
        self._log = logger
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        send, recv = trio.open_memory_channel[Submission](config.service.submission_buffer)
        self._submissions_send = send
        self._submissions_recv = recv
        self._watched: dict[int, tuple[trio.MemorySendChannel[StreamEvent], trio.CancelScope]] = {}

    # --- public API ------------------------------------------------------------------

    @property
    def submissions(self) -> trio.MemorySendChannel[Submission]:
        """A bounded channel of `(request, reply_send_channel)` pairs."""
        return self._submissions_send

    @property
    def providers(self) -> list[str]:
        """Names of the configured providers."""
        return list(self._actors)

    async def complete(self, request: ChatRequest | Mapping[str, Any]) -> Reply:
        """Stream the request to its end and return the aggregated reply."""
        async with self.stream(request) as events:
            async for _ in events:
                pass
            return events.reply()

    @asynccontextmanager
    async def stream(self, request: ChatRequest | Mapping[str, Any]) -> AsyncIterator[EventStream]:
        """Stream a request's events. Leaving the block early cancels the upstream request."""
        req = self._coerce(request)
        provider, model_id = self._resolve(req)
        actor = self._actors[provider]
        request_id = req.request_id or f"{self._id_prefix}-{next(self._ids)}"
        send, recv = trio.open_memory_channel[ReplyMessage](self.config.service.event_buffer)
        cancel = trio.CancelScope()
        try:
            await actor.mailbox.send(StreamJob(req, model_id, send, cancel, request_id))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ProviderError(
                "the service is shutting down", provider=provider, kind="connection", retryable=True
            ) from None
        try:
            yield EventStream(recv, provider, model_id, request_id)
        finally:
            cancel.cancel()
            recv.close()

    # --- internals -------------------------------------------------------------------

    @staticmethod
    def _coerce(request: ChatRequest | Mapping[str, Any]) -> ChatRequest:
        if isinstance(request, ChatRequest):
            return request
        if isinstance(request, Mapping):
            return ChatRequest.from_dict(request)
        raise UsageError(f"request must be a ChatRequest or a dict, got {type(request).__name__}")

    def _resolve(self, req: ChatRequest) -> tuple[str, str]:
        provider, model_id = req.split_model()
        if provider not in self._actors:
            near = difflib.get_close_matches(provider, list(self._actors), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise UsageError(
                f"model {req.model!r}: no provider named {provider!r} is configured{hint} "
                f'(configured: {", ".join(self._actors) or "none"}). Write "<provider>/<model-id>".'
            )
        if not model_id:
            raise UsageError(f'model {req.model!r}: give a model id after the provider, as "{provider}/<model-id>"')
        return provider, model_id

    async def _serve_submissions(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        limit = trio.CapacityLimiter(max(1, sum(a.config.max_concurrency for a in self._actors.values()) * 2))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_submitters)
            task_status.started()
            async for request, reply_send in self._submissions_recv:
                await limit.acquire_on_behalf_of(reply_send)
                nursery.start_soon(self._relay, request, reply_send, limit)
            nursery.cancel_scope.cancel()

    async def _relay(
        self,
        request: ChatRequest | Mapping[str, Any],
        reply_send: trio.MemorySendChannel[StreamEvent],
        limit: trio.CapacityLimiter,
    ) -> None:
        key = id(reply_send)
        try:
            with trio.CancelScope() as scope:
                self._watched[key] = (reply_send, scope)
                async with reply_send:
                    try:
                        async with self.stream(request) as events:
                            async for ev in events:
                                await reply_send.send(ev)
                    except (ProviderError, UsageError) as exc:
                        await reply_send.send(ErrorEvent(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the submitter closed its end: the stream block above cancelled the upstream
        finally:
            self._watched.pop(key, None)
            limit.release_on_behalf_of(reply_send)

    async def _watch_submitters(self) -> None:
        # One task polls every submission, instead of a watcher task per submission.
        while True:
            await trio.sleep(_WATCH_INTERVAL)
            for reply_send, scope in list(self._watched.values()):
                try:
                    gone = reply_send.statistics().open_receive_channels == 0
                except trio.ClosedResourceError:
                    gone = True
                if gone:
                    scope.cancel()

    async def _shutdown(self) -> None:
        self._submissions_send.close()
        for actor in self._actors.values():
            actor.mailbox.close()


@asynccontextmanager
async def open_service(
    config: Config,
    *,
    logger: Any = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    codecs: Mapping[str, ProviderCodec] | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[Service]:
    """Start the supervised actor tree; yield a `Service`; shut down cleanly on exit.

    On exit, no new requests are accepted; in-flight streams get
    `config.service.shutdown_grace` seconds to finish, then are cancelled.
    `transports` and `codecs` (by provider name) replace the defaults, for tests.
    """
    log = logger if logger is not None else make_logger(config.logging, config.secrets())
    actors: dict[str, ProviderActor] = {}
    for name, pc in config.providers.items():
        codec = (codecs or {}).get(name) or build_codec(name, pc)
        actors[name] = ProviderActor(
            name,
            pc,
            codec,
            authorizer=build_authorizer(name, pc),
            logger=log,
            transport=(transports or {}).get(name),
            rng=rng,
        )
    service = Service(config, actors, log)
    children = [ChildSpec(f"provider:{n}", a.run, Restart.TRANSIENT) for n, a in actors.items()]
    settings = config.service
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def run_tree(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await supervise(
                    children,
                    logger=log,
                    max_restarts=settings.max_restarts,
                    within_s=settings.restart_window,
                    task_status=task_status,
                )
            finally:
                done.set()

        await nursery.start(run_tree)
        await nursery.start(service._serve_submissions)
        log.info("service_started", providers=list(actors))
        try:
            yield service
        finally:
            await service._shutdown()
            with trio.move_on_after(settings.shutdown_grace):
                await done.wait()
            nursery.cancel_scope.cancel()
            log.info("service_stopped")
