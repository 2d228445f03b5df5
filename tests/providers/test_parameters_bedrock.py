"""Bedrock end to end over real sockets: the common parameters (issue 13) reach the fake
upstream's ConverseStream endpoint under Converse's names, signed; a parameter Converse cannot
honour is a `UsageError` from `service.complete` before anything is sent, and with
`drop_params = true` the request goes without it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import user
from streamactors import Config, UsageError, open_service
from streamactors.testing import FakeUpstream

AWS_KEY_ID = "AKIATESTBEDROCK01234"
AWS_SECRET = "test/BEDROCK/secret+0123456789abcdefghij"
CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0~tokens=3"
LLAMA = "meta.llama3-70b-instruct-v1:0~tokens=3"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def bedrock_config(fake: FakeUpstream, **overrides: Any) -> Config:
    table: dict[str, Any] = {
        "kind": "bedrock", "region": "us-east-1", "endpoint_url": fake.base_url,
        "aws_access_key_id": AWS_KEY_ID, "aws_secret_access_key": AWS_SECRET,
        "max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}, **overrides,
    }
    return Config.from_dict({"providers": {"bedrock": table}})


async def test_parameters_arrive_under_converse_names(fake: FakeUpstream) -> None:
    request = {
        "model": f"bedrock/{CLAUDE}", "messages": user(), "max_tokens": 50, "temperature": 0.2, "top_k": 20,
        "metadata": {"team": "search"}, "service_tier": "flex", "parallel_tool_calls": True,
        "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True}},
    }
    async with open_service(bedrock_config(fake)) as service:
        reply = await service.complete(request)
    assert reply.finish_reason == "stop"
    sent = fake.requests[-1]
    assert sent.path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0~tokens%3D3/converse-stream"
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
    assert sent.json() == {
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2},
        "additionalModelRequestFields": {"top_k": 20},
        "requestMetadata": {"team": "search"},
        "serviceTier": {"type": "flex"},
        "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
            "schema": json.dumps(SCHEMA), "name": "reply"}}}},
    }


@pytest.mark.parametrize(("model", "params", "param"), [
    (CLAUDE, {"seed": 1}, "seed"),
    (CLAUDE, {"response_format": {"type": "json_object"}}, "response_format"),
    (LLAMA, {"top_k": 20}, "top_k"),
])
async def test_refused_before_anything_is_sent(
    fake: FakeUpstream, model: str, params: dict[str, Any], param: str
) -> None:
    async with open_service(bedrock_config(fake)) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError, match=rf"parameter '{param}' is not supported by Bedrock"):
            await service.complete({"model": f"bedrock/{model}", "messages": user(), **params})
        assert len(fake.requests) == before


async def test_drop_params_sends_the_request_without_them(fake: FakeUpstream, logs: Any) -> None:
    request = {
        "model": f"bedrock/{LLAMA}", "messages": user(), "max_tokens": 50, "top_k": 20, "seed": 1,
        "presence_penalty": 0.5, "logprobs": True, "response_format": {"type": "json_object"},
        "metadata": {"team": "search"},
    }
    async with open_service(bedrock_config(fake, drop_params=True), logger=logs.logger) as service:
        before = len(fake.requests)
        reply = await service.complete(request)
    assert reply.finish_reason == "stop"
    assert len(fake.requests) == before + 1
    assert fake.requests[-1].json() == {
        "messages": [{"role": "user", "content": [{"text": "hello"}]}],
        "inferenceConfig": {"maxTokens": 50},
        "requestMetadata": {"team": "search"},
    }
    dropped = [r for r in logs.records() if r.get("event") == "params_dropped"]
    assert [r["params"] for r in dropped] == [["seed", "presence_penalty", "logprobs", "top_k", "response_format"]]
