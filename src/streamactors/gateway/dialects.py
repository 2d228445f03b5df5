"""The two APIs the gateway speaks, as `app.Dialect`s over their sans-IO modules."""

from __future__ import annotations

from ..models import Reply
from . import anthropic_api, openai_api
from .app import Call, Headers, StreamEncoder

__all__ = ["AnthropicDialect", "OpenAIDialect"]


class OpenAIDialect:
    """`POST /v1/chat/completions` (and OpenAI's error shape for every other path)."""

    def parse(self, body: bytes) -> Call:
        """A Chat Completions body as a `Call`."""
        call = openai_api.parse_request(body)
        return Call(call.request, call.stream, call.include_usage)

    def encoder(self, call: Call, response_id: str, created: int) -> StreamEncoder:
        """`chat.completion.chunk` events; the first batch also carries the role chunk."""
        return openai_api.ChunkEncoder(f"chatcmpl-{response_id}", call.request.model, created, call.include_usage)

    def body(self, call: Call, reply: Reply, response_id: str, created: int) -> bytes:
        """One `chat.completion`."""
        return openai_api.completion_body(reply, f"chatcmpl-{response_id}", call.request.model, created)

    def error(self, exc: BaseException) -> tuple[int, Headers, bytes]:
        """OpenAI's `{"error": {...}}` with the status the openai SDK maps."""
        return openai_api.error_response(exc)


class AnthropicDialect:
    """`POST /v1/messages`, in front of every provider."""

    def parse(self, body: bytes) -> Call:
        """A Messages API body as a `Call`."""
        call = anthropic_api.parse_request(body)
        return Call(call.request, call.stream)

    def encoder(self, call: Call, response_id: str, created: int) -> StreamEncoder:
        """The Messages API's event stream (`message_start` ... `message_stop`)."""
        return anthropic_api.MessageStreamEncoder(f"msg_{response_id}", call.request.model)

    def body(self, call: Call, reply: Reply, response_id: str, created: int) -> bytes:
        """One Message."""
        return anthropic_api.message_body(reply, f"msg_{response_id}", call.request.model)

    def error(self, exc: BaseException) -> tuple[int, Headers, bytes]:
        """Anthropic's `{"type": "error", "error": {...}}` with the status the anthropic SDK maps."""
        return anthropic_api.error_response(exc)
