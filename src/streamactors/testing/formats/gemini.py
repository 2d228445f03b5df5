"""Gemini `streamGenerateContent?alt=sse` chunks, as Google's servers stream them.

Both the Gemini API and Vertex AI send one `GenerateContentResponse` per event, each
`data: {...}` line ended by CRLF CRLF, with no terminator: the last chunk carries the
`finishReason` and the final `usageMetadata` (and, when the reply cites sources, the
candidate's `groundingMetadata`: where real streams lose it most easily). Google's JSON puts a space after each
colon and none after commas (`{"text": "hi","role": "model"}`); that is copied here so
decoders meet the real spacing. Error bodies are Google's `{"error": {code, message,
status}}`, pretty-printed as the real API sends them.
"""

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

CONTENT_TYPE = "text/event-stream"

FINISH_REASON = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}

#: HTTP status -> the google.rpc.Code name Google puts in `error.status`.
STATUS_NAME = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _google_json(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{orjson.dumps(k).decode()}: {_google_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_google_json(v) for v in value) + "]"
    return orjson.dumps(value).decode()


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + _google_json(obj).encode() + b"\r\n\r\n"


def _usage_metadata(usage: Usage) -> dict[str, Any]:
    """`usageMetadata` in the order Google serializes it (proto field order): the prompt count
    includes the cached tokens, the thoughts are counted apart from the candidates. Gemini
    has no cache writes to report."""
    meta: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens - usage.reasoning_tokens,
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
    }
    if usage.cache_read_tokens:
        meta["cachedContentTokenCount"] = usage.cache_read_tokens
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.input_tokens}]
    if usage.cache_read_tokens:
        meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.cache_read_tokens}]
    if usage.reasoning_tokens:
        meta["thoughtsTokenCount"] = usage.reasoning_tokens
    return meta


def _grounding_metadata(citations: list[CitationStep], offset: int) -> dict[str, Any]:
    """Google Search grounding: one `web` chunk per source, and one support per source whose
    segment is the cited passage. The passages are the last chunk's text, each followed by a
    space, from byte `offset` of the reply text on: segment offsets count UTF-8 bytes of the
    whole reply's text, as Google's do (proto3 JSON leaves out a zero `startIndex`)."""
    supports: list[dict[str, Any]] = []
    for i, c in enumerate(citations):
        end = offset + len(c.cited_text.encode())
        segment: dict[str, Any] = {"startIndex": offset} if offset else {}
        segment |= {"endIndex": end, "text": c.cited_text}
        supports.append({"segment": segment, "groundingChunkIndices": [i]})
        offset = end + 1
    return {
        "groundingChunks": [{"web": {"uri": c.url, "title": c.title}} for c in citations],
        "groundingSupports": supports,
        "webSearchQueries": ["fake upstream search"],
    }


def render(steps: Iterable[Step], model: str, request_body: dict[str, Any]) -> Iterator[bytes | Delay | Drop]:
    """Render steps as GenerateContentResponse chunks; the last one has finishReason and usage.

    Reasoning becomes `"thought": true` text parts, each tool call one whole
    `functionCall` part (Gemini does not stream arguments), a mid-stream error an
    `{"error": ...}` chunk. Cited sources become the last chunk's `groundingMetadata`,
    and their cited passages that chunk's text (a grounding support cites reply text).

    With `generationConfig.responseLogprobs: true` in the request, each text chunk's candidate
    carries `logprobsResult`: the chunk's text as one chosen token (`logProbability` -0.01 for
    the first, -0.02 for the next, ...; `tokenId` 1000, 1001, ...), and, when the request gives
    `generationConfig.logprobs: N`, that step's N `topCandidates` (the token itself first, then
    `<token>~1`, ... each 1 lower), in proto field order (`topCandidates` before
    `chosenCandidates`; `token`, `logProbability`, `tokenId`).
    """
    tail = {"modelVersion": model, "responseId": "fakeResp0001"}
    config = request_body.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    want_logprobs = config.get("responseLogprobs") is True
    top_n = config.get("logprobs") if type(config.get("logprobs")) is int else 0
    tokens = 0  # text tokens so far: each text step is one token

    def logprobs_result(text: str) -> dict[str, Any]:
        nonlocal tokens
        logprob = -0.01 * (tokens + 1)
        chosen = {"token": text, "logProbability": logprob, "tokenId": 1000 + tokens}
        tokens += 1
        result: dict[str, Any] = {}
        if top_n:
            alternatives = [chosen] + [
                {"token": f"{text}~{j}", "logProbability": logprob - j, "tokenId": 2000 + j} for j in range(1, top_n)
            ]
            result["topCandidates"] = [{"candidates": alternatives}]
        result["chosenCandidates"] = [chosen]
        return result

    def chunk(
        parts: list[dict[str, Any]],
        finish: str | None = None,
        usage: Usage | None = None,
        grounding: dict[str, Any] | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish is not None:
            cand["finishReason"] = finish
        cand["index"] = 0
        if grounding is not None:
            cand["groundingMetadata"] = grounding
        if logprobs is not None:
            cand["logprobsResult"] = logprobs
        obj: dict[str, Any] = {"candidates": [cand]}
        if usage is not None:
            obj["usageMetadata"] = _usage_metadata(usage)
        return _sse({**obj, **tail})

    usage: Usage | None = None
    citations: list[CitationStep] = []
    text_bytes = 0  # the reply text so far, in UTF-8 bytes
    for step in steps:
        if isinstance(step, Text):
            text_bytes += len(step.text.encode())
            yield chunk([{"text": step.text}], logprobs=logprobs_result(step.text) if want_logprobs else None)
        elif isinstance(step, Reasoning):
            yield chunk([{"text": step.text, "thought": True}])
        elif isinstance(step, ToolCallStep):
            yield chunk([{"functionCall": {"name": step.name, "args": orjson.loads(step.arguments)}}])
        elif isinstance(step, CitationStep):
            citations.append(step)
        elif isinstance(step, Usage):
            usage = step
        elif isinstance(step, Finish):
            reason = FINISH_REASON.get(step.reason, "STOP")
            if citations:
                cited = "".join(f"{c.cited_text} " for c in citations)
                yield chunk([{"text": cited}], reason, usage, _grounding_metadata(citations, text_bytes))
            else:
                yield chunk([{"text": ""}], reason, usage)
        elif isinstance(step, MidStreamError):
            # Google reports overload as 503 UNAVAILABLE; it has no 529.
            code = 503 if step.status == 529 else step.status
            status = STATUS_NAME.get(code, "INTERNAL")
            yield _sse({"error": {"code": code, "message": step.message, "status": status}})
        elif isinstance(step, Raw):
            yield step.data
        else:
            yield step


def error_body(status: int, message: str) -> bytes:
    """An HTTP error body in Google's shape."""
    error = {"code": status, "message": message, "status": STATUS_NAME.get(status, "UNKNOWN")}
    return orjson.dumps({"error": error}, option=orjson.OPT_INDENT_2) + b"\n"
