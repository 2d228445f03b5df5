"""The batched mailbox of the actors that keep state beside the data path.

The limiter, the circuit breaker, the router and the metrics actor each own some state
(a pure policy object, estimates, counters) and serve messages from one bounded mailbox,
one at a time, so that state is never touched concurrently. `BatchedActor[Msg]` is that
mailbox and the loop serving it; `Msg` is the actor's message union (small frozen attrs
classes), and the actor handles one message at a time in `_handle`.

The actor waits on a wake-up event, not on its mailbox, so a report can be queued without
waking it: routine news (a request that went and succeeded, while nothing constrains the
provider; a finished request's metrics) waits in the mailbox, in order, until the next
wake-up, which comes with anything that matters (a call, a failure, a 429, quota headers),
when the mailbox is half full, or `FLUSH_INTERVAL` seconds after the last one. Waking an
actor for every request would cost more than the bookkeeping it does. (Waiting on
`receive()` instead would also hand a report to the waiting task, where it is in no buffer
until that task runs: a synchronous read right after a request could miss it. This way
every report is either taken in or still in the buffer, where the readers' `drain()` finds
it.)

Nothing blocks the data path: a report is a `send_nowait`, dropped and counted if the
mailbox is full (a stalled actor can never stall a request). A request/reply (`Call[R]`)
goes over a fresh one-slot channel, so the actor never blocks replying either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar, TypeVarTuple

import attrs
import trio

__all__ = ["FLUSH_INTERVAL", "MAILBOX", "BatchedActor", "Call"]

#: The longest a routine report waits in a mailbox before it is taken in (reads take it in at once).
FLUSH_INTERVAL = 1.0
#: The default mailbox size.
MAILBOX = 256

Msg = TypeVar("Msg")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")


@attrs.frozen(slots=True, eq=False)
class Call(Generic[R]):
    """The base of a message that asks for an answer of type `R`.

    The actor answers with `reply.send_nowait(...)` (one slot: it never blocks). A handler
    must answer every call it takes; if it raises instead, the reply channel is closed and
    the caller gets a RuntimeError rather than waiting forever.
    """

    reply: trio.MemorySendChannel[R]


class BatchedActor(Generic[Msg]):
    """A bounded mailbox of `Msg`, served in batches by `run()` (see the module's docstring).

    A subclass declares its message union (`BatchedActor[_Acquire | _Cancel | _Feedback]`),
    implements `_handle`, and talks to itself through `_alert` (news that matters),
    `_post` (routine news) and `_call` (a request/reply, typed by its reply).
    """

    def __init__(self, capacity: int = MAILBOX) -> None:
        send, recv = trio.open_memory_channel[Msg](capacity)
        self._mailbox = send
        self._inbox = recv
        self._half = capacity // 2
        self._wake = trio.Event()
        self._queued = 0  # reports queued since the last wake-up
        # A report that matters is queued, unread: the state on show may be out of date, so
        # nobody may rely on it (`admits_freely`) until the actor has taken the report in.
        self._urgent = False
        #: Reports dropped because the mailbox was full.
        self.dropped_reports = 0

    def _alert(self, msg: Msg) -> None:
        """Queue news that matters and wake the actor (non-blocking)."""
        try:
            self._mailbox.send_nowait(msg)
        except trio.WouldBlock:
            self.dropped_reports += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        self._queued += 1
        self._urgent = True
        self._wake.set()

    def _post(self, msg: Msg) -> None:
        """Queue routine news (non-blocking): it waits for the next wake-up, unless the mailbox
        is half full. A report dropped for a full mailbox is news that matters (something is
        lost), and the full mailbox wants emptying: the actor is woken."""
        try:
            self._mailbox.send_nowait(msg)
        except trio.WouldBlock:
            self.dropped_reports += 1
            self._queued += 1
            self._urgent = True
            self._wake.set()
            return
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        self._queued += 1
        if self._queued >= self._half:
            self._wake.set()

    async def _call(self, make: Callable[[trio.MemorySendChannel[R], *Ts], Msg], *args: *Ts) -> R:
        """Send `make(reply, *args)` (a `Call[R]`) and wait for its answer.

        Queued after everything reported before it, so the answer takes those reports into
        account."""
        send, recv = trio.open_memory_channel[R](1)
        self._wake.set()  # (if the mailbox is full, the actor must empty it for this send to go)
        await self._mailbox.send(make(send, *args))
        self._wake.set()
        try:
            return await recv.receive()
        except trio.EndOfChannel:
            raise RuntimeError(f"{type(self).__name__} stopped before answering") from None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the mailbox until it is closed (the mailbox outlives restarts)."""
        task_status.started()
        while True:
            with trio.move_on_after(FLUSH_INTERVAL):
                await self._wake.wait()
            self._wake = trio.Event()
            if not self.drain():
                return

    def drain(self) -> bool:
        """Serve everything queued, in order, in one turn; False once the mailbox is closed.

        Reads (`status()`, the metrics' renderings) call it first: a read right after a
        request then sees that request's report. It runs synchronously, so never at the
        same time as the actor's own turn.
        """
        self._queued = 0
        self._urgent = False
        inbox = self._inbox
        while True:
            try:
                msg = inbox.receive_nowait()
            except trio.WouldBlock:
                return True
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return False
            try:
                self._handle(msg)
            except BaseException:
                if isinstance(msg, Call):
                    msg.reply.close()  # the caller learns that no answer is coming
                raise

    def close(self) -> None:
        """Stop accepting messages (service shutdown); `run()` returns once it has served the rest."""
        self._mailbox.close()
        self._wake.set()

    def _handle(self, msg: Msg) -> None:
        """Take in one message (answer it, if it is a `Call`)."""
        raise NotImplementedError
