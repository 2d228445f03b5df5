"""The common request parameters end to end over real sockets, for the Gemini API: service ->
provider actor -> the fake upstream, which records the request it received. Supported ones arrive
in `generationConfig` under Gemini's names; one Gemini cannot honour is a `UsageError` from
`service.complete` before anything is sent, unless the provider's `drop_params = true`."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import user
from streamactors import Config, open_service
from streamactors.errors import UsageError
from streamactors.testing import FakeUpstream

COMMON: dict[str, Any] = {"max_retries": 0, "timeouts": {"first_token": 5.0, "idle": 5.0, "total": 30.0}}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


def config(fake: FakeUpstream, **extra: Any) -> Config:
    table = {"kind": "gemini", "api_key": "AIza-test-0123456789abcdef", "base_url": fake.base_url}
    return Config.from_dict({"providers": {"gemini": {**table, **COMMON, **extra}}})


async def test_parameters_arrive_under_gemini_names(fake: FakeUpstream) -> None:
    async with open_service(config(fake)) as service:
        reply = await service.complete(
            {
                "model": "gemini/gemini-2.5-flash~tokens=2",
                "messages": user(),
                "seed": 11,
                "top_k": 20,
                "presence_penalty": 0.5,
                "frequency_penalty": 0.25,
                "logprobs": True,
                "top_logprobs": 2,
                "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}},
            }
        )
    assert reply.finish_reason == "stop"
    req = fake.requests[-1]
    assert req.path.startswith("/v1beta/models/gemini-2.5-flash") and req.path.endswith(":streamGenerateContent")
    assert req.json()["generationConfig"] == {
        "topK": 20,
        "responseLogprobs": True,
        "logprobs": 2,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "seed": 11,
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }


@pytest.mark.parametrize(
    ("model", "param", "value"),
    [
        ("gemini-2.5-flash", "user", "user-1"),
        ("gemini-2.5-flash", "parallel_tool_calls", False),
        ("gemini-2.5-flash", "service_tier", "flex"),
        ("gemini-2.5-flash", "metadata", {"team": "a"}),
        ("gemini-3-pro-preview", "presence_penalty", 0.5),
    ],
)
async def test_unsupported_parameter_refused_before_sending(
    fake: FakeUpstream, model: str, param: str, value: Any
) -> None:
    async with open_service(config(fake)) as service:
        before = len(fake.requests)
        with pytest.raises(UsageError) as info:
            await service.complete({"model": f"gemini/{model}~tokens=2", "messages": user(), param: value})
        assert len(fake.requests) == before
        assert repr(param) in str(info.value) and "gemini" in str(info.value)


async def test_drop_params_sends_the_request_without_them(fake: FakeUpstream, logs: Any) -> None:
    async with open_service(config(fake, drop_params=True), logger=logs.logger) as service:
        reply = await service.complete(
            {
                "model": "gemini/gemini-3-pro-preview~tokens=2",
                "messages": user(),
                "user": "user-1",
                "metadata": {"team": "a"},
                "frequency_penalty": 0.5,
                "seed": 3,
                "response_format": {"type": "json_object"},
            }
        )
    assert reply.finish_reason == "stop"
    body = fake.requests[-1].json()
    assert body["generationConfig"] == {"seed": 3, "responseMimeType": "application/json"}
    assert "user" not in body and "metadata" not in body
    dropped = [r for r in logs.records() if r["event"] == "params_dropped"]
    assert [(r["params"], r["level"]) for r in dropped] == [(["user", "metadata", "frequency_penalty"], "debug")]
