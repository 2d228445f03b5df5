"""AWS Bedrock ConverseStream, as bedrock-runtime streams it: binary event-stream frames.

Each frame is `prelude (total length, headers length, CRC32 of those 8 bytes)`,
headers, a JSON payload and a CRC32 of everything before it. Like the real service,
events carry `:event-type`, `:content-type` and `:message-type` headers, and event
payloads carry a `"p"` padding field (Bedrock pads them so that sizes leak nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..frames import encode_frame
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

__all__ = ["CONTENT_TYPE", "encode_frame", "error_body", "render"]

CONTENT_TYPE = "application/vnd.amazon.eventstream"

STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}

_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _event(name: str, obj: dict[str, Any]) -> bytes:
    # Padding length varies with the payload, as the service's does.
    pad = _PAD[: 1 + len(orjson.dumps(obj)) % len(_PAD)]
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, orjson.dumps({**obj, "p": pad}))


def _exception(name: str, obj: dict[str, Any]) -> bytes:
    headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
    return encode_frame(headers, orjson.dumps(obj))


def _citation(step: CitationStep) -> dict[str, Any]:
    """A `CitationsDelta` citing a web page (as web grounding does): title, the cited text
    in `sourceContent`, and a `web` location."""
    return {
        "title": step.title,
        "sourceContent": [{"text": step.cited_text}],
        "location": {"web": {"url": step.url, "domain": urlsplit(step.url).netloc}},
    }


def _usage(usage: Usage | None) -> dict[str, int]:
    """A `TokenUsage`: `inputTokens` leaves out the cache reads and writes, reported apart
    (both, when the prompt cache was used); `totalTokens` counts everything."""
    if usage is None:
        return {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    out: dict[str, int] = {}
    if usage.cache_read_tokens or usage.cache_write_tokens:
        out["cacheReadInputTokens"] = usage.cache_read_tokens
        out["cacheWriteInputTokens"] = usage.cache_write_tokens
    out["inputTokens"] = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    out["outputTokens"] = usage.output_tokens
    out["totalTokens"] = usage.input_tokens + usage.output_tokens
    return out


def render(steps: Iterable[Step], model: str, request_body: dict[str, Any]) -> Iterator[bytes | Delay | Drop]:
    """Render steps as messageStart ... messageStop, then metadata (usage comes last).

    Citations are `citation` deltas in the text block they follow (in a block of their own
    after a tool call or when there is no text).
    """
    yield _event("messageStart", {"role": "assistant"})
    index = -1
    open_kind: str | None = None
    usage: Usage | None = None

    def close_block() -> Iterator[bytes]:
        if open_kind == "reasoning":
            yield _event(
                "contentBlockDelta",
                {"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": "c2lnbmF0dXJl"}}},
            )
        yield _event("contentBlockStop", {"contentBlockIndex": index})

    for step in steps:
        if isinstance(step, (Text, Reasoning)):
            kind = "text" if isinstance(step, Text) else "reasoning"
            if open_kind != kind:
                if open_kind is not None:
                    yield from close_block()
                index += 1
                open_kind = kind
            delta = {"text": step.text} if kind == "text" else {"reasoningContent": {"text": step.text}}
            yield _event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
        elif isinstance(step, CitationStep):
            if open_kind != "text":
                if open_kind is not None:
                    yield from close_block()
                index += 1
                open_kind = "text"
            yield _event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"citation": _citation(step)}})
        elif isinstance(step, ToolCallStep):
            if open_kind is not None:
                yield from close_block()
            index += 1
            open_kind = "tool_use"
            yield _event(
                "contentBlockStart",
                {
                    "contentBlockIndex": index,
                    "start": {"toolUse": {"name": step.name, "toolUseId": f"tooluse_{step.id}"}},
                },
            )
            for piece in step.pieces:
                yield _event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}})
        elif isinstance(step, Usage):
            usage = step
        elif isinstance(step, Finish):
            if open_kind is not None:
                yield from close_block()
                open_kind = None
            yield _event("messageStop", {"stopReason": STOP_REASON.get(step.reason, "end_turn")})
            yield _event("metadata", {"metrics": {"latencyMs": 42}, "usage": _usage(usage)})
        elif isinstance(step, MidStreamError):
            if step.status == 429:
                yield _exception("throttlingException", {"message": step.message})
            else:
                yield _exception(
                    "modelStreamErrorException",
                    {"message": step.message, "originalStatusCode": step.status, "originalMessage": step.message},
                )
        elif isinstance(step, Raw):
            yield step.data
        else:
            yield step


def error_body(status: int, message: str) -> bytes:
    """AWS's JSON error body (the service names the type in `x-amzn-ErrorType`)."""
    return orjson.dumps({"message": message})
