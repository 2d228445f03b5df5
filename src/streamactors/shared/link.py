"""`RedisLink`: the actor that owns the connection to the shared Redis.

Callers never touch the connection: they queue a script call (`call()` waits for its reply,
`post()` hands it to a callback) in the link's bounded mailbox. The link takes everything
queued at once, writes it as one pipelined batch and reads the replies in order: however
many requests ask at the same time, they share one round trip.

Redis failing never fails a request. Every answer is the reply, or None when there is none
to have: the link is down, its mailbox is full, an error reply, or no reply within `timeout`
seconds of the oldest command of the batch being queued. A caller that gets None falls back
to its local state. A timeout or any connection error closes the connection (a late reply
would answer the wrong command); the link then answers None at once to every call, logs one
warning for the outage (`shared_state_degraded`), and reconnects with backoff (0.1 s doubling
to 2 s); once back (`shared_state_restored`, with how long it lasted) it serves again. A
reconnection loads the scripts again, so a restarted Redis is served as before, and a
`NOSCRIPT` reply (someone flushed the scripts) is treated as a lost connection for that reason.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import hiredis
import trio

from ..policy.intensity import restart_backoff
from .address import RedisAddress
from .connection import ConnectionLost, RedisConnection, Reply, pack
from .scripts import ALL, Script

__all__ = ["RedisLink"]

#: Most commands written in one batch (the rest wait for the next).
MAX_BATCH = 512
_CONNECTION_ERRORS = (OSError, ConnectionLost, trio.BrokenResourceError, trio.ClosedResourceError)


@attrs.frozen(slots=True, eq=False)
class _Command:
    payload: bytes
    done: Callable[[Reply | None], None]
    queued_at: float


class _Lost(Exception):
    """The connection is no longer usable (the reason is the message)."""


class RedisLink:
    """Owns one connection to the shared Redis; see the module docstring.

    Run it with `await nursery.start(link.run)`: it tries to connect once (for at most
    `connect_timeout` seconds) before it reports started, so a service that starts while
    Redis is up is served by Redis from its first request, and one that starts while Redis
    is down starts degraded.
    """

    def __init__(
        self,
        address: RedisAddress,
        timeout: float,
        logger: Any,
        *,
        scripts: Sequence[Script] = ALL,
        capacity: int = 1024,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.connect_timeout = max(1.0, 4 * timeout)
        self._scripts = tuple(scripts)
        self._log = logger.bind(actor="redis_link", redis=address.shown())
        send, recv = trio.open_memory_channel[_Command](capacity)
        self._mailbox = send
        self._inbox = recv
        #: True while connected: calls go to Redis. False: every call is answered None at once.
        self.up = False
        self._down_since: float | None = None
        self._error_replies: set[str] = set()
        #: Counters, for `status()` and the closing measurements.
        self.commands = 0
        self.round_trips = 0
        self.unanswered = 0
        self.outages = 0

    # --- the callers' side ---------------------------------------------------------------

    async def call(
        self, script: Script, keys: Sequence[str], args: Sequence[bytes | str | int | float]
    ) -> Reply | None:
        """Run `script` and return its reply, or None (see the module docstring)."""
        if not self.up:
            self.unanswered += 1
            return None
        send, recv = trio.open_memory_channel[Reply | None](1)

        def deliver(reply: Reply | None) -> None:
            try:
                send.send_nowait(reply)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the caller is gone

        if not self._queue(script, keys, args, deliver):
            return None
        return await recv.receive()

    def post(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[bytes | str | int | float],
        done: Callable[[Reply | None], None] | None = None,
    ) -> None:
        """Run `script` without waiting; `done` (if given) gets the reply or None, in the
        link's task (it must be quick and must not raise)."""
        if not self.up or not self._queue(script, keys, args, done or _ignore):
            self.unanswered += 1
            if done is not None:
                done(None)

    def _queue(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[bytes | str | int | float],
        done: Callable[[Reply | None], None],
    ) -> bool:
        payload = pack("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            self._mailbox.send_nowait(_Command(payload, done, trio.current_time()))
        except trio.WouldBlock:
            self.unanswered += 1
            return False
        return True

    def status(self) -> str:
        """`"ok"` while connected, else `"degraded"` (every service falls back to local state)."""
        return "ok" if self.up else "degraded"

    # --- the actor -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, serve, and reconnect with backoff, forever (until cancelled)."""
        started = False
        attempts = 0
        while True:
            conn, reason = await self._connect()
            if not started:
                started = True
                task_status.started()
            if conn is None:
                self._went_down(reason)
                await trio.sleep(restart_backoff(attempts, base=0.1, cap=2.0))
                attempts += 1
                continue
            attempts = 0
            self._came_up()
            try:
                await self._serve(conn)
            except _Lost as lost:
                self._went_down(str(lost))
            finally:
                self.up = False
                with trio.CancelScope(shield=True):
                    await conn.aclose()
                self._answer_queued()

    async def _connect(self) -> tuple[RedisConnection | None, str]:
        with trio.move_on_after(self.connect_timeout):
            try:
                return await RedisConnection.open(self.address, self._scripts), ""
            except _CONNECTION_ERRORS as exc:
                return None, _describe(exc)
        return None, f"no connection within {self.connect_timeout} s"

    async def _serve(self, conn: RedisConnection) -> None:
        inbox = self._inbox
        while True:
            batch = collections.deque([await inbox.receive()])
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            self.commands += len(batch)
            self.round_trips += 1
            with trio.CancelScope(deadline=batch[0].queued_at + self.timeout) as scope:
                try:
                    await conn.send(b"".join([c.payload for c in batch]))
                    while batch:
                        reply = await conn.reply()
                        self._answer(batch.popleft(), reply)
                except _CONNECTION_ERRORS as exc:
                    self._answer_all(batch)
                    raise _Lost(_describe(exc)) from None
                except _Lost:
                    self._answer_all(batch)
                    raise
            if scope.cancelled_caught:
                self._answer_all(batch)
                raise _Lost(f"no reply within {self.timeout} s")

    def _answer(self, cmd: _Command, reply: Reply) -> None:
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            cmd.done(None)
            self.unanswered += 1
            if message.startswith("NOSCRIPT"):
                raise _Lost("the server lost the scripts (SCRIPT FLUSH?); reconnecting loads them")
            if message not in self._error_replies:  # once per kind, not once per request
                self._error_replies.add(message)
                self._log.warning("shared_state_error_reply", error=message)
            return
        cmd.done(reply)

    def _answer_all(self, batch: collections.deque[_Command]) -> None:
        while batch:
            self.unanswered += 1
            batch.popleft().done(None)

    def _answer_queued(self) -> None:
        while True:
            try:
                cmd = self._inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            self.unanswered += 1
            cmd.done(None)

    def _went_down(self, reason: str) -> None:
        self.up = False
        if self._down_since is None:
            self._down_since = trio.current_time()
            self.outages += 1
            self._log.warning("shared_state_degraded", reason=reason, fallback="local limiter and breaker")

    def _came_up(self) -> None:
        self.up = True
        if self._down_since is not None:
            lasted = trio.current_time() - self._down_since
            self._down_since = None
            self._log.info("shared_state_restored", outage_s=round(lasted, 3))


def _ignore(reply: Reply | None) -> None:
    pass


def _describe(exc: BaseException) -> str:
    """An error and what caused it (trio's TLS errors carry the SSL error as their cause)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:  # trio's attempts to connect
        cause = cause.exceptions[0]
    if cause is not None:
        text += f" ({type(cause).__name__}: {cause})"
    return text
