"""`open_service(cfg)`: the running actor tree and the `Service` handle users talk to."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import trio

from .actors.breaker import BreakerActor
from .actors.fleet import SharedFleet
from .actors.limiter import LimiterActor
from .actors.metrics import MetricsActor
from .actors.provider import ProviderActor
from .actors.router import RouterActor
from .config.schema import Config, RouteConfig
from .errors import ProviderError, UsageError
from .http.media import MediaFetcher
from .logs import make_logger, open_log_file
from .models import ChatRequest, ErrorEvent, Reply, StreamEvent
from .providers.kinds import build_authorizer, build_codec
from .request_dict import request_from_dict
from .routing import Legs, plan
from .stream import EventStream
from .supervision.supervisor import ChildSpec, supervise
from .transformed import TransformedEventStream, build_transform
from .transforms import Transform
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

    def __init__(
        self,
        config: Config,
        actors: Mapping[str, ProviderActor],
        metrics: MetricsActor,
        router: RouterActor,
        fleet: SharedFleet | None = None,
        logger: Any = None,
    ) -> None:
        self.config = config
        self._log = logger
        #: The providers with configured transforms, and theirs.
        self._target_transforms = {n: a.config.transforms for n, a in actors.items() if a.config.transforms}
        self._fleet = fleet
        self._actors = dict(actors)
        self._metrics = metrics
        self._router = router
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

    async def complete(
        self, request: ChatRequest | Mapping[str, Any], *, transforms: Sequence[Transform] = ()
    ) -> Reply:
        """Stream the request to its end and return the aggregated reply (`transforms` as in `stream`)."""
        events = await self._open_stream(request, True, transforms)
        try:
            await events.drain()
            return events.reply()
        finally:
            events.close()

    def stream(
        self,
        request: ChatRequest | Mapping[str, Any],
        *,
        keep_text: bool = True,
        transforms: Sequence[Transform] = (),
    ) -> AbstractAsyncContextManager[EventStream]:
        """Stream a request's events. Leaving the block early cancels the upstream request.

        `model` is "<provider>/<model-id>" or the name of a route under `[routes]`.
        With `keep_text=False` the stream does not keep the text it hands out (so
        `reply().text` and an error's `.partial.text` are empty, and a route cannot
        continue a broken reply): for consumers that keep their own copy.
        `transforms` (new `Transform`s, for this request alone) run after the configured
        ones: the answering provider's, then the route's.
        """
        return _Streaming(self, request, keep_text, transforms)

    async def _open_stream(
        self, request: ChatRequest | Mapping[str, Any], keep_text: bool, transforms: Sequence[Transform] = ()
    ) -> EventStream:
        req = self._coerce(request)
        targets, route = await plan(req, self.config.routes, self._router, self._actors)
        request_id = req.request_id or f"{self._id_prefix}-{next(self._ids)}"
        legs = Legs(self._actors, targets, request_id, route=route, router=self._router, metrics=self._metrics)
        # Decided once per stream: without transforms, the plain stream and its code path.
        if transforms or (route is not None and route.transforms) or self._target_transforms:
            return self._transformed(req, request_id, legs, keep_text, route, transforms)
        return EventStream(req, request_id, legs, keep_text=keep_text)

    def _transformed(
        self,
        req: ChatRequest,
        request_id: str,
        legs: Legs,
        keep_text: bool,
        route: RouteConfig | None,
        transforms: Sequence[Transform],
    ) -> EventStream:
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise UsageError(
                    f"transforms[{i}]: expected a Transform (StopSequences, Redact, BlockList, Coalesce or a "
                    f"subclass of streamactors.transforms.Transform), got {type(t).__name__}"
                )
        after = [build_transform(spec) for spec in route.transforms] if route is not None else []
        if (
            not after
            and not transforms
            and not any(t.partition("/")[0] in self._target_transforms for t in legs.targets)
        ):
            return EventStream(req, request_id, legs, keep_text=keep_text)
        legs.direct = False
        return TransformedEventStream(
            req,
            request_id,
            legs,
            keep_text=keep_text,
            target_transforms=self._target_transforms,
            transforms=[*after, *transforms],
            metrics=self._metrics,
            logger=self._log,
        )

    def health(self) -> dict[str, dict[str, Any]]:
        """Per provider: request counters, error kinds, retries, tokens, latency percentiles
        (time to first token, duration, gateway overhead), breaker and limiter state. With
        `[shared]`, also `"shared"`: "ok" while Redis answers, "degraded" while local state rules."""
        out: dict[str, dict[str, Any]] = {}
        for name, actor in self._actors.items():
            h = self._metrics.provider_health(name)
            h.update(actor.health())
            if self._fleet is not None:
                h["shared"] = self._fleet.status()
            out[name] = h
        return out

    def metrics_text(self) -> str:
        """Prometheus text exposition of the service's metrics."""
        states = {"closed": 0, "open": 1, "half_open": 2}
        health = {name: actor.health() for name, actor in self._actors.items()}
        circuit = {n: states[h["circuit"]["state"]] for n, h in health.items() if h["circuit"] is not None}
        return self._metrics.prometheus(circuit, {n: h["in_flight"] for n, h in health.items()})

    # --- internals -------------------------------------------------------------------

    @staticmethod
    def _coerce(request: ChatRequest | Mapping[str, Any]) -> ChatRequest:
        if isinstance(request, ChatRequest):
            return request
        if type(request) is dict or isinstance(request, Mapping):
            return request_from_dict(request)
        raise UsageError(f"request must be a ChatRequest or a dict, got {type(request).__name__}")

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
        """Stop taking work; provider actors finish what they have, then stop."""
        self._submissions_send.close()
        for actor in self._actors.values():
            actor.close()


class _Streaming:
    """What `Service.stream()` returns: opens the stream on entry, closes it on exit."""

    __slots__ = ("_events", "_keep_text", "_request", "_service", "_transforms")

    def __init__(
        self,
        service: Service,
        request: ChatRequest | Mapping[str, Any],
        keep_text: bool,
        transforms: Sequence[Transform],
    ) -> None:
        self._service = service
        self._request = request
        self._keep_text = keep_text
        self._transforms = transforms
        self._events: EventStream | None = None

    async def __aenter__(self) -> EventStream:
        self._events = await self._service._open_stream(self._request, self._keep_text, self._transforms)
        return self._events

    async def __aexit__(self, *exc_info: object) -> None:
        if self._events is not None:
            self._events.close()


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
    The configured log file (unless `logger` is given) is closed on exit.
    """
    log_file = open_log_file(config.logging) if logger is None else None
    try:
        log = logger if logger is not None else make_logger(config.logging, config.secrets(), stream=log_file)
        async with _run_service(config, log, transports, codecs, rng) as service:
            yield service
    finally:
        if log_file is not None:
            log_file.close()


@asynccontextmanager
async def _run_service(
    config: Config,
    log: Any,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None,
    codecs: Mapping[str, ProviderCodec] | None,
    rng: random.Random | None,
) -> AsyncIterator[Service]:
    metrics = MetricsActor(config.providers)
    router = RouterActor(config.routes, rng)
    actors: dict[str, ProviderActor] = {}
    media = MediaFetcher(config.service.media_max_bytes, config.service.media_timeout)
    fleet = SharedFleet(config.shared, log) if config.shared is not None else None
    children = [ChildSpec("metrics", metrics.run), ChildSpec("router", router.run)]
    for name, pc in config.providers.items():
        codec = (codecs or {}).get(name) or build_codec(name, pc)
        limiter: LimiterActor
        breaker: BreakerActor
        if fleet is not None:
            limiter, breaker = fleet.guards(name, pc)
        else:
            limiter, breaker = LimiterActor(name, pc.rate_limit, log), BreakerActor(name, pc.circuit_breaker, log)
        actors[name] = ProviderActor(
            name,
            pc,
            codec,
            authorizer=build_authorizer(name, pc),
            logger=log,
            transport=(transports or {}).get(name),
            rng=rng,
            limiter=limiter,
            breaker=breaker,
            metrics=metrics,
            event_buffer=config.service.event_buffer,
            media=media,
        )
        children += [
            ChildSpec(f"limiter:{name}", limiter.run),
            ChildSpec(f"breaker:{name}", breaker.run),
            ChildSpec(f"provider:{name}", actors[name].run),
        ]
    if fleet is not None:
        children = fleet.children() + children
    service = Service(config, actors, metrics, router, fleet, logger=log)
    settings = config.service
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:

        async def run_tree(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            await supervise(
                children,
                logger=log,
                max_restarts=settings.max_restarts,
                within_s=settings.restart_window,
                task_status=task_status,
            )

        await nursery.start(run_tree)
        await nursery.start(service._serve_submissions)
        log.info("service_started", providers=list(actors))
        try:
            yield service
        except BaseException as exc:
            # Re-raised below, outside the nursery: an error from the caller's block (a
            # ProviderError, say) then leaves `open_service` as itself, not in an ExceptionGroup.
            body_error = exc
        finally:
            await service._shutdown()
            # In-flight streams get the grace period to finish; then everything is cancelled.
            with trio.move_on_after(settings.shutdown_grace):
                for actor in actors.values():
                    await actor.stopped.wait()
                # No request is left to report: the metrics and the router take in what is
                # queued and stop (their supervisor does not restart a child that returns).
                metrics.close()
                router.close()
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await media.aclose()
            log.info("service_stopped")
    if body_error is not None:
        raise body_error
