"""`Worker(cfg)`: the service on a trio loop in a background thread, for asyncio code and threads.

    with streamactors.Worker(cfg) as worker:                 # threads
        reply = worker.complete(request)
        for ev in worker.stream(request): ...

    async with streamactors.Worker(cfg) as worker:           # asyncio
        reply = await worker.acomplete(request)
        async for ev in worker.astream(request): ...

How the guarantees cross the thread boundary:

- Every request is a task in the worker's trio thread (submitted with `run_sync_soon`, which
  never blocks the caller: an asyncio loop is never blocked by a request). Its events go into
  the request's `_Handoff`, a window of at most `window` events. When the window is full the
  task waits, so the service stops reading that upstream (backpressure); the consumer hands
  room back as it takes events (a wake-up only when the task waits and half the window is free).
- A consumer waits on a `threading.Condition` (threads) or an asyncio future resolved with
  `call_soon_threadsafe` (any loop), and only when the window is empty.
- Leaving a stream (`break`, `close()`, the end of a `with` block, garbage collection) or
  cancelling the asyncio task waiting on it cancels its task, which closes the upstream
  request. A stream whose window is full while the thread (or loop) that last read it has
  ended is cancelled too.
- `stop()` takes no new requests, gives the ones in flight `service.shutdown_grace` seconds
  to finish (consumers included), then cancels them: each ends with a `ProviderError` carrying
  its partial reply. A request's `ProviderError` or `UsageError` reaches its caller as itself.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx
import trio

from ..config.schema import Config
from ..errors import ProviderError, UsageError
from ..models import ChatRequest, Reply
from ..request_dict import request_from_dict
from ..service import Service, open_service
from ..stream import EventStream
from ..wire.base import ProviderCodec
from .handoff import Handoff, wake_future
from .streams import AsyncWorkerStream, WorkerStream

__all__ = ["Worker"]

#: How often the worker looks for streams whose consumer ended while the stream waits for it.
_WATCH_INTERVAL = 0.05


def _coerce(request: ChatRequest | Mapping[str, Any]) -> ChatRequest:
    if isinstance(request, ChatRequest):
        return request
    if isinstance(request, Mapping):
        return request_from_dict(request)
    raise UsageError(f"request must be a ChatRequest or a dict, got {type(request).__name__}")


def _single(exc: BaseException) -> BaseException:
    """The one error inside nested one-error groups (what a nursery wraps it in)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class Worker:
    """The service on a trio loop in a background thread, for asyncio programs and threads.

    `start()` returns once the service is ready (a configuration error is raised there);
    `stop()` drains it as `open_service` does on exit. `with Worker(cfg) as worker:` and
    `async with Worker(cfg) as worker:` do both. In between:

    - `worker.complete(request)` / `await worker.acomplete(request)` return the `Reply`;
    - `worker.stream(request)` / `worker.astream(request)` iterate its events.

    A request is a `ChatRequest` or a dict (as `Service.complete` takes). Each stream holds at
    most `window` events the consumer has not read; a slower consumer slows the upstream
    read. The asyncio calls never block the loop and work from any running loop. `logger`,
    `transports`, `codecs` and `rng` are passed to `open_service`.
    """

    def __init__(
        self,
        config: Config,
        *,
        window: int = 64,
        logger: Any = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        codecs: Mapping[str, ProviderCodec] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if window < 1:
            raise UsageError(f"Worker(window={window}): the window must hold at least 1 event")
        self.config = config
        self.window = window
        self._service_args: dict[str, Any] = {"logger": logger, "transports": transports, "codecs": codecs, "rng": rng}
        self._lock = threading.Lock()
        self._state = "new"  # new -> starting -> running -> stopping -> stopped
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop_wanted = False
        self._startup_error: BaseException | None = None
        self._failure: BaseException | None = None
        self._failed_with = ""  # the service's error, for the messages of later calls
        self._live: set[Handoff] = set()
        # Set in the trio thread, read by submitters under the lock:
        self._token: trio.lowlevel.TrioToken | None = None
        # Trio thread only:
        self._service: Service | None = None
        self._nursery: trio.Nursery | None = None
        self._stop_event: trio.Event | None = None
        self._stopping = False
        self._relays = 0
        self._idle: trio.Event | None = None
        self._blocked: set[Handoff] = set()

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True from a successful `start()` until `stop()` is called (or the service fails)."""
        return self._state == "running"

    def start(self) -> None:
        """Start the service in a background thread; return once it is ready.

        An error starting it (a `ConfigError`, say) is raised here. A worker starts once."""
        with self._lock:
            if self._state != "new":
                raise UsageError(f"Worker.start(): the worker is {self._state}; a Worker starts once, create a new one")
            self._state = "starting"
            thread = self._thread = threading.Thread(target=self._run, name="streamactors-worker", daemon=True)
            thread.start()  # under the lock: a `stop()` from another thread finds it started
        self._ready.wait()
        error = self._startup_error
        if error is not None:
            thread.join()
            raise error

    def stop(self) -> None:
        """Take no new requests; let the ones in flight finish within `service.shutdown_grace`
        seconds, then cancel them (each ends with a `ProviderError`); stop the thread.

        Returns once the thread has ended. Does nothing if the worker was never started or is
        stopped already. Blocks the calling thread: from asyncio, `await asyncio.to_thread(worker.stop)`
        (or `async with`), so that the loop's own streams can finish meanwhile. If the service
        failed while running, its error is raised here."""
        thread = self._thread
        if thread is not None and threading.current_thread() is thread:
            raise UsageError("Worker.stop() called from the worker's own thread: call it from another thread")
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._stop_wanted = True
            token = self._token if self._state == "running" else None
            if self._state == "running":
                self._state = "stopping"
        if token is not None:
            try:
                token.run_sync_soon(self._request_stop)
            except trio.RunFinishedError:
                pass
        thread.join()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Worker:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # --- requests ------------------------------------------------------------------------

    def complete(self, request: ChatRequest | Mapping[str, Any]) -> Reply:
        """Stream the request to its end in the worker and return the reply (blocks the thread)."""
        h = self._submit(request, complete=True, threaded=True)
        assert h.cond is not None
        try:
            with h.lock:
                while not h.done:
                    h.wake = h.cond.notify
                    h.cond.wait()
        except BaseException:
            h.cancel()
            raise
        return self._reply(h)

    async def acomplete(self, request: ChatRequest | Mapping[str, Any]) -> Reply:
        """As `complete()`, awaited from any asyncio loop; cancelling the task cancels the request."""
        h = self._submit(request, complete=True, threaded=False)
        loop = asyncio.get_running_loop()
        h.consumer_loop = loop
        try:
            while True:
                with h.lock:
                    if h.done:
                        break
                    fut: asyncio.Future[None] = loop.create_future()
                    h.wake = functools.partial(wake_future, loop, fut)
                await fut
        except BaseException:
            h.cancel()
            raise
        return self._reply(h)

    def stream(self, request: ChatRequest | Mapping[str, Any], *, keep_text: bool = True) -> WorkerStream:
        """Start the request now; iterate its events from a thread. `keep_text` as in `Service.stream`."""
        return WorkerStream(self._submit(request, keep_text=keep_text, threaded=True))

    def astream(self, request: ChatRequest | Mapping[str, Any], *, keep_text: bool = True) -> AsyncWorkerStream:
        """Start the request now; iterate its events with `async for` in any asyncio loop."""
        return AsyncWorkerStream(self._submit(request, keep_text=keep_text, threaded=False))

    # --- submitting (caller's thread) ----------------------------------------------------------

    def _submit(
        self,
        request: ChatRequest | Mapping[str, Any],
        *,
        complete: bool = False,
        keep_text: bool = True,
        threaded: bool,
    ) -> Handoff:
        if threading.current_thread() is self._thread:
            raise UsageError("a Worker's requests were made from its own trio thread: in trio code use open_service()")
        req = _coerce(request)
        with self._lock:
            if self._state != "running" or self._token is None:
                raise self._not_running()
            h = Handoff(self._token, req, self.window, self._forget, threaded=threaded)
            self._live.add(h)
            try:
                self._token.run_sync_soon(self._spawn, h, complete, keep_text)
            except trio.RunFinishedError:
                self._live.discard(h)
                raise self._not_running() from None
        return h

    def _not_running(self) -> UsageError:
        if self._state in ("new", "starting"):
            return UsageError(
                "the Worker is not started: call worker.start() first, or use `with Worker(cfg) as worker:`"
            )
        if self._state == "stopping":
            return UsageError("the Worker is stopping: it takes no new requests")
        if self._failed_with:
            return UsageError(f"the Worker is stopped: its service failed ({self._failed_with}); create a new one")
        return UsageError("the Worker is stopped: a Worker runs once, create a new one to send more requests")

    def _forget(self, h: Handoff) -> None:
        with self._lock:
            self._live.discard(h)

    @staticmethod
    def _reply(h: Handoff) -> Reply:
        outcome = h.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, Reply)
        return outcome

    # --- the trio thread -------------------------------------------------------------------

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            trio.run(self._main)
        except BaseException as exc:  # handed to start() or stop(), in the caller's thread
            error = _single(exc)
        with self._lock:
            self._state = "stopped"
            if self._token is None:
                self._startup_error = error
            else:
                self._failure = error
                if error is not None:
                    self._failed_with = f"{type(error).__name__}: {error}"
            live = list(self._live)
            self._live.clear()
        self._ready.set()
        # Only a crash leaves requests behind (each task ends its own otherwise).
        why = "the worker stopped" if error is None else f"the worker's service failed: {error!r}"
        for h in live:
            h.finish(self._cut(h, None, why, kind="internal"), with_unput=True)

    async def _main(self) -> None:
        async with open_service(self.config, **self._service_args) as service, trio.open_nursery() as nursery:
            self._service = service
            self._nursery = nursery
            self._stop_event = trio.Event()
            nursery.start_soon(self._watch_consumers)
            with self._lock:
                stop_now = self._stop_wanted
                self._token = trio.lowlevel.current_trio_token()
                self._state = "stopping" if stop_now else "running"
            self._ready.set()
            if not stop_now:
                await self._stop_event.wait()
            self._stopping = True
            # No new request can arrive now: `stop()` changed the state before asking.
            with trio.move_on_after(service.config.service.shutdown_grace):
                while self._relays:
                    self._idle = trio.Event()
                    await self._idle.wait()
            self._nursery = None
            nursery.cancel_scope.cancel()

    def _request_stop(self) -> None:
        assert self._stop_event is not None
        self._stop_event.set()

    def _spawn(self, h: Handoff, complete: bool, keep_text: bool) -> None:
        # A `run_sync_soon` callback: it must not raise.
        if self._nursery is None:
            h.finish(self._not_running())
            return
        self._relays += 1
        self._nursery.start_soon(self._relay, h, complete, keep_text)

    async def _relay(self, h: Handoff, complete: bool, keep_text: bool) -> None:
        assert self._service is not None
        events: EventStream | None = None
        try:
            with trio.CancelScope() as h.scope:
                if h.closed:
                    return
                async with self._service.stream(h.request, keep_text=keep_text) as events:
                    if complete:
                        await events.drain()
                        h.finish(events.reply())
                        return
                    while batch := await events.next_batch():
                        self._blocked.add(h)
                        try:
                            await h.put(batch)
                        finally:
                            self._blocked.discard(h)
                    h.finish(None)
        except (ProviderError, UsageError) as exc:
            h.finish(exc)
        except Exception as exc:  # a bug of ours: this request fails alone, as in the provider actors
            err = self._cut(h, events, f"internal error in the worker: {exc!r}", kind="internal")
            err.__cause__ = exc
            h.finish(err)
        finally:
            if not h.done:  # cancelled: its consumer left, stop(), or the service failed
                h.finish(self._cancelled(h, events), with_unput=True)
            self._relays -= 1
            if not self._relays and self._idle is not None:
                self._idle.set()

    def _cancelled(self, h: Handoff, events: EventStream | None) -> ProviderError:
        if h.abandoned:
            why = "the thread (or asyncio loop) reading this stream ended while the stream waited for it"
        elif h.closed:
            why = "the stream was closed by its consumer"
        elif self._stopping:
            grace = self.config.service.shutdown_grace
            why = f"the worker stopped before the reply ended (service.shutdown_grace = {grace} s)"
        else:  # the service's failure cancelled it
            return self._cut(h, events, "the worker's service failed (stop() raises its error)", kind="internal")
        return self._cut(h, events, why)

    async def _watch_consumers(self) -> None:
        # Only a stream waiting for room can be stuck on a consumer that is gone.
        while True:
            await trio.sleep(_WATCH_INTERVAL)
            for h in list(self._blocked):
                if h.consumer_gone():
                    h.abandoned = True
                    h.cancel_in_trio()

    @staticmethod
    def _cut(h: Handoff, events: EventStream | None, message: str, *, kind: str = "connection") -> ProviderError:
        """The error a request ends with when the worker ends it: what it received so far as
        its partial reply (everything the consumer gets before the error). Retryable unless
        the worker failed (sent again to a running worker, it may succeed)."""
        if events is not None:
            provider, partial = events.provider, events.reply()
        else:
            provider, _, model = h.request.model.partition("/")
            partial = Reply(provider=provider, model=model)
        return ProviderError(message, provider=provider, kind=kind, retryable=kind != "internal", partial=partial)
