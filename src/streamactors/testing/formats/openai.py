"""OpenAI chat-completions chunks, as api.openai.com streams them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..script import Delay, Drop, Finish, MidStreamError, Raw, Reasoning, Step, Text, ToolCallStep, Usage

CONTENT_TYPE = "text/event-stream; charset=utf-8"


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def render(
    steps: Iterable[Step], model: str, request_body: dict[str, Any], *, reasoning_field: str = "reasoning_content",
    keepalive: bool = False,
) -> Iterator[bytes | Delay | Drop]:
    """Render steps as chat.completion.chunk events ending in `data: [DONE]`.

    `keepalive` adds the SSE comments OpenRouter sends while a model is working."""
    base: dict[str, Any] = {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    include_usage = bool((request_body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    pending_usage: dict[str, Any] | None = None
    if keepalive:
        yield b": OPENROUTER PROCESSING\n\n"
    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for step in steps:
        if isinstance(step, Text):
            yield chunk({"content": step.text})
        elif isinstance(step, Reasoning):
            yield chunk({reasoning_field: step.text})
        elif isinstance(step, ToolCallStep):
            first = {"index": step.index, "id": step.id, "type": "function",
                     "function": {"name": step.name, "arguments": ""}}
            yield chunk({"tool_calls": [first]})
            for piece in step.pieces:
                yield chunk({"tool_calls": [{"index": step.index, "function": {"arguments": piece}}]})
        elif isinstance(step, Usage):
            usage = {
                "prompt_tokens": step.input_tokens,
                "completion_tokens": step.output_tokens,
                "total_tokens": step.input_tokens + step.output_tokens,
                "completion_tokens_details": {"reasoning_tokens": step.reasoning_tokens},
            }
            pending_usage = usage
        elif isinstance(step, Finish):
            if keepalive:
                yield b": OPENROUTER PROCESSING\n\n"
            yield chunk({}, step.reason)
            if include_usage and pending_usage is not None:
                yield _sse({**base, "choices": [], "usage": pending_usage})
            yield b"data: [DONE]\n\n"
        elif isinstance(step, MidStreamError):
            yield _sse({"error": {"message": step.message, "type": "server_error", "param": None, "code": None}})
        elif isinstance(step, Raw):
            yield step.data
        else:
            yield step


def error_body(status: int, message: str) -> bytes:
    etype = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
             429: "rate_limit_error"}.get(status, "server_error")
    return orjson.dumps({"error": {"message": message, "type": etype, "param": None, "code": None}})
