"""Gemini `streamGenerateContent?alt=sse` chunks, as Google's servers stream them.

Both the Gemini API and Vertex AI send one `GenerateContentResponse` per event, each
`data: {...}` line ended by CRLF CRLF, with no terminator: the last chunk carries the
`finishReason` and the final `usageMetadata`. Google's JSON puts a space after each
colon and none after commas (`{"text": "hi","role": "model"}`); that is copied here so
decoders meet the real spacing. Error bodies are Google's `{"error": {code, message,
status}}`, pretty-printed as the real API sends them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..script import Delay, Drop, Finish, MidStreamError, Raw, Reasoning, Step, Text, ToolCallStep, Usage

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


def render(steps: Iterable[Step], model: str, request_body: dict[str, Any]) -> Iterator[bytes | Delay | Drop]:
    """Render steps as GenerateContentResponse chunks; the last one has finishReason and usage.

    Reasoning becomes `"thought": true` text parts, each tool call one whole
    `functionCall` part (Gemini does not stream arguments), a mid-stream error an
    `{"error": ...}` chunk.
    """
    tail = {"modelVersion": model, "responseId": "fakeResp0001"}

    def chunk(parts: list[dict[str, Any]], finish: str | None = None, usage: Usage | None = None) -> bytes:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish is not None:
            cand["finishReason"] = finish
        cand["index"] = 0
        obj: dict[str, Any] = {"candidates": [cand]}
        if usage is not None:
            meta = {
                "promptTokenCount": usage.input_tokens,
                "candidatesTokenCount": usage.output_tokens - usage.reasoning_tokens,
                "totalTokenCount": usage.input_tokens + usage.output_tokens,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage.input_tokens}],
            }
            if usage.reasoning_tokens:
                meta["thoughtsTokenCount"] = usage.reasoning_tokens
            obj["usageMetadata"] = meta
        return _sse({**obj, **tail})

    usage: Usage | None = None
    for step in steps:
        if isinstance(step, Text):
            yield chunk([{"text": step.text}])
        elif isinstance(step, Reasoning):
            yield chunk([{"text": step.text, "thought": True}])
        elif isinstance(step, ToolCallStep):
            yield chunk([{"functionCall": {"name": step.name, "args": orjson.loads(step.arguments)}}])
        elif isinstance(step, Usage):
            usage = step
        elif isinstance(step, Finish):
            yield chunk([{"text": ""}], FINISH_REASON.get(step.reason, "STOP"), usage)
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
