"""`ProviderActor`: owns one provider's HTTP client, codec and concurrency limit.

Its workers (at most `max_concurrency`, the pool grown on demand) take `StreamJob`s from
its bounded mailbox and stream each upstream response into the job's bounded reply
channel, one `Batch` per network read. A slow consumer blocks the send, which stops the
reads, which lets TCP push back on the upstream: backpressure end to end. Retries (the
official SDKs' policy) happen only before the first event. First-token, idle and total
deadlines are trio cancel scopes; time blocked on the consumer is not counted as upstream
idleness.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sized
from contextlib import aclosing
from typing import Any

import attrs
import httpx
import trio

from ..config.schema import ProviderConfig
from ..config.secret import scrub
from ..errors import ProviderError, WireError
from ..http.client import (
    READ_SIZE,
    UpstreamClient,
    body_chunks,
    classify_transport_error,
    close_response,
    set_read_size,
)
from ..http.media import MediaFetcher
from ..models import ChatRequest, FinishEvent, UsageEvent
from ..policy.backoff import retry_after_seconds, retry_delay, should_retry
from ..providers.auth import Authorizer
from ..wire.base import HttpRequestSpec, ProviderCodec, StreamDecoder, with_passthrough
from .breaker import BreakerActor
from .limiter import REJECTED, LimiterActor
from .messages import Batch, CancelHandle, Leg, ReplyMessage, StreamEnd, StreamJob, estimate_tokens
from .metrics import MetricsActor, RequestRecord

__all__ = ["ProviderActor"]

MAX_ERROR_BODY = 64 * 1024

#: Body bytes a stream may hold decoded for its consumer (batches sent that it has not taken).
#: Each read takes what is left of it, and never less than `MIN_READ` (see `ProviderActor._pump`).
READ_BUDGET = READ_SIZE
MIN_READ = 1024


def _queue_of(channel: trio.MemorySendChannel[Any]) -> Sized | None:
    """The batches a reply channel holds that its receiver has not taken. trio's `statistics()`
    builds an object per call (about 1 µs, per read); its buffer's `len()` costs 40 ns. None
    where this trio keeps it elsewhere (then every read past the first is `MIN_READ`)."""
    data = getattr(getattr(channel, "_state", None), "data", None)
    return data if isinstance(data, Sized) else None


def _outcome(end: StreamEnd | None, cancelled: bool) -> tuple[str, str | None]:
    """How a job ended, for its metrics and its log line alike: ("ok" | "error" |
    "cancelled", the error's kind). No end at all is a consumer that left (cancelled) or an
    actor that stopped under the job (a connection error)."""
    if end is None:
        return ("cancelled", None) if cancelled else ("error", "connection")
    if end.error is not None:
        return "error", end.error.kind
    return "ok", None


class _TotalTimeout(Exception):
    """The request's total deadline passed (raised wherever the request was waiting)."""


class _Abandoned(Exception):
    """The consumer cancelled the job (its `CancelHandle`); nothing more is sent to it."""


async def _sleep_until(when: float, progress: _Progress, cancel: CancelHandle) -> None:
    """Wait until `when`, a wait the consumer can end (`_Abandoned`) and the total deadline
    bounds (`_TotalTimeout`, raised at the deadline if it comes first)."""
    with cancel.scope() as scope:
        await trio.sleep_until(progress.clamp(when))
    cancel.release(scope)
    if cancel.cancelled:
        raise _Abandoned
    if when >= progress.deadline:
        raise _TotalTimeout


class _AttemptFailed(Exception):
    """One HTTP attempt failed; carries the response headers the retry policy reads."""

    def __init__(self, error: ProviderError, headers: Mapping[str, str] | None = None, *, final: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.headers: Mapping[str, str] = headers or {}
        self.final = final  # never retried (our own admission control said no)


@attrs.define
class _Progress:
    """What one job has seen so far (owned by the task serving the job)."""

    first_event_at: float | None = None
    model: str | None = None
    usage: UsageEvent | None = None
    finish: str | None = None
    http_status: int | None = None
    retries: int = 0
    events: int = 0
    dispatched_at: float | None = None
    limiter_wait: float = 0.0
    #: The total deadline (trio time). Every wait is clamped to it, so one cancel scope per
    #: attempt serves the first-token, idle and total timeouts: a scope costs microseconds.
    deadline: float = math.inf
    #: The idle deadline the attempt's scope holds (-inf: none yet, or the scope holds another).
    idle_deadline: float = -math.inf

    def clamp(self, when: float) -> float:
        """`when`, or the total deadline if that comes first."""
        return when if when < self.deadline else self.deadline


class ProviderActor:
    """One configured provider, run under a supervisor.

    Construct it, then `await nursery.start(actor.run)`. Submit a request with
    `leg = await actor.submit(...)` and read the leg's messages. The mailbox outlives
    restarts: a crashed incarnation's queued jobs are served by the next one. The actor
    owns its mailbox, its limiter and its breaker: nobody else touches them (`health()`
    reads them, `close()` stops taking jobs).
    """

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        codec: ProviderCodec,
        *,
        authorizer: Authorizer | None = None,
        logger: Any,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
        limiter: LimiterActor | None = None,
        breaker: BreakerActor | None = None,
        metrics: MetricsActor | None = None,
        event_buffer: int = 16,
        media: MediaFetcher | None = None,
    ) -> None:
        self.name = name
        self._media = media
        self.config = config
        self.codec = codec
        self._authorizer = authorizer
        self._log = logger.bind(provider=name)
        self._transport = transport
        self._rng = rng or random.Random()
        self._wall_clock = wall_clock
        self._secrets = config.secrets()
        self._content_type: str = getattr(codec, "content_type", "text/event-stream")
        self._limiter = limiter
        self._breaker = breaker
        self._metrics = metrics
        self._event_buffer = event_buffer
        # Where requests are submitted; bounded, so submitters feel backpressure.
        send, recv = trio.open_memory_channel[StreamJob](config.max_concurrency)
        self._mailbox: trio.MemorySendChannel[StreamJob] = send
        self._inbox = recv
        self.in_flight = 0
        # The worker pool (see `_worker`); it does not shrink: an idle worker costs ~2 KB.
        self._workers = 0
        self._idle = 0
        #: Set once the mailbox is closed and every job has finished.
        self.stopped = trio.Event()

    async def submit(self, request: ChatRequest, model_id: str, request_id: str, max_retries: int | None = None) -> Leg:
        """Take one request; return its leg, whose messages are the stream's batches and end.

        Waits while the mailbox is full (backpressure on submitters). `max_retries`
        overrides the provider's setting. The provider's request is built here, in the
        caller's task: a parameter the provider cannot honour is a `UsageError` raised to the
        caller before anything is sent (or, with `drop_params`, dropped and logged at debug
        level). A remote image the provider cannot take by URL is fetched here first
        (`http.media`). Raises `ProviderError` once the actor is closed.
        """
        if self._media is not None:
            codec = self.codec
            request = await self._media.inline(request, lambda url: codec.must_fetch(url, model_id))
        spec = with_passthrough(self.codec.build_request(request, model_id), request)
        if spec.dropped:
            self._log.debug("params_dropped", params=list(spec.dropped), request_id=request_id, model=model_id)
        # Unsubscripted: `open_memory_channel[T](n)` costs a few microseconds more, in typing.
        send: trio.MemorySendChannel[ReplyMessage]
        recv: trio.MemoryReceiveChannel[ReplyMessage]
        send, recv = trio.open_memory_channel(self._event_buffer)
        cancel = CancelHandle()
        now = trio.current_time()
        job = StreamJob(request, model_id, spec, send, cancel, request_id, max_retries, now)
        try:
            try:
                self._mailbox.send_nowait(job)  # the caller waits for the first event next anyway
            except trio.WouldBlock:
                await self._mailbox.send(job)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ProviderError(
                "the service is shutting down", provider=self.name, kind="connection", retryable=True
            ) from None
        return Leg(self.name, model_id, recv, cancel, now)

    def close(self) -> None:
        """Take no more jobs; the ones taken finish (then `stopped` is set)."""
        self._mailbox.close()

    def health(self) -> dict[str, Any]:
        """Requests in flight, the circuit's state and the limiter's (what their actors have
        queued is taken in first)."""
        return {
            "in_flight": self.in_flight,
            "circuit": self._breaker.status() if self._breaker is not None else None,
            "rate_limit": self._limiter.status() if self._limiter is not None else None,
        }

    async def run(self, *, task_status: trio.TaskStatus[ProviderActor] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve jobs until the mailbox is closed and every job has finished."""
        client = UpstreamClient(self.config, self._transport)
        self._workers = self._idle = 0  # a restart starts a fresh pool
        try:
            async with trio.open_nursery() as nursery:
                self._add_workers(nursery, client, 1)
                task_status.started(self)
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()
        # Every job has ended, so no verdict or feedback is still to come: the guards may stop
        # once they have taken in what is queued. (A crash leaves them open for the restart.)
        for guard in (self._limiter, self._breaker):
            if guard is not None:
                guard.close()
        self.stopped.set()

    def _add_workers(self, nursery: trio.Nursery, client: UpstreamClient, count: int) -> None:
        count = min(count, self.config.max_concurrency - self._workers)
        for _ in range(count):
            nursery.start_soon(self._worker, nursery, client)
        self._workers += count
        self._idle += count

    async def _worker(self, nursery: trio.Nursery, client: UpstreamClient) -> None:
        """Take jobs from the mailbox one at a time until it closes.

        Workers wait on the mailbox themselves, so a job wakes one at once: no task is spawned
        and no dispatcher hands it over (each would cost a scheduler round per request). The
        pool grows on demand, keeping one worker waiting until there are `max_concurrency`,
        which is the concurrency limit; a burst of queued jobs grows it by as many at once.
        """
        inbox = self._inbox
        while True:
            try:
                job = await inbox.receive()
            except trio.EndOfChannel:
                self._idle -= 1
                return
            self._idle -= 1
            if not self._idle:
                self._add_workers(nursery, client, 1 + inbox.statistics().current_buffer_used)
            try:
                await self._serve(client, job)
            finally:
                self._idle += 1

    # --- one job ----------------------------------------------------------------

    async def _serve(self, client: UpstreamClient, job: StreamJob) -> None:
        self.in_flight += 1
        progress = _Progress()
        start = trio.current_time()
        end: StreamEnd | None = None
        recorded = False
        try:
            self._log.info("request_start", request_id=job.request_id, model=job.model_id)
            end = await self._stream(client, job, progress)
            # Counted before the consumer hears of the end, so health() read right after agrees.
            if self._metrics is not None:
                self._record(job, progress, end, start, False)
                recorded = True
            try:
                job.reply.send_nowait(end)  # the consumer is usually waiting for it
            except trio.WouldBlock:
                await job.reply.send(end)
        except (_Abandoned, trio.BrokenResourceError):
            end = None  # the consumer went away
        except Exception as exc:
            # A bug or an unexpected failure while serving this job: this job fails, with what
            # it received so far (the consumer holds it), and the provider's other jobs go on.
            self._log.exception(
                "internal_error", request_id=job.request_id, model=job.model_id, error_type=type(exc).__name__
            )
            error = ProviderError(
                f"internal error in provider actor: {type(exc).__name__}: {scrub(str(exc), self._secrets)}",
                provider=self.name,
                kind="internal",
                retryable=False,
            )
            end = StreamEnd(progress.model, error, progress.retries)
            if self._metrics is not None and not recorded:
                self._record(job, progress, end, start, False)
                recorded = True
            try:
                try:
                    job.reply.send_nowait(end)
                except trio.WouldBlock:
                    await job.reply.send(end)  # as for any end: until the consumer reads or leaves
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        finally:
            job.reply.close()
            self.in_flight -= 1
            cancelled = job.cancel.cancelled
            self._log_end(job, progress, end, start, cancelled=cancelled)
            if self._metrics is not None and not recorded:
                self._record(job, progress, end, start, cancelled)

    def _record(self, job: StreamJob, p: _Progress, end: StreamEnd | None, start: float, cancelled: bool) -> None:
        assert self._metrics is not None
        outcome, kind = _outcome(end, cancelled)
        overhead = None
        if p.dispatched_at is not None:
            overhead = max(0.0, p.dispatched_at - job.submitted_at - p.limiter_wait)
        self._metrics.report(
            RequestRecord(
                self.name,
                job.model_id,
                outcome,
                kind,
                None if p.first_event_at is None else p.first_event_at - start,
                trio.current_time() - start,
                overhead,
                p.usage.input_tokens if p.usage else None,
                p.usage.output_tokens if p.usage else None,
                p.retries,
            )
        )

    def _log_end(self, job: StreamJob, p: _Progress, end: StreamEnd | None, start: float, *, cancelled: bool) -> None:
        now = trio.current_time()
        outcome, kind = _outcome(end, cancelled)
        fields: dict[str, Any] = {"request_id": job.request_id, "model": job.model_id, "status": outcome}
        if outcome == "error":
            fields["error_kind"] = kind
            if end is not None and end.error is not None:
                fields["error"] = end.error.message
                fields["error_status"] = end.error.status
            else:
                fields["error"] = "actor stopped"
        fields["duration_ms"] = round((now - start) * 1000, 3)
        fields["ttft_ms"] = None if p.first_event_at is None else round((p.first_event_at - start) * 1000, 3)
        fields["http_status"] = p.http_status
        fields["retries"] = p.retries
        usage = p.usage
        if usage is None:
            fields["input_tokens"] = fields["output_tokens"] = fields["cache_read_tokens"] = None
            fields["cache_write_tokens"] = fields["reasoning_tokens"] = None
        else:
            fields["input_tokens"] = usage.input_tokens
            fields["output_tokens"] = usage.output_tokens
            fields["cache_read_tokens"] = usage.cache_read_tokens
            fields["cache_write_tokens"] = usage.cache_write_tokens
            fields["reasoning_tokens"] = usage.reasoning_tokens
        fields["finish_reason"] = p.finish
        fields["upstream_model"] = p.model
        fields["events"] = p.events
        if outcome == "error":
            self._log.warning("request_end", **fields)
        else:
            self._log.info("request_end", **fields)

    async def _stream(self, client: UpstreamClient, job: StreamJob, progress: _Progress) -> StreamEnd:
        timeouts = self.config.timeouts
        max_retries = self.config.max_retries if job.max_retries is None else job.max_retries
        spec = job.spec
        error: ProviderError | None = None
        progress.deadline = trio.current_time() + timeouts.total
        attempt = 0
        try:
            while True:
                try:
                    await self._guarded_attempt(client, job, spec, progress)
                    return StreamEnd(progress.model, None, progress.retries)
                except _AttemptFailed as failed:
                    error = failed.error
                    if (
                        progress.first_event_at is not None
                        or not error.retryable
                        or failed.final
                        or attempt >= max_retries
                    ):
                        break
                    delay = retry_delay(attempt, failed.headers, self._rng, self._wall_clock())
                    if delay is None:  # the upstream asked for a wait longer than we honour
                        break
                    attempt += 1
                    progress.retries = attempt
                    self._log.info(
                        "retry",
                        request_id=job.request_id,
                        attempt=attempt,
                        delay_s=round(delay, 3),
                        error_kind=error.kind,
                        error_status=error.status,
                    )
                    await _sleep_until(trio.current_time() + delay, progress, job.cancel)
        except _TotalTimeout:
            error = ProviderError(
                f"request exceeded the total timeout of {timeouts.total} s",
                provider=self.name,
                kind="timeout",
                retryable=True,
            )
        return StreamEnd(progress.model, error, progress.retries)

    async def _guarded_attempt(
        self, client: UpstreamClient, job: StreamJob, spec: HttpRequestSpec, progress: _Progress
    ) -> None:
        """One attempt behind the circuit breaker and the rate limiter."""
        breaker, limiter = self._breaker, self._limiter
        if breaker is not None and not (breaker.admits_freely or await breaker.allow()):
            retry_in = breaker.retry_in()
            hint = f"; next probe in {retry_in:.1f} s" if retry_in is not None else ""
            raise _AttemptFailed(self._fail(f"circuit open{hint}", "circuit_open", retryable=True), final=True)
        admitted = None  # tokens of an admission the limiter hears of with the response
        tokens = 0  # tokens of an admission the limiter was asked for
        try:
            if limiter is not None and limiter.admits_freely:
                admitted = estimate_tokens(job.request)
            elif limiter is not None:
                tokens = estimate_tokens(job.request)
                ready = await limiter.acquire(tokens, alone=self.in_flight == 1)
                if ready == REJECTED:
                    message = f"rate limiter queue full ({limiter.config.max_queue} waiting)"
                    raise _AttemptFailed(self._fail(message, "rate_limited", retryable=True), final=True)
                wait = ready - trio.current_time()
                if wait > 0:
                    progress.limiter_wait += wait
                    try:
                        await _sleep_until(ready, progress, job.cancel)
                    except (trio.Cancelled, _TotalTimeout, _Abandoned):
                        limiter.cancel(tokens)
                        raise
            await self._attempt(client, job, spec, progress, admitted)
            if tokens and limiter is not None and limiter.settles and (usage := progress.usage) is not None:
                # A budget shared with the fleet was charged the estimate: correct it.
                limiter.settle(tokens, (usage.input_tokens or 0) + (usage.output_tokens or 0))
        except _AttemptFailed as failed:
            if breaker is not None:
                breaker.verdict(failed.error.kind, failed.error.status)
            raise
        except BaseException:
            if breaker is not None:
                breaker.verdict(None, None, cancelled=True)
            raise
        if breaker is not None:
            breaker.verdict(None, None)

    def _fail(self, message: str, kind: str, **kw: Any) -> ProviderError:
        return ProviderError(scrub(message, self._secrets), provider=self.name, kind=kind, **kw)

    async def _attempt(
        self, client: UpstreamClient, job: StreamJob, spec: HttpRequestSpec, progress: _Progress, admitted: int | None
    ) -> None:
        timeouts = self.config.timeouts
        decoder = self.codec.new_decoder(job.model_id)
        reply = job.reply
        now = trio.current_time
        progress.idle_deadline = -math.inf  # a new scope, with the first-token deadline
        with job.cancel.scope(progress.clamp(now() + timeouts.first_token)) as scope:
            if self._authorizer is not None:
                try:
                    spec = await self._authorizer(spec)
                except ProviderError as exc:
                    raise _AttemptFailed(exc) from exc
            try:
                request = client.build_request(spec)
                if progress.dispatched_at is None:
                    progress.dispatched_at = now()
                response = await client.send(request)
            except httpx.HTTPError as exc:
                if self._limiter is not None:
                    self._limiter.feedback(None, {}, admitted=admitted)
                kind, message = classify_transport_error(exc)
                raise _AttemptFailed(self._fail(message, kind, retryable=True)) from exc
            if self._limiter is not None:
                self._limiter.feedback(response.status_code, response.headers, admitted=admitted)
            try:
                progress.http_status = response.status_code
                if response.status_code >= 400 or self._content_type not in response.headers.get(
                    "content-type", self._content_type
                ):
                    raise await self._response_error(response)
                await self._pump(response, decoder, reply, scope, progress)
                events: Batch = []
                try:
                    decoder.close_into(events)
                finally:
                    if decoder.model:
                        progress.model = decoder.model
                    if events:
                        await self._deliver(events, reply, scope, progress)
            except WireError as exc:
                progress.model = decoder.model or progress.model
                raise _AttemptFailed(
                    self._fail(
                        exc.message, exc.kind, status=exc.status, retryable=exc.retryable, error_type=exc.error_type
                    )
                ) from exc
            except httpx.HTTPError as exc:
                held: Batch = []
                decoder.held_into(held)
                if held:  # what the decoder held for the end belongs to the partial reply
                    await self._deliver(held, reply, scope, progress)
                kind, message = classify_transport_error(exc)
                raise _AttemptFailed(self._fail(message, kind, retryable=True)) from exc
            finally:
                await close_response(response)
                if decoder.unknown_events:
                    self._log.info("unknown_events", types=sorted(decoder.unknown_events), request_id=job.request_id)
                if decoder.invalid_utf8:
                    self._log.warning("invalid_utf8", request_id=job.request_id)
        job.cancel.release(scope)
        if scope.cancelled_caught:
            if job.cancel.cancelled:
                raise _Abandoned
            if now() >= progress.deadline:
                raise _TotalTimeout
            phase = "first_token" if progress.first_event_at is None else "idle"
            limit = timeouts.first_token if phase == "first_token" else timeouts.idle
            what = "no first event" if phase == "first_token" else "no data"
            raise _AttemptFailed(self._fail(f"{phase} timeout: {what} within {limit} s", "timeout", retryable=True))

    async def _pump(
        self,
        response: httpx.Response,
        decoder: StreamDecoder,
        reply: trio.MemorySendChannel[ReplyMessage],
        scope: trio.CancelScope,
        progress: _Progress,
    ) -> None:
        """Feed every body chunk to the decoder; send each non-empty batch on.

        What a stream holds for a slow consumer is bounded in bytes, not only in batches (the
        reply channel's `event_buffer`): each read takes at most what is left of `READ_BUDGET`
        once the batches the consumer has not taken are counted, and at least `MIN_READ`. So
        the batches waiting, and the one blocked on the full channel, come from at most
        `READ_BUDGET + event_buffer * MIN_READ` body bytes (32 KiB by default) plus the first
        read; the rest waits in the kernel's socket buffers, then upstream (TCP backpressure).
        A consumer that keeps up takes every batch as it is sent, so its reads stay whole.
        """
        now = trio.current_time
        queue = _queue_of(reply)
        sizes: deque[int] = deque()  # body bytes of each batch sent and maybe not taken, oldest first
        queued = 0
        size = READ_SIZE
        async with aclosing(body_chunks(response)) as chunks:
            async for chunk in chunks:
                events: Batch = []
                n = len(chunk)
                try:
                    decoder.feed_into(chunk, events)
                except Exception:  # a WireError, or a bug (which fails this request alone)
                    if events:  # what arrived before the error belongs to the partial reply
                        await self._deliver(events, reply, scope, progress)
                    raise
                # Decoded: the read must not stay alive through the waits that follow (the
                # consumer, the next read), once per stream, whatever the streams.
                del chunk
                if events:
                    await self._deliver(events, reply, scope, progress)
                    # The channel holds the newest len(queue) batches sent: the others were taken.
                    sizes.append(n)
                    queued += n
                    waiting = len(queue) if queue is not None else len(sizes)
                    while len(sizes) > waiting:
                        queued -= sizes.popleft()
                    want = READ_BUDGET - queued
                    want = MIN_READ if want < MIN_READ else want
                    if want != size:
                        size = want
                        set_read_size(chunks, want)
                elif progress.first_event_at is not None:
                    self._rearm(scope, progress, now())

    async def _deliver(
        self, events: Batch, reply: trio.MemorySendChannel[ReplyMessage], scope: trio.CancelScope, progress: _Progress
    ) -> None:
        now = trio.current_time()
        if progress.first_event_at is None:
            progress.first_event_at = now
        self._note(events, progress)
        try:
            reply.send_nowait(events)
        except trio.WouldBlock:
            scope.deadline = progress.deadline  # waiting on the consumer is not upstream idleness
            progress.idle_deadline = -math.inf
            await reply.send(events)
            now = trio.current_time()
        self._rearm(scope, progress, now)

    def _rearm(self, scope: trio.CancelScope, progress: _Progress, now: float) -> None:
        """Data came at `now`: the idle timeout may not end the attempt before `now + idle`.

        Never early, and at most `idle / 64` late: a deadline that is far enough off already
        stays, and a new one is set that much further. Moving a trio deadline costs a few
        microseconds (a context manager and a heap entry): a steady stream moves it about 64
        times per idle period rather than once per batch."""
        idle = self.config.timeouts.idle
        want = now + idle
        if want > progress.idle_deadline:
            progress.idle_deadline = want + idle / 64
            scope.deadline = progress.clamp(progress.idle_deadline)

    @staticmethod
    def _note(events: Batch, progress: _Progress) -> None:
        progress.events += len(events)
        last = events[-1]
        if type(last) is FinishEvent:
            progress.finish = last.reason
            for ev in reversed(events):
                if type(ev) is UsageEvent:
                    progress.usage = ev
                    break

    async def _response_error(self, response: httpx.Response) -> _AttemptFailed:
        """Read a bounded error body and build the error for a non-2xx or wrong-type response."""
        body = bytearray()
        async with aclosing(body_chunks(response)) as chunks:
            async for chunk in chunks:
                body += chunk
                if len(body) >= MAX_ERROR_BODY:
                    break
        status = response.status_code
        headers = response.headers
        ctype = headers.get("content-type", "")
        if status >= 400:
            message, error_type = self.codec.parse_error(status, bytes(body))
            retryable = should_retry(status, headers)
            return _AttemptFailed(
                self._fail(
                    message,
                    "http_status",
                    status=status,
                    retryable=retryable,
                    error_type=error_type,
                    retry_after=retry_after_seconds(headers, self._wall_clock()),
                ),
                headers,
            )
        if "json" in ctype:
            message, error_type = self.codec.parse_error(status, bytes(body))
            return _AttemptFailed(self._fail(message, "upstream", status=status, error_type=error_type))
        snippet = bytes(body[:300]).decode("utf-8", errors="replace")
        return _AttemptFailed(
            self._fail(
                f"unexpected content-type {ctype!r} (expected {self._content_type}): {snippet!r}",
                "protocol",
                status=status,
            )
        )
