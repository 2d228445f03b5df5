"""OpenAI chat-completions chunks, as api.openai.com streams them (and OpenRouter, Azure,
Perplexity, with their differences as options of `render`)."""

from __future__ import annotations

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


def quota_headers(remaining_tokens: int, reset_s: float, now_epoch: float) -> list[tuple[bytes, bytes]]:
    """OpenAI's token quota headers (the reset as a Go duration, as api.openai.com writes it)."""
    return [
        (b"x-ratelimit-remaining-tokens", b"%d" % remaining_tokens),
        (b"x-ratelimit-reset-tokens", b"%gms" % (reset_s * 1000) if reset_s < 1 else b"%gs" % reset_s),
    ]


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


_SAFE = {k: {"filtered": False, "severity": "safe"} for k in ("hate", "self_harm", "sexual", "violence")}
_FILTERED = {**_SAFE, "violence": {"filtered": True, "severity": "high"}}


def render(
    steps: Iterable[Step],
    model: str,
    request_body: dict[str, Any],
    *,
    reasoning_field: str = "reasoning_content",
    keepalive: bool = False,
    azure: bool = False,
    error_in_chunk: bool = False,
    perplexity: bool = False,
) -> Iterator[bytes | Delay | Drop]:
    """Render steps as chat.completion.chunk events ending in `data: [DONE]`.

    `keepalive` adds the SSE comments OpenRouter sends while a model is working.
    `azure` adds Azure OpenAI's content filtering: a first chunk with empty `choices` and
    `prompt_filter_results`, and `content_filter_results` in every choice.
    `error_in_chunk` sends a mid-stream error as OpenRouter does: an `error` object inside
    a regular chunk whose choice has `finish_reason: "error"`, then `[DONE]`.

    Usage carries `prompt_tokens_details.cached_tokens` only when some input was cached, and
    `completion_tokens_details.reasoning_tokens` only with reasoning (OpenAI reports no cache
    writes). Cited sources come the OpenAI way: one last content chunk, before the finish,
    holding each source's cited text (followed by a space) with a `url_citation` annotation
    whose `start_index`/`end_index` (code points into the whole reply text) span it.
    `perplexity` renders them as Perplexity does instead: top-level `citations` (URLs) and
    `search_results` (`title`, `url`, `date`, `snippet`: the cited text) on every chunk from
    then on, repeated whole, and the reasoning tokens as `usage.reasoning_tokens`.

    With `logprobs: true` in the request, each text chunk carries `logprobs.content`: the
    chunk's text as one token (logprob -0.01 for the first, -0.02 for the next, ...), with
    `top_logprobs` entries (the token itself first, then `<token>~1`, ... each 1 lower) when
    the request gives `top_logprobs`."""
    base: dict[str, Any] = {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    include_usage = bool((request_body.get("stream_options") or {}).get("include_usage"))

    sources: dict[str, Any] = {}  # Perplexity's citations and search_results, once they came

    want_logprobs = request_body.get("logprobs") is True
    top_n = request_body.get("top_logprobs") or 0
    tokens = 0  # content tokens so far: each text step is one token, its logprob -0.01 * (n + 1)

    def token_logprobs(text: str) -> dict[str, Any]:
        nonlocal tokens
        tokens += 1
        logprob = -0.01 * tokens
        tops = [{"token": text, "logprob": logprob, "bytes": list(text.encode())}]
        tops += [
            {"token": f"{text}~{j}", "logprob": logprob - j, "bytes": list(f"{text}~{j}".encode())}
            for j in range(1, top_n)
        ]
        entry = {"token": text, "logprob": logprob, "bytes": list(text.encode()), "top_logprobs": tops[:top_n]}
        return {"content": [entry], "refusal": None}

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: dict[str, Any] | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        if azure:
            choice["content_filter_results"] = _FILTERED if finish == "content_filter" else _SAFE
        return _sse({**base, **sources, "choices": [choice]})

    streamed = 0  # code points of content so far: where an annotation's span starts
    cited: list[CitationStep] = []

    def citations_chunk() -> Iterator[bytes]:
        nonlocal streamed
        if not cited:
            return
        if perplexity:
            sources["citations"] = [c.url for c in cited]
            sources["search_results"] = [
                {"title": c.title, "url": c.url, "date": None, "snippet": c.cited_text} for c in cited
            ]
        else:
            content, annotations = "", []
            for c in cited:
                start = streamed + len(content)
                annotations.append(
                    {
                        "type": "url_citation",
                        "url_citation": {
                            "end_index": start + len(c.cited_text),
                            "start_index": start,
                            "title": c.title,
                            "url": c.url,
                        },
                    }
                )
                content += c.cited_text + " "
            streamed += len(content)
            yield chunk({"content": content, "annotations": annotations})
        cited.clear()

    pending_usage: dict[str, Any] | None = None
    if keepalive:
        yield b": OPENROUTER PROCESSING\n\n"
    if azure:
        yield _sse(
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _SAFE}],
            }
        )
    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for step in steps:
        if isinstance(step, Text):
            streamed += len(step.text)
            yield chunk({"content": step.text}, logprobs=token_logprobs(step.text) if want_logprobs else None)
        elif isinstance(step, Reasoning):
            yield chunk({reasoning_field: step.text})
        elif isinstance(step, ToolCallStep):
            first = {
                "index": step.index,
                "id": step.id,
                "type": "function",
                "function": {"name": step.name, "arguments": ""},
            }
            yield chunk({"tool_calls": [first]})
            for piece in step.pieces:
                yield chunk({"tool_calls": [{"index": step.index, "function": {"arguments": piece}}]})
        elif isinstance(step, CitationStep):
            cited.append(step)
        elif isinstance(step, Usage):
            yield from citations_chunk()
            usage: dict[str, Any] = {
                "prompt_tokens": step.input_tokens,
                "completion_tokens": step.output_tokens,
                "total_tokens": step.input_tokens + step.output_tokens,
            }
            if perplexity:
                if step.reasoning_tokens:
                    usage["reasoning_tokens"] = step.reasoning_tokens
            else:
                if step.cache_read_tokens:
                    usage["prompt_tokens_details"] = {"cached_tokens": step.cache_read_tokens, "audio_tokens": 0}
                if step.reasoning_tokens:
                    usage["completion_tokens_details"] = {
                        "reasoning_tokens": step.reasoning_tokens,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    }
            pending_usage = usage
        elif isinstance(step, Finish):
            yield from citations_chunk()
            if keepalive:
                yield b": OPENROUTER PROCESSING\n\n"
            yield chunk({}, step.reason)
            if include_usage and pending_usage is not None:
                yield _sse({**base, **sources, "choices": [], "usage": pending_usage})
            yield b"data: [DONE]\n\n"
        elif isinstance(step, MidStreamError):
            if error_in_chunk:  # OpenRouter has no 529: an overloaded provider shows as 502
                code = 502 if step.status == 529 else step.status
                yield _sse(
                    {
                        **base,
                        "error": {"code": code, "message": step.message, "metadata": {"provider_name": "Fake"}},
                        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error", "logprobs": None}],
                    }
                )
                yield b"data: [DONE]\n\n"
            else:
                yield _sse({"error": {"message": step.message, "type": "server_error", "param": None, "code": None}})
        elif isinstance(step, Raw):
            yield step.data
        else:
            yield step


def error_body(status: int, message: str) -> bytes:
    etype = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "server_error")
    return orjson.dumps({"error": {"message": message, "type": etype, "param": None, "code": None}})
