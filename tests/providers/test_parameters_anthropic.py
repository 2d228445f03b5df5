"""Claude's Messages API end to end over real sockets (Anthropic's own, and Vertex AI's Claude
models): the common parameters (issue 13) reach the fake upstream under the Messages API's
names; a parameter it cannot honour is a `UsageError` from `service.complete` before anything
is sent, and with `drop_params = true` the request goes without it (logged)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import user
from streamactors import Config, UsageError, open_service
from streamactors.testing import FakeUpstream

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
NAMES = {"anthropic": "Anthropic", "vertex": r"Vertex AI \(Claude\)"}


def config(fake: FakeUpstream, provider: str, **overrides: Any) -> Config:
    table = {
        "anthropic": {"kind": "anthropic", "api_key": "sk-ant-test-0123456789", "base_url": fake.base_url},
        "vertex": {"kind": "vertex", "access_token": "ya29.test-0123456789", "project": "test-project",
                   "location": "us-central1", "base_url": fake.base_url},
    }[provider]
    return Config.from_dict({"providers": {provider: {**table, **COMMON, **overrides}}})


def model(provider: str) -> str:
    return f"{provider}/claude-fake~tokens=3"


@pytest.mark.parametrize("provider", ["anthropic", "vertex"])
async def test_parameters_arrive_under_messages_api_names(fake: FakeUpstream, provider: str) -> None:
    request = {
        "model": model(provider), "messages": user(), "max_tokens": 50, "temperature": 0.2, "top_k": 20,
        "user": "u-42", "parallel_tool_calls": False, "tools": [TOOL],
        "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True}},
        **({"service_tier": "default"} if provider == "anthropic" else {}),
    }
    async with open_service(config(fake, provider)) as service:
        reply = await service.complete(request)
    assert reply.finish_reason == "stop"
    body = fake.requests[-1].json()
    expected: dict[str, Any] = {
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hello"}],
        "metadata": {"user_id": "u-42"},
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
        "stream": True,
        "temperature": 0.2,
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
        "top_k": 20,
    }
    if provider == "anthropic":
        expected |= {"model": "claude-fake~tokens=3", "service_tier": "standard_only"}
    else:
        expected["anthropic_version"] = "vertex-2023-10-16"
    assert body == expected


REFUSED = [
    ({"seed": 1}, "seed"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"metadata": {"team": "search"}}, r"metadata\.team"),
    ({"top_k": 5, "reasoning": {"effort": "low"}}, "top_k"),
]


@pytest.mark.parametrize("provider", ["anthropic", "vertex"])
@pytest.mark.parametrize(("params", "param"), REFUSED, ids=[p for _, p in REFUSED])
async def test_refused_before_anything_is_sent(
    fake: FakeUpstream, provider: str, params: dict[str, Any], param: str
) -> None:
    async with open_service(config(fake, provider)) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=rf"parameter '{param}' is not supported by {NAMES[provider]}"):
            await service.complete({"model": model(provider), "messages": user(), **params})
        assert len(fake.requests) == before


async def test_service_tier_without_equivalent_is_refused(fake: FakeUpstream) -> None:
    async with open_service(config(fake, "anthropic")) as service, open_service(config(fake, "vertex")) as vertex:
        before = len(fake.requests)
        with pytest.raises(UsageError, match="'service_tier' is not supported by Anthropic as 'flex'"):
            await service.complete({"model": model("anthropic"), "messages": user(), "service_tier": "flex"})
        with pytest.raises(UsageError, match=r"'service_tier' is not supported by Vertex AI \(Claude\)"):
            await vertex.complete({"model": model("vertex"), "messages": user(), "service_tier": "auto"})
        assert len(fake.requests) == before


@pytest.mark.parametrize("provider", ["anthropic", "vertex"])
async def test_drop_params_sends_the_request_without_them(fake: FakeUpstream, provider: str, logs: Any) -> None:
    request = {
        "model": model(provider), "messages": user(), "max_tokens": 50, "seed": 1, "presence_penalty": 0.5,
        "logprobs": True, "response_format": {"type": "json_object"}, "metadata": {"team": "x", "user_id": "u"},
        "top_k": 5, "reasoning": {"budget_tokens": 1024},
    }
    async with open_service(config(fake, provider, drop_params=True), logger=logs.logger) as service:
        before = len(fake.requests)
        reply = await service.complete(request)
    assert reply.finish_reason == "stop"
    assert len(fake.requests) == before + 1
    body = fake.requests[-1].json()
    for absent in ("seed", "presence_penalty", "logprobs", "output_config", "top_k"):
        assert absent not in body
    assert body["metadata"] == {"user_id": "u"}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    dropped = [r for r in logs.records() if r.get("event") == "params_dropped"]
    assert [r["params"] for r in dropped] == [
        ["seed", "presence_penalty", "logprobs", "metadata.team", "response_format", "top_k"]
    ]
