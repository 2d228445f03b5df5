"""The consumer side of a worker's stream: an iterator for threads, an async iterator for asyncio."""

from __future__ import annotations

import asyncio
import functools
import threading

from ..models import StreamEvent
from .handoff import Handoff, wake_future

__all__ = ["AsyncWorkerStream", "WorkerStream"]


class WorkerStream:
    """The events of one request, for a thread: `for ev in worker.stream(request)`.

    Iteration ends after the `finish` event; a failed request raises its `ProviderError` (with
    `.partial`) or `UsageError`. Leaving early (`break`, `close()`, the end of a `with` block,
    or dropping the iterator) cancels the upstream request. Read it from one thread at a time:
    if the thread that last read it has ended while the stream waits for room, the worker
    cancels the request (a later read gets the events held, then a `ProviderError`).
    """

    __slots__ = ("_ended", "_h")

    def __init__(self, handoff: Handoff) -> None:
        self._h = handoff
        self._ended = False

    @property
    def received(self) -> int:
        """Events the worker has taken from the service for this stream, read or waiting in
        the window (at most `window` more than were read, plus a batch cut short by a stop)."""
        return self._h.received

    def __iter__(self) -> WorkerStream:
        return self

    def __next__(self) -> StreamEvent:
        if self._ended:
            raise StopIteration
        h = self._h
        assert h.cond is not None
        h.consumer_thread = threading.current_thread()
        try:
            with h.lock:
                while not h.items:
                    if h.done:
                        self._ended = True
                        if isinstance(h.outcome, BaseException):
                            raise h.outcome
                        raise StopIteration
                    h.wake = h.cond.notify
                    h.cond.wait()
                ev, room = h.take()
        except BaseException:  # the outcome, or KeyboardInterrupt while waiting: leave the stream
            self.close()
            raise
        if room is not None:
            h.give_room(room)
        return ev

    def close(self) -> None:
        """Stop reading: cancels the upstream request if it has not ended."""
        self._ended = True
        self._h.cancel()

    def __enter__(self) -> WorkerStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._ended:
            self._h.cancel()


class AsyncWorkerStream:
    """The events of one request, for asyncio: `async for ev in worker.astream(request)`.

    As `WorkerStream`, from any running asyncio loop. Cancelling the task while it waits for
    the next event cancels the upstream request; so do `break`, `aclose()`, the end of an
    `async with` block, or dropping the iterator. If the loop that last read it is closed
    while the stream waits for room, the worker cancels the request.
    """

    __slots__ = ("_ended", "_h")

    def __init__(self, handoff: Handoff) -> None:
        self._h = handoff
        self._ended = False

    @property
    def received(self) -> int:
        """As `WorkerStream.received`."""
        return self._h.received

    def __aiter__(self) -> AsyncWorkerStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._ended:
            raise StopAsyncIteration
        h = self._h
        while True:
            loop = asyncio.get_running_loop()
            h.consumer_loop = loop
            with h.lock:
                if h.items:
                    ev, room = h.take()
                    break
                if h.done:
                    self._ended = True
                    if isinstance(h.outcome, BaseException):
                        raise h.outcome
                    raise StopAsyncIteration
                fut: asyncio.Future[None] = loop.create_future()
                h.wake = functools.partial(wake_future, loop, fut)
            try:
                await fut
            except BaseException:  # the task was cancelled: leave the stream
                self.close()
                raise
        if room is not None:
            h.give_room(room)
        return ev

    def close(self) -> None:
        """Stop reading: cancels the upstream request if it has not ended."""
        self._ended = True
        self._h.cancel()

    async def aclose(self) -> None:
        """As `close()` (it does not wait)."""
        self.close()

    async def __aenter__(self) -> AsyncWorkerStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._ended:
            self._h.cancel()
