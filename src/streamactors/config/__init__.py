"""The configuration tree (`schema`) and its strict loader (`load`); the classes are re-exported here."""

from .schema import AnthropicConfig as AnthropicConfig
from .schema import AzureConfig as AzureConfig
from .schema import BedrockConfig as BedrockConfig
from .schema import CircuitBreakerConfig as CircuitBreakerConfig
from .schema import Config as Config
from .schema import GeminiConfig as GeminiConfig
from .schema import LoggingConfig as LoggingConfig
from .schema import OpenAICompatibleConfig as OpenAICompatibleConfig
from .schema import OpenAIConfig as OpenAIConfig
from .schema import OpenRouterConfig as OpenRouterConfig
from .schema import ProviderConfig as ProviderConfig
from .schema import RateLimitConfig as RateLimitConfig
from .schema import RouteConfig as RouteConfig
from .schema import ServerSettings as ServerSettings
from .schema import ServiceSettings as ServiceSettings
from .schema import SharedSettings as SharedSettings
from .schema import Timeouts as Timeouts
from .schema import VertexConfig as VertexConfig
from .schema import XAIConfig as XAIConfig

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
