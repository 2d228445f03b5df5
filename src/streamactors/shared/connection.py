"""`RedisConnection`: one connection to Redis over trio sockets, RESP2, replies parsed by hiredis.

Why not a Redis client library: the one maintained async client that runs on trio, coredis 6
(anyio), costs about 180 µs of CPU per call on this project's 2-core VM (a writer task and a
reader task per connection, several scheduler rounds a call), against about 35 µs here, and a
short request through the whole service costs about 400 µs. What the fleet needs is small:
`EVALSHA` pipelined, `SCRIPT LOAD`, `AUTH`, `SELECT`. hiredis (the C RESP parser, sans-IO:
`Reader.feed` / `gets`) does the parsing; trio does the sockets and TLS.

The connection knows nothing of timeouts or outages: its caller (`link.RedisLink`) bounds
every exchange and treats any exception as the connection being lost.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

import hiredis
import trio

from .address import RedisAddress
from .scripts import Script

__all__ = ["ConnectionLost", "RedisConnection", "Reply", "pack"]

#: A reply as hiredis gives it: bytes, an integer, None, a list of replies, or a
#: `hiredis.ReplyError` (an error reply is a value, not an exception).
Reply = Any


class ConnectionLost(Exception):
    """The server closed the connection, or sent something that is not RESP."""


def pack(*args: bytes | str | int | float) -> bytes:
    """One command in RESP (hiredis packs it in C)."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub types a 1-tuple
    return packed


class RedisConnection:
    """An open connection; `open()` connects, authenticates, selects the database and loads
    the scripts. Use `send()` then `reply()` once per command sent (pipelining)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._reader = hiredis.Reader()

    @classmethod
    async def open(cls, address: RedisAddress, scripts: Sequence[Script] = ()) -> RedisConnection:
        """Connect to `address` and get it ready; raises `OSError`, `ConnectionLost`,
        `trio.BrokenResourceError` (TLS), or `ConnectionLost` for a refused AUTH/SELECT."""
        stream: trio.abc.Stream = await trio.open_tcp_stream(address.host, address.port)
        try:
            if address.tls:
                tls = trio.SSLStream(stream, ssl.create_default_context(), server_hostname=address.host)
                await tls.do_handshake()
                stream = tls
            conn = cls(stream)
            setup: list[bytes] = []
            if address.password is not None:
                auth = (address.username, address.password) if address.username else (address.password,)
                setup.append(pack("AUTH", *auth))
            if address.db:
                setup.append(pack("SELECT", address.db))
            setup += [pack("SCRIPT", "LOAD", script.source) for script in scripts]
            if setup:
                await conn.send(b"".join(setup))
                for _ in setup:
                    reply = await conn.reply()
                    if isinstance(reply, hiredis.ReplyError):
                        raise ConnectionLost(f"the server refused the connection's set-up: {reply}")
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return conn

    async def send(self, data: bytes) -> None:
        """Write commands (already packed)."""
        await self._stream.send_all(data)

    async def reply(self) -> Reply:
        """The next reply, read from the socket as needed."""
        reader = self._reader
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                raise ConnectionLost(f"not RESP: {exc}") from None
            if reply is not False:
                return reply
            data = await self._stream.receive_some(65536)
            if not data:
                raise ConnectionLost("the server closed the connection")
            reader.feed(data)  # type: ignore[arg-type]  # it takes any buffer; its stub says str or bytes

    async def aclose(self) -> None:
        """Close at once (never waits on the peer)."""
        await trio.aclose_forcefully(self._stream)
