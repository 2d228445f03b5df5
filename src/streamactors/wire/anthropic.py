"""Anthropic Messages API streaming, request and response side (sans-IO)."""

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

__all__ = ["AnthropicCodec", "AnthropicStreamDecoder", "anthropic_body", "DEFAULT_MAX_TOKENS"]

ANTHROPIC_VERSION = "2023-06-01"
#: Anthropic requires max_tokens; this is what we send when the request gives none.
DEFAULT_MAX_TOKENS = 4096
EFFORT_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}

STOP_MAP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error types -> the HTTP status that carries the same type.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def _tool_input(arguments: str) -> Any:
    if not arguments.strip():
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        # Keep the model's text rather than fail the whole request on a bad replay.
        return {"_raw_arguments": arguments}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}.get(
            choice, {"type": "auto"}
        )
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if isinstance(fn, Mapping) and "name" in fn:
            return {"type": "tool", "name": fn["name"]}
        return dict(choice)
    return None


def anthropic_messages(messages: tuple[Message, ...]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system prompt, messages) in the Messages API shape.

    System and developer messages become the system prompt; tool results become
    `tool_result` blocks in a user turn; consecutive turns of one role are merged,
    so parallel tool results travel together as the API requires.
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:
            prev = out[-1]["content"]
            if isinstance(prev, str):
                prev = out[-1]["content"] = [{"type": "text", "text": prev}]
            prev.extend(blocks)
        elif len(blocks) == 1 and blocks[0]["type"] == "text":
            out.append({"role": role, "content": blocks[0]["text"]})
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        if m.role in ("system", "developer"):
            if m.content:
                system.append(m.content)
        elif m.role == "tool":
            add(
                "user",
                [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content or ""}],
            )
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            for tc in m.tool_calls:
                blocks.append({"type": "tool_use", "id": tc.id, "name": tc.name, "input": _tool_input(tc.arguments)})
            if blocks:
                add("assistant", blocks)
        else:
            add("user", [{"type": "text", "text": m.content or ""}])
    return ("\n\n".join(system) if system else None), out


def anthropic_body(request: ChatRequest, model_id: str | None) -> dict[str, Any]:
    """The Messages API body, in the key order the anthropic SDK uses."""
    system, messages = anthropic_messages(request.messages)
    max_tokens = request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS
    thinking = None
    if request.reasoning is not None:
        budget = request.reasoning.budget_tokens
        if budget is None and request.reasoning.effort is not None:
            budget = EFFORT_BUDGET[request.reasoning.effort]
        if budget is not None:
            budget = max(budget, 1024)
            if max_tokens <= budget:
                max_tokens = budget + max_tokens  # the API requires budget_tokens < max_tokens
            thinking = {"type": "enabled", "budget_tokens": budget}
    body: dict[str, Any] = {"max_tokens": max_tokens, "messages": messages}
    if model_id is not None:
        body["model"] = model_id
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    body["stream"] = True
    if system is not None:
        body["system"] = system
    if request.temperature is not None and thinking is None:
        body["temperature"] = request.temperature
    if thinking is not None:
        body["thinking"] = thinking
    tool_choice = _tool_choice(request.tool_choice)
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if request.tools:
        body["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description is not None else {}),
                "input_schema": dict(t.parameters),
            }
            for t in request.tools
        ]
    if request.top_p is not None and thinking is None:
        body["top_p"] = request.top_p
    return body


class AnthropicCodec:
    """Builds `POST {base_url}/v1/messages` requests and decodes their SSE streams."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.url = url
        self.headers = tuple(headers.items())
        self.max_event_bytes = max_event_bytes

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        return HttpRequestSpec("POST", self.url, self.headers, orjson.dumps(anthropic_body(request, model_id)))

    def new_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(self.max_event_bytes)

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        return error_message_from_body(body)


class AnthropicStreamDecoder(SSEJsonDecoder):
    """Decodes a Messages API SSE stream into normalized events."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        super().__init__(max_event_bytes)
        self._started = False
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._block_tool: dict[int, int] = {}  # content block index -> tool position

    def _on_event(self, sse: SSEEvent, out: list[StreamEvent]) -> None:
        obj = self._json(sse.data)
        if not isinstance(obj, dict):
            raise WireError(f"stream event is not a JSON object: {sse.data[:200]!r}", kind="protocol")
        etype = obj.get("type") or sse.event
        if etype == "content_block_delta":
            delta = obj.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                text = delta.get("text")
                if text:
                    out.append(TextEvent(text))
            elif dtype == "input_json_delta":
                part = delta.get("partial_json")
                pos = self._block_tool.get(obj.get("index", -1))
                if part and pos is not None:
                    out.append(ToolCallEvent(pos, None, None, part))
            elif dtype == "thinking_delta":
                text = delta.get("thinking")
                if text:
                    out.append(ReasoningEvent(text))
            elif dtype not in ("signature_delta", "citations_delta"):
                self.unknown_events.add(f"content_block_delta:{dtype}")
        elif etype == "content_block_start":
            block = obj.get("content_block") or {}
            btype = block.get("type")
            if btype == "tool_use":
                pos = self._block_tool[obj.get("index", len(self._block_tool))] = len(self._block_tool)
                self._tool_calls_seen = True
                out.append(ToolCallEvent(pos, block.get("id"), block.get("name"), ""))
                initial = block.get("input")
                if initial:
                    out.append(ToolCallEvent(pos, None, None, orjson.dumps(initial).decode()))
            elif btype == "text":
                if block.get("text"):
                    out.append(TextEvent(block["text"]))
            elif btype == "thinking":
                if block.get("thinking"):
                    out.append(ReasoningEvent(block["thinking"]))
            elif btype != "redacted_thinking":
                self.unknown_events.add(f"content_block_start:{btype}")
        elif etype == "content_block_stop" or etype == "ping":
            pass
        elif etype == "message_start":
            self._started = True
            message = obj.get("message") or {}
            self.model = message.get("model") or self.model
            self._usage_from(message.get("usage"))
        elif etype == "message_delta":
            delta = obj.get("delta") or {}
            stop = delta.get("stop_reason")
            if stop:
                self._finish = STOP_MAP.get(stop, "stop")
            self._usage_from(obj.get("usage"))
        elif etype == "message_stop":
            self._done = True
        elif etype == "error":
            err = obj.get("error") or {}
            error_type = err.get("type")
            status = ERROR_STATUS.get(error_type or "")
            retryable = status is None or status == 429 or status >= 500
            raise WireError(
                str(err.get("message") or error_type or "error event"),
                kind="upstream",
                status=status,
                retryable=retryable,
                error_type=error_type,
            )
        else:
            self.unknown_events.add(str(etype))

    def _usage_from(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        inp = usage.get("input_tokens")
        if inp is not None:
            # Anthropic counts cached prompt tokens apart; OpenAI's prompt_tokens include them.
            inp += (usage.get("cache_creation_input_tokens") or 0) + (usage.get("cache_read_input_tokens") or 0)
            self._input_tokens = inp
        out_tokens = usage.get("output_tokens")
        if out_tokens is not None:
            self._output_tokens = out_tokens
        self._usage = UsageEvent(self._input_tokens, self._output_tokens)
