"""A keep-alive pool of HTTP/1.1 connections per origin, with httpx's three limits.

`max_connections` bounds the open connections (idle and in use, all origins together),
`max_keepalive` the idle ones, and `keepalive_expiry` how long one may stay idle, on trio's
clock. A request for an origin takes its most recently used idle connection, else opens a
new one if the total allows, else closes an idle connection of another origin to make
room, else waits (up to its pool timeout) for a connection to be released or closed.

The transport returns a connection with `release(conn, reuse=True)` only after reading a
whole response off it; anything else (an abandoned body, an error, a cancelled read)
releases it with `reuse=False`, which closes it. An idle connection is also dropped when
its socket turns readable: the server closed it, or sent bytes nobody asked for.
Closing is synchronous (the socket is closed at once, with no TLS close_notify), so it is
safe inside cancelled scopes and `finally` blocks.
"""

from __future__ import annotations

import math
import select
from collections import deque
from collections.abc import Awaitable, Callable

import trio

__all__ = ["Connection", "ConnectionPool", "Origin", "PoolTimeoutError"]

#: (scheme, host, port), as bytes, bytes, int.
Origin = tuple[bytes, bytes, int]


class PoolTimeoutError(Exception):
    """No connection became available within the pool timeout."""


def _socket_readable(sock: trio.socket.SocketType) -> bool:
    fd = sock.fileno()
    if fd < 0:
        return True
    if hasattr(select, "poll"):  # select.select cannot take descriptors past FD_SETSIZE
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


class Connection:
    """One open connection: the trio stream (TCP or TLS) and the socket under it."""

    __slots__ = ("expires_at", "origin", "requests", "socket", "stream")

    def __init__(self, origin: Origin, stream: trio.abc.Stream, socket: trio.socket.SocketType) -> None:
        self.origin = origin
        self.stream = stream
        self.socket = socket
        self.expires_at = math.inf
        #: Requests sent on this connection so far.
        self.requests = 0

    @property
    def is_closed(self) -> bool:
        return self.socket.fileno() < 0

    def close(self) -> None:
        """Close the socket now; a task blocked on it gets `trio.ClosedResourceError`."""
        self.socket.close()

    def is_stale(self) -> bool:
        """An idle connection with something to read has been closed by the server (or is confused)."""
        return _socket_readable(self.socket)


class ConnectionPool:
    """Connections by origin, within the limits; see the module docstring."""

    def __init__(
        self,
        *,
        max_connections: int | None = 100,
        max_keepalive: int | None = 20,
        keepalive_expiry: float | None = 5.0,
    ) -> None:
        self.max_connections = math.inf if max_connections is None else max_connections
        self.max_keepalive = math.inf if max_keepalive is None else max_keepalive
        self.keepalive_expiry = math.inf if keepalive_expiry is None else keepalive_expiry
        self._idle: dict[Origin, deque[Connection]] = {}  # each oldest first
        self._in_use: set[Connection] = set()
        self._reserved = 0  # slots taken by connections still being opened
        self._idle_count = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        #: Connections opened over the pool's life.
        self.connections_opened = 0

    @property
    def open_connections(self) -> int:
        return len(self._in_use) + self._idle_count

    @property
    def idle_connections(self) -> int:
        return self._idle_count

    @property
    def connecting(self) -> int:
        """Connections being opened (they hold a slot of `max_connections` already)."""
        return self._reserved

    async def acquire(
        self, origin: Origin, opener: Callable[[], Awaitable[Connection]], *, pool_timeout: float | None
    ) -> Connection:
        """An idle connection to `origin`, or a new one from `opener()`, within the limits.

        Raises `PoolTimeoutError` if none is free within `pool_timeout` seconds; what `opener`
        raises passes through (and frees the slot)."""
        deadline = math.inf if pool_timeout is None else trio.current_time() + pool_timeout
        while True:
            if self._closed:
                raise RuntimeError("the connection pool is closed")
            conn = self._take_idle(origin)
            if conn is not None:
                self._in_use.add(conn)
                return conn
            if self.open_connections + self._reserved < self.max_connections:
                break
            if not self._evict_one():
                try:
                    with trio.fail_at(deadline):
                        await self._lot.park()
                except trio.TooSlowError:
                    raise PoolTimeoutError(f"no connection available within {pool_timeout} s") from None
        self._reserved += 1
        try:
            conn = await opener()
        except BaseException:
            self._reserved -= 1
            self._lot.unpark()
            raise
        self._reserved -= 1
        self.connections_opened += 1
        if self._closed:
            conn.close()
            self._lot.unpark()
            raise RuntimeError("the connection pool is closed")
        self._in_use.add(conn)
        return conn

    def take_idle(self, origin: Origin) -> Connection | None:
        """An idle connection to `origin`, taken at once as `acquire` takes it (release it
        the same way), or None if none is idle: this never waits and never opens one."""
        if self._closed:
            return None
        conn = self._take_idle(origin)
        if conn is not None:
            self._in_use.add(conn)
        return conn

    def release(self, conn: Connection, *, reuse: bool) -> None:
        """Give back a connection taken by `acquire`: kept idle if `reuse` and the limits allow, else closed."""
        self._in_use.discard(conn)
        now = trio.current_time()
        self._drop_expired(now)
        if (
            reuse
            and not self._closed
            and not conn.is_closed
            and self._idle_count < self.max_keepalive
            and self.keepalive_expiry > 0
        ):
            conn.expires_at = now + self.keepalive_expiry
            self._idle.setdefault(conn.origin, deque()).append(conn)
            self._idle_count += 1
        else:
            conn.close()
        self._lot.unpark()

    def close(self) -> None:
        """Close every connection, idle or in use; later `acquire` calls raise RuntimeError."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0
        for conn in self._in_use:
            conn.close()
        self._in_use.clear()
        self._lot.unpark_all()

    # --- internals ---------------------------------------------------------------

    def _take_idle(self, origin: Origin) -> Connection | None:
        conns = self._idle.get(origin)
        if not conns:
            return None
        now = trio.current_time()
        while conns:
            conn = conns.pop()  # the most recently used: the likeliest to be alive
            self._idle_count -= 1
            if conn.expires_at > now and not conn.is_stale():
                return conn
            conn.close()
        return None

    def _drop_expired(self, now: float) -> None:
        # Each deque is in release order, so expiry times ascend: only the heads can be due.
        for conns in self._idle.values():
            while conns and conns[0].expires_at <= now:
                conns.popleft().close()
                self._idle_count -= 1

    def _evict_one(self) -> bool:
        """Close the longest-idle connection of any origin, to make room; False if none is idle."""
        oldest: Connection | None = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].expires_at < oldest.expires_at):
                oldest = conns[0]
        if oldest is None:
            return False
        self._idle[oldest.origin].popleft()
        self._idle_count -= 1
        oldest.close()
        return True
