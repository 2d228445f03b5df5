"""`Exchange`: one job's HTTP exchange with its provider, driven by pulls.

`await first()` runs the attempts up to the first batch of events (admission by the breaker
and the limiter, the request, retries with backoff, all before the first event), and leaves
the response open; each `await read()` then returns the next batch, until a `StreamEnd`. The
exchange sets no deadline of its own after the first batch: whoever drives it does (see
`ProviderActor`). A worker drives it under one cancel scope and pushes each batch into the
job's reply channel; a consumer's own task drives it directly, one read per pull, so nothing
is read before the consumer asks for it.

An error found in a read comes right after the events before it: `read()` returns those
events, and the end with the error on the next call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from contextlib import aclosing, nullcontext
from typing import Any

import attrs
import httpx
import trio

from ..config.schema import ProviderConfig
from ..config.secret import scrub
from ..errors import ProviderError, WireError
from ..http.client import (
    BodyChunks,
    UpstreamClient,
    UpstreamResponse,
    body_chunks,
    classify_transport_error,
    close_response,
)
from ..http.fast.pool import Connection
from ..http.fast.response import ResponseStream
from ..logs import log_fields
from ..models import FinishEvent, UsageEvent
from ..policy.backoff import retry_after_seconds, retry_delay, should_retry
from ..providers.auth import Authorizer
from ..wire.base import HttpRequestSpec, ProviderCodec, StreamDecoder
from .breaker import BreakerActor
from .limiter import REJECTED, LimiterActor
from .messages import Batch, CancelHandle, ReplyMessage, StreamEnd, StreamJob, estimate_tokens
from .metrics import MetricsActor, RequestRecord

__all__ = ["MAX_ERROR_BODY", "Abandoned", "Exchange", "Progress", "Provider", "TotalTimeout", "outcome", "sleep_until"]

MAX_ERROR_BODY = 64 * 1024


@attrs.frozen(eq=False)
class Provider:
    """What every exchange of one provider shares: its settings, codec, guards and outputs."""

    name: str
    config: ProviderConfig
    codec: ProviderCodec
    authorizer: Authorizer | None
    log: Any
    rng: random.Random
    wall_clock: Callable[[], float]
    limiter: LimiterActor | None
    breaker: BreakerActor | None
    metrics: MetricsActor | None
    #: The provider's requests in flight now (the limiter treats a request alone differently).
    in_flight: Callable[[], int]
    secrets: tuple[str, ...] = attrs.field(repr=False)
    content_type: str = "text/event-stream"
    #: trio's time: `trio.current_time`, or the run's clock's own method
    #: (`trio.lowlevel.current_clock().current_time`), the same value without two calls around it.
    now: Callable[[], float] = trio.current_time

    def fail(self, message: str, kind: str, **kw: Any) -> ProviderError:
        """A `ProviderError` of this provider, its message scrubbed of secrets."""
        return ProviderError(scrub(message, self.secrets), provider=self.name, kind=kind, **kw)


def outcome(end: StreamEnd | None, cancelled: bool) -> tuple[str, str | None]:
    """How a job ended, for its metrics and its log line alike: ("ok" | "error" |
    "cancelled", the error's kind). No end at all is a consumer that left (cancelled) or an
    actor that stopped under the job (a connection error)."""
    if end is None:
        return ("cancelled", None) if cancelled else ("error", "connection")
    if end.error is not None:
        return "error", end.error.kind
    return "ok", None


class TotalTimeout(Exception):
    """The request's total deadline passed (raised wherever the request was waiting)."""


class Abandoned(Exception):
    """The consumer cancelled the job (its `CancelHandle`); nothing more is sent to it."""


class _AttemptFailed(Exception):
    """One HTTP attempt failed; carries the response headers the retry policy reads."""

    def __init__(self, error: ProviderError, headers: Mapping[str, str] | None = None, *, final: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.headers: Mapping[str, str] = headers or {}
        self.final = final  # never retried (our own admission control said no)


async def sleep_until(when: float, progress: Progress, cancel: CancelHandle) -> None:
    """Wait until `when`, a wait the consumer can end (`Abandoned`) and the total deadline
    bounds (`TotalTimeout`, raised at the deadline if it comes first)."""
    with cancel.scope() as scope:
        await trio.sleep_until(progress.clamp(when))
    cancel.release(scope)
    if cancel.cancelled:
        raise Abandoned
    if when >= progress.deadline:
        raise TotalTimeout


#: What `_attempt` enters in place of a cancel scope when it needs none.
_UNSCOPED = nullcontext()


@attrs.define
class Progress:
    """What one job has seen so far (owned by the task driving the job)."""

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
    #: The idle deadline the driver's scope holds (-inf: none yet, or the scope holds another).
    idle_deadline: float = -math.inf
    #: When data last came (trio time), for a driver that watches idleness from outside.
    last_data_at: float = 0.0

    def clamp(self, when: float) -> float:
        """`when`, or the total deadline if that comes first."""
        return when if when < self.deadline else self.deadline


class Exchange:
    """One job's exchange, driven by `first()` and then `read()` until a `StreamEnd`.

    Owned by the one task that drives it at a time. `close()` ends it early from that task
    or any other (the consumer left, or the actor stopped): the response is closed and the
    breaker told, and a read in progress ends (see `time_out`).
    """

    def __init__(self, provider: Provider, client: UpstreamClient, job: StreamJob) -> None:
        self.provider = provider
        self.job = job
        self.progress = Progress()
        self.start = provider.now()
        #: Set once the stream has ended (its `StreamEnd`) or was closed early.
        self.done = False
        #: Why the driver ended a read: "idle" or "total" (see `time_out`).
        self.timed_out: str | None = None
        self._client = client
        self._response: UpstreamResponse | None = None
        self._chunks: BodyChunks | None = None
        self._decoder: StreamDecoder | None = None
        self._pending: StreamEnd | None = None
        self._raise: Exception | None = None  # a bug found after events: raised on the next read
        self._decoder_logged = False
        self._attempt_open = False  # an attempt the breaker has not heard the end of
        self._admitted: int | None = None  # tokens of an admission the limiter hears of with the response
        self._tokens = 0  # tokens of an admission the limiter was asked for
        #: Set by a driver that watches deadlines from outside (a direct pull): called with an
        #: attempt's first-token deadline and the time it starts when the attempt waits with no
        #: cancel scope (see `_attempt`).
        self.watch_first: Callable[[float, float], None] | None = None
        #: That attempt's deadline while it waits for its first event (None otherwise).
        self.first_deadline: float | None = None
        self._first_conn: Connection | None = None  # the connection that attempt waits on

    @property
    def ready(self) -> bool:
        """Whether the next `read()` returns at once (the end, or an error, is held for it)."""
        return self._pending is not None or self._raise is not None

    @property
    def body(self) -> BodyChunks | None:
        """The open response body (None before the first batch and after the end)."""
        return self._chunks

    # --- up to the first event --------------------------------------------------------

    async def first(self) -> ReplyMessage:
        """Run the attempts (with retries) up to the first batch; or the end, if none came."""
        p = self.provider
        job = self.job
        progress = self.progress
        timeouts = p.config.timeouts
        max_retries = p.config.max_retries if job.max_retries is None else job.max_retries
        error: ProviderError | None = None
        progress.deadline = p.now() + timeouts.total
        attempt = 0
        try:
            while True:
                try:
                    return await self._guarded_attempt()
                except _AttemptFailed as failed:
                    error = failed.error
                    if (
                        progress.first_event_at is not None
                        or not error.retryable
                        or failed.final
                        or attempt >= max_retries
                    ):
                        break
                    delay = retry_delay(attempt, failed.headers, p.rng, p.wall_clock())
                    if delay is None:  # the upstream asked for a wait longer than we honour
                        break
                    attempt += 1
                    progress.retries = attempt
                    p.log.info(
                        "retry",
                        request_id=job.request_id,
                        attempt=attempt,
                        delay_s=round(delay, 3),
                        error_kind=error.kind,
                        error_status=error.status,
                    )
                    await sleep_until(trio.current_time() + delay, progress, job.cancel)
        except TotalTimeout:
            error = self.timeout_error("total")
        return self._ended(error)

    async def _guarded_attempt(self) -> ReplyMessage:
        """One attempt behind the circuit breaker and the rate limiter. An attempt that
        returns a batch is still open: the breaker hears of it when the stream ends."""
        p = self.provider
        breaker, limiter = p.breaker, p.limiter
        if breaker is not None and not (breaker.admits_freely or await breaker.allow()):
            retry_in = breaker.retry_in()
            hint = f"; next probe in {retry_in:.1f} s" if retry_in is not None else ""
            raise _AttemptFailed(p.fail(f"circuit open{hint}", "circuit_open", retryable=True), final=True)
        self._admitted = None
        self._tokens = 0
        self._attempt_open = True  # admitted: from here on the breaker hears how the attempt ends
        try:
            if limiter is not None and limiter.admits_freely:
                self._admitted = estimate_tokens(self.job.request)
            elif limiter is not None:
                tokens = self._tokens = estimate_tokens(self.job.request)
                ready = await limiter.acquire(tokens, alone=p.in_flight() == 1)
                if ready == REJECTED:
                    message = f"rate limiter queue full ({limiter.config.max_queue} waiting)"
                    raise _AttemptFailed(p.fail(message, "rate_limited", retryable=True), final=True)
                wait = ready - trio.current_time()
                if wait > 0:
                    self.progress.limiter_wait += wait
                    try:
                        await sleep_until(ready, self.progress, self.job.cancel)
                    except (trio.Cancelled, TotalTimeout, Abandoned):
                        limiter.cancel(tokens)
                        raise
            return await self._attempt()
        except _AttemptFailed as failed:
            if breaker is not None and self._attempt_open:
                breaker.verdict(failed.error.kind, failed.error.status)
            self._attempt_open = False
            raise
        except BaseException:
            if breaker is not None and self._attempt_open:
                breaker.verdict(None, None, cancelled=True)
            self._attempt_open = False
            raise

    async def _attempt(self) -> ReplyMessage:
        """Send the request and read up to the first batch, under the first-token deadline."""
        p = self.provider
        job = self.job
        progress = self.progress
        timeouts = p.config.timeouts
        client = self._client
        self._decoder = p.codec.new_decoder(job.model_id)
        self._decoder_logged = False
        now = p.now
        keep = False
        start = now()
        deadline = progress.clamp(start + timeouts.first_token)
        cancel = job.cancel
        conn = None
        watch = self.watch_first
        if watch is not None and p.authorizer is None and not cancel.cancelled:
            conn = client.idle_connection(job.spec)
        scope: trio.CancelScope | None = None
        if conn is None:
            scope = cancel.scope(deadline)
        else:
            # Every wait of this attempt is on `conn`'s socket, so closing it ends any of
            # them: the driver's watchdog keeps the deadline (`time_out`) and the consumer's
            # cancel closes it (`on_cancel`), with no cancel scope to enter and leave.
            assert watch is not None
            self._first_conn = conn
            self.first_deadline = deadline
            cancel.on_cancel(conn.close)
            watch(deadline, start)
        try:
            with scope if scope is not None else _UNSCOPED:
                spec: HttpRequestSpec = job.spec
                if p.authorizer is not None:
                    try:
                        spec = await p.authorizer(spec)
                    except ProviderError as exc:
                        raise _AttemptFailed(exc) from exc
                try:
                    if progress.dispatched_at is None:
                        progress.dispatched_at = start if p.authorizer is None else now()
                    response = await client.open(spec, conn)
                except httpx.HTTPError as exc:
                    if conn is not None and (ended := self._unscoped_wait_ended()) is not None:
                        raise ended from exc
                    if p.limiter is not None:
                        p.limiter.feedback(None, {}, admitted=self._admitted)
                    kind, message = classify_transport_error(exc)
                    raise _AttemptFailed(p.fail(message, kind, retryable=True)) from exc
                self._response = response
                if p.limiter is not None:
                    p.limiter.feedback(response.status_code, response.headers, admitted=self._admitted)
                try:
                    progress.http_status = response.status_code
                    if response.status_code >= 400 or p.content_type not in response.headers.get(
                        "content-type", p.content_type
                    ):
                        raise await self._response_error(response)
                    self._chunks = body_chunks(response)
                    msg = await self._read()
                    keep = type(msg) is list and not self.ready  # an end held after it: closed now
                except WireError as exc:
                    raise self._wire_failed(exc) from exc
                except httpx.HTTPError as exc:
                    if conn is not None and (ended := self._unscoped_wait_ended()) is not None:
                        raise ended from exc
                    raise self._transport_failed(exc) from exc
                finally:
                    if not keep:
                        await self._close_body()
                        self._log_decoder()
        finally:
            if conn is not None:
                cancel.on_cancel(None)
                self._first_conn = None
                self.first_deadline = None
                # A deadline seen after the attempt had all it needed in hand (as a scope's,
                # passing at its last checkpoint, would raise nothing) is not the stream's.
                self.timed_out = None
        if scope is None:
            return msg
        cancel.release(scope)
        if scope.cancelled_caught:  # (the body was closed on the way out)
            if job.cancel.cancelled:
                raise Abandoned
            if now() >= progress.deadline:
                raise TotalTimeout
            raise _AttemptFailed(self.timeout_error("first_token" if progress.first_event_at is None else "idle"))
        return msg

    def _unscoped_wait_ended(self) -> Exception | None:
        """Why the socket of an attempt with no cancel scope was closed under it, if it was
        (what a scope's cancellation would have meant): the consumer cancelled the job
        (`Abandoned`), or the watchdog saw the first-token or the total deadline pass."""
        if self.job.cancel.cancelled:
            return Abandoned()
        phase, self.timed_out = self.timed_out, None
        if phase is None:
            return None
        if phase == "total" or self.provider.now() >= self.progress.deadline:
            return TotalTimeout()
        return _AttemptFailed(self.timeout_error("first_token"))

    async def _response_error(self, response: UpstreamResponse) -> _AttemptFailed:
        """Read a bounded error body and build the error for a non-2xx or wrong-type response."""
        p = self.provider
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
            message, error_type = p.codec.parse_error(status, bytes(body))
            retryable = should_retry(status, headers)
            return _AttemptFailed(
                p.fail(
                    message,
                    "http_status",
                    status=status,
                    retryable=retryable,
                    error_type=error_type,
                    retry_after=retry_after_seconds(headers, p.wall_clock()),
                ),
                headers,
            )
        if "json" in ctype:
            message, error_type = p.codec.parse_error(status, bytes(body))
            return _AttemptFailed(p.fail(message, "upstream", status=status, error_type=error_type))
        snippet = bytes(body[:300]).decode("utf-8", errors="replace")
        return _AttemptFailed(
            p.fail(
                f"unexpected content-type {ctype!r} (expected {p.content_type}): {snippet!r}",
                "protocol",
                status=status,
            )
        )

    # --- after the first event --------------------------------------------------------

    async def read(self, scope: trio.CancelScope | None = None) -> ReplyMessage:
        """The next batch, or the end. `scope` is the driver's, whose idle deadline data
        re-arms (`rearm`); without one, `progress.last_data_at` tells a watcher when data came.

        A cancellation that interrupts the read leaves the exchange as it was if the body can
        go on (a `FastTransport` body over plain TCP: nothing was read); otherwise the next
        call ends the stream with a connection error."""
        if self._pending is not None:
            end, self._pending = self._pending, None
            return end
        if self.done:
            raise RuntimeError("the exchange has ended")
        if self._raise is not None:
            exc, self._raise = self._raise, None
            raise exc
        try:
            msg = await self._read(scope)
        except WireError as exc:
            error = self._wire_failed(exc).error
        except httpx.HTTPError as exc:
            if self.timed_out is not None:
                error = self.timeout_error(self.timed_out)
            else:
                error = self._transport_failed(exc).error
        except BaseException:
            # The driver's own deadline is the driver's to report; any other interruption of a
            # body that cannot resume ends the stream at the next read.
            if not self._resumable() and not (scope is not None and scope.cancel_called):
                self._pending = self.end_with(
                    self.provider.fail("the stream's read was interrupted and cannot resume", "connection")
                )
            raise
        else:
            if type(msg) is StreamEnd or self._pending is not None:
                await self._close_body()
            return msg
        held: Batch = []
        assert self._decoder is not None
        self._decoder.held_into(held)  # what the decoder held for the end belongs to the partial reply
        end = self.end_with(error)
        await self._close_body()
        if held:
            self._note(held)
            self._pending = end
            return held
        return end

    async def _read(self, scope: trio.CancelScope | None = None) -> ReplyMessage:
        """Read on until a read gives events (a batch), or the body ends (the end, possibly
        after a last batch). Raises `WireError` or `httpx.HTTPError` (with no events lost: an
        error after events in the same read is held for the next `read()`)."""
        chunks = self._chunks
        decoder = self._decoder
        assert chunks is not None and decoder is not None
        progress = self.progress
        now = self.provider.now
        events: Batch = []
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            try:
                decoder.feed_into(chunk, events)
            except Exception as exc:  # a WireError, or a bug (which fails this request alone)
                if events:  # what arrived before the error belongs to the partial reply
                    self._note(events)
                    if isinstance(exc, WireError):
                        self._pending = self.end_with(self._wire_failed(exc).error)
                    else:
                        self._raise = exc
                    return events
                raise
            t = now()
            progress.last_data_at = t
            if events:
                if progress.first_event_at is None:
                    progress.first_event_at = t
                self._note(events)
                return events
            if scope is not None and progress.first_event_at is not None:
                self.rearm(scope, t)
        try:
            decoder.close_into(events)
        finally:
            if decoder.model:
                progress.model = decoder.model
        end = self.end_with(None)
        if events:
            if progress.first_event_at is None:
                progress.first_event_at = now()
            self._note(events)
            self._pending = end
            return events
        return end

    def rearm(self, scope: trio.CancelScope, now: float) -> None:
        """Data came at `now`: the idle timeout may not end the stream before `now + idle`.

        Never early, and at most `idle / 64` late: a deadline that is far enough off already
        stays, and a new one is set that much further. Moving a trio deadline costs a few
        microseconds (a context manager and a heap entry): a steady stream moves it about 64
        times per idle period rather than once per batch."""
        progress = self.progress
        idle = self.provider.config.timeouts.idle
        want = now + idle
        if want > progress.idle_deadline:
            progress.idle_deadline = want + idle / 64
            scope.deadline = progress.clamp(progress.idle_deadline)

    def _resumable(self) -> bool:
        chunks = self._chunks
        return type(chunks) is ResponseStream and chunks.is_open

    # --- the end ----------------------------------------------------------------------

    def end_with(self, error: ProviderError | None) -> StreamEnd:
        """The stream's end (with `error`, or a normal finish): the breaker and the limiter
        hear of the attempt. (The body is closed by the caller: `_close_body`, `close`.)"""
        if self.done:
            return StreamEnd(self.progress.model, error, self.progress.retries)
        decoder = self._decoder
        if decoder is not None and decoder.model:
            self.progress.model = decoder.model
        self._conclude(error)
        return StreamEnd(self.progress.model, error, self.progress.retries)

    def _ended(self, error: ProviderError | None) -> StreamEnd:
        """The end of an exchange that never opened a stream (every attempt failed)."""
        self.done = True
        return StreamEnd(self.progress.model, error, self.progress.retries)

    def _conclude(self, error: ProviderError | None, *, cancelled: bool = False) -> None:
        """The exchange is over: log what its decoder found odd and, if an attempt is open,
        tell the breaker and the limiter how it ended."""
        if self.done:
            return
        self.done = True
        self._log_decoder()
        if not self._attempt_open:
            return
        self._attempt_open = False
        p = self.provider
        breaker, limiter = p.breaker, p.limiter
        if error is None and not cancelled:
            tokens = self._tokens
            if tokens and limiter is not None and limiter.settles and (usage := self.progress.usage) is not None:
                # A budget shared with the fleet was charged the estimate: correct it.
                limiter.settle(tokens, (usage.input_tokens or 0) + (usage.output_tokens or 0))
        if breaker is not None:
            if cancelled:
                breaker.verdict(None, None, cancelled=True)
            elif error is None:
                breaker.verdict(None, None)
            else:
                breaker.verdict(error.kind, error.status)

    def _log_decoder(self) -> None:
        """What the attempt's decoder found odd, logged once per attempt."""
        decoder = self._decoder
        if decoder is not None and not self._decoder_logged:
            self._decoder_logged = True
            log = self.provider.log
            if decoder.unknown_events:
                log.info("unknown_events", types=sorted(decoder.unknown_events), request_id=self.job.request_id)
            if decoder.invalid_utf8:
                log.warning("invalid_utf8", request_id=self.job.request_id)

    async def stop(self, error: ProviderError) -> StreamEnd:
        """End the stream now with `error` (a deadline passed): its end, the body closed."""
        self._pending = None
        self._raise = None
        end = self.end_with(error)
        await self._close_body()
        return end

    async def aclose(self) -> None:
        """Close what is still open; an attempt that had not ended counts as cancelled."""
        if not self.done:
            self._conclude(None, cancelled=True)
        await self._close_body()

    def close(self, nursery: trio.Nursery | None = None) -> None:
        """End the exchange early (the consumer left, or the actor stopped): a wait in
        progress ends (`CancelHandle`), the body is closed and the breaker hears of a
        cancelled attempt. A body that cannot close at once is closed in `nursery`."""
        self.job.cancel.cancel()
        chunks, response = self._chunks, self._response
        self._chunks = self._response = None
        if type(chunks) is ResponseStream:
            chunks.abort()
        elif chunks is not None and response is not None and nursery is not None:
            nursery.start_soon(_close_later, chunks, response)
        if not self.done:
            self._conclude(None, cancelled=True)

    def time_out(self, phase: str) -> None:
        """A watcher saw the read's deadline pass: end the read in progress (its socket is
        closed under it) with a timeout ("first_token", "idle" or "total")."""
        self.timed_out = phase
        conn = self._first_conn
        if conn is not None:
            conn.close()
        chunks = self._chunks
        if type(chunks) is ResponseStream:
            chunks.abort()

    async def stop_at_deadline(self) -> StreamEnd:
        """A driver's cancel scope ended a read: `Abandoned` if the consumer cancelled the job,
        else the end with the timeout that passed (the total one, or the idle one)."""
        if self.job.cancel.cancelled:
            raise Abandoned
        phase = "total" if trio.current_time() >= self.progress.deadline else "idle"
        return await self.stop(self.timeout_error(phase))

    def timeout_error(self, phase: str) -> ProviderError:
        """The error for a deadline that passed: "first_token", "idle" or "total"."""
        p = self.provider
        timeouts = p.config.timeouts
        if phase == "total":
            return p.fail(f"request exceeded the total timeout of {timeouts.total} s", "timeout", retryable=True)
        limit = timeouts.first_token if phase == "first_token" else timeouts.idle
        what = "no first event" if phase == "first_token" else "no data"
        return p.fail(f"{phase} timeout: {what} within {limit} s", "timeout", retryable=True)

    def _wire_failed(self, exc: WireError) -> _AttemptFailed:
        progress = self.progress
        decoder = self._decoder
        progress.model = (decoder.model if decoder is not None else None) or progress.model
        return _AttemptFailed(
            self.provider.fail(
                exc.message, exc.kind, status=exc.status, retryable=exc.retryable, error_type=exc.error_type
            )
        )

    def _transport_failed(self, exc: httpx.HTTPError) -> _AttemptFailed:
        kind, message = classify_transport_error(exc)
        return _AttemptFailed(self.provider.fail(message, kind, retryable=True))

    async def _close_body(self) -> None:
        chunks, response = self._chunks, self._response
        self._chunks = self._response = None
        if chunks is not None and type(chunks) is not ResponseStream:
            with trio.CancelScope(shield=True):
                await chunks.aclose()
        if response is not None:
            await close_response(response)

    def _note(self, events: Batch) -> None:
        progress = self.progress
        progress.events += len(events)
        last = events[-1]
        if type(last) is FinishEvent:
            progress.finish = last.reason
            for ev in reversed(events):
                if type(ev) is UsageEvent:
                    progress.usage = ev
                    break

    # --- what is reported -------------------------------------------------------------

    def record(self, end: StreamEnd | None, cancelled: bool) -> None:
        """Report the job to the metrics actor (if there is one)."""
        p = self.provider
        if p.metrics is None:
            return
        job, progress, start = self.job, self.progress, self.start
        kind_outcome, kind = outcome(end, cancelled)
        overhead = None
        if progress.dispatched_at is not None:
            overhead = max(0.0, progress.dispatched_at - job.submitted_at - progress.limiter_wait)
        usage = progress.usage
        p.metrics.report(
            RequestRecord(
                p.name,
                job.model_id,
                kind_outcome,
                kind,
                None if progress.first_event_at is None else progress.first_event_at - start,
                p.now() - start,
                overhead,
                usage.input_tokens if usage else None,
                usage.output_tokens if usage else None,
                progress.retries,
            )
        )

    def log_end(self, end: StreamEnd | None, *, cancelled: bool) -> None:
        """The job's `request_end` line (a warning for an error)."""
        job, progress, start = self.job, self.progress, self.start
        now = self.provider.now()
        status, kind = outcome(end, cancelled)
        fields: dict[str, Any] = {"request_id": job.request_id, "model": job.model_id, "status": status}
        if status == "error":
            fields["error_kind"] = kind
            if end is not None and end.error is not None:
                fields["error"] = end.error.message
                fields["error_status"] = end.error.status
            else:
                fields["error"] = "actor stopped"
        fields["duration_ms"] = round((now - start) * 1000, 3)
        first = progress.first_event_at
        fields["ttft_ms"] = None if first is None else round((first - start) * 1000, 3)
        fields["http_status"] = progress.http_status
        fields["retries"] = progress.retries
        usage = progress.usage
        if usage is None:
            fields["input_tokens"] = fields["output_tokens"] = fields["cache_read_tokens"] = None
            fields["cache_write_tokens"] = fields["reasoning_tokens"] = None
        else:
            fields["input_tokens"] = usage.input_tokens
            fields["output_tokens"] = usage.output_tokens
            fields["cache_read_tokens"] = usage.cache_read_tokens
            fields["cache_write_tokens"] = usage.cache_write_tokens
            fields["reasoning_tokens"] = usage.reasoning_tokens
        fields["finish_reason"] = progress.finish
        fields["upstream_model"] = progress.model
        fields["events"] = progress.events
        log_fields(self.provider.log, "warning" if status == "error" else "info", "request_end", fields)


async def _close_later(chunks: BodyChunks, response: UpstreamResponse) -> None:
    with trio.CancelScope(shield=True):
        try:
            await chunks.aclose()
        finally:
            await response.aclose()
