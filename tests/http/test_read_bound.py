"""What a stream holds while its consumer waits is bounded in bytes (issue 17).

Over real sockets to the fake upstream and the wall clock: what is measured is how many body
bytes the provider actor takes from its connection while the consumer reads nothing, which
depends on TCP flow control and on the actor's read sizes.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from conftest import config_for, user
from streamactors import TextEvent, open_service
from streamactors.actors.provider import MIN_READ, READ_BUDGET
from streamactors.http.client import READ_SIZE, UpstreamClient
from streamactors.http.fast import FastTransport
from streamactors.http.fast.response import ResponseStream
from streamactors.testing import FakeUpstream, token_text
from streamactors.transforms import StopSequences


class RecordingTransport(httpx.AsyncBaseTransport):
    """A `FastTransport` as the provider actor makes it, keeping each response's body stream."""

    def __init__(self) -> None:
        self.inner = FastTransport(read_size=READ_SIZE)
        self.bodies: list[ResponseStream] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        assert type(response.stream) is ResponseStream
        self.bodies.append(response.stream)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def settled(read: Any, quiet: float = 0.3) -> int:
    """`read()` once it has not changed for `quiet` seconds."""
    with trio.fail_after(10):
        last = read()
        while True:
            await trio.sleep(quiet)
            now = read()
            if now == last:
                return int(now)
            last = now


def test_the_provider_transport_reads_at_most_read_size(fake_config: Any) -> None:
    """The default transport's reads (the response head's included) take at most `READ_SIZE`."""
    transport = UpstreamClient(fake_config.providers["openai"]).transport
    assert type(transport) is FastTransport
    assert transport.read_size == READ_SIZE == 16 * 1024


@pytest.fixture
def fake_config() -> Any:
    return config_for(FakeUpstream(port=9))


@pytest.mark.parametrize("event_buffer", [1, 16])
@pytest.mark.parametrize("driver", ["direct", "worker"])
async def test_a_consumer_that_stops_holds_a_bounded_number_of_bytes(
    fake: FakeUpstream, logs: Any, event_buffer: int, driver: str
) -> None:
    """The consumer takes one event, then nothing. A direct stream (the consumer's task reads)
    has read at most what it took to find that event: the head's read and one more. A worker
    (a transform makes the stream worker-driven) takes at most the first read, `READ_BUDGET`,
    and `MIN_READ` per batch the reply channel holds (and the one waiting to go in), not
    `event_buffer` whole reads. The rest stays in the kernel and upstream. Read on to the end,
    the stream is whole."""
    total = 50_000  # about 7 MB of SSE: far more than the socket buffers hold
    transport = RecordingTransport()
    cfg = config_for(fake, service={"event_buffer": event_buffer})
    request = {"model": f"openai/m~tokens={total}", "messages": user()}
    transforms = [StopSequences(["\x00"])] if driver == "worker" else []
    async with (
        open_service(cfg, logger=logs.logger, transports={"openai": transport}) as service,
        service.stream(request, transforms=transforms) as events,
    ):
        first = await events.__anext__()
        leg = events._leg
        assert leg is not None and (leg.recv is None) == (driver == "direct")
        (body,) = transport.bodies
        held = await settled(lambda: body.body_bytes)
        if driver == "direct":
            assert held <= 2 * READ_SIZE
        else:
            assert held <= READ_SIZE + READ_BUDGET + (event_buffer + 1) * MIN_READ
        assert fake.responses_completed == 0
        texts = [first.text] if isinstance(first, TextEvent) else []
        texts += [e.text async for e in events if isinstance(e, TextEvent)]
    assert "".join(texts) == "".join(token_text(i) for i in range(total))
    assert body.body_bytes > 100 * held
