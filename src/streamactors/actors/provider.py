"""`ProviderActor`: owns one provider's HTTP client, codec and concurrency limit.

A request's exchange (`exchange.Exchange`) is driven one of two ways:

- Directly, by the consumer's own task: while the provider has a free slot (fewer than
  `max_concurrency` requests in flight, none queued), `submit` hands back a leg whose every
  pull reads from the upstream socket and decodes in the caller's task. No task is woken and
  no channel crossed per request or per read, and nothing is read before the consumer asks
  for it: a slow consumer leaves the bytes in the kernel and upstream (TCP backpressure). The
  idle and total deadlines of a read in progress are kept by the actor's watchdog task,
  which closes the read's socket when one passes (a deadline per read would cost a cancel
  scope per read). So is the first-token deadline of an attempt sent on a kept-alive
  connection, whose every wait is on that socket: such an attempt enters no cancel scope.
- By a worker, once the provider is at its limit (and for hedged routes and transformed
  streams, whose consumers race or time their pulls): the job waits in the bounded mailbox,
  and a worker (the pool grows on demand, to `max_concurrency`) streams the response into
  the job's bounded reply channel, one `Batch` per network read. A slow consumer blocks the
  send, which stops the reads.

Retries (the official SDKs' policy) happen only before the first event. Time a stream spends
waiting on its consumer is never counted as upstream idleness.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sized
from typing import Any

import httpx
import trio

from ..config.schema import ProviderConfig
from ..config.secret import scrub
from ..errors import ProviderError
from ..http.client import READ_SIZE, UpstreamClient, set_read_size
from ..http.fast.response import ResponseStream
from ..http.media import MediaFetcher
from ..logs import log_fields
from ..models import ChatRequest
from ..providers.auth import Authorizer
from ..wire.base import ProviderCodec, with_passthrough
from .breaker import BreakerActor
from .exchange import Abandoned, Exchange, Provider
from .limiter import LimiterActor
from .messages import Batch, CancelHandle, Leg, ReplyMessage, StreamEnd, StreamJob, lost_end
from .metrics import MetricsActor

__all__ = ["MIN_READ", "READ_BUDGET", "ProviderActor"]

#: Body bytes a worker-driven stream may hold decoded for its consumer (batches sent that it
#: has not taken). Each read takes what is left of it, and never less than `MIN_READ` (see
#: `ProviderActor._push`). A direct stream holds only the batch its consumer is reading.
READ_BUDGET = READ_SIZE
MIN_READ = 1024


def _queue_of(channel: trio.MemorySendChannel[Any]) -> Sized | None:
    """The items a channel holds that its receiver has not taken. trio's `statistics()`
    builds an object per call (about 1 µs, per read); its buffer's `len()` costs 40 ns. None
    where this trio keeps it elsewhere (then every read past the first is `MIN_READ`)."""
    data = getattr(getattr(channel, "_state", None), "data", None)
    return data if isinstance(data, Sized) else None


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
        self._log = logger.bind(provider=name)
        self._transport = transport
        self._secrets = config.secrets()
        self._limiter = limiter
        self._breaker = breaker
        self._event_buffer = event_buffer
        self._provider = Provider(
            name,
            config,
            codec,
            authorizer,
            self._log,
            rng or random.Random(),
            wall_clock,
            limiter,
            breaker,
            metrics,
            lambda: self.in_flight,
            tuple(self._secrets),
            getattr(codec, "content_type", "text/event-stream"),
            trio.lowlevel.current_clock().current_time,
        )
        # Where requests wait for a worker; bounded, so submitters feel backpressure.
        send, recv = trio.open_memory_channel[StreamJob](config.max_concurrency)
        self._mailbox: trio.MemorySendChannel[StreamJob] = send
        self._inbox = recv
        self._queued = _queue_of(send)
        self._closed = False
        #: Requests in flight (direct and worker-driven): at most `max_concurrency`.
        self.in_flight = 0
        # The worker pool (see `_worker`); it does not shrink: an idle worker costs ~2 KB.
        self._workers = 0
        self._idle = 0
        # Workers holding a job wait here for a slot while direct streams fill the limit.
        self._slot_freed = trio.lowlevel.ParkingLot()
        # The running incarnation's client and nursery (None while it is not running).
        self._client: UpstreamClient | None = None
        self._nursery: trio.Nursery | None = None
        self._direct: set[_DirectPull] = set()
        self._direct_drained = trio.lowlevel.ParkingLot()
        # The watchdog's (deadline, tiebreak, stream) entries, earliest first.
        self._watched: list[tuple[float, int, _DirectPull]] = []
        self._watching = 0  # entries of streams that have not ended
        self._watch_seq = itertools.count()
        self._watch_scope: trio.CancelScope | None = None
        #: Set once the mailbox is closed and every job has finished.
        self.stopped = trio.Event()

    async def submit(
        self,
        request: ChatRequest,
        model_id: str,
        request_id: str,
        max_retries: int | None = None,
        *,
        direct: bool = True,
    ) -> Leg:
        """Take one request; return its leg, whose messages are the stream's batches and end.

        With `direct` and a free slot, the leg's pulls do the exchange in the caller's task
        (see the module docstring); otherwise the job waits for a worker, and this waits
        while the mailbox is full (backpressure on submitters). `max_retries` overrides the
        provider's setting. The provider's request is built here, in the caller's task: a
        parameter the provider cannot honour is a `UsageError` raised to the caller before
        anything is sent (or, with `drop_params`, dropped and logged at debug level). A
        remote image the provider cannot take by URL is fetched here first (`http.media`).
        Raises `ProviderError` once the actor is closed.
        """
        if self._media is not None:
            codec = self.codec
            request = await self._media.inline(request, lambda url: codec.must_fetch(url, model_id))
        spec = with_passthrough(self.codec.build_request(request, model_id), request)
        if spec.dropped:
            self._log.debug("params_dropped", params=list(spec.dropped), request_id=request_id, model=model_id)
        cancel = CancelHandle()
        now = self._provider.now()
        client = self._client
        if (
            direct
            and client is not None
            and not self._closed
            and self.in_flight < self.config.max_concurrency
            and not self._slot_freed
            and (self._queued is None or not self._queued)
        ):
            job = StreamJob(request, model_id, spec, None, cancel, request_id, max_retries, now)
            pull = _DirectPull(self, Exchange(self._provider, client, job))
            self.in_flight += 1
            self._direct.add(pull)
            return Leg(self.name, model_id, None, cancel, now, pull)
        # Unsubscripted: `open_memory_channel[T](n)` costs a few microseconds more, in typing.
        send: trio.MemorySendChannel[ReplyMessage]
        recv: trio.MemoryReceiveChannel[ReplyMessage]
        send, recv = trio.open_memory_channel(self._event_buffer)
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
        self._closed = True
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
                nursery.start_soon(self._watchdog)
                async with trio.open_nursery() as workers:
                    self._add_workers(workers, client, 1)
                    self._client, self._nursery = client, nursery
                    task_status.started(self)
                # The mailbox is closed and its jobs are done; direct streams may go on.
                self._client = None
                while self._direct:
                    await self._direct_drained.park()
                nursery.cancel_scope.cancel()
        finally:
            self._client = self._nursery = None
            # Cancelled (shutdown's grace is over) or crashed: direct streams lose their actor.
            for pull in list(self._direct):
                pull.lose()
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
        pool grows on demand, keeping one worker waiting until there are `max_concurrency`;
        a burst of queued jobs grows it by as many at once. A worker holding a job while
        direct streams fill the limit waits for one of them to end.
        """
        inbox = self._inbox
        limit = self.config.max_concurrency
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
                while self.in_flight >= limit:
                    await self._slot_freed.park()
                await self._serve(client, job)
            finally:
                self._idle += 1

    def _ended(self, pull: _DirectPull | None) -> None:
        """A request is no longer in flight: its slot goes to a waiting worker, if any."""
        self.in_flight -= 1
        if pull is not None:
            self._direct.discard(pull)
            if not self._direct:
                self._direct_drained.unpark_all()
            if pull.watched:
                self._unwatch()
        if self._slot_freed:
            self._slot_freed.unpark()

    def _crash(self, exc: Exception) -> None:
        """Fail this incarnation with `exc` (its supervisor restarts the actor). Requests
        submitted from now on wait in the mailbox, which the next incarnation serves."""
        nursery = self._nursery
        self._client = None
        if nursery is None:  # the actor is not running: nothing to fail but the record of it
            self._log.error("internal_error", error_type=type(exc).__name__, exc_info=exc)
            return

        async def fail() -> None:
            raise exc

        nursery.start_soon(fail)

    # --- worker-driven jobs ----------------------------------------------------------

    async def _serve(self, client: UpstreamClient, job: StreamJob) -> None:
        reply = job.reply
        assert reply is not None
        self.in_flight += 1
        ex = Exchange(self._provider, client, job)
        end: StreamEnd | None = None
        recorded = False
        try:
            log_fields(self._log, "info", "request_start", {"request_id": job.request_id, "model": job.model_id})
            msg = await ex.first()
            end = msg if isinstance(msg, StreamEnd) else await self._push(ex, msg, reply)
            # Counted before the consumer hears of the end, so health() read right after agrees.
            ex.record(end, False)
            recorded = True
            try:
                reply.send_nowait(end)  # the consumer is usually waiting for it
            except trio.WouldBlock:
                await reply.send(end)
        except (Abandoned, trio.BrokenResourceError):
            end = None  # the consumer went away
        except Exception as exc:
            end = self._internal_error(ex, exc)
            if not recorded:
                ex.record(end, False)
                recorded = True
            try:
                try:
                    reply.send_nowait(end)
                except trio.WouldBlock:
                    await reply.send(end)  # as for any end: until the consumer reads or leaves
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        finally:
            reply.close()
            with trio.CancelScope(shield=True):
                await ex.aclose()
            self._ended(None)
            cancelled = job.cancel.cancelled
            ex.log_end(end, cancelled=cancelled)
            if not recorded:
                ex.record(end, cancelled)

    def _internal_error(self, ex: Exchange, exc: Exception) -> StreamEnd:
        """A bug or an unexpected failure while serving a job: this job fails, with what it
        received so far (the consumer holds it), and the provider's other jobs go on."""
        job = ex.job
        self._log.exception(
            "internal_error", request_id=job.request_id, model=job.model_id, error_type=type(exc).__name__
        )
        error = ProviderError(
            f"internal error in provider actor: {type(exc).__name__}: {scrub(str(exc), self._secrets)}",
            provider=self.name,
            kind="internal",
            retryable=False,
        )
        ex.end_with(error)
        return StreamEnd(ex.progress.model, error, ex.progress.retries)

    async def _push(self, ex: Exchange, first: Batch, reply: trio.MemorySendChannel[ReplyMessage]) -> StreamEnd:
        """Send every batch on, the first one given, under one cancel scope for the idle and
        total deadlines; return the end (the reply channel's last message).

        What a stream holds for a slow consumer is bounded in bytes, not only in batches (the
        reply channel's `event_buffer`): each read takes at most what is left of `READ_BUDGET`
        once the batches the consumer has not taken are counted, and at least `MIN_READ`. So
        the batches waiting, and the one blocked on the full channel, come from at most
        `READ_BUDGET + event_buffer * MIN_READ` body bytes (32 KiB by default) plus the first
        read; the rest waits in the kernel's socket buffers, then upstream (TCP backpressure).
        A consumer that keeps up takes every batch as it is sent, so its reads stay whole.
        """
        progress = ex.progress
        job = ex.job
        body = ex.body
        chunks = body if type(body) is ResponseStream else None
        queue = _queue_of(reply)
        sizes: deque[int] = deque()  # body bytes of each batch sent and maybe not taken, oldest first
        queued = 0
        size = READ_SIZE
        taken = 0  # body bytes read so far
        progress.idle_deadline = -math.inf
        msg: ReplyMessage = first
        with job.cancel.scope(progress.clamp(trio.current_time() + self.config.timeouts.idle)) as scope:
            while type(msg) is list:
                await self._deliver(ex, msg, reply, scope)
                if chunks is not None:
                    n = chunks.body_bytes - taken
                    taken += n
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
                msg = await ex.read(scope)
        job.cancel.release(scope)
        if scope.cancelled_caught:
            return await ex.stop_at_deadline()
        assert type(msg) is StreamEnd
        return msg

    @staticmethod
    async def _deliver(
        ex: Exchange, events: Batch, reply: trio.MemorySendChannel[ReplyMessage], scope: trio.CancelScope
    ) -> None:
        progress = ex.progress
        try:
            reply.send_nowait(events)
            now = trio.current_time()
        except trio.WouldBlock:
            scope.deadline = progress.deadline  # waiting on the consumer is not upstream idleness
            progress.idle_deadline = -math.inf
            await reply.send(events)
            now = trio.current_time()
        ex.rearm(scope, now)

    # --- direct streams' deadlines ---------------------------------------------------

    def _watch(self, pull: _DirectPull, due: float) -> None:
        """Have the watchdog look at `pull` at `due`, earlier than any entry it has (which
        is then superseded: dropped when it comes due)."""
        if not pull.watched:
            pull.watched = True
            self._watching += 1
        pull.watch_due = due
        heapq.heappush(self._watched, (due, next(self._watch_seq), pull))
        scope = self._watch_scope
        if scope is not None and due < scope.deadline:
            scope.deadline = due

    def _unwatch(self) -> None:
        """A watched stream ended. Its entry stays until it comes due (or the entries are
        sifted): the entries of streams that ended are sifted out once they are over half,
        so what they hold on to is bounded by the streams in flight, not by the request rate."""
        self._watching -= 1
        watched = self._watched
        if len(watched) > 64 and len(watched) > 2 * self._watching:
            watched[:] = [entry for entry in watched if not entry[2].ended and entry[0] == entry[2].watch_due]
            heapq.heapify(watched)

    async def _watchdog(self) -> None:
        """End direct streams' waits whose first-token, idle or total deadline passed.

        Each stream has one live entry, checked when it comes due: a stream that got data
        since (or is not reading: its consumer has it) is put back at its new deadline, so a
        steady stream costs one check per idle period."""
        watched = self._watched
        while True:
            with trio.CancelScope(deadline=watched[0][0] if watched else math.inf) as scope:
                self._watch_scope = scope
                await trio.sleep_forever()
            self._watch_scope = None
            now = trio.current_time()
            while watched and watched[0][0] <= now:
                at, _, pull = heapq.heappop(watched)
                if at != pull.watch_due:
                    continue  # superseded by an earlier entry
                due = pull.due(now)
                if due is not None and due > now:
                    pull.watch_due = due
                    heapq.heappush(watched, (due, next(self._watch_seq), pull))
                    continue
                pull.watch_due = math.inf
                if due is not None:
                    ex = pull.ex
                    if due >= ex.progress.deadline:
                        ex.time_out("total")
                    else:
                        ex.time_out("idle" if ex.first_deadline is None else "first_token")


class _DirectPull:
    """A leg's exchange, driven by its consumer's pulls (see `ProviderActor.submit`)."""

    __slots__ = ("_actor", "_end", "_lost", "_started", "ex", "read_started", "reading", "watch_due", "watched")

    def __init__(self, actor: ProviderActor, ex: Exchange) -> None:
        self._actor = actor
        self.ex = ex
        ex.watch_first = self._watch_first
        #: When the watchdog's live entry for this stream comes due (inf: it has none).
        self.watch_due = math.inf
        self._started = False
        self._end: StreamEnd | None = None
        self._lost = False
        #: Whether the watchdog counts this stream among those it watches (it has had an entry).
        self.watched = False
        #: Whether the consumer's task is in a read now, and since when (trio time).
        self.reading = False
        self.read_started = 0.0

    async def next(self) -> ReplyMessage:
        """The next batch, or the end."""
        if self._end is not None:
            if self._lost:  # see below
                await trio.lowlevel.checkpoint_if_cancelled()
            return self._end
        ex = self.ex
        try:
            if not self._started:
                self._started = True
                log_fields(
                    self._actor._log,
                    "info",
                    "request_start",
                    {"request_id": ex.job.request_id, "model": ex.job.model_id},
                )
                msg = await ex.first()
            else:
                msg = await self._read()
        except Abandoned:
            msg = ex.end_with(None)  # `lose()` (the consumer's own leaving never reaches here)
        except Exception as exc:
            msg = self._actor._internal_error(ex, exc)
            ex.close(self._actor._nursery)
            self._finish(msg, cancelled=False)
            return msg
        except BaseException:
            if ex.progress.first_event_at is None and self._end is None:
                # Cancelled before its first event: what was sent cannot be taken up again.
                self.abandon()
            raise
        if self._lost:
            self._finish(None, cancelled=False)
            # A consumer cancelled along with the actor (the service failing or shutting down
            # around it) hears of its own cancellation, as it did waiting on a worker's channel.
            await trio.lowlevel.checkpoint_if_cancelled()
            return self._end or lost_end(self._actor.name)
        if type(msg) is StreamEnd:
            self._finish(msg, cancelled=False)
        return msg

    async def _read(self) -> ReplyMessage:
        ex = self.ex
        progress = ex.progress
        if ex.ready:
            return await ex.read()
        now = ex.provider.now()
        if now >= progress.deadline:
            return await ex.stop(ex.timeout_error("total"))
        body = ex.body
        if type(body) is ResponseStream:
            due = progress.clamp(now + ex.provider.config.timeouts.idle)
            if due < self.watch_due:  # no entry yet, or the first attempt's, for a later time
                self._actor._watch(self, due)
            self.read_started = now
            self.reading = True
            try:
                return await ex.read()
            finally:
                self.reading = False
        # A body the watchdog cannot close under a read: a deadline for this read alone.
        cancel = ex.job.cancel
        progress.idle_deadline = -math.inf
        with cancel.scope(progress.clamp(now + ex.provider.config.timeouts.idle)) as scope:
            msg = await ex.read(scope)
        cancel.release(scope)
        if scope.cancelled_caught:
            return await ex.stop_at_deadline()
        return msg

    @property
    def ended(self) -> bool:
        """Whether the stream has ended (its end given to the consumer, or the consumer left)."""
        return self._end is not None

    def _watch_first(self, due: float, now: float) -> None:
        """An attempt starting at `now` waits for its first event with no cancel scope, until
        `due`. The entry is for no later than the idle deadline a read would want next, so
        that a stream whose first phase ends in time needs no second entry."""
        idle = now + self.ex.provider.config.timeouts.idle
        if idle < due:
            due = idle
        if due < self.watch_due:
            self._actor._watch(self, due)

    def due(self, now: float) -> float | None:
        """When the watchdog should look at this stream next (at or before its deadline);
        None once it has ended."""
        if self._end is not None or self.ex.done:
            return None
        first = self.ex.first_deadline
        if first is not None:  # an attempt waiting for its first event (`Exchange._attempt`)
            return first
        progress = self.ex.progress
        if self.reading:
            since = self.read_started if self.read_started > progress.last_data_at else progress.last_data_at
            return progress.clamp(since + self.ex.provider.config.timeouts.idle)
        return progress.clamp(now + self.ex.provider.config.timeouts.idle)

    def abandon(self) -> None:
        """The consumer left: the upstream request ends now."""
        if self._end is None:
            self.ex.close(self._actor._nursery)
            self._finish(None, cancelled=True)

    def lose(self) -> None:
        """The actor stopped under the stream: a wait in progress ends, and the consumer's
        next pull ends the stream with a connection error (as a worker-driven leg's would)."""
        if self._end is None and not self._lost:
            self._lost = True
            self.ex.close(None)
            if not self.reading and not self._in_first_phase():
                self._finish(None, cancelled=False)

    def _in_first_phase(self) -> bool:
        return self._started and self.ex.progress.first_event_at is None

    def _finish(self, end: StreamEnd | None, *, cancelled: bool) -> None:
        if self._end is not None:
            return
        self._end = end if end is not None else lost_end(self._actor.name)
        self._actor._ended(self)
        ex = self.ex
        try:
            ex.log_end(end, cancelled=cancelled)
            ex.record(end, cancelled)
        except Exception as exc:
            # A bug in the actor's own bookkeeping: the actor fails (and its supervisor
            # restarts it) as it would had a worker run this; the consumer has its end.
            self._actor._crash(exc)
