"""Anthropic Messages API events, as api.anthropic.com streams them."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..script import Delay, Drop, Finish, MidStreamError, Raw, Reasoning, Step, Text, ToolCallStep, Usage

CONTENT_TYPE = "text/event-stream; charset=utf-8"

STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def quota_headers(remaining_tokens: int, reset_s: float, now_epoch: float) -> list[tuple[bytes, bytes]]:
    """Anthropic's token quota headers (the reset as an RFC 3339 time, as the API writes it)."""
    reset = datetime.datetime.fromtimestamp(now_epoch + reset_s, tz=datetime.UTC)
    return [
        (b"anthropic-ratelimit-tokens-remaining", b"%d" % remaining_tokens),
        (b"anthropic-ratelimit-tokens-reset", reset.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()),
    ]


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def render(steps: Iterable[Step], model: str, request_body: dict[str, Any]) -> Iterator[bytes | Delay | Drop]:
    """Render steps as message_start ... message_stop, with a ping after the start."""
    yield _event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_fake0001",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 10,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        },
    )
    yield _event("ping", {"type": "ping"})
    index = -1
    open_kind: str | None = None
    usage: Usage | None = None

    def close_block() -> Iterator[bytes]:
        if open_kind == "thinking":  # the API signs every thinking block just before it closes
            signature = {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}
            yield _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": signature})
        yield _event("content_block_stop", {"type": "content_block_stop", "index": index})

    for step in steps:
        if isinstance(step, (Text, Reasoning)):
            kind = "text" if isinstance(step, Text) else "thinking"
            if open_kind != kind:
                if open_kind is not None:
                    yield from close_block()
                index += 1
                open_kind = kind
                block = {"type": "text", "text": ""} if kind == "text" else {"type": "thinking", "thinking": ""}
                yield _event(
                    "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}
                )
            delta = (
                {"type": "text_delta", "text": step.text}
                if kind == "text"
                else {"type": "thinking_delta", "thinking": step.text}
            )
            yield _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        elif isinstance(step, ToolCallStep):
            if open_kind is not None:
                yield from close_block()
            index += 1
            open_kind = "tool_use"
            yield _event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": f"toolu_{step.id}", "name": step.name, "input": {}},
                },
            )
            for piece in step.pieces:
                yield _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        elif isinstance(step, Usage):
            usage = step
        elif isinstance(step, Finish):
            if open_kind is not None:
                yield from close_block()
                open_kind = None
            yield _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": STOP_REASON.get(step.reason, "end_turn"), "stop_sequence": None},
                    "usage": {"output_tokens": usage.output_tokens if usage else 0},
                },
            )
            yield _event("message_stop", {"type": "message_stop"})
        elif isinstance(step, MidStreamError):
            yield _event("error", {"type": "error", "error": {"type": step.error_type, "message": step.message}})
        elif isinstance(step, Raw):
            yield step.data
        else:
            yield step


def error_body(status: int, message: str) -> bytes:
    etype = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})
