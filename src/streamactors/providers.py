"""From a provider's config to its codec (URL, headers, wire format) and its authorizer.

This is the one place that knows each provider kind's endpoint and auth scheme; the
wire formats themselves live in `wire/`, the I/O in `actors/`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from . import __version__
from .config import (
    AnthropicConfig,
    AzureConfig,
    OpenAIConfig,
    OpenRouterConfig,
    ProviderConfig,
)
from .errors import ConfigError
from .models import ChatRequest
from .wire.anthropic import AnthropicCodec
from .wire.base import HttpRequestSpec, ProviderCodec
from .wire.openai import OpenAICodec

__all__ = ["DEFAULT_BASE_URLS", "USER_AGENT", "Authorizer", "build_authorizer", "build_codec"]

USER_AGENT = f"streamactors/{__version__}"

#: Signs or adds fresh credentials to a request just before it is sent (may do I/O).
Authorizer = Callable[[HttpRequestSpec], Awaitable[HttpRequestSpec]]

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "xai": "https://api.x.ai/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "groq": "https://api.groq.com/openai/v1",
    "perplexity": "https://api.perplexity.ai",
    "gemini": "https://generativelanguage.googleapis.com",
}


def _base_url(name: str, pc: ProviderConfig) -> str:
    url = pc.base_url or DEFAULT_BASE_URLS.get(pc.kind)
    if not url:
        raise ConfigError(
            f"invalid config: providers.{name}.base_url: required for kind {pc.kind!r} "
            '(for example "http://localhost:8000/v1")',
            key=f"providers.{name}.base_url",
        )
    return url.rstrip("/")


def _json_headers() -> dict[str, str]:
    return {"accept": "application/json", "content-type": "application/json", "user-agent": USER_AGENT}


def _require_key(name: str, pc: ProviderConfig) -> None:
    if pc.api_key is None:
        raise ConfigError(
            f'invalid config: providers.{name}.api_key: required for kind {pc.kind!r} (e.g. api_key = "env:NAME")',
            key=f"providers.{name}.api_key",
        )


def build_codec(name: str, pc: ProviderConfig) -> ProviderCodec:
    """The sans-IO codec for provider `name`; raises `ConfigError` if a needed key is missing."""
    headers = _json_headers()
    kind = pc.kind
    if kind == "anthropic":
        assert isinstance(pc, AnthropicConfig)
        _require_key(name, pc)
        assert pc.api_key is not None
        headers["anthropic-version"] = pc.anthropic_version
        headers["x-api-key"] = pc.api_key.reveal()
        headers.update(pc.headers)
        return AnthropicCodec(f"{_base_url(name, pc)}/v1/messages", headers, max_event_bytes=pc.max_event_bytes)
    if kind in ("openai", "xai", "openrouter", "openai_compatible", "groq", "perplexity"):
        if kind != "openai_compatible":
            _require_key(name, pc)
        if pc.api_key:
            headers["authorization"] = f"Bearer {pc.api_key.reveal()}"
        if isinstance(pc, OpenAIConfig):
            if pc.organization:
                headers["openai-organization"] = pc.organization
            if pc.project:
                headers["openai-project"] = pc.project
        if isinstance(pc, OpenRouterConfig):
            if pc.http_referer:
                headers["http-referer"] = pc.http_referer
            if pc.x_title:
                headers["x-title"] = pc.x_title
        headers.update(pc.headers)
        # OpenAI's reasoning models reject max_tokens; compatible servers know only max_tokens.
        field = "max_completion_tokens" if kind == "openai" else "max_tokens"
        return OpenAICodec(
            f"{_base_url(name, pc)}/chat/completions",
            headers,
            max_tokens_field=field,
            max_event_bytes=pc.max_event_bytes,
        )
    if kind == "azure":
        assert isinstance(pc, AzureConfig)
        if not pc.endpoint:
            raise ConfigError(
                f'invalid config: providers.{name}.endpoint: required (e.g. "https://NAME.openai.azure.com")',
                key=f"providers.{name}.endpoint",
            )
        if pc.api_key:
            headers["api-key"] = pc.api_key.reveal()
        elif pc.azure_ad_token:
            headers["authorization"] = f"Bearer {pc.azure_ad_token.reveal()}"
        else:
            raise ConfigError(
                f"invalid config: providers.{name}.api_key: azure needs api_key or azure_ad_token",
                key=f"providers.{name}.api_key",
            )
        headers.update(pc.headers)
        return AzureCodec(pc.endpoint.rstrip("/"), pc.api_version, headers, max_event_bytes=pc.max_event_bytes)
    from .providers_cloud import build_cloud_codec  # google-auth and botocore load only when used

    codec = build_cloud_codec(name, pc, headers)
    if codec is not None:
        return codec
    raise ConfigError(f"invalid config: providers.{name}.kind: {kind!r} is not supported yet", key=f"providers.{name}")


class AzureCodec(OpenAICodec):
    """Azure OpenAI: the deployment (our model id) goes in the URL (the body keeps `model`,
    as the openai SDK's AzureOpenAI client sends it)."""

    def __init__(self, endpoint: str, api_version: str, headers: dict[str, str], *, max_event_bytes: int) -> None:
        super().__init__(endpoint, headers, max_tokens_field="max_completion_tokens", max_event_bytes=max_event_bytes)
        self.endpoint = endpoint
        self.api_version = api_version

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        spec = super().build_request(request, model_id)
        url = f"{self.endpoint}/openai/deployments/{quote(model_id, safe='')}/chat/completions"
        return HttpRequestSpec(spec.method, f"{url}?api-version={self.api_version}", spec.headers, spec.body)


def build_authorizer(name: str, pc: ProviderConfig) -> Authorizer | None:
    """Per-request credential step (signing, token refresh); None for static keys, which the
    codec's headers carry already."""
    from .providers_cloud import build_cloud_authorizer

    return build_cloud_authorizer(name, pc)
