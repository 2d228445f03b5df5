"""Configuration: frozen attrs classes, loaded from TOML or a dict through a strict cattrs converter.

Every mistake becomes a `ConfigError` that names the key and the fix, before any request
is sent: unknown keys (with the near match), wrong types, missing keys, unknown provider
kinds, missing environment variables. Any string may be written `"env:NAME"`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..errors import ConfigError, FieldValueError
from ..shared.address import RedisAddress
from ..wire.sse import DEFAULT_MAX_EVENT_BYTES
from .load import resolve_env, structure, suggest
from .secret import Secret
from .transforms import TransformSpec, split_transforms

__all__ = [
    "AnthropicConfig",
    "AzureConfig",
    "BedrockConfig",
    "CircuitBreakerConfig",
    "Config",
    "GeminiConfig",
    "LoggingConfig",
    "OpenAICompatibleConfig",
    "OpenAIConfig",
    "OpenRouterConfig",
    "ProviderConfig",
    "RateLimitConfig",
    "RouteConfig",
    "ServerSettings",
    "ServiceSettings",
    "SharedSettings",
    "Timeouts",
    "VertexConfig",
    "XAIConfig",
]


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value <= 0:
        raise FieldValueError(attribute.name, f"must be greater than 0, got {value!r}")


def _non_negative(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise FieldValueError(attribute.name, f"must be 0 or more, got {value!r}")


@attrs.frozen
class Timeouts:
    """Per-provider timeouts in seconds; each surfaces as a retryable `kind="timeout"` error."""

    connect: float = attrs.field(default=5.0, validator=_positive)
    first_token: float = attrs.field(default=60.0, validator=_positive)
    idle: float = attrs.field(default=30.0, validator=_positive)
    total: float = attrs.field(default=600.0, validator=_positive)


@attrs.frozen
class RateLimitConfig:
    """Request/token budgets per minute, adaptive pacing by quota headers, and the wait queue's bound."""

    requests_per_minute: float | None = attrs.field(default=None, validator=_positive)
    tokens_per_minute: float | None = attrs.field(default=None, validator=_positive)
    adaptive: bool = True
    max_queue: int = attrs.field(default=1000, validator=_non_negative)


@attrs.frozen
class CircuitBreakerConfig:
    """When a provider's circuit opens and how it recovers."""

    failure_threshold: int = attrs.field(default=5, validator=_positive)
    failure_rate: float | None = attrs.field(default=None, validator=_positive)
    window: float = attrs.field(default=60.0, validator=_positive)
    min_requests: int = attrs.field(default=20, validator=_positive)
    reset_timeout: float = attrs.field(default=30.0, validator=_positive)
    half_open_probes: int = attrs.field(default=1, validator=_positive)


@attrs.frozen
class ProviderConfig:
    """Settings every provider kind shares. `kind` selects the subclass."""

    kind: str
    api_key: Secret | None = attrs.field(default=None, repr=False)
    base_url: str | None = None
    max_concurrency: int = attrs.field(default=100, validator=_positive)
    max_retries: int = attrs.field(default=2, validator=_non_negative)
    max_event_bytes: int = attrs.field(default=DEFAULT_MAX_EVENT_BYTES, validator=_positive)
    #: Drop (and log at debug level) a request parameter this provider cannot honour, instead
    #: of refusing the request with a `UsageError` (LiteLLM's name for it).
    drop_params: bool = False
    headers: dict[str, str] = attrs.field(factory=dict)
    #: Model ids this provider serves, listed by the gateway's `GET /v1/models` (optional:
    #: any model id may be asked for).
    models: list[str] = attrs.field(factory=list)
    #: An HTTP(S) proxy URL for this provider (it may carry credentials, so it is a secret).
    #: Without one, HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY apply, as in the SDKs.
    proxy: Secret | None = attrs.field(default=None, repr=False)
    timeouts: Timeouts = Timeouts()
    rate_limit: RateLimitConfig = RateLimitConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    #: Stream transforms for this provider's replies, in order (see `config.transforms`).
    transforms: list[TransformSpec] = attrs.field(factory=list)

    def secrets(self) -> list[str]:
        """Every credential value in this config (for scrubbing logs and errors)."""
        return [v.reveal() for v in attrs.astuple(self, recurse=False) if isinstance(v, Secret) and v]


@attrs.frozen
class OpenAIConfig(ProviderConfig):
    """`kind = "openai"`: api.openai.com chat completions."""

    organization: str | None = None
    project: str | None = None


@attrs.frozen
class AnthropicConfig(ProviderConfig):
    """`kind = "anthropic"`: the Messages API."""

    anthropic_version: str = "2023-06-01"


@attrs.frozen
class GeminiConfig(ProviderConfig):
    """`kind = "gemini"`: the Gemini API (generativelanguage.googleapis.com)."""

    api_version: str = "v1beta"


@attrs.frozen
class VertexConfig(ProviderConfig):
    """`kind = "vertex"`: Vertex AI, Gemini and Claude models, google-auth credentials."""

    project: str = ""
    location: str = "us-central1"
    credentials_file: str | None = None
    access_token: Secret | None = attrs.field(default=None, repr=False)
    api_version: str = "v1"


@attrs.frozen
class BedrockConfig(ProviderConfig):
    """`kind = "bedrock"`: ConverseStream, SigV4-signed by botocore."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    aws_access_key_id: Secret | None = attrs.field(default=None, repr=False)
    aws_secret_access_key: Secret | None = attrs.field(default=None, repr=False)
    aws_session_token: Secret | None = attrs.field(default=None, repr=False)


@attrs.frozen
class AzureConfig(ProviderConfig):
    """`kind = "azure"`: Azure OpenAI deployments (the model id is the deployment name)."""

    endpoint: str = ""
    api_version: str = "2024-10-21"
    azure_ad_token: Secret | None = attrs.field(default=None, repr=False)


@attrs.frozen
class XAIConfig(ProviderConfig):
    """`kind = "xai"`: api.x.ai, the OpenAI format plus `reasoning_content`."""


@attrs.frozen
class OpenRouterConfig(ProviderConfig):
    """`kind = "openrouter"`: openrouter.ai, with its optional attribution headers."""

    http_referer: str | None = None
    x_title: str | None = None


@attrs.frozen
class OpenAICompatibleConfig(ProviderConfig):
    """`kind = "openai_compatible"` (and the `groq`, `perplexity` presets): any OpenAI-format server."""


PROVIDER_KINDS: dict[str, type[ProviderConfig]] = {
    "openai": OpenAIConfig,
    "anthropic": AnthropicConfig,
    "gemini": GeminiConfig,
    "vertex": VertexConfig,
    "bedrock": BedrockConfig,
    "azure": AzureConfig,
    "xai": XAIConfig,
    "openrouter": OpenRouterConfig,
    "openai_compatible": OpenAICompatibleConfig,
    "groq": OpenAICompatibleConfig,
    "perplexity": OpenAICompatibleConfig,
}


@attrs.frozen
class RouteConfig:
    """A model alias served by several targets ("provider/model")."""

    targets: list[str]
    strategy: str = "fallback"
    weights: list[float] | None = None
    hedge_after_ms: float | None = attrs.field(default=None, validator=_positive)
    continue_on_failure: bool = False
    #: Stream transforms, run after those of the provider that answers.
    transforms: list[TransformSpec] = attrs.field(factory=list)


@attrs.frozen
class LoggingConfig:
    """`format` is "json" or "console"; `file` (relative to the config file) or stderr."""

    format: str = "json"
    level: str = "info"
    file: str | None = None


@attrs.frozen
class ServiceSettings:
    """Service-wide knobs: channel sizes, shutdown grace, restart backoff, media fetching."""

    submission_buffer: int = attrs.field(default=64, validator=_positive)
    event_buffer: int = attrs.field(default=16, validator=_positive)
    shutdown_grace: float = attrs.field(default=5.0, validator=_non_negative)
    max_restarts: int = attrs.field(default=10, validator=_positive)
    restart_window: float = attrs.field(default=60.0, validator=_positive)
    #: The most bytes, and seconds, one remote image may take where the library fetches it
    #: (for Bedrock and Claude on Vertex AI, which take no image URLs).
    media_max_bytes: int = attrs.field(default=20 * 1024 * 1024, validator=_positive)
    media_timeout: float = attrs.field(default=10.0, validator=_positive)


def _port(inst: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 65535:
        raise FieldValueError(attribute.name, f"must be a port number from 0 to 65535, got {value!r}")


@attrs.frozen
class ServerSettings:
    """`streamactors serve`, the HTTP gateway: where it listens, who may call it, its limits.

    With `api_keys` (each may be "env:NAME"), every `/v1` request must carry one of them
    (`Authorization: Bearer KEY` or `x-api-key: KEY`). The timeouts bound what a client can
    hold: the request head (slowloris), the body, an idle kept-alive connection, and one
    blocked send to a client that stopped reading.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=_port)
    api_keys: list[Secret] = attrs.field(factory=list, repr=False)
    max_body_bytes: int = attrs.field(default=10 * 1024 * 1024, validator=_positive)
    header_timeout: float = attrs.field(default=10.0, validator=_positive)
    body_timeout: float = attrs.field(default=30.0, validator=_positive)
    keepalive_timeout: float = attrs.field(default=5.0, validator=_positive)
    send_timeout: float = attrs.field(default=60.0, validator=_positive)


def _redis_url(inst: Any, attribute: attrs.Attribute[Any], value: Secret) -> None:
    try:
        RedisAddress.parse(value.reveal())
    except ValueError as exc:
        raise FieldValueError(attribute.name, str(exc)) from None


def _namespace(inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or not all(c.isascii() and (c.isalnum() or c in "_.:-") for c in value):
        raise FieldValueError(attribute.name, f"must be letters, digits and _ . : - only, got {value!r}")


@attrs.frozen
class SharedSettings:
    """`[shared]`: services of one `namespace` share each provider's budgets, circuit and
    quota news through Redis (state is keyed by namespace and provider name).

    `redis_url` is `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS (a
    secret: it may carry a password). `timeout` bounds one Redis call; past it, or on any
    connection error, a service uses its local limiter and breaker until Redis is back.
    """

    redis_url: Secret = attrs.field(repr=False, validator=_redis_url)
    namespace: str = attrs.field(default="streamactors", validator=_namespace)
    timeout: float = attrs.field(default=0.25, validator=_positive)

    @property
    def address(self) -> RedisAddress:
        """The parsed `redis_url`."""
        return RedisAddress.parse(self.redis_url.reveal())


@attrs.frozen
class Config:
    """The whole configuration. Build it with `Config.load(path)` or `Config.from_dict(data)`."""

    providers: dict[str, ProviderConfig] = attrs.field(factory=dict)
    routes: dict[str, RouteConfig] = attrs.field(factory=dict)
    logging: LoggingConfig = LoggingConfig()
    service: ServiceSettings = ServiceSettings()
    server: ServerSettings = ServerSettings()
    #: `[shared]`: None (the default) keeps every budget and circuit in this process.
    shared: SharedSettings | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
        """Read a TOML file. Relative paths inside resolve against its folder."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {str(p)!r} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
        return cls.from_dict(data, env=env, base_dir=p.resolve().parent)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, base_dir: Path | None = None
    ) -> Config:
        """Validate and build a config from plain data (as TOML would give)."""
        return _build_config(cls, data, env=os.environ if env is None else env, base_dir=base_dir)

    def secrets(self) -> list[str]:
        """Every credential value configured (for scrubbing)."""
        shared = [self.shared.redis_url.reveal(), self.shared.address.password or ""] if self.shared else []
        return (
            [s for p in self.providers.values() for s in p.secrets()]
            + [k.reveal() for k in self.server.api_keys if k]
            + shared
        )


def _build_config(
    cls: type[Config], data: Mapping[str, Any], *, env: Mapping[str, str], base_dir: Path | None
) -> Config:
    """Validate `data` and build the config; raises `ConfigError`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid config: expected a table, got {type(data).__name__}")
    data = resolve_env(data, "", env)
    allowed = ("providers", "routes", "logging", "service", "server", "shared")
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"invalid config: {key}: unknown top-level table{suggest(key, allowed)}; valid: {', '.join(allowed)}",
                key=key,
            )
    providers: dict[str, Any] = {}
    raw_providers = data.get("providers", {})
    if not isinstance(raw_providers, Mapping):
        raise ConfigError("invalid config: providers: expected a table of [providers.<name>]", key="providers")
    for name, table in raw_providers.items():
        path = f"providers.{name}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"invalid config: {path}: expected a table", key=path)
        kind = table.get("kind")
        if kind is None:
            raise ConfigError(
                f"invalid config: {path}.kind: required key is missing; one of: {', '.join(PROVIDER_KINDS)}",
                key=f"{path}.kind",
            )
        if kind not in PROVIDER_KINDS:
            raise ConfigError(
                f"invalid config: {path}.kind: unknown provider kind {kind!r}{suggest(str(kind), PROVIDER_KINDS)}; "
                f"one of: {', '.join(PROVIDER_KINDS)}",
                key=f"{path}.kind",
            )
        table, transforms = split_transforms(table, path)
        pc = structure(table, PROVIDER_KINDS[kind], path)
        if transforms:
            pc = attrs.evolve(pc, transforms=transforms)
        if base_dir is not None and getattr(pc, "credentials_file", None):
            pc = attrs.evolve(pc, credentials_file=str(base_dir / pc.credentials_file))
        providers[name] = pc
    routes = {}
    for name, table in (data.get("routes") or {}).items():
        table, transforms = split_transforms(table, f"routes.{name}") if isinstance(table, Mapping) else (table, [])
        route = structure(table, RouteConfig, f"routes.{name}")
        if transforms:
            route = attrs.evolve(route, transforms=transforms)
        _check_route(name, route, providers)
        routes[name] = route
    logging = structure(data.get("logging", {}), LoggingConfig, "logging")
    if logging.format not in ("json", "console"):
        raise ConfigError(
            f'invalid config: logging.format: must be "json" or "console", got {logging.format!r}',
            key="logging.format",
        )
    if base_dir is not None and logging.file:
        logging = attrs.evolve(logging, file=str(base_dir / logging.file))
    service = structure(data.get("service", {}), ServiceSettings, "service")
    server = structure(data.get("server", {}), ServerSettings, "server")
    shared = structure(data["shared"], SharedSettings, "shared") if "shared" in data else None
    return cls(providers=providers, routes=routes, logging=logging, service=service, server=server, shared=shared)


def _check_route(name: str, route: Any, providers: Mapping[str, Any]) -> None:
    path = f"routes.{name}"
    if not route.targets:
        raise ConfigError(f'invalid config: {path}.targets: give at least one "provider/model"', key=path)
    for i, target in enumerate(route.targets):
        provider, sep, _ = target.partition("/")
        if not sep or provider not in providers:
            raise ConfigError(
                f'invalid config: {path}.targets[{i}]: {target!r} must be "<provider>/<model>" with a provider '
                f"configured under [providers]{suggest(provider, providers)}",
                key=f"{path}.targets",
            )
    if route.strategy not in ("fallback", "weighted", "least_latency"):
        raise ConfigError(
            f'invalid config: {path}.strategy: must be "fallback", "weighted" or "least_latency", '
            f"got {route.strategy!r}",
            key=f"{path}.strategy",
        )
    if route.strategy == "weighted" and (route.weights is None or len(route.weights) != len(route.targets)):
        raise ConfigError(
            f"invalid config: {path}.weights: the weighted strategy needs one weight per target",
            key=f"{path}.weights",
        )
