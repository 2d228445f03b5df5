"""Anthropic Messages API events, as api.anthropic.com streams them."""

from __future__ import annotations

import base64
import datetime
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..script import (
    CitationStep,
    Delay,
    Drop,
    Finish,
    MidStreamError,
    Raw,
    Reasoning,
    Step,
    Text,
    ToolCallStep,
    Usage,
)

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


#: How many steps `render` reads ahead for the reply's usage, which message_start reports
#: before any content (a longer reply starts with the default input count; its message_delta
#: repeats the input and cache counts, as the API's does, so the reply's usage is right).
LOOKAHEAD_STEPS = 512
#: The input tokens message_start reports when the usage is further ahead (Scenario's default).
DEFAULT_INPUT_TOKENS = 10


def _read_ahead(steps: Iterable[Step]) -> tuple[list[Step], Usage | None, Iterator[Step]]:
    """(the steps read, the reply's Usage if among them, the rest): read up to the Usage step,
    stopping at a fault (whose steps may never end) or after LOOKAHEAD_STEPS."""
    rest = iter(steps)
    head: list[Step] = []
    for step in rest:
        head.append(step)
        if isinstance(step, Usage):
            return head, step, rest
        if isinstance(step, (MidStreamError, Drop, Raw)) or len(head) >= LOOKAHEAD_STEPS:
            break
    return head, None, rest


def _input_usage(usage: Usage) -> dict[str, int]:
    """The input counts of `usage` as the API reports them: `input_tokens` excludes the cached
    tokens, which come as `cache_creation_input_tokens` and `cache_read_input_tokens` (both
    sent when the prompt cache was used; the fake leaves them out otherwise)."""
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    fields = {"input_tokens": usage.input_tokens - cached}
    if usage.cache_read_tokens or usage.cache_write_tokens:
        fields["cache_creation_input_tokens"] = usage.cache_write_tokens
        fields["cache_read_input_tokens"] = usage.cache_read_tokens
    return fields


def _citation(step: CitationStep) -> dict[str, Any]:
    """A web search citation (anthropic-sdk-python `types/citations_web_search_result_location.py`)."""
    index = base64.b64encode(b"fake-index:" + step.url.encode()).decode()
    return {
        "type": "web_search_result_location",
        "cited_text": step.cited_text,
        "url": step.url,
        "title": step.title,
        "encrypted_index": index,
    }


def render(steps: Iterable[Step], model: str, request_body: dict[str, Any]) -> Iterator[bytes | Delay | Drop]:
    """Render steps as message_start ... message_stop, with a ping after the start.

    message_start reports the input usage (so the steps are read ahead to the Usage step);
    message_delta the output tokens, the input counts again, and the thinking tokens of a
    reply with thinking (`output_tokens_details`). Citations are `citations_delta` events
    on a text block, each just before the block stops.
    """
    head, ahead, rest = _read_ahead(steps)
    start_usage = _input_usage(ahead) if ahead is not None else {"input_tokens": DEFAULT_INPUT_TOKENS}
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
                "usage": {**start_usage, "output_tokens": 1},
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

    for step in itertools.chain(head, rest):
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
        elif isinstance(step, CitationStep):
            if open_kind != "text":  # citations belong to a text block
                if open_kind is not None:
                    yield from close_block()
                index += 1
                open_kind = "text"
                yield _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
            cite = {"type": "citations_delta", "citation": _citation(step)}
            yield _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": cite})
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
                    "usage": _delta_usage(usage),
                },
            )
            yield _event("message_stop", {"type": "message_stop"})
        elif isinstance(step, MidStreamError):
            yield _event("error", {"type": "error", "error": {"type": step.error_type, "message": step.message}})
        elif isinstance(step, Raw):
            yield step.data
        else:
            yield step


def _delta_usage(usage: Usage | None) -> dict[str, Any]:
    """message_delta's cumulative usage: the input counts again, then the output tokens, and
    for a reply with thinking the thinking tokens among them (`output_tokens_details`)."""
    if usage is None:
        return {"output_tokens": 0}
    fields: dict[str, Any] = {**_input_usage(usage), "output_tokens": usage.output_tokens}
    if usage.reasoning_tokens:
        fields["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return fields


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
