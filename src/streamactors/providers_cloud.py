"""Codecs and authorizers for the cloud providers: Gemini, Vertex AI, AWS Bedrock.

Credentials come from the official libraries: google-auth for Vertex (a service-account
file, application default credentials, or a fixed token) and botocore for Bedrock (keys
from the config, or botocore's default chain). Anything that may do I/O (loading or
refreshing credentials) runs in a worker thread, never on the trio loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import trio

from .config import BedrockConfig, GeminiConfig, ProviderConfig, VertexConfig
from .errors import ConfigError, ProviderError
from .wire.anthropic import AnthropicStreamDecoder, anthropic_body
from .wire.base import HttpRequestSpec, StreamDecoder, error_message_from_body, json_body
from .wire.gemini import GeminiCodec, gemini_api_url, vertex_gemini_url

if TYPE_CHECKING:
    from .models import ChatRequest
    from .providers import Authorizer
    from .wire.base import ProviderCodec

__all__ = ["AwsSigner", "GoogleTokenSource", "VertexCodec", "build_cloud_authorizer", "build_cloud_codec"]

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
GOOGLE_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def _missing(name: str, key: str, example: str) -> ConfigError:
    return ConfigError(f"invalid config: providers.{name}.{key}: required ({example})", key=f"providers.{name}.{key}")


def vertex_base_url(pc: VertexConfig) -> str:
    """`base_url`, else the regional endpoint (the global one for location "global")."""
    if pc.base_url:
        return pc.base_url.rstrip("/")
    if pc.location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{pc.location}-aiplatform.googleapis.com"


class VertexCodec:
    """Vertex AI: Gemini models speak the Gemini format; model ids starting with "claude"
    go to Anthropic's `:streamRawPredict` with the Messages body (no `model`, plus
    `anthropic_version`), as the anthropic SDK's Vertex client sends it."""

    def __init__(self, pc: VertexConfig, headers: Mapping[str, str]) -> None:
        base = vertex_base_url(pc)
        self._claude_prefix = f"{base}/v1/projects/{pc.project}/locations/{pc.location}/publishers/anthropic/models"
        self._headers = tuple(headers.items())
        self.max_event_bytes = pc.max_event_bytes
        self._gemini = GeminiCodec(
            vertex_gemini_url(base, pc.project, pc.location, pc.api_version),
            headers,
            max_event_bytes=pc.max_event_bytes,
        )

    @staticmethod
    def is_claude(model_id: str) -> bool:
        return model_id.startswith("claude")

    def build_request(self, request: ChatRequest, model_id: str) -> HttpRequestSpec:
        if not self.is_claude(model_id):
            return self._gemini.build_request(request, model_id)
        body = anthropic_body(request, None)
        body["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
        url = f"{self._claude_prefix}/{quote(model_id, safe='@')}:streamRawPredict"
        return HttpRequestSpec("POST", url, self._headers, json_body(body))

    def new_decoder(self, model_id: str = "") -> StreamDecoder:
        if self.is_claude(model_id):
            return AnthropicStreamDecoder(self.max_event_bytes)
        return self._gemini.new_decoder(model_id)

    def parse_error(self, status: int, body: bytes) -> tuple[str, str | None]:
        return error_message_from_body(body)


def build_cloud_codec(name: str, pc: ProviderConfig, headers: Mapping[str, str]) -> ProviderCodec | None:
    """The codec for a cloud provider kind, or None if `pc.kind` is not one."""
    if isinstance(pc, GeminiConfig):
        if pc.api_key is None:
            raise _missing(name, "api_key", 'e.g. api_key = "env:GEMINI_API_KEY"')
        h = {**headers, "x-goog-api-key": pc.api_key.reveal(), **pc.headers}
        base = (pc.base_url or "https://generativelanguage.googleapis.com").rstrip("/")
        return GeminiCodec(gemini_api_url(base, pc.api_version), h, max_event_bytes=pc.max_event_bytes)
    if isinstance(pc, VertexConfig):
        if not pc.project:
            raise _missing(name, "project", 'the Google Cloud project id, e.g. project = "my-project"')
        return VertexCodec(pc, {**headers, **pc.headers})
    if isinstance(pc, BedrockConfig):
        from .wire.bedrock import BedrockCodec, default_endpoint

        endpoint = pc.endpoint_url or pc.base_url or default_endpoint(pc.region)
        return BedrockCodec(endpoint, pc.region, None, max_event_bytes=pc.max_event_bytes, extra_headers=pc.headers)
    return None


class GoogleTokenSource:
    """Adds `Authorization: Bearer <token>` from google-auth, refreshing before expiry.

    Credentials: a fixed `access_token`, else a service-account `credentials_file`, else
    application default credentials. Loading and refreshing run in a worker thread; a
    lock makes concurrent requests share one refresh.
    """

    def __init__(self, name: str, pc: VertexConfig) -> None:
        self.name = name
        self._pc = pc
        self._creds: Any = None
        self._lock = trio.Lock()
        self.refreshes = 0

    def _load(self) -> Any:
        if self._pc.credentials_file:
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_file(
                self._pc.credentials_file, scopes=list(GOOGLE_SCOPES)
            )
        import google.auth

        creds, _ = google.auth.default(scopes=list(GOOGLE_SCOPES))
        return creds

    def _refresh(self) -> None:
        import urllib3
        from google.auth.transport.urllib3 import Request

        self._creds.refresh(Request(urllib3.PoolManager()))
        self.refreshes += 1

    async def token(self) -> str:
        """A valid access token (refreshed in a thread when missing or about to expire)."""
        if self._pc.access_token is not None:
            return self._pc.access_token.reveal()
        async with self._lock:
            try:
                if self._creds is None:
                    self._creds = await trio.to_thread.run_sync(self._load)
                if not self._creds.valid:  # google-auth counts "expires within minutes" as not valid
                    await trio.to_thread.run_sync(self._refresh)
            except Exception as exc:
                raise ProviderError(
                    f"could not obtain Google credentials: {type(exc).__name__}: {exc}",
                    provider=self.name,
                    kind="connection",
                    retryable=True,
                ) from exc
            token: str = self._creds.token
            return token

    async def __call__(self, spec: HttpRequestSpec) -> HttpRequestSpec:
        return spec.with_headers({"authorization": f"Bearer {await self.token()}"})


class AwsSigner:
    """Signs each attempt with SigV4 (botocore), so a retry carries a fresh date.

    Keys from the config when given, else botocore's default credential chain (env,
    profile, SSO, container or instance metadata), resolved once in a worker thread.
    """

    def __init__(self, name: str, pc: BedrockConfig) -> None:
        from botocore.credentials import RefreshableCredentials  # botocore loads only when Bedrock is used

        from .wire.bedrock import sign_request

        self._sign = sign_request
        self._refreshable_type = RefreshableCredentials
        self.name = name
        self._region = pc.region
        self._creds: Any = None
        if pc.aws_access_key_id is not None or pc.aws_secret_access_key is not None:
            if pc.aws_access_key_id is None or pc.aws_secret_access_key is None:
                raise ConfigError(
                    f"invalid config: providers.{name}: give both aws_access_key_id and aws_secret_access_key "
                    "(or neither, to use botocore's default credential chain)",
                    key=f"providers.{name}.aws_secret_access_key",
                )
            from botocore.credentials import Credentials

            token = pc.aws_session_token.reveal() if pc.aws_session_token else None
            self._creds = Credentials(pc.aws_access_key_id.reveal(), pc.aws_secret_access_key.reveal(), token)
        self._lock = trio.Lock()

    def _resolve(self) -> Any:
        import botocore.session

        creds = botocore.session.get_session().get_credentials()
        if creds is None:
            raise RuntimeError("no AWS credentials found (set aws_access_key_id/aws_secret_access_key, or AWS_* env)")
        return creds

    async def __call__(self, spec: HttpRequestSpec) -> HttpRequestSpec:
        try:
            if self._creds is None:
                async with self._lock:
                    if self._creds is None:
                        self._creds = await trio.to_thread.run_sync(self._resolve)
            creds = self._creds
            if isinstance(creds, self._refreshable_type):
                frozen = await trio.to_thread.run_sync(creds.get_frozen_credentials)
            else:
                frozen = creds.get_frozen_credentials()
        except Exception as exc:
            raise ProviderError(
                f"could not obtain AWS credentials: {type(exc).__name__}: {exc}",
                provider=self.name,
                kind="connection",
                retryable=False,
            ) from exc
        return self._sign(spec, frozen, self._region)


def build_cloud_authorizer(name: str, pc: ProviderConfig) -> Authorizer | None:
    """The authorizer for a cloud provider kind, or None if it needs none."""
    if isinstance(pc, VertexConfig):
        return GoogleTokenSource(name, pc)
    if isinstance(pc, BedrockConfig):
        return AwsSigner(name, pc)
    return None
