"""Bedrock end to end over real sockets: the fake upstream's ConverseStream event stream with
prompt-cache usage and citations, signed requests and all, through the service.

`inputTokens` leaves out the cache reads and writes, which the reply's `input_tokens`
counts back in; Converse reports no reasoning count; each `citation` delta is one citation.
"""

from __future__ import annotations

from typing import Any

from conftest import user
from streamactors import Citation, CitationEvent, Config, FinishEvent, Usage, UsageEvent, open_service
from streamactors.testing import FakeUpstream, token_text
from streamactors.testing.script import citation_for

AWS_KEY_ID = "AKIATESTBEDROCK01234"
AWS_SECRET = "test/BEDROCK/secret+0123456789abcdefghij"


def bedrock_config(fake: FakeUpstream) -> Config:
    table: dict[str, Any] = {
        "kind": "bedrock", "region": "us-east-1", "endpoint_url": fake.base_url,
        "aws_access_key_id": AWS_KEY_ID, "aws_secret_access_key": AWS_SECRET,
        "max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0},
    }
    return Config.from_dict({"providers": {"bedrock": table}})


def expected_citations(n: int) -> list[Citation]:
    return [Citation(c.url, c.title, c.cited_text) for c in map(citation_for, range(n))]


async def test_cache_usage_and_citations(fake: FakeUpstream) -> None:
    model = "bedrock/m~tokens=5~reasoning=3~cache_read=40~cache_write=8~citations=3~input_tokens=100"
    async with open_service(bedrock_config(fake)) as service:
        reply = await service.complete({"model": model, "messages": user()})
    assert reply.text == "".join(token_text(i) for i in range(5))
    assert reply.reasoning == "".join(token_text(i) for i in range(3))
    assert reply.usage == Usage(100, 8, 40, 8, None)
    assert list(reply.citations) == expected_citations(3)
    assert reply.finish_reason == "stop"


async def test_streamed_citations_come_before_usage_and_finish(fake: FakeUpstream) -> None:
    model = "bedrock/m~tokens=2~tool_calls=1~cache_read=7~citations=2"
    async with open_service(bedrock_config(fake)) as service, service.stream(
        {"model": model, "messages": user()}
    ) as events:
        seen = [ev async for ev in events]
        reply = events.reply()
    assert seen[-4:] == [*(CitationEvent(c) for c in expected_citations(2)), UsageEvent(10, 2, 7, 0, None),
                         FinishEvent("tool_calls")]
    assert list(reply.citations) == expected_citations(2)
    assert reply.usage == Usage(10, 2, 7, 0, None)


async def test_without_cache_or_citations_nothing_extra(fake: FakeUpstream) -> None:
    async with open_service(bedrock_config(fake)) as service:
        reply = await service.complete({"model": "bedrock/m~tokens=3", "messages": user()})
    assert reply.usage == Usage(10, 3, None, None, None)
    assert reply.citations == ()
