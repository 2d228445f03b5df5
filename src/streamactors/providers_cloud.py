"""Codecs and authorizers for the cloud providers: Gemini, Vertex AI, AWS Bedrock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .config import ProviderConfig

if TYPE_CHECKING:
    from .providers import Authorizer
    from .wire.base import ProviderCodec

__all__ = ["build_cloud_authorizer", "build_cloud_codec"]


def build_cloud_codec(name: str, pc: ProviderConfig, headers: Mapping[str, str]) -> ProviderCodec | None:
    """The codec for a cloud provider kind, or None if `pc.kind` is not one."""
    return None


def build_cloud_authorizer(name: str, pc: ProviderConfig) -> Authorizer | None:
    """The authorizer for a cloud provider kind, or None if it needs none."""
    return None
