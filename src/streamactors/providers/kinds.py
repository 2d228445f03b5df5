"""From a provider's config to its codec (URL, headers, wire format) and its authorizer.

This is the one place that knows each provider kind's endpoint and auth scheme; the
wire formats themselves live in `wire/`, the I/O in `actors/`.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._version import __version__
from ..config.schema import (
    AnthropicConfig,
    AzureConfig,
    BedrockConfig,
    GeminiConfig,
    OpenAIConfig,
    OpenRouterConfig,
    ProviderConfig,
    VertexConfig,
)
from ..errors import ConfigError
from ..wire.anthropic import AnthropicCodec
from ..wire.base import ProviderCodec
from ..wire.gemini import GeminiCodec, gemini_api_url
from ..wire.openai import AzureCodec, OpenAICodec
from ..wire.vertex import VertexCodec
from .auth import Authorizer, AwsSigner, GoogleTokenSource

__all__ = ["DEFAULT_BASE_URLS", "USER_AGENT", "build_authorizer", "build_codec"]

USER_AGENT = f"streamactors/{__version__}"

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
        return AnthropicCodec(
            f"{_base_url(name, pc)}/v1/messages",
            headers,
            max_event_bytes=pc.max_event_bytes,
            drop_params=pc.drop_params,
        )
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
            kind=kind,
            provider=name,
            drop_params=pc.drop_params,
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
        return AzureCodec(
            pc.endpoint.rstrip("/"),
            pc.api_version,
            headers,
            max_event_bytes=pc.max_event_bytes,
            provider=name,
            drop_params=pc.drop_params,
        )
    codec = _build_cloud_codec(name, pc, headers)
    if codec is not None:
        return codec
    raise ConfigError(f"invalid config: providers.{name}.kind: {kind!r} is not supported yet", key=f"providers.{name}")


def build_authorizer(name: str, pc: ProviderConfig) -> Authorizer | None:
    """Per-request credential step (signing, token refresh); None for static keys, which the
    codec's headers carry already."""
    if isinstance(pc, VertexConfig):
        return GoogleTokenSource(name, pc)
    if isinstance(pc, BedrockConfig):
        return AwsSigner(name, pc)
    return None


def _missing(name: str, key: str, example: str) -> ConfigError:
    return ConfigError(f"invalid config: providers.{name}.{key}: required ({example})", key=f"providers.{name}.{key}")


def _build_cloud_codec(name: str, pc: ProviderConfig, headers: Mapping[str, str]) -> ProviderCodec | None:
    """The codec for a cloud provider kind, or None if `pc.kind` is not one."""
    if isinstance(pc, GeminiConfig):
        if pc.api_key is None:
            raise _missing(name, "api_key", 'e.g. api_key = "env:GEMINI_API_KEY"')
        h = {**headers, "x-goog-api-key": pc.api_key.reveal(), **pc.headers}
        base = (pc.base_url or "https://generativelanguage.googleapis.com").rstrip("/")
        return GeminiCodec(
            gemini_api_url(base, pc.api_version),
            h,
            max_event_bytes=pc.max_event_bytes,
            provider=name,
            drop_params=pc.drop_params,
        )
    if isinstance(pc, VertexConfig):
        if not pc.project:
            raise _missing(name, "project", 'the Google Cloud project id, e.g. project = "my-project"')
        return VertexCodec(
            vertex_base_url(pc),
            pc.project,
            pc.location,
            pc.api_version,
            {**headers, **pc.headers},
            max_event_bytes=pc.max_event_bytes,
            drop_params=pc.drop_params,
        )
    if isinstance(pc, BedrockConfig):
        from ..wire.bedrock import BedrockCodec, default_endpoint

        endpoint = pc.endpoint_url or pc.base_url or default_endpoint(pc.region)
        return BedrockCodec(
            endpoint, max_event_bytes=pc.max_event_bytes, extra_headers=pc.headers, drop_params=pc.drop_params
        )
    return None


def vertex_base_url(pc: VertexConfig) -> str:
    """`base_url`, else the regional endpoint (the global one for location "global")."""
    if pc.base_url:
        return pc.base_url.rstrip("/")
    if pc.location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{pc.location}-aiplatform.googleapis.com"
