"""`EagerSocketStream`: trio's `SocketStream`, with sends and receives that take fewer trips
through the scheduler and hold no bytes while they wait.

Send: a request head and body are a few kilobytes, which the socket's send buffer always has
room for. trio's `send_all` still passes through the scheduler after the send succeeds
(trio's rule: every async operation is a schedule point), a full round of the run loop per
request, though the response cannot have arrived yet and the task's next step (a receive)
waits anyway. Here a send that the kernel takes whole is one `os.write` and a cancellation
check; anything else (a partial write, a full buffer, an error, a closed socket) goes through
trio's `send_all`, which then waits, raises and translates errors as it always does.

Receive: trio reads first and then yields to the scheduler with the bytes in hand, so under
load every stream waiting for its turn holds a full read (up to 64 KiB each: 64 MB over 1,000
busy streams). Here a receive still has exactly one schedule point, but when the last read
filled its buffer (more is likely waiting) the yield comes before the read, and the bytes go
straight to the caller. Otherwise it reads at once: with nothing there it waits for the
socket, which is its schedule point; with bytes there it yields after, as trio does (they are
few: the last read was short). Errors are translated as trio's `SocketStream` translates them.

Under TLS it sits below `trio.SSLStream`, so encrypted records take the same path. `send_eof`,
`wait_send_all_might_not_block` and `aclose` are trio's. Windows sockets cannot be read or
written with `os.read`/`os.write`: there every send and receive is trio's.
"""

from __future__ import annotations

import errno
import os
import sys

import trio

__all__ = ["DEFAULT_RECEIVE_SIZE", "EagerSocketStream"]

_EAGER = sys.platform != "win32"
#: What `receive_some()` asks for without a size (trio's default too).
DEFAULT_RECEIVE_SIZE = 65536
_CLOSED_ERRNOS = {errno.EBADF, errno.ENOTSOCK}


def _stream_error(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    """The error trio's `SocketStream` raises for `exc` (its `_translate_socket_errors_to_stream_errors`)."""
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


class EagerSocketStream(trio.abc.HalfCloseableStream):
    """Wraps a connected `trio.SocketStream` (see the module docstring)."""

    __slots__ = ("_full", "_inner", "_sending", "socket")

    def __init__(self, inner: trio.SocketStream) -> None:
        self._inner = inner
        #: The trio socket under the stream.
        self.socket = inner.socket
        self._sending = False
        self._full = False  # the last read filled its buffer

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

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if not _EAGER:
            return await self._inner.receive_some(max_bytes)
        yielded = self._full
        if yielded:
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        sock = self.socket
        while True:
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("this socket was already closed")
            try:
                data = os.read(fd, max_bytes)
                break
            except BlockingIOError:
                pass
            except OSError as exc:
                raise _stream_error(exc) from exc
            try:
                await trio.lowlevel.wait_readable(sock)
            except OSError as exc:
                raise _stream_error(exc) from exc
            yielded = True
        if not yielded:
            await trio.lowlevel.cancel_shielded_checkpoint()
        self._full = len(data) == max_bytes
        return data

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()
