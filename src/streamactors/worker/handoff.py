"""One request's bounded hand-off from the worker's trio thread to its consumer's thread or
asyncio loop (see `worker.worker`)."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable

import trio

from ..models import ChatRequest, Reply, StreamEvent

__all__ = ["Handoff", "wake_future"]

_Outcome = Reply | BaseException | None


class Handoff:
    """One request's bounded hand-off from the worker's trio thread to its consumer.

    The producer side (`put`, `finish`, `cancel_in_trio`) runs in the trio thread; the
    consumer side in the caller's thread or loop. `lock` guards the window (`items`), the
    outcome, and who waits on whom (`wake`: how to wake a waiting consumer; `room`: the trio
    event the producer waits on while the window is full).
    """

    __slots__ = (
        "abandoned",
        "closed",
        "cond",
        "consumer_loop",
        "consumer_thread",
        "done",
        "items",
        "lock",
        "on_done",
        "outcome",
        "received",
        "request",
        "room",
        "scope",
        "token",
        "unput",
        "wake",
        "window",
    )

    def __init__(
        self,
        token: trio.lowlevel.TrioToken,
        request: ChatRequest,
        window: int,
        on_done: Callable[[Handoff], None],
        *,
        threaded: bool,
    ) -> None:
        self.token = token
        self.request = request
        self.window = window
        self.on_done = on_done
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock) if threaded else None
        self.items: collections.deque[StreamEvent] = collections.deque()
        self.done = False
        self.outcome: _Outcome = None
        self.wake: Callable[[], None] | None = None
        self.room: trio.Event | None = None
        self.received = 0
        self.unput: list[StreamEvent] = []
        self.consumer_thread: threading.Thread | None = None
        self.consumer_loop: asyncio.AbstractEventLoop | None = None
        # Trio thread only:
        self.scope: trio.CancelScope | None = None
        self.closed = False
        self.abandoned = False

    # --- producer side (trio thread) ----------------------------------------------------

    async def put(self, batch: list[StreamEvent]) -> None:
        """Add events to the window, waiting while it is full."""
        i, n = 0, len(batch)
        while True:
            with self.lock:
                free = self.window - len(self.items)
                if free > 0:
                    part = batch[i : i + free] if i or n > free else batch
                    self.items.extend(part)
                    self.received += len(part)
                    i += len(part)
                    self._wake_consumer()
                    if i >= n:
                        self.unput = []
                        return
                room = self.room = trio.Event()
                self.unput = batch[i:]
            await room.wait()

    def finish(self, outcome: _Outcome, *, with_unput: bool = False) -> None:
        """End the stream with `outcome` (a reply, an error, or None for a stream's clean end).
        `with_unput` adds the events of a batch cut short, so the consumer gets every event
        the error's partial reply holds. Idempotent; safe from any thread."""
        with self.lock:
            if self.done:
                return
            if with_unput and self.unput:
                self.items.extend(self.unput)
                self.received += len(self.unput)
            self.unput = []
            self.done = True
            self.outcome = outcome
            self._wake_consumer()
        self.on_done(self)

    def cancel_in_trio(self) -> None:
        """The consumer left: cancel the request's task (closing the upstream request)."""
        self.closed = True
        if self.scope is not None:
            self.scope.cancel()

    def consumer_gone(self) -> bool:
        """Whether the thread (or asyncio loop) that last read this stream has ended."""
        thread, loop = self.consumer_thread, self.consumer_loop
        return (thread is not None and not thread.is_alive()) or (loop is not None and loop.is_closed())

    def _wake_consumer(self) -> None:  # with the lock held
        wake = self.wake
        if wake is not None:
            self.wake = None
            wake()

    # --- consumer side (any thread) -----------------------------------------------------

    def take(self) -> tuple[StreamEvent, trio.Event | None]:
        """Pop the next event (with the lock held); also the producer's event to set, if it
        waits for room and half the window is free."""
        ev = self.items.popleft()
        room = self.room
        if room is not None and len(self.items) <= self.window // 2:
            self.room = None
            return ev, room
        return ev, None

    def give_room(self, room: trio.Event) -> None:
        try:
            self.token.run_sync_soon(room.set)
        except trio.RunFinishedError:
            pass

    def cancel(self) -> None:
        """Cancel the request from any thread (nothing happens if it has ended)."""
        if self.done:
            return
        try:
            self.token.run_sync_soon(self.cancel_in_trio)
        except trio.RunFinishedError:
            pass


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def wake_future(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    try:
        loop.call_soon_threadsafe(_resolve, fut)
    except RuntimeError:
        pass  # the loop is closed: nobody waits any more (the watcher cancels the stream)
