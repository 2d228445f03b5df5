"""`EagerSendStream`: trio's `SocketStream`, with a send that returns at once when the kernel
takes every byte.

A request head and body are a few kilobytes, which the socket's send buffer always has room
for. trio's `send_all` still passes through the scheduler after the send succeeds (trio's
rule: every async operation is a schedule point), a full round of the run loop per request,
though the response cannot have arrived yet and the task's next step (a receive) waits
anyway. Here a send that the kernel takes whole is one `os.write` and a cancellation check;
anything else (a partial write, a full buffer, an error, a closed socket) goes through
trio's `send_all`, which then waits, raises and translates errors as it always does.

Under TLS it sits below `trio.SSLStream`, so encrypted records take the same path. Receives,
`send_eof`, `wait_send_all_might_not_block` and `aclose` are trio's. Windows sockets cannot be
written with `os.write`: there every send is trio's.
"""

from __future__ import annotations

import os
import sys

import trio

__all__ = ["EagerSendStream"]

_EAGER = sys.platform != "win32"


class EagerSendStream(trio.abc.HalfCloseableStream):
    """Wraps a connected `trio.SocketStream` (see the module docstring)."""

    __slots__ = ("_inner", "_sending", "socket")

    def __init__(self, inner: trio.SocketStream) -> None:
        self._inner = inner
        #: The trio socket under the stream.
        self.socket = inner.socket
        self._sending = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:  # what trio's conflict detector says of two tasks sending at once
            raise trio.BusyResourceError("another task is currently sending data on this stream")
        self._sending = True
        try:
            if _EAGER and data:
                await trio.lowlevel.checkpoint_if_cancelled()
                fd = self.socket.fileno()
                if fd >= 0 and not self.socket.did_shutdown_SHUT_WR:
                    try:
                        sent = os.write(fd, data)
                    except OSError:  # would block, or failed: trio's send waits or raises
                        sent = 0
                    if sent == len(data):
                        return
                    data = memoryview(data)[sent:]
            await self._inner.send_all(data)
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._inner.aclose()
