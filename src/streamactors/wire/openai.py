"""OpenAI chat-completions streaming, request and response side (sans-IO).

The same format serves Azure OpenAI, xAI, OpenRouter and every OpenAI-compatible
server; their differences are parameters of `OpenAICodec` (URL, headers, which
max-tokens field) and tolerances of `OpenAIStreamDecoder` (empty `choices`,
`reasoning`/`reasoning_content` deltas, error objects inside a chunk).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import WireError
from ..models import (
    ChatRequest,
    Message,
    ReasoningEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    UsageEvent,
)
from .base import HttpRequestSpec, SSEJsonDecoder, error_message_from_body
from .sse import DEFAULT_MAX_EVENT_BYTES, SSEEvent

__all__ = ["OpenAICodec", "OpenAIStreamDecoder", "effort_for_budget", "openai_messages"]

FINISH_MAP = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "end_turn": "stop",
    "eos": "stop",
    "error": "error",
}


def effort_for_budget(budget: int) -> str:
    """Map a thinking-token budget to OpenAI's effort levels."""
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def openai_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages in the chat-completions shape, as the openai SDK would send them."""
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name is not None:
            d["name"] = m.name
        if m.tool_calls:
            d["tool_calls"] = [
                {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
                for tc in m.tool_calls
            ]
        if m.tool_call_id is not None:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


class OpenAICodec:
    """Builds `POST {url}` chat-completions requests and decodes their SSE streams."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        max_tokens_field: str = "max_completion_tokens",
        include_usage: bool = True,
        send_model: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.url = url
        self.headers = tuple(headers.items())
        self.max_tokens_field = max_tokens_field
        self.include_usage = include_usage
        self.send_model = send_model
        self.max_event_bytes = max_event_bytes

    def body(self, request: ChatRequest, model_id: str) -> dict[str, Any]:
        """The JSON body, in the key order the openai SDK uses."""
        body: dict[str, Any] = {"messages": openai_messages(request.messages)}
        if self.send_model:
            body["model"] = model_id
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        if request.reasoning is not None:
            effort = request.reasoning.effort
            if effort is None and request.reasoning.budget_tokens is not None:
                effort = effort_for_budget(request.reasoning.budget_tokens)  # type: ignore[assignment]
            if effort is not None:
                body["reasoning_effort"] = effort
        if request.stop:
            body["stop"] = list(request.stop)
        body["stream"] = True
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        **({"description": t.description} if t.description is not None else {}),
                        "parameters": dict(t.parameters),
                    },
                }
                for t in request.tools
            ]
        if request.top_p is not None:
            body["top_p"] = request.top_p
        return body

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        return HttpRequestSpec("POST", self.url, self.headers, orjson.dumps(self.body(request, model_id)))

    def new_decoder(self) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(self.max_event_bytes)

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        return error_message_from_body(body)


class OpenAIStreamDecoder(SSEJsonDecoder):
    """Decodes a chat-completions SSE stream into normalized events."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(max_event_bytes)
        # provider tool-call index -> position in the reply
        self._tool_pos: dict[int, int] = {}

    def _on_event(self, sse: SSEEvent, out: list[StreamEvent]) -> None:
        data = sse.data
        if data == "[DONE]":
            self._done = True
            return
        obj = self._json(data)
        if not isinstance(obj, dict):
            raise WireError(f"stream event is not a JSON object: {data[:200]!r}", kind="protocol")
        if sse.event == "error" or "error" in obj:
            raise self._stream_error(obj)
        if self.model is None:
            model = obj.get("model")
            if model:
                self.model = model
        for choice in obj.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta:
                self._delta(delta, out)
            finish = choice.get("finish_reason")
            if finish:
                self._finish = FINISH_MAP.get(finish, "stop")
        usage = obj.get("usage")
        if usage:
            self._usage = UsageEvent(usage.get("prompt_tokens"), usage.get("completion_tokens"))

    def _delta(self, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and isinstance(reasoning, str):
            out.append(ReasoningEvent(reasoning))
        content = delta.get("content")
        if content:
            out.append(TextEvent(content))
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            for n, tc in enumerate(tool_calls):
                raw_index = tc.get("index", n)
                pos = self._tool_pos.get(raw_index)
                if pos is None:
                    pos = self._tool_pos[raw_index] = len(self._tool_pos)
                    self._tool_calls_seen = True
                fn = tc.get("function") or {}
                tc_id = tc.get("id") or None
                name = fn.get("name") or None
                args = fn.get("arguments") or ""
                if tc_id is None and name is None and not args:
                    continue  # an empty fragment says nothing; it must not break the stream
                out.append(ToolCallEvent(pos, tc_id, name, args))

    def _stream_error(self, obj: dict[str, Any]) -> WireError:
        err = obj.get("error", obj)
        if isinstance(err, dict):
            message = str(err.get("message") or err)
            code = err.get("code")
            etype = err.get("type") or (str(code) if code is not None else None)
        else:
            message, code, etype = str(err), None, None
        status = code if isinstance(code, int) and 100 <= code < 600 else None
        retryable = status is None or status == 429 or status >= 500 or status in (408, 409)
        return WireError(message, kind="upstream", status=status, retryable=retryable, error_type=etype)
