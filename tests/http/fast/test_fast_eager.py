"""`EagerSocketStream` over real loopback TCP: what trio's `SocketStream` would deliver and raise,
without a scheduler round when the kernel takes the bytes at once."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from streamactors.http.fast.eager import EagerSocketStream


@pytest.fixture
async def pair(nursery: trio.Nursery) -> AsyncIterator[tuple[EagerSocketStream, trio.SocketStream]]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    accepted: trio.MemorySendChannel[trio.SocketStream]
    accepted, incoming = trio.open_memory_channel(1)

    async def accept() -> None:
        stream = await listeners[0].accept()
        await accepted.send(stream)

    nursery.start_soon(accept)
    port = listeners[0].socket.getsockname()[1]
    client = EagerSocketStream(await trio.open_tcp_stream("127.0.0.1", port))
    server = await incoming.receive()
    yield client, server
    await client.aclose()
    await server.aclose()
    await listeners[0].aclose()


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        data = await stream.receive_some(65536)
        assert data, "the peer closed early"
        out += data
    return bytes(out)


async def test_a_small_send_arrives_without_a_scheduler_round(
    pair: tuple[EagerSocketStream, trio.SocketStream],
) -> None:
    client, server = pair
    ran = []

    async def other() -> None:
        ran.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await client.send_all(b"GET / HTTP/1.1\r\n\r\n")
        assert ran == []  # trio's SocketStream would have let `other` run here
    assert await receive_exactly(server, 18) == b"GET / HTTP/1.1\r\n\r\n"


async def test_a_send_larger_than_the_socket_buffer_arrives_whole_and_in_order(
    pair: tuple[EagerSocketStream, trio.SocketStream],
) -> None:
    client, server = pair
    data = os.urandom(8 * 1024 * 1024)  # more than the kernel takes at once: the rest is trio's
    got = b""

    async def read() -> None:
        nonlocal got
        got = await receive_exactly(server, len(data))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await client.send_all(memoryview(data))
    assert got == data


async def test_a_receive_waits_for_bytes_then_reads_to_the_end(
    pair: tuple[EagerSocketStream, trio.SocketStream],
) -> None:
    client, server = pair

    async def answer() -> None:
        await trio.sleep(0.01)
        await server.send_all(b"HTTP/1.1 200 OK\r\n\r\n")
        await server.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        assert await client.receive_some(100) == b"HTTP/1.1 200 OK\r\n\r\n"
        assert await client.receive_some(100) == b""
    with pytest.raises(ValueError, match="max_bytes"):
        await client.receive_some(0)


def unread(stream: EagerSocketStream) -> int:
    """Bytes still in the kernel's buffer for `stream`, read by nobody yet (peeked through a dup)."""
    dup = socket.socket(fileno=os.dup(stream.socket.fileno()))
    try:
        return len(dup.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return 0
    finally:
        dup.close()


class UnreadAtEachYield(trio.abc.Instrument):
    """Records, each time `task` yields to the scheduler, how many bytes `stream` has left unread."""

    def __init__(self, task: trio.lowlevel.Task, stream: EagerSocketStream) -> None:
        self.task, self.stream = task, stream
        self.seen: list[int] = []

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.seen.append(unread(self.stream))


@pytest.mark.parametrize("size", [10, 4096])
async def test_a_full_read_yields_before_the_next_read_not_after(
    size: int, pair: tuple[EagerSocketStream, trio.SocketStream]
) -> None:
    """Each receive has one schedule point; after a full read it comes first, so a stream waiting
    for its turn holds no bytes (they stay in the kernel's buffer)."""
    client, server = pair
    await server.send_all(b"a" * size + b"b" * size)
    await trio.sleep(0.01)  # all of it is in the client's socket buffer
    assert await client.receive_some(size) == b"a" * size  # a full read: more may be waiting
    probe = UnreadAtEachYield(trio.lowlevel.current_task(), client)
    trio.lowlevel.add_instrument(probe)
    try:
        assert await client.receive_some(size) == b"b" * size
    finally:
        trio.lowlevel.remove_instrument(probe)
    assert probe.seen == [size]  # it yielded once, with the bytes still unread


async def test_a_short_read_finds_bytes_then_yields_once(pair: tuple[EagerSocketStream, trio.SocketStream]) -> None:
    client, server = pair
    await server.send_all(b"abc")
    await trio.sleep(0.01)
    assert await client.receive_some(100) == b"abc"  # not full: the next receive reads at once
    await server.send_all(b"de")
    await trio.sleep(0.01)
    probe = UnreadAtEachYield(trio.lowlevel.current_task(), client)
    trio.lowlevel.add_instrument(probe)
    try:
        assert await client.receive_some(100) == b"de"
    finally:
        trio.lowlevel.remove_instrument(probe)
    assert probe.seen == [0]  # read first, then the one schedule point, as trio's own receive


async def test_a_large_body_in_full_reads_arrives_whole_and_in_order(
    pair: tuple[EagerSocketStream, trio.SocketStream],
) -> None:
    client, server = pair
    data = os.urandom(4 * 1024 * 1024)
    got = bytearray()

    async def write() -> None:
        await server.send_all(data)
        await server.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        while piece := await client.receive_some(65536):
            got += piece
    assert got == data


async def test_a_cancelled_receive_reads_nothing(pair: tuple[EagerSocketStream, trio.SocketStream]) -> None:
    client, server = pair
    await server.send_all(b"kept")
    await trio.sleep(0.01)
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.receive_some(100)
    assert scope.cancelled_caught
    assert await client.receive_some(100) == b"kept"


async def test_receiving_on_a_closed_stream_raises_closed_resource_error(
    pair: tuple[EagerSocketStream, trio.SocketStream],
) -> None:
    client, _ = pair
    await client.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await client.receive_some(10)


async def test_receiving_from_a_peer_that_reset_raises_broken_resource_error(
    pair: tuple[EagerSocketStream, trio.SocketStream],
) -> None:
    client, server = pair
    await client.send_all(b"unread by the server")  # closing with unread bytes sends a reset
    await trio.sleep(0.01)
    await server.aclose()
    await trio.sleep(0.01)
    with pytest.raises(trio.BrokenResourceError):
        await client.receive_some(10)


async def test_closing_the_socket_ends_a_waiting_receive(pair: tuple[EagerSocketStream, trio.SocketStream]) -> None:
    client, _ = pair

    async def blocked() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await client.receive_some(10)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked)
        await trio.testing.wait_all_tasks_blocked()
        await client.aclose()


async def test_a_cancelled_send_writes_nothing(pair: tuple[EagerSocketStream, trio.SocketStream]) -> None:
    client, server = pair
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.send_all(b"never")
    assert scope.cancelled_caught
    await client.send_all(b"after")
    assert await receive_exactly(server, 5) == b"after"


@pytest.mark.parametrize("end", ["aclose", "send_eof"])
async def test_sending_after_closing_raises_closed_resource_error(
    end: str, pair: tuple[EagerSocketStream, trio.SocketStream]
) -> None:
    client, _ = pair
    await getattr(client, end)()
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")


async def test_sending_to_a_peer_that_reset_raises_broken_resource_error(
    pair: tuple[EagerSocketStream, trio.SocketStream],
) -> None:
    client, server = pair
    server.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    await server.aclose()  # SO_LINGER 0: the close sends a reset
    await trio.sleep(0.05)
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):  # the first write may still be taken before the reset is seen
            await client.send_all(b"x" * 1024)


async def test_two_tasks_sending_at_once_is_an_error(pair: tuple[EagerSocketStream, trio.SocketStream]) -> None:
    client, _ = pair
    big = b"x" * (16 * 1024 * 1024)  # blocks until the server reads, which it does not

    async def blocked_send() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(big)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_send)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await client.send_all(b"y")
        await client.aclose()  # ends the blocked send
