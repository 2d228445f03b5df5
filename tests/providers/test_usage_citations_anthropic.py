"""Usage details and citations end to end over real sockets, for Claude's Messages API
(Anthropic's own, and Vertex AI's Claude models): service -> provider actor -> the fake
upstream, which renders the prompt cache as `cache_creation_input_tokens` /
`cache_read_input_tokens` (with `input_tokens` the uncached rest), the thinking tokens as
`output_tokens_details.thinking_tokens`, and each cited source as a `citations_delta`
(`web_search_result_location`) on the reply's text block, just before it stops."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import user
from streamactors import Citation, CitationEvent, Config, Usage, UsageEvent, open_service
from streamactors.testing import FakeUpstream

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
SCENARIO = "~tokens=3~reasoning=2~cache_read=40~cache_write=8~citations=2~input_tokens=100"
SOURCES = tuple(
    Citation(f"https://example.com/source/{i}", f"Source {i}", f"cited passage {i}") for i in range(2)
)


def table(fake: FakeUpstream, provider: str) -> dict[str, Any]:
    return {
        "anthropic": {"kind": "anthropic", "api_key": "sk-ant-test-0123456789", "base_url": fake.base_url},
        "vertex": {"kind": "vertex", "access_token": "ya29.test-0123456789", "project": "test-project",
                   "location": "us-central1", "base_url": fake.base_url},
    }[provider]


CASES = [("anthropic", "m"), ("vertex", "claude-fake")]


@pytest.mark.parametrize(("provider", "model"), CASES, ids=[p for p, _ in CASES])
async def test_complete_reports_cache_and_reasoning_tokens_and_citations(
    provider: str, model: str, fake: FakeUpstream
) -> None:
    cfg = Config.from_dict({"providers": {provider: {**table(fake, provider), **COMMON}}})
    async with open_service(cfg) as service:
        reply = await service.complete({"model": f"{provider}/{model}{SCENARIO}", "messages": user()})
        async with service.stream({"model": f"{provider}/{model}{SCENARIO}", "messages": user()}) as events:
            seen = [ev async for ev in events]
        plain = await service.complete({"model": f"{provider}/{model}~tokens=2", "messages": user()})
    # input_tokens is every input token: the 52 uncached + 8 written to the cache + 40 read from it.
    assert reply.usage == Usage(100, 5, cache_read_tokens=40, cache_write_tokens=8, reasoning_tokens=2)
    assert reply.citations == SOURCES
    assert (reply.reasoning, reply.text, reply.finish_reason) == ("t0 t1 ", "t0 t1 t2 ", "stop")
    # One event per citation, in order, after the text and before the usage and the finish.
    types = [ev.type for ev in seen]
    assert types[-4:] == ["citation", "citation", "usage", "finish"]
    assert [ev.citation for ev in seen if isinstance(ev, CitationEvent)] == list(SOURCES)
    assert seen[-2] == UsageEvent(100, 5, cache_read_tokens=40, cache_write_tokens=8, reasoning_tokens=2)
    # A scenario without cache, thinking or citations reports none of them.
    assert plain.usage == Usage(10, 2) and plain.citations == ()


async def test_citations_after_tool_calls_and_cache_reads_only(fake: FakeUpstream) -> None:
    cfg = Config.from_dict({"providers": {"anthropic": {**table(fake, "anthropic"), **COMMON}}})
    async with open_service(cfg) as service:
        reply = await service.complete(
            {"model": "anthropic/m~tokens=1~tool_calls=2~citations=3~cache_read=6~input_tokens=20",
             "messages": user()}
        )
    assert reply.usage == Usage(20, 1, cache_read_tokens=6, cache_write_tokens=0)
    assert reply.citations == tuple(
        Citation(f"https://example.com/source/{i}", f"Source {i}", f"cited passage {i}") for i in range(3)
    )
    assert [tc.name for tc in reply.tool_calls] == ["get_weather", "get_weather"]
    assert reply.finish_reason == "tool_calls"
