"""What goes over the wire: exact request bodies and headers, as the official SDKs send them."""

from __future__ import annotations

from typing import Any

from conftest import ANTHROPIC_KEY, OPENAI_KEY
from streamactors import open_service

CONVERSATION: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "24C"},
    ],
    "max_tokens": 256,
    "temperature": 0.5,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ],
    "tool_choice": "auto",
}


async def test_openai_request(fake: Any, make_config: Any, logs: Any) -> None:
    async with open_service(make_config(), logger=logs.logger) as service:
        await service.complete({"model": "openai/gpt-4.1", **CONVERSATION, "reasoning": {"effort": "low"}})
    req = fake.requests[-1]
    assert req.method == "POST"
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert req.json() == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "content": "18C", "tool_call_id": "call_1"},
            {"role": "tool", "content": "24C", "tool_call_id": "call_2"},
        ],
        "model": "gpt-4.1",
        "max_completion_tokens": 256,
        "reasoning_effort": "low",
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
        "tool_choice": "auto",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        ],
    }


async def test_anthropic_request(fake: Any, make_config: Any, logs: Any) -> None:
    async with open_service(make_config(), logger=logs.logger) as service:
        await service.complete({"model": "anthropic/claude-sonnet-4-5", **CONVERSATION})
    req = fake.requests[-1]
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == ANTHROPIC_KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req.headers
    assert req.json() == {
        "max_tokens": 256,
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "24C"},
                ],
            },
        ],
        "model": "claude-sonnet-4-5",
        "stream": True,
        "system": "Be brief.",
        "temperature": 0.5,
        "tool_choice": {"type": "auto"},
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            }
        ],
    }


async def test_anthropic_thinking_budget(fake: Any, make_config: Any, logs: Any) -> None:
    """budget_tokens maps to `thinking`; temperature is dropped (the API rejects it with thinking)."""
    async with open_service(make_config(), logger=logs.logger) as service:
        await service.complete(
            {
                "model": "anthropic/claude-sonnet-4-5",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 1000,
                "temperature": 0.2,
                "reasoning": {"budget_tokens": 2048},
            }
        )
    body = fake.requests[-1].json()
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] > 2048
    assert "temperature" not in body


async def test_extra_body_is_merged_last_and_extra_headers_are_sent(fake: Any, make_config: Any, logs: Any) -> None:
    """As the openai SDK's `extra_body` / `extra_headers`: top-level keys of the native body are
    added or replaced, last; headers are sent, replacing same-named ones."""
    request = {
        "model": "anthropic/claude-x~tokens=2",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 50,
        "extra_body": {"max_tokens": 77, "x_custom": {"a": [1, 2]}},
        "extra_headers": {"anthropic-beta": "output-128k-2025-02-19", "anthropic-version": "2099-01-01"},
    }
    async with open_service(make_config(), logger=logs.logger) as service:
        assert (await service.complete(request)).text == "t0 t1 "
    sent = fake.requests[-1]
    body = sent.json()
    assert body["max_tokens"] == 77 and body["x_custom"] == {"a": [1, 2]} and body["model"] == "claude-x~tokens=2"
    assert sent.headers["anthropic-beta"] == "output-128k-2025-02-19"
    assert sent.headers["anthropic-version"] == "2099-01-01"  # replaced, not sent twice
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
