"""`EagerSendStream` over real loopback TCP: what trio's `SocketStream` would deliver and raise,
without a scheduler round when the kernel takes the bytes at once."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from streamactors.fasthttp.eager import EagerSendStream


@pytest.fixture
async def pair(nursery: trio.Nursery) -> AsyncIterator[tuple[EagerSendStream, trio.SocketStream]]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    accepted: trio.MemorySendChannel[trio.SocketStream]
    accepted, incoming = trio.open_memory_channel(1)

    async def accept() -> None:
        stream = await listeners[0].accept()
        await accepted.send(stream)

    nursery.start_soon(accept)
    port = listeners[0].socket.getsockname()[1]
    client = EagerSendStream(await trio.open_tcp_stream("127.0.0.1", port))
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


async def test_a_small_send_arrives_without_a_scheduler_round(pair: tuple[EagerSendStream, trio.SocketStream]) -> None:
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
    pair: tuple[EagerSendStream, trio.SocketStream],
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


async def test_responses_are_read_through_trio(pair: tuple[EagerSendStream, trio.SocketStream]) -> None:
    client, server = pair
    await server.send_all(b"HTTP/1.1 200 OK\r\n\r\n")
    assert await client.receive_some(100) == b"HTTP/1.1 200 OK\r\n\r\n"
    await server.send_eof()
    assert await client.receive_some(100) == b""


async def test_a_cancelled_send_writes_nothing(pair: tuple[EagerSendStream, trio.SocketStream]) -> None:
    client, server = pair
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.send_all(b"never")
    assert scope.cancelled_caught
    await client.send_all(b"after")
    assert await receive_exactly(server, 5) == b"after"


@pytest.mark.parametrize("end", ["aclose", "send_eof"])
async def test_sending_after_closing_raises_closed_resource_error(
    end: str, pair: tuple[EagerSendStream, trio.SocketStream]
) -> None:
    client, _ = pair
    await getattr(client, end)()
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")


async def test_sending_to_a_peer_that_reset_raises_broken_resource_error(
    pair: tuple[EagerSendStream, trio.SocketStream],
) -> None:
    client, server = pair
    server.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    await server.aclose()  # SO_LINGER 0: the close sends a reset
    await trio.sleep(0.05)
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):  # the first write may still be taken before the reset is seen
            await client.send_all(b"x" * 1024)


async def test_two_tasks_sending_at_once_is_an_error(pair: tuple[EagerSendStream, trio.SocketStream]) -> None:
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
