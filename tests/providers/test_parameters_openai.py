"""The common request parameters end to end over real sockets, for the OpenAI family: service ->
provider actor -> the fake upstream, which records the exact request. Each parameter arrives
under OpenAI's name; one the provider kind cannot honour is a UsageError from
`service.complete` before anything is sent, unless the provider says `drop_params = true`."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import user
from streamactors import Config, open_service
from streamactors.errors import UsageError
from streamactors.testing import FakeUpstream

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PARAMS: dict[str, Any] = {
    "seed": 7,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "user": "u-1",
    "parallel_tool_calls": False,
    "logprobs": True,
    "top_logprobs": 3,
    "service_tier": "flex",
    "metadata": {"team": "a"},
    "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
}
# What arrives for PARAMS: the same names and values; the schema named "response", as
# OpenAI requires a name and none was given.
SENT = {**PARAMS, "response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA}}}


def table(fake: FakeUpstream, provider: str, **extra: Any) -> dict[str, Any]:
    base = fake.base_url
    t = {
        "openai": {"kind": "openai", "api_key": "sk-test-0123456789", "base_url": f"{base}/v1"},
        "azure": {"kind": "azure", "endpoint": base, "api_key": "azure-test-0123456789"},
        "openrouter": {"kind": "openrouter", "api_key": "sk-or-v1-test-0123456789", "base_url": f"{base}/api/v1"},
        "groq": {"kind": "groq", "api_key": "gsk_test-0123456789", "base_url": f"{base}/openai/v1"},
        "openai_compatible": {"kind": "openai_compatible", "base_url": f"{base}/compat/v1"},
        "perplexity": {"kind": "perplexity", "api_key": "pplx-test-0123456789", "base_url": base},
    }[provider]
    return {"providers": {provider: {**t, **COMMON, **extra}}}


@pytest.mark.parametrize("provider", ["openai", "azure"])
async def test_parameters_arrive_under_openai_names(provider: str, fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, provider))) as service:
        reply = await service.complete({"model": f"{provider}/m~tokens=2", "messages": user(), **PARAMS})
    assert reply.finish_reason == "stop"
    body = fake.requests[-1].json()
    assert {k: body[k] for k in SENT} == SENT


@pytest.mark.parametrize("provider", ["openrouter", "openai_compatible"])
async def test_top_k_arrives_where_the_provider_takes_it(provider: str, fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, provider))) as service:
        await service.complete({"model": f"{provider}/m~tokens=2", "messages": user(), "top_k": 40})
    assert fake.requests[-1].json()["top_k"] == 40


@pytest.mark.parametrize(
    ("provider", "param", "value"),
    [("openai", "top_k", 40), ("azure", "top_k", 40), ("groq", "logprobs", True), ("perplexity", "seed", 7)],
)
async def test_unsupported_parameter_is_refused_before_anything_is_sent(
    provider: str, param: str, value: Any, fake: FakeUpstream
) -> None:
    async with open_service(Config.from_dict(table(fake, provider))) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError) as info:
            await service.complete({"model": f"{provider}/m~tokens=2", "messages": user(), param: value})
        assert len(fake.requests) == before
        assert f"parameter {param!r}" in str(info.value)
        assert f"provider {provider!r} (kind {provider})" in str(info.value)


async def test_drop_params_sends_the_request_without_them(fake: FakeUpstream) -> None:
    async with open_service(Config.from_dict(table(fake, "groq", drop_params=True))) as service:
        reply = await service.complete(
            {"model": "groq/m~tokens=2", "messages": user(), "logprobs": True, "top_logprobs": 2, "top_k": 5, "seed": 3}
        )
    assert reply.finish_reason == "stop"
    body = fake.requests[-1].json()
    assert "logprobs" not in body and "top_logprobs" not in body and "top_k" not in body
    assert body["seed"] == 3
