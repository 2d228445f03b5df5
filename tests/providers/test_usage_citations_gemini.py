"""Usage details and citations end to end over real sockets, for Gemini (the Gemini API and
Gemini on Vertex AI): service -> provider actor -> the fake upstream, which renders cached
tokens as `usageMetadata.cachedContentTokenCount` (inside `promptTokenCount`), reasoning as
`thoughtsTokenCount`, and cited sources as the candidate's `groundingMetadata.groundingChunks`
in the last chunk, the one that carries the finish reason and the final usage."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import user
from streamactors import Citation, CitationEvent, Config, FinishEvent, Usage, UsageEvent, open_service
from streamactors.testing import FakeUpstream

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
SCENARIO = "~tokens=3~reasoning=2~cache_read=40~cache_write=8~citations=2~input_tokens=100"
SOURCES = tuple(Citation(f"https://example.com/source/{i}", f"Source {i}", f"cited passage {i}") for i in range(2))


def table(fake: FakeUpstream, provider: str) -> dict[str, Any]:
    base = fake.base_url
    return {
        "gemini": {"kind": "gemini", "api_key": "AIza-test-0123456789abcdef", "base_url": base},
        "vertex": {
            "kind": "vertex",
            "access_token": "ya29.test-0123456789abcdef",
            "project": "test-project",
            "location": "us-central1",
            "base_url": base,
        },
    }[provider]


def config(fake: FakeUpstream, provider: str) -> Config:
    return Config.from_dict({"providers": {provider: {**table(fake, provider), **COMMON}}})


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
async def test_complete_reports_cache_and_reasoning_tokens_and_citations(provider: str, fake: FakeUpstream) -> None:
    async with open_service(config(fake, provider)) as service:
        reply = await service.complete({"model": f"{provider}/gemini-2.5-flash{SCENARIO}", "messages": user()})
        plain = await service.complete({"model": f"{provider}/gemini-2.5-flash~tokens=2", "messages": user()})
    # input_tokens is every input token (the 40 cached included); output includes the 2 thought
    # tokens; Gemini reports no cache writes.
    assert reply.usage == Usage(100, 5, cache_read_tokens=40, reasoning_tokens=2)
    assert reply.citations == SOURCES
    assert reply.reasoning == "t0 t1 "
    assert reply.text == "t0 t1 t2 cited passage 0 cited passage 1 "  # the supports cite the last text
    assert reply.finish_reason == "stop"
    assert reply.model == "gemini-2.5-flash"
    # A scenario without cache, reasoning or citations reports none of them.
    assert plain.usage == Usage(10, 2) and plain.citations == ()


async def test_stream_gives_citations_before_usage_and_finish(fake: FakeUpstream) -> None:
    """The sources came in the very last chunk, with the finish reason: none is lost, each comes
    once, in order, and the stream still ends with usage then finish."""
    async with (
        open_service(config(fake, "gemini")) as service,
        service.stream({"model": f"gemini/m{SCENARIO}~citations=3~tool_calls=1", "messages": user()}) as events,
    ):
        seen = [ev async for ev in events]
        reply = events.reply()
    tail = seen[-5:]
    assert [ev.type for ev in tail] == ["citation"] * 3 + ["usage", "finish"]
    assert [ev.citation for ev in tail[:3] if isinstance(ev, CitationEvent)] == [
        Citation(f"https://example.com/source/{i}", f"Source {i}", f"cited passage {i}") for i in range(3)
    ]
    assert tail[3] == UsageEvent(100, 5, cache_read_tokens=40, reasoning_tokens=2)
    assert tail[4] == FinishEvent("tool_calls")
    assert len(reply.citations) == 3 and len(reply.tool_calls) == 1


async def test_a_dropped_connection_keeps_the_citations_received() -> None:
    """Citations wait for the end of the reply; when the connection drops first, those received
    are in the error's partial reply, as the text is."""
    import httpx
    import orjson

    from streamactors import ProviderError

    chunk = {
        "candidates": [
            {
                "content": {"parts": [{"text": "half a reply"}], "role": "model"},
                "index": 0,
                "groundingMetadata": {"groundingChunks": [{"web": {"uri": "https://a.example", "title": "A"}}]},
            }
        ]
    }

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            yield b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())

    cfg = Config.from_dict({"providers": {"gemini": {"kind": "gemini", "api_key": "AIza-test-0123456789", **COMMON}}})
    async with open_service(cfg, transports={"gemini": httpx.MockTransport(handler)}) as service:
        with pytest.raises(ProviderError) as info:
            await service.complete({"model": "gemini/gemini-2.5-flash", "messages": user()})
    assert info.value.kind == "connection"
    assert info.value.partial is not None
    assert info.value.partial.text == "half a reply"
    assert info.value.partial.citations == (Citation("https://a.example", "A", None),)
