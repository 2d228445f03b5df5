"""Usage details and citations end to end over real sockets, for the OpenAI family: service ->
provider actor -> the fake upstream, which renders cached and reasoning tokens in OpenAI's
`prompt_tokens_details` / `completion_tokens_details` (Perplexity: `usage.reasoning_tokens`)
and cited sources as `url_citation` annotations (Perplexity: `search_results` and `citations`
repeated on every chunk from the last ones on)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import user
from streamactors import Citation, Config, Usage, open_service
from streamactors.testing import FakeUpstream

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
SCENARIO = "~tokens=3~reasoning=2~cache_read=40~cache_write=8~citations=2~input_tokens=100"


def table(fake: FakeUpstream, provider: str) -> dict[str, Any]:
    base = fake.base_url
    return {
        "openai": {"kind": "openai", "api_key": "sk-test-0123456789", "base_url": f"{base}/v1"},
        "azure": {"kind": "azure", "endpoint": base, "api_key": "azure-test-0123456789"},
        "xai": {"kind": "xai", "api_key": "xai-test-0123456789", "base_url": f"{base}/v1"},
        "openrouter": {"kind": "openrouter", "api_key": "sk-or-v1-test-0123456789", "base_url": f"{base}/api/v1"},
        "groq": {"kind": "groq", "api_key": "gsk_test-0123456789", "base_url": f"{base}/openai/v1"},
        "openai_compatible": {"kind": "openai_compatible", "base_url": f"{base}/compat/v1"},
        "perplexity": {"kind": "perplexity", "api_key": "pplx-test-0123456789", "base_url": base},
    }[provider]


PROVIDERS = ["openai", "azure", "xai", "openrouter", "groq", "openai_compatible", "perplexity"]
SOURCES = tuple(
    Citation(f"https://example.com/source/{i}", f"Source {i}", f"cited passage {i}") for i in range(2)
)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_complete_reports_cache_and_reasoning_tokens_and_citations(provider: str, fake: FakeUpstream) -> None:
    cfg = Config.from_dict({"providers": {provider: {**table(fake, provider), **COMMON}}})
    async with open_service(cfg) as service:
        reply = await service.complete({"model": f"{provider}/m{SCENARIO}", "messages": user()})
        plain = await service.complete({"model": f"{provider}/m~tokens=2", "messages": user()})
    # input_tokens is every input token (the 40 cached included); output includes the 2 reasoning
    # tokens; OpenAI reports no cache writes, Perplexity no cache at all.
    cache_read = None if provider == "perplexity" else 40
    assert reply.usage == Usage(100, 5, cache_read_tokens=cache_read, reasoning_tokens=2)
    assert reply.citations == SOURCES
    assert reply.reasoning == "t0 t1 "
    if provider == "perplexity":
        assert reply.text == "t0 t1 t2 "
    else:  # the annotated passages are the reply's last text
        assert reply.text == "t0 t1 t2 cited passage 0 cited passage 1 "
    assert reply.finish_reason == "stop"
    # A scenario without cache, reasoning or citations reports none of them.
    assert plain.usage == Usage(10, 2) and plain.citations == ()
