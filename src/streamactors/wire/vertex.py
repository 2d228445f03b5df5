"""Vertex AI's request format: Gemini models speak the Gemini format, Claude models
Anthropic's Messages body at `:streamRawPredict` (sans-IO, like every codec in `wire/`)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from ..models import ChatRequest
from .anthropic import AnthropicStreamDecoder, anthropic_body
from .base import HttpRequestSpec, StreamDecoder, error_message_from_body, json_body
from .gemini import GeminiCodec, vertex_gemini_url

__all__ = ["VERTEX_ANTHROPIC_VERSION", "VertexCodec"]

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


class VertexCodec:
    """Vertex AI: Gemini models speak the Gemini format; model ids starting with "claude"
    go to Anthropic's `:streamRawPredict` with the Messages body (no `model`, plus
    `anthropic_version`), as the anthropic SDK's Vertex client sends it.

    Claude's parameters map as on Anthropic's own API (`anthropic_body`; structured output as
    `output_config.format`, which Vertex AI documents for Claude), except `service_tier`:
    Vertex AI's capacity is its own (Provisioned Throughput), so it is refused. Content parts
    map to the same blocks, but Vertex AI takes no URL sources: the provider actor fetches a
    remote image first (`must_fetch`), and one left unfetched is a `UsageError`. Gemini models
    follow the Gemini codec's rules, with `drop_params`, the provider named "Vertex AI", and
    gs:// image URIs sent as they are (Vertex AI reads Cloud Storage)."""

    def __init__(
        self,
        base_url: str,
        project: str,
        location: str,
        api_version: str,
        headers: Mapping[str, str],
        *,
        max_event_bytes: int,
        drop_params: bool = False,
    ) -> None:
        self._claude_prefix = f"{base_url}/v1/projects/{project}/locations/{location}/publishers/anthropic/models"
        self._headers = tuple(headers.items())
        self.max_event_bytes = max_event_bytes
        self.drop_params = drop_params
        self._gemini = GeminiCodec(
            vertex_gemini_url(base_url, project, location, api_version),
            headers,
            max_event_bytes=max_event_bytes,
            drop_params=drop_params,
            provider="Vertex AI",
            gs_uris=True,
        )

    @staticmethod
    def is_claude(model_id: str) -> bool:
        return model_id.startswith("claude")

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        if not self.is_claude(model_id):
            return self._gemini.build_request(request, model_id)
        dropped: list[str] = []
        body = anthropic_body(
            request,
            None,
            provider="Vertex AI (Claude)",
            drop=self.drop_params,
            dropped=dropped,
            service_tier=False,
            url_sources=False,
        )
        body["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        url = f"{self._claude_prefix}/{quote(model_id, safe='@')}:streamRawPredict"
        return HttpRequestSpec("POST", url, self._headers, json_body(body), dropped=tuple(dropped))

    def new_decoder(self, model_id: str = "") -> StreamDecoder:
        if self.is_claude(model_id):
            return AnthropicStreamDecoder(self.max_event_bytes)
        return self._gemini.new_decoder(model_id)

    def must_fetch(self, url: str, model_id: str) -> bool:
        """Claude on Vertex AI takes no image URLs: remote images are fetched for it.
        Gemini models follow the Gemini codec."""
        return True if self.is_claude(model_id) else self._gemini.must_fetch(url, model_id)

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        return error_message_from_body(body)
